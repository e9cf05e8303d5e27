//! Internal telemetry events: each writes its log line and its metrics
//! together (metric names `groundtruth_<name>_<unit>_total`, low-cardinality
//! labels only).

use groundtruth_event::RejectCode;
use groundtruth_telemetry::{metric, InternalEvent};

use crate::counts::IngestCounts;

/// Emitted after each flush with what the flush made durable.
pub(crate) struct BatchPersisted<'a> {
    pub source: &'static str,
    pub counts: &'a IngestCounts,
    /// Event-time watermark after the batch, epoch microseconds.
    pub watermark_us: Option<i64>,
    pub files: usize,
    pub bytes: u64,
    pub elapsed_ms: u64,
}

impl InternalEvent for BatchPersisted<'_> {
    fn emit(self) {
        let c = self.counts;
        tracing::debug!(
            source = self.source,
            accepted = c.accepted,
            duplicates = c.duplicates,
            rejected = c.rejected(),
            late = c.late,
            files = self.files,
            bytes = self.bytes,
            elapsed_ms = self.elapsed_ms,
            "batch persisted"
        );
        let src = self.source;
        metrics::counter!(metric::INGEST_EVENTS.name, "source" => src, "outcome" => "accepted")
            .increment(c.accepted);
        metrics::counter!(metric::INGEST_EVENTS.name, "source" => src, "outcome" => "duplicate")
            .increment(c.duplicates);
        for code in RejectCode::ALL {
            let n = c.rejected_by(code);
            if n > 0 {
                metrics::counter!(metric::INGEST_DEAD_LETTERS.name, "source" => src, "reason" => code.as_str())
                    .increment(n);
            }
        }
        metrics::counter!(metric::INGEST_BYTES.name, "source" => src).increment(c.bytes);
        metrics::counter!(metric::INGEST_LATE_EVENTS.name, "source" => src).increment(c.late);
        if let Some(w) = self.watermark_us {
            let now_us = crate::counts::now_micros();
            metrics::gauge!(metric::INGEST_WATERMARK.name, "source" => src).set(w as f64 / 1e6);
            // How far event time lags the wall clock (includes the lateness).
            metrics::gauge!(metric::INGEST_WATERMARK_DELAY.name, "source" => src)
                .set((now_us - w) as f64 / 1e6);
        }
        metrics::counter!(metric::LAKE_FILES_WRITTEN.name).increment(self.files as u64);
        metrics::counter!(metric::LAKE_BYTES_WRITTEN.name).increment(self.bytes);
        metrics::histogram!(metric::LAKE_FLUSH.name).record(self.elapsed_ms as f64 / 1000.0);
    }
}

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
