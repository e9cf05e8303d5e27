//! The Kafka loop's internal telemetry events: each writes its log line
//! and its metrics together (names from `groundtruth_telemetry::metric`).

use groundtruth_telemetry::{metric, InternalEvent};

/// A Kafka error the consumer rides out (broker down, rebalance...).
pub(crate) struct KafkaTransientError<'a> {
    pub action: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for KafkaTransientError<'_> {
    fn emit(self) {
        tracing::warn!(action = self.action, error = %self.error, "Kafka error, retrying");
        metrics::counter!(metric::KAFKA_ERRORS.name, "action" => self.action).increment(1);
    }
}

/// Offsets committed after a durable flush.
pub(crate) struct OffsetsCommitted {
    pub partitions: usize,
}

impl InternalEvent for OffsetsCommitted {
    fn emit(self) {
        tracing::debug!(partitions = self.partitions, "offsets committed");
        metrics::counter!(metric::KAFKA_COMMITS.name).increment(1);
    }
}

/// A flush failed in a way a later attempt can fix (a full disk): the
/// consumer paused, nothing read is committed.
pub(crate) struct LakeWriteStalled<'a> {
    pub error: &'a groundtruth_lake::LakeError,
    pub failures: u32,
    pub buffered: usize,
    pub retry_in: std::time::Duration,
}

impl InternalEvent for LakeWriteStalled<'_> {
    fn emit(self) {
        tracing::error!(
            error = %self.error,
            failures = self.failures,
            buffered = self.buffered,
            retry_in_s = self.retry_in.as_secs_f64(),
            "cannot write the lake: ingestion paused, offsets not committed; \
             retrying until it can be written (free space or fix the directory)"
        );
        metrics::counter!(metric::LAKE_WRITE_FAILURES.name).increment(1);
        lake_write_stalled_gauge(true);
    }
}

/// The lake could be written again after a stall: ingestion resumed.
pub(crate) struct LakeWriteResumed {
    pub stalled_s: f64,
    pub failures: u32,
}

impl InternalEvent for LakeWriteResumed {
    fn emit(self) {
        tracing::warn!(
            stalled_s = self.stalled_s,
            failures = self.failures,
            "the lake can be written again: ingestion resumed"
        );
        lake_write_stalled_gauge(false);
    }
}

/// `groundtruth_lake_write_stalled`: 1 while ingestion is paused on a lake
/// that cannot be written.
pub(crate) fn lake_write_stalled_gauge(stalled: bool) {
    metrics::gauge!(metric::LAKE_WRITE_STALLED.name).set(if stalled { 1.0 } else { 0.0 });
}
