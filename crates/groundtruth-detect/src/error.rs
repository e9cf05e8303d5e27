use datafusion::error::DataFusionError;
use groundtruth_error::{Classified, ErrorDomain, RetryHint};

/// What went wrong running the detectors.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("query for {what} failed: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: DataFusionError,
    },
    #[error("query for {what} returned column `{column}` of an unexpected type {found}; the SQL in sql/ and the detector disagree")]
    Column {
        what: &'static str,
        column: &'static str,
        found: String,
    },
    #[error(transparent)]
    Sql(#[from] groundtruth_sql::SqlError),
}

impl Classified for DetectError {
    fn domain(&self) -> ErrorDomain {
        match self {
            DetectError::Query { source, .. } if groundtruth_sql::is_vanished_file(source) => {
                ErrorDomain::External
            }
            // The detectors' own SQL and their reading of it.
            DetectError::Query { .. } | DetectError::Column { .. } => ErrorDomain::Internal,
            DetectError::Sql(e) => match e.domain() {
                // The views and queries here are ours, not a caller's.
                ErrorDomain::User => ErrorDomain::Internal,
                other => other,
            },
        }
    }

    /// A query failed on a lake file removed while it ran (another
    /// writer's compaction replaced it): judging the window again reads
    /// the merged file.
    fn retry_hint(&self) -> RetryHint {
        match self {
            DetectError::Query { source, .. } if groundtruth_sql::is_vanished_file(source) => {
                RetryHint::WithBackoff
            }
            DetectError::Sql(e) => e.retry_hint(),
            _ => RetryHint::NoRetry,
        }
    }
}
