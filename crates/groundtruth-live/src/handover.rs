//! Scale-out: several instances of the live service in one consumer group
//! share the lake (each writing as a `lake.member`) and the review store.
//!
//! Ingest is split by Kafka partition; detection is not, because the
//! detectors compare an account with the whole population (a farm chain's
//! significance against every session, a registration's return rate
//! against all others), and splitting them would make `run` differ from
//! `detect`. So one instance, the owner of the first topic's partition 0,
//! is the **judge**: it closes every window over the whole shared lake.
//! The others tell it, through one small file per partition in the lake
//! (`_partitions/<topic>@<partition>.json`, a [`PartitionRecord`]):
//!
//! * how far the partition's events are in the lake (the latest event time
//!   of everything flushed) and whether it is read to its end, so the judge
//!   takes the slowest partition for its watermark, as one instance does;
//! * which spans of event time got events after the judge had handed the
//!   windows seeing them to detection (read from the judge's file *after*
//!   the flush that stored them: either the judge's run lists the new file,
//!   or the flush saw the window dispatched and asks for its re-scan).
//!
//! The judge's own state ([`JudgeState`]: windows dispatched and closed,
//! re-scans queued, the requests absorbed) is in `_judge.json`, so whoever
//! owns partition 0 after a rebalance carries on from it. All files are
//! written atomically (temporary file, fsync, rename).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use groundtruth_window::Progress;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{io, LiveError};

/// Event times (µs) of a span of late events, and the request number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateSpan {
    pub lo_us: i64,
    pub hi_us: i64,
    pub seq: u64,
}

/// One partition, as its owner last wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Latest event time of the partition's events in the lake.
    pub latest_us: Option<i64>,
    /// No event of the partition in the lake is older than this.
    pub first_event_us: Option<i64>,
    /// Read to its end when written.
    pub caught_up: bool,
    /// The last request number used.
    pub seq: u64,
    /// Re-scan requests not yet absorbed by the judge, per hour of event
    /// time.
    pub late: BTreeMap<i64, LateSpan>,
}

impl PartitionRecord {
    /// Asks for the windows seeing `[lo, hi]` to be judged again.
    pub fn request(&mut self, lo_us: i64, hi_us: i64) {
        self.seq += 1;
        let hour = lo_us.div_euclid(3_600_000_000);
        let seq = self.seq;
        let e = self
            .late
            .entry(hour)
            .or_insert(LateSpan { lo_us, hi_us, seq });
        e.lo_us = e.lo_us.min(lo_us);
        e.hi_us = e.hi_us.max(hi_us);
        e.seq = seq;
    }

    /// Drops the requests the judge has absorbed.
    pub fn prune(&mut self, absorbed: u64) {
        self.late.retain(|_, s| s.seq > absorbed);
    }
}

/// The judge's state, shared so that the next judge carries on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeState {
    /// Per group, the end of the last window handed to detection.
    pub dispatched: Progress,
    /// Per group, the end of the last window whose findings are stored.
    pub progress: Progress,
    pub rescan: BTreeSet<(String, i64)>,
    pub first_event_us: Option<i64>,
    /// Per partition, the last request number absorbed into `rescan`.
    pub absorbed: BTreeMap<String, u64>,
}

impl JudgeState {
    /// Combines two views (this instance's checkpoint and the shared file,
    /// one of which may be older): nothing judged is redone needlessly and
    /// no queued re-scan is lost.
    pub fn merge(&mut self, other: &JudgeState) {
        for (g, &end) in &other.progress {
            let e = self.progress.entry(g.clone()).or_insert(end);
            *e = (*e).max(end);
        }
        // A window dispatched but not known closed is dispatched again.
        self.dispatched = self.progress.clone();
        self.rescan.extend(other.rescan.iter().cloned());
        if let Some(f) = other.first_event_us {
            earliest(&mut self.first_event_us, f);
        }
        for (tp, &n) in &other.absorbed {
            let e = self.absorbed.entry(tp.clone()).or_insert(n);
            *e = (*e).max(n);
        }
    }
}

/// Lowers `slot` to `t` (sets it when empty).
pub(crate) fn earliest(slot: &mut Option<i64>, t: i64) {
    *slot = Some(slot.map_or(t, |s| s.min(t)));
}

/// Directory of the partition records in the lake.
pub fn records_dir(lake: &Path) -> PathBuf {
    lake.join("_partitions")
}

/// File of partition `tp` (`topic/partition`).
pub fn record_path(lake: &Path, tp: &str) -> PathBuf {
    // Kafka topic names are [A-Za-z0-9._-]; the partition is a number.
    records_dir(lake).join(format!("{}.json", tp.replace('/', "@")))
}

/// File of the judge's state.
pub fn judge_path(lake: &Path) -> PathBuf {
    lake.join("_judge.json")
}

/// The record of `tp`, if one was written.
pub fn load_record(lake: &Path, tp: &str) -> Result<Option<PartitionRecord>, LiveError> {
    load(&record_path(lake, tp))
}

pub fn save_record(lake: &Path, tp: &str, rec: &PartitionRecord) -> Result<(), LiveError> {
    save(&record_path(lake, tp), rec)
}

pub fn load_judge(lake: &Path) -> Result<Option<JudgeState>, LiveError> {
    load(&judge_path(lake))
}

pub fn save_judge(lake: &Path, state: &JudgeState) -> Result<(), LiveError> {
    save(&judge_path(lake), state)
}

fn load<T: DeserializeOwned>(p: &Path) -> Result<Option<T>, LiveError> {
    match std::fs::read(p) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| LiveError::Handover {
                    path: p.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", p)(e)),
    }
}

/// Writes `value` to `p` so that a crash leaves the old or the new file.
fn save<T: Serialize>(p: &Path, value: &T) -> Result<(), LiveError> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    let bytes = serde_json::to_vec(value).map_err(|source| LiveError::Handover {
        path: p.to_path_buf(),
        source,
    })?;
    // One temporary file per process: members write the same records.
    let tmp = p.with_extension(format!("json.{}.tmp", std::process::id()));
    crate::checkpoint::write_atomically(p, &tmp, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_damaged_one_is_named() {
        let lake = tempfile::tempdir().unwrap();
        assert_eq!(load_record(lake.path(), "app-events/2").unwrap(), None);
        let mut rec = PartitionRecord {
            latest_us: Some(9),
            first_event_us: Some(5),
            ..PartitionRecord::default()
        };
        rec.request(10, 20);
        rec.request(3_600_000_005, 3_600_000_006);
        rec.request(7, 8);
        assert_eq!(rec.seq, 3);
        assert_eq!(
            rec.late[&0],
            LateSpan {
                lo_us: 7,
                hi_us: 20,
                seq: 3
            }
        );
        save_record(lake.path(), "app-events/2", &rec).unwrap();
        assert_eq!(
            load_record(lake.path(), "app-events/2").unwrap(),
            Some(rec.clone())
        );
        rec.prune(2);
        assert_eq!(rec.late.len(), 1, "the widened span is asked again");
        std::fs::write(record_path(lake.path(), "app-events/3"), b"{half").unwrap();
        let e = load_record(lake.path(), "app-events/3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("app-events@3.json"), "{e}");
    }

    #[test]
    fn merging_judge_states_keeps_every_rescan_and_the_furthest_progress() {
        let mut mine = JudgeState {
            progress: [("g".to_string(), 10)].into(),
            rescan: [("g".to_string(), 1)].into(),
            first_event_us: Some(4),
            absorbed: [("t/0".to_string(), 3)].into(),
            ..JudgeState::default()
        };
        let shared = JudgeState {
            dispatched: [("g".to_string(), 30)].into(),
            progress: [("g".to_string(), 20), ("h".to_string(), 5)].into(),
            rescan: [("g".to_string(), 2)].into(),
            first_event_us: Some(2),
            absorbed: [("t/0".to_string(), 1), ("t/1".to_string(), 7)].into(),
        };
        mine.merge(&shared);
        assert_eq!(
            mine.progress,
            [("g".to_string(), 20), ("h".to_string(), 5)].into()
        );
        assert_eq!(mine.dispatched, mine.progress);
        assert_eq!(mine.rescan.len(), 2);
        assert_eq!(mine.first_event_us, Some(2));
        assert_eq!(
            mine.absorbed,
            [("t/0".to_string(), 3), ("t/1".to_string(), 7)].into()
        );
    }
}
