//! What an ingest counted: accepted, duplicates, rejected by reason, late,
//! bytes; and the wall clock the watermark delay is measured against.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use groundtruth_event::RejectCode;

/// Counts of one run (or since the last flush).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestCounts {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<RejectCode, u64>,
    /// Dead letters already stored (redelivered bad messages).
    pub duplicate_rejects: u64,
    pub bytes: u64,
    /// Accepted events that arrived behind the watermark (event time older
    /// than the latest seen minus the allowed lateness). They are in the
    /// lake like any other; windows that already closed miss them, so a
    /// re-scan over the lake picks them up.
    pub late: u64,
}

impl IngestCounts {
    pub fn rejected(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn rejected_by(&self, code: RejectCode) -> u64 {
        self.rejected.get(&code).copied().unwrap_or(0)
    }

    pub fn add(&mut self, o: &IngestCounts) {
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.duplicate_rejects += o.duplicate_rejects;
        self.bytes += o.bytes;
        self.late += o.late;
        for (k, v) in &o.rejected {
            *self.rejected.entry(*k).or_default() += v;
        }
    }

    /// What was counted after `before` was taken (both from the same run).
    pub fn since(&self, before: &IngestCounts) -> IngestCounts {
        let mut rejected = self.rejected.clone();
        for (k, v) in &before.rejected {
            if let Some(n) = rejected.get_mut(k) {
                *n -= v;
            }
        }
        rejected.retain(|_, v| *v > 0);
        IngestCounts {
            accepted: self.accepted - before.accepted,
            duplicates: self.duplicates - before.duplicates,
            rejected,
            duplicate_rejects: self.duplicate_rejects - before.duplicate_rejects,
            bytes: self.bytes - before.bytes,
            late: self.late - before.late,
        }
    }

    /// `accepted 10, duplicates 0, rejected 2 (invalid_json 1, too_large 1)`
    pub fn summary(&self) -> String {
        let mut s = format!(
            "accepted {}, duplicates {}, rejected {}",
            self.accepted,
            self.duplicates,
            self.rejected()
        );
        if !self.rejected.is_empty() {
            let parts: Vec<String> = self
                .rejected
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
        if self.late > 0 {
            s.push_str(&format!(", late {}", self.late));
        }
        s
    }
}

/// The wall clock, Unix microseconds.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
