//! Riding out a lake that cannot be written (a full disk, a directory made
//! read-only): the consumer pauses, keeps what it read, commits nothing,
//! and tries the flush again with a growing pause until it succeeds.

use groundtruth_error::Classified;
use groundtruth_telemetry::InternalEvent;
use std::time::{Duration, Instant};

use groundtruth_lake::FlushStats;
use rdkafka::consumer::Consumer;

use groundtruth_ingest::{IngestError, Ingestor};
use groundtruth_telemetry::LogThrottle;

use crate::context::SourceConsumer;
use crate::telemetry::{LakeWriteResumed, LakeWriteStalled};

/// The longest pause between two flush attempts while the lake cannot be
/// written.
pub const MAX_FLUSH_RETRY: Duration = Duration::from_secs(10);

/// Flushes for a Kafka consumer loop; on a lake write error that a later
/// attempt can fix (its [`RetryHint`](groundtruth_error::RetryHint) says
/// so, [`Classified::is_retryable`]), pauses
/// the consumer's partitions instead of failing: nothing more is read (the
/// buffers do not grow), nothing read is committed (the caller commits only
/// when nothing is buffered), and the loop keeps polling so the consumer
/// stays in its group. Resumes the partitions once a flush succeeds.
#[derive(Debug)]
pub struct FlushRetry {
    stalled_since: Option<Instant>,
    next_try: Instant,
    failures: u32,
    log: LogThrottle,
}

impl Default for FlushRetry {
    fn default() -> Self {
        Self::new()
    }
}

impl FlushRetry {
    pub fn new() -> Self {
        FlushRetry {
            stalled_since: None,
            next_try: Instant::now(),
            failures: 0,
            log: LogThrottle::default(),
        }
    }

    /// Whether the lake is failing to be written (ingestion paused).
    pub fn stalled(&self) -> bool {
        self.stalled_since.is_some()
    }

    /// Whether a flush may be tried now: always, unless the last one failed
    /// and its pause is not over.
    pub fn may_try(&self) -> bool {
        Instant::now() >= self.next_try
    }

    /// After a rebalance dropped the buffers: the stall is over (the new
    /// assignment starts unpaused; the next flush tells again).
    pub fn reset(&mut self) {
        if self.stalled() {
            crate::telemetry::lake_write_stalled_gauge(false);
        }
        *self = Self::new();
    }

    /// Flushes `ing`. `Ok(None)` when the flush failed and will be retried
    /// (the error is logged; the partitions are paused).
    pub fn flush(
        &mut self,
        ing: &mut Ingestor,
        consumer: &SourceConsumer,
    ) -> Result<Option<FlushStats>, IngestError> {
        match ing.flush() {
            Ok(stats) => {
                if let Some(since) = self.stalled_since.take() {
                    set_paused(consumer, false);
                    LakeWriteResumed {
                        stalled_s: since.elapsed().as_secs_f64(),
                        failures: self.failures,
                    }
                    .emit();
                    self.failures = 0;
                    self.log.clear();
                }
                Ok(Some(stats))
            }
            Err(IngestError::Lake(e)) if e.is_retryable() => {
                if self.stalled_since.is_none() {
                    self.stalled_since = Some(Instant::now());
                    set_paused(consumer, true);
                }
                self.failures += 1;
                let wait = retry_pause(self.failures);
                self.next_try = Instant::now() + wait;
                if self.log.due() {
                    LakeWriteStalled {
                        error: &e,
                        failures: self.failures,
                        buffered: ing.buffered_rows(),
                        retry_in: wait,
                    }
                    .emit();
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The pause after `failures` failed flushes in a row: 0.5 s doubling, at
/// most [`MAX_FLUSH_RETRY`].
fn retry_pause(failures: u32) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(failures.saturating_sub(1).min(10)))
        .min(MAX_FLUSH_RETRY)
}

fn set_paused(consumer: &SourceConsumer, pause: bool) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, pause, "cannot pause or resume the Kafka partitions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pause_grows_to_its_cap() {
        assert_eq!(retry_pause(1), Duration::from_millis(500));
        assert_eq!(retry_pause(2), Duration::from_secs(1));
        assert_eq!(retry_pause(4), Duration::from_secs(4));
        assert_eq!(retry_pause(5), Duration::from_secs(8));
        assert_eq!(retry_pause(6), MAX_FLUSH_RETRY);
        assert_eq!(retry_pause(u32::MAX), MAX_FLUSH_RETRY);
    }
}
