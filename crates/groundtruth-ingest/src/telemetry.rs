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
