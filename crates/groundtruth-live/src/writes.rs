//! Writes of the service's state files that may fail for a while.

use groundtruth_error::Classified;
use groundtruth_telemetry::{metric, LogThrottle};
use std::time::Instant;

use crate::error::LiveError;

/// Writes of the service's state files (checkpoint, partition records,
/// judge file) that may fail for a while (a full disk): a failure is
/// logged, the caller holds back what depends on it (commits, handing
/// windows over), and the write is tried again on a later turn of the loop.
#[derive(Default)]
pub(crate) struct StateWrites {
    failing_since: Option<Instant>,
    log: LogThrottle,
}

impl StateWrites {
    /// `Some` with the result, `None` after an I/O failure (logged at once,
    /// then at most every 30 s while it goes on); other errors stop the
    /// service.
    pub fn attempt<T>(
        &mut self,
        what: &'static str,
        result: Result<T, LiveError>,
    ) -> Result<Option<T>, LiveError> {
        match result {
            Ok(v) => {
                if let Some(since) = self.failing_since.take() {
                    tracing::warn!(
                        failing_s = since.elapsed().as_secs_f64(),
                        "the service's state files can be written again"
                    );
                    self.log.clear();
                }
                Ok(Some(v))
            }
            Err(e) if e.is_retryable() => {
                self.failing_since.get_or_insert_with(Instant::now);
                if self.log.due() {
                    tracing::error!(
                        error = %e,
                        what,
                        "cannot write the service's state files: no offset committed and no window handed to detection until they can be written; retrying"
                    );
                    metrics::counter!(metric::LIVE_STATE_WRITE_FAILURES.name).increment(1);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
