use datafusion::error::DataFusionError;
use groundtruth_error::{Classified, ErrorDomain, RetryHint};

/// Errors of SQL over the lake.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot open the lake table `{table}` at `{path}`: {source}")]
    Register {
        table: &'static str,
        path: String,
        source: DataFusionError,
    },
    #[error("cannot create SQL view `{view}` from sql/{view}.sql: {source}")]
    View {
        view: &'static str,
        #[source]
        source: DataFusionError,
    },
    #[error("query failed: {0}")]
    Sql(#[source] DataFusionError),
    #[error("cannot write the result as {format}: {source}")]
    Output {
        format: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SqlError {
    /// The DataFusion error inside, if any.
    pub fn datafusion(&self) -> Option<&DataFusionError> {
        match self {
            SqlError::Register { source, .. } | SqlError::View { source, .. } => Some(source),
            SqlError::Sql(source) => Some(source),
            SqlError::Output { .. } => None,
        }
    }
}

impl Classified for SqlError {
    fn domain(&self) -> ErrorDomain {
        if self.datafusion().is_some_and(crate::is_vanished_file) {
            return ErrorDomain::External;
        }
        match self {
            // The caller's SQL (the views are ours: their failing is ours).
            SqlError::Sql(e) => match e.find_root() {
                DataFusionError::SQL(..)
                | DataFusionError::Plan(_)
                | DataFusionError::SchemaError(..)
                | DataFusionError::NotImplemented(_)
                | DataFusionError::ResourcesExhausted(_) => ErrorDomain::User,
                DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => {
                    ErrorDomain::External
                }
                _ => ErrorDomain::Internal,
            },
            SqlError::Register { .. } | SqlError::Output { .. } => ErrorDomain::External,
            SqlError::View { .. } => ErrorDomain::Internal,
        }
    }

    /// Only a file compacted away under the query: listing the lake again
    /// finds the merged file.
    fn retry_hint(&self) -> RetryHint {
        if self.datafusion().is_some_and(crate::is_vanished_file) {
            RetryHint::WithBackoff
        } else {
            RetryHint::NoRetry
        }
    }
}
