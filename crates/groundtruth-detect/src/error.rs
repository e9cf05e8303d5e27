use datafusion::error::DataFusionError;

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

impl DetectError {
    /// Whether a query failed on a lake file removed while it ran (another
    /// writer's compaction replaced it): judging the window again reads
    /// the merged file.
    pub fn is_vanished_file(&self) -> bool {
        match self {
            DetectError::Query { source, .. } => groundtruth_sql::is_vanished_file(source),
            DetectError::Sql(groundtruth_sql::SqlError::Sql(source))
            | DetectError::Sql(groundtruth_sql::SqlError::View { source, .. })
            | DetectError::Sql(groundtruth_sql::SqlError::Register { source, .. }) => {
                groundtruth_sql::is_vanished_file(source)
            }
            _ => false,
        }
    }
}
