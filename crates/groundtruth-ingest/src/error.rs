use std::path::PathBuf;

use groundtruth_error::{Classified, ErrorDomain, RetryHint};
use groundtruth_lake::LakeError;

/// Errors that stop an ingest run. Bad events never do: they become dead
/// letters.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[cfg(feature = "simulator")]
    #[error("simulation failed: {0}")]
    Sim(#[from] groundtruth_sim::SimError),
}

impl Classified for IngestError {
    fn domain(&self) -> ErrorDomain {
        match self {
            IngestError::Lake(e) => e.domain(),
            // A file that is missing or unreadable, the operator's
            // input or the world outside.
            IngestError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorDomain::User
            }
            IngestError::Read { .. } => ErrorDomain::External,
            #[cfg(feature = "simulator")]
            IngestError::Sim(_) => ErrorDomain::User,
        }
    }

    /// A lake write that can be tried again (a Kafka consumer pauses and
    /// retries; nothing is committed meanwhile).
    fn retry_hint(&self) -> RetryHint {
        match self {
            IngestError::Lake(e) => e.retry_hint(),
            _ => RetryHint::NoRetry,
        }
    }
}
