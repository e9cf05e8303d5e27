//! The findings store of the live service: an append-only NDJSON log in
//! the state directory, one line per stored version of a finding with the
//! end of the window that produced it. Reading it upserts by `finding_id`
//! (a later window's version wins), so re-running a window after a crash
//! stores the same finding again without duplicating it. (The review API
//! of issue 6 replaces this with its SQL store behind the same calls.)

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use groundtruth_detect::FindingSet;
use groundtruth_finding::Finding;
use serde::{Deserialize, Serialize};

use crate::error::{io, LiveError};

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    window_end_us: i64,
    finding: Finding,
}

/// The log, open for appending.
pub struct FindingsStore {
    path: PathBuf,
    file: File,
    /// Per finding id, the end of the window of its stored version.
    versions: BTreeMap<String, i64>,
}

impl FindingsStore {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("findings.log.ndjson")
    }

    /// Opens (or creates) the log; a last line cut short by a crash is
    /// dropped (its window is re-run from the checkpoint).
    pub fn open(state_dir: &Path) -> Result<FindingsStore, LiveError> {
        std::fs::create_dir_all(state_dir).map_err(io("create", state_dir))?;
        let path = Self::path(state_dir);
        let mut versions = BTreeMap::new();
        let mut good_len = 0u64;
        if let Ok(f) = File::open(&path) {
            let mut r = BufReader::new(f);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = r.read_until(b'\n', &mut buf).map_err(io("read", &path))?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    break;
                }
                match serde_json::from_slice::<Line>(&buf) {
                    Ok(l) => {
                        let v = versions
                            .entry(l.finding.finding_id)
                            .or_insert(l.window_end_us);
                        *v = (*v).max(l.window_end_us);
                        good_len += n as u64;
                    }
                    Err(_) => break,
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        if file.metadata().map_err(io("stat", &path))?.len() > good_len {
            tracing::warn!(path = %path.display(), "dropping a findings line cut short by a crash");
            file.set_len(good_len).map_err(io("truncate", &path))?;
        }
        Ok(FindingsStore {
            path,
            file,
            versions,
        })
    }

    /// Stores a window's findings durably (fsync). Returns the findings
    /// that were new or newer versions.
    pub fn store<'a>(
        &mut self,
        window_end_us: i64,
        findings: &'a [Finding],
    ) -> Result<Vec<&'a Finding>, LiveError> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for f in findings {
            if self
                .versions
                .get(&f.finding_id)
                .is_some_and(|&v| v > window_end_us)
            {
                continue;
            }
            serde_json::to_writer(
                &mut buf,
                &Line {
                    window_end_us,
                    finding: f.clone(),
                },
            )
            .map_err(|e| io("encode a finding for", &self.path)(e.into()))?;
            buf.push(b'\n');
            self.versions.insert(f.finding_id.clone(), window_end_us);
            out.push(f);
        }
        if !buf.is_empty() {
            self.file
                .write_all(&buf)
                .map_err(io("append to", &self.path))?;
            self.file.sync_data().map_err(io("sync", &self.path))?;
        }
        Ok(out)
    }

    /// Distinct findings stored.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

/// The current findings of a state directory: the log upserted by id, in
/// canonical order (for `groundtruth findings`, tests and the review API).
pub fn current_findings(state_dir: &Path) -> Result<Vec<Finding>, LiveError> {
    let path = FindingsStore::path(state_dir);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("open", &path)(e)),
    };
    let mut set = FindingSet::default();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(io("read", &path))?;
        let Ok(l) = serde_json::from_str::<Line>(&line) else {
            break;
        };
        set.upsert(l.window_end_us, l.finding);
    }
    Ok(set.into_findings())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, score: f64) -> Finding {
        Finding {
            finding_id: id.into(),
            detector: "phone_farm".into(),
            accounts: vec!["a".into()],
            devices: Vec::new(),
            patrol_ids: Vec::new(),
            window_start: "2026-11-02T00:00:00.000Z".into(),
            window_end: "2026-11-02T01:00:00.000Z".into(),
            score,
            reason: "r".into(),
            evidence: Default::default(),
        }
    }

    #[test]
    fn upserts_by_id_and_keeps_the_latest_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FindingsStore::open(dir.path()).unwrap();
        assert_eq!(
            s.store(10, &[finding("a", 0.5), finding("b", 0.5)])
                .unwrap()
                .len(),
            2
        );
        // A re-run of window 10 (after a crash) and window 20's version of a.
        assert_eq!(s.store(10, &[finding("a", 0.5)]).unwrap().len(), 1);
        assert_eq!(s.store(20, &[finding("a", 0.9)]).unwrap().len(), 1);
        // A re-scan of the older window does not replace the newer version.
        assert!(s.store(10, &[finding("a", 0.1)]).unwrap().is_empty());
        drop(s);
        let all = current_findings(dir.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().find(|f| f.finding_id == "a").unwrap().score, 0.9);
    }

    #[test]
    fn a_line_cut_by_a_crash_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FindingsStore::open(dir.path()).unwrap();
        s.store(10, &[finding("a", 0.5)]).unwrap();
        drop(s);
        let path = FindingsStore::path(dir.path());
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"window_end_us\":10,\"find").unwrap();
        drop(f);
        let mut s = FindingsStore::open(dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        s.store(10, &[finding("b", 0.5)]).unwrap();
        drop(s);
        assert_eq!(current_findings(dir.path()).unwrap().len(), 2);
    }
}
