use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// What went wrong running the detectors.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("cannot create SQL view `{view}` from sql/{view}.sql: {source}")]
    View {
        view: &'static str,
        #[source]
        source: DataFusionError,
    },
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
    Lake(#[from] groundtruth_lake::QueryError),
    #[error(transparent)]
    LakeWrite(#[from] groundtruth_lake::LakeError),
    #[error(transparent)]
    Ingest(#[from] groundtruth_ingest::IngestError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Input {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

impl DetectError {
    /// Whether a query failed on a lake file removed while it ran (another
    /// writer's compaction replaced it): judging the window again reads
    /// the merged file.
    pub fn is_vanished_file(&self) -> bool {
        match self {
            DetectError::View { source, .. } | DetectError::Query { source, .. } => {
                groundtruth_lake::is_vanished_file(source)
            }
            DetectError::Lake(groundtruth_lake::QueryError::Sql(source))
            | DetectError::Lake(groundtruth_lake::QueryError::Register { source, .. }) => {
                groundtruth_lake::is_vanished_file(source)
            }
            _ => false,
        }
    }
}
