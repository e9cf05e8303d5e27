use std::path::PathBuf;

use groundtruth_error::{Classified, ErrorDomain, RetryHint};

/// What stopped the live service.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot {action} {path}: {source}; check that its directory (the state directory `live.state_dir` or the lake) is writable and its disk not full")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path} is unreadable ({source}); it was written by another version or damaged: move it away to start over from the Kafka offsets")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("scale-out state {path} is unreadable ({source}); it is rewritten by the owner of the partition (or the judge): delete it and restart the instances, which re-judge from their checkpoints")]
    Handover {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Ingest(#[from] groundtruth_ingest::IngestError),
    #[error(transparent)]
    Kafka(#[from] groundtruth_kafka::SourceError),
    #[error(transparent)]
    Detect(#[from] groundtruth_detect::DetectError),
    #[error("findings could not be stored: {0}")]
    Store(#[from] groundtruth_store::StoreError),
    #[error("cannot start the detection runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Classified for LiveError {
    fn domain(&self) -> ErrorDomain {
        match self {
            LiveError::Io { .. } | LiveError::Runtime(_) => ErrorDomain::External,
            LiveError::Checkpoint { .. } | LiveError::Handover { .. } => ErrorDomain::Internal,
            LiveError::Ingest(e) => e.domain(),
            LiveError::Kafka(e) => e.domain(),
            LiveError::Detect(e) => e.domain(),
            LiveError::Store(e) => e.domain(),
        }
    }

    /// A state file that could not be written or read (a full disk, a
    /// directory made read-only): the service retries instead of stopping;
    /// and whatever the wrapped error says of itself.
    fn retry_hint(&self) -> RetryHint {
        match self {
            LiveError::Io { .. } => RetryHint::WithBackoff,
            LiveError::Checkpoint { .. } | LiveError::Handover { .. } | LiveError::Runtime(_) => {
                RetryHint::NoRetry
            }
            LiveError::Ingest(e) => e.retry_hint(),
            LiveError::Kafka(e) => e.retry_hint(),
            LiveError::Detect(e) => e.retry_hint(),
            LiveError::Store(e) => e.retry_hint(),
        }
    }
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> LiveError + 'a {
    move |source| LiveError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
