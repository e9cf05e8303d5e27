use std::path::PathBuf;

/// What went wrong in an offline run: a detection over files, an
/// evaluation, a calibration or a data loader.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Detect(#[from] groundtruth_detect::DetectError),
    #[error(transparent)]
    Sql(#[from] groundtruth_sql::SqlError),
    #[error(transparent)]
    Lake(#[from] groundtruth_lake::LakeError),
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
