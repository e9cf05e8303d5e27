use groundtruth_error::{Classified, ErrorDomain, RetryHint};
use std::path::PathBuf;

/// Errors of the lake writer. Each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("cannot {action} `{path}`: {source}; check that the lake directory is writable and the disk not full")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lake `{path}` is in use by another groundtruth process (it holds `{}`); stop that process, use another --lake directory, or give each live-service instance sharing the lake its own `lake.member` name", lock.display())]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("lake member name `{name}` is not valid: use 1 to 64 letters, digits, `-` or `_`")]
    Member { name: String },
    #[error("cannot write Parquet file `{path}`: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot read Parquet file `{path}`: {source}; the file may be damaged: move it out of the lake and re-ingest its source")]
    ReadParquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot build an Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("compaction intent `{path}` is not valid JSON: {source}; delete it after checking the partition by hand")]
    Intent {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the lake writer of `{path}` stopped: {why}; restart the process to reload the lake from disk")]
    Poisoned { path: PathBuf, why: String },
}

impl Classified for LakeError {
    fn domain(&self) -> ErrorDomain {
        match self {
            LakeError::Member { .. } => ErrorDomain::User,
            LakeError::Io { .. }
            | LakeError::Locked { .. }
            | LakeError::Parquet { .. }
            | LakeError::ReadParquet { .. } => ErrorDomain::External,
            LakeError::Arrow(_) | LakeError::Intent { .. } | LakeError::Poisoned { .. } => {
                ErrorDomain::Internal
            }
        }
    }

    /// A [`flush`](crate::LakeWriter::flush) that failed can simply be
    /// called again later: the rows not yet written are kept in order and
    /// nothing was half-done (the disk was full, the directory not writable
    /// for a while). Not for a writer that no longer trusts its state
    /// ([`LakeError::Poisoned`]), a lake another process holds or a bad
    /// member name.
    fn retry_hint(&self) -> RetryHint {
        match self {
            LakeError::Poisoned { .. } | LakeError::Locked { .. } | LakeError::Member { .. } => {
                RetryHint::NoRetry
            }
            _ => RetryHint::WithBackoff,
        }
    }
}

pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T, LakeError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T, LakeError> {
        self.map_err(|source| LakeError::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_retried_a_poisoned_writer_is_not() {
        let io = LakeError::Io {
            action: "write",
            path: "/lake/x".into(),
            source: std::io::Error::other("No space left on device"),
        };
        assert_eq!(io.domain(), ErrorDomain::External);
        assert!(io.is_retryable());
        let poisoned = LakeError::Poisoned {
            path: "/lake".into(),
            why: "a rename failed half-way".into(),
        };
        assert_eq!(poisoned.domain(), ErrorDomain::Internal);
        assert!(!poisoned.is_retryable());
        let member = LakeError::Member { name: "a b".into() };
        assert_eq!(member.domain(), ErrorDomain::User);
        assert!(!member.is_retryable());
    }
}
