//! Decode, route to the lake or the dead-letter store, flush.

use groundtruth_telemetry::InternalEvent;
use std::time::{Duration, Instant};

use groundtruth_event::{decode, DeadLetter, DecodeOptions, Reject, SourcePosition};
use groundtruth_lake::{Appended, FlushStats, LakeWriter};
use groundtruth_window::{Arrival, Watermark};

use crate::counts::{now_micros, IngestCounts};
use crate::error::IngestError;
use crate::telemetry::BatchPersisted;

/// When buffered rows are written out.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    /// Flush when this many events and dead letters are buffered.
    pub max_rows: usize,
    /// Flush when the buffered source messages add up to this many bytes.
    pub max_bytes: usize,
    /// Flush at least this often while there is something buffered
    /// (streaming sources; file ingest ignores it).
    pub interval: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_rows: 500_000,
            max_bytes: 256 << 20,
            interval: Duration::from_secs(1),
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    /// A bad event; it was added to the dead-letter store (unless already
    /// there).
    Rejected(Reject),
}

/// Feeds raw messages into a lake.
pub struct Ingestor {
    lake: LakeWriter,
    decode: DecodeOptions,
    policy: FlushPolicy,
    source: &'static str,
    pending: IngestCounts,
    total: IngestCounts,
    last_flush: Instant,
    watermark: Watermark,
    count_late: bool,
}

/// Default allowed lateness: phones upload hours late.
pub const DEFAULT_LATENESS_S: i64 = 6 * 3600;

impl Ingestor {
    /// `source` names the source in metrics (`kafka`, `file`, `simulator`).
    pub fn new(
        lake: LakeWriter,
        decode: DecodeOptions,
        policy: FlushPolicy,
        source: &'static str,
    ) -> Self {
        Ingestor {
            lake,
            decode,
            policy,
            source,
            pending: IngestCounts::default(),
            total: IngestCounts::default(),
            last_flush: Instant::now(),
            watermark: Watermark::new(DEFAULT_LATENESS_S * 1_000_000),
            count_late: true,
        }
    }

    /// Stops counting events behind this ingestor's single watermark: the
    /// live service keeps one per partition and counts the events that
    /// miss a closed window instead.
    pub fn without_late_count(mut self) -> Self {
        self.count_late = false;
        self
    }

    /// Sets the allowed lateness (seconds) of the watermark.
    pub fn with_lateness_s(mut self, seconds: i64) -> Self {
        self.watermark = Watermark::new(seconds.saturating_mul(1_000_000));
        self
    }

    /// Event time so far: latest event time seen minus the allowed lateness.
    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    pub fn lake(&self) -> &LakeWriter {
        &self.lake
    }

    pub fn lake_mut(&mut self) -> &mut LakeWriter {
        &mut self.lake
    }

    pub fn decode_options(&self) -> &DecodeOptions {
        &self.decode
    }

    /// Counts over the whole run, flushed or not.
    pub fn totals(&self) -> IngestCounts {
        let mut t = self.total.clone();
        t.add(&self.pending);
        t
    }

    /// Decodes one message and buffers it. `position` is only evaluated
    /// for bad events.
    pub fn accept(&mut self, bytes: &[u8], position: impl FnOnce() -> SourcePosition) -> Outcome {
        self.accept_timed(bytes, position).0
    }

    /// [`Ingestor::accept`], also giving the event time (epoch µs) of a
    /// valid event, new or duplicate.
    pub fn accept_timed(
        &mut self,
        bytes: &[u8],
        position: impl FnOnce() -> SourcePosition,
    ) -> (Outcome, Option<i64>) {
        self.pending.bytes += bytes.len() as u64;
        match decode(bytes, &self.decode) {
            Ok(event) => {
                let ts = Some(event.ts_micros);
                match self.lake.append_event(&event, bytes.len()) {
                    Appended::New => {
                        self.pending.accepted += 1;
                        if self.count_late {
                            if let Arrival::Late { .. } = self.watermark.observe(event.ts_micros) {
                                self.pending.late += 1;
                            }
                        }
                        (Outcome::Accepted, ts)
                    }
                    Appended::Duplicate => {
                        self.pending.duplicates += 1;
                        (Outcome::Duplicate, ts)
                    }
                }
            }
            Err(reject) => {
                self.reject(bytes, bytes.len(), &position(), &reject);
                (Outcome::Rejected(reject), None)
            }
        }
    }

    /// Stores a bad message whose bytes were not all kept (e.g. a line
    /// longer than the limit): `raw` is a prefix of a message of `raw_len`
    /// bytes.
    pub fn reject(
        &mut self,
        raw: &[u8],
        raw_len: usize,
        position: &SourcePosition,
        reject: &Reject,
    ) {
        let dl = DeadLetter {
            position,
            raw,
            raw_len,
            reject,
            received_at_micros: now_micros(),
        };
        match self.lake.append_dead_letter(&dl) {
            Appended::New => *self.pending.rejected.entry(reject.code).or_default() += 1,
            Appended::Duplicate => self.pending.duplicate_rejects += 1,
        }
    }

    /// True when the buffer is over the size limits.
    pub fn over_size(&self) -> bool {
        self.lake.buffered_rows() >= self.policy.max_rows
            || self.lake.buffered_bytes() >= self.policy.max_bytes
    }

    /// True when something is buffered and the flush interval has passed.
    pub fn interval_due(&self) -> bool {
        self.lake.buffered_rows() > 0 && self.last_flush.elapsed() >= self.policy.interval
    }

    /// How often streaming sources flush (and commit).
    pub fn flush_interval(&self) -> Duration {
        self.policy.interval
    }

    /// Drops everything not yet flushed (and its counts) and resynchronises
    /// the lake writer with the files on disk (see
    /// [`LakeWriter::resync`]): after a Kafka rebalance, when what was read
    /// but not committed will be read again from the committed offsets.
    pub fn resync(&mut self) -> Result<(), IngestError> {
        self.pending = IngestCounts::default();
        self.lake.resync()?;
        Ok(())
    }

    pub fn has_buffered(&self) -> bool {
        self.lake.buffered_rows() > 0
    }

    /// Events and dead letters accepted and not yet stored.
    pub fn buffered_rows(&self) -> usize {
        self.lake.buffered_rows()
    }

    /// Makes everything accepted so far durable.
    pub fn flush(&mut self) -> Result<FlushStats, IngestError> {
        let started = Instant::now();
        let stats = self.lake.flush()?;
        BatchPersisted {
            source: self.source,
            counts: &self.pending,
            watermark_us: self.watermark.current(),
            files: stats.files,
            bytes: stats.bytes,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
        .emit();
        self.total.add(&self.pending);
        self.pending = IngestCounts::default();
        self.last_flush = Instant::now();
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundtruth_lake::LakeOptions;

    fn event(id: &str, ts: &str) -> Vec<u8> {
        format!(
            r#"{{"event_id":"{id}","ts":"{ts}","app_id":"a","account_id":"u","kind":"session_start"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn late_events_are_counted_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeWriter::open(dir.path(), LakeOptions::default()).unwrap();
        let mut ing = Ingestor::new(
            lake,
            DecodeOptions::default(),
            FlushPolicy::default(),
            "file",
        )
        .with_lateness_s(3600);
        let pos = || SourcePosition::File {
            path: "t".into(),
            line: 1,
        };
        // In order, then 30 minutes back (within the hour), then 2 hours back.
        for (id, ts) in [
            ("e1", "2026-11-02T10:00:00+08:00"),
            ("e2", "2026-11-02T12:00:00+08:00"),
            ("e3", "2026-11-02T11:30:00+08:00"),
            ("e4", "2026-11-02T10:00:01+08:00"),
        ] {
            assert_eq!(ing.accept(&event(id, ts), pos), Outcome::Accepted);
        }
        let t = ing.totals();
        assert_eq!((t.accepted, t.late), (4, 1));
        assert!(t.summary().ends_with(", late 1"), "{}", t.summary());
        // 12:00 +08:00 minus one hour.
        assert_eq!(
            ing.watermark().current(),
            Some(1_793_592_000 * 1_000_000 - 3_600 * 1_000_000)
        );
        // The late event is in the lake like the others.
        assert_eq!(ing.flush().unwrap().events, 4);
    }
}
