//! The service's checkpoint: the Kafka offsets and the event-time state
//! that go with them, written atomically (temporary file, fsync, rename).
//!
//! It is written after every lake flush (offsets and clocks, before the
//! offsets are committed to Kafka) and after every window close (progress).
//! The lake is the window state: every event read before a checkpoint is
//! in it, and a window's context is read from it when the window closes,
//! so memory holds only the clocks and the list of windows to re-scan.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use groundtruth_window::Progress;
use serde::{Deserialize, Serialize};

use crate::clock::PartitionClock;
use crate::error::{io, LiveError};

const VERSION: u32 = 1;

/// Everything a restart needs besides the lake.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// Next offset to read per `topic/partition` (all earlier ones are in
    /// the lake).
    pub offsets: BTreeMap<String, i64>,
    pub clock: PartitionClock,
    /// Earliest on-time event time seen: where windows start.
    pub first_event_us: Option<i64>,
    /// Per detector group, the end of the last window closed.
    pub progress: Progress,
    /// Closed windows that late events touched: (group, window start).
    pub rescan: BTreeSet<(String, i64)>,
    /// Windows closed and findings stored, over the service's life.
    pub windows_closed: u64,
    pub findings_stored: u64,
    /// Per `topic/partition`, the last re-scan request absorbed from its
    /// record (when this instance is the judge; see [`crate::handover`]).
    #[serde(default)]
    pub absorbed: BTreeMap<String, u64>,
}

impl Checkpoint {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("checkpoint.json")
    }

    /// The checkpoint in `state_dir`, or a fresh one.
    pub fn load(state_dir: &Path, lateness_us: i64) -> Result<Checkpoint, LiveError> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut cp: Checkpoint =
                    serde_json::from_slice(&bytes).map_err(|source| LiveError::Checkpoint {
                        path: path.clone(),
                        source,
                    })?;
                cp.clock.lateness_us = lateness_us.max(0);
                Ok(cp)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint {
                version: VERSION,
                clock: PartitionClock::new(lateness_us),
                ..Checkpoint::default()
            }),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Writes the checkpoint so that a crash leaves the old or the new one.
    pub fn save(&self, state_dir: &Path) -> Result<usize, LiveError> {
        std::fs::create_dir_all(state_dir).map_err(io("create", state_dir))?;
        let path = Self::path(state_dir);
        let bytes = serde_json::to_vec(self).map_err(|source| LiveError::Checkpoint {
            path: path.clone(),
            source,
        })?;
        write_atomically(&path, &path.with_extension("json.tmp"), &bytes)?;
        Ok(bytes.len())
    }
}

/// Writes `bytes` to `path` through `tmp` (written, fsynced, renamed), so
/// that a crash leaves the old file or the new one.
pub(crate) fn write_atomically(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), LiveError> {
    {
        let mut f = std::fs::File::create(tmp).map_err(io("create", tmp))?;
        f.write_all(bytes).map_err(io("write", tmp))?;
        f.sync_all().map_err(io("sync", tmp))?;
    }
    std::fs::rename(tmp, path).map_err(io("rename into place", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_a_stray_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = Checkpoint::load(dir.path(), 60_000_000).unwrap();
        assert_eq!(fresh.clock.lateness_us, 60_000_000);
        let mut cp = fresh.clone();
        cp.offsets.insert("app-events/0".into(), 42);
        cp.clock.observe("app-events/0", 7);
        cp.progress.insert("phone_farm".into(), 86_400_000_000);
        cp.rescan.insert(("phone_farm".into(), 0));
        cp.save(dir.path()).unwrap();
        std::fs::write(dir.path().join("checkpoint.json.tmp"), b"{half").unwrap();
        assert_eq!(Checkpoint::load(dir.path(), 60_000_000).unwrap(), cp);
    }

    #[test]
    fn a_damaged_checkpoint_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checkpoint.json"), b"{not json").unwrap();
        let e = Checkpoint::load(dir.path(), 0).unwrap_err().to_string();
        assert!(
            e.contains("checkpoint.json") && e.contains("move it away"),
            "{e}"
        );
    }
}
