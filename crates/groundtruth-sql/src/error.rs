use datafusion::error::DataFusionError;

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
