//! The finding: what every detector emits (see `shared/contract/`).
//!
//! A [`Finding`] serialises to exactly the contract's JSON object. Its
//! `finding_id` is derived from the detector name and a detector-chosen
//! *evidence key* (for a patrol: app, account and patrol id), so the same
//! evidence processed twice, in batch or in the stream, gets the same id and
//! a store can upsert instead of duplicating.

pub mod calibration;

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Detector names fixed by the contract.
pub const DETECTORS: [&str; 6] = [
    "phone_farm",
    "non_human_track",
    "bulk_check_in",
    "registration_farm",
    "record_churn",
    "report_inflation",
];

/// One finding, field for field as in `finding.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub finding_id: String,
    pub detector: String,
    pub accounts: Vec<String>,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub patrol_ids: Vec<String>,
    pub window_start: String,
    pub window_end: String,
    pub score: f64,
    pub reason: String,
    #[serde(default)]
    pub evidence: Map<String, Value>,
}

/// A finding that does not satisfy the contract.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FindingError {
    #[error("finding {id:?}: unknown detector {detector:?}; the contract allows {DETECTORS:?}")]
    UnknownDetector { id: String, detector: String },
    #[error("finding {id:?}: `accounts` is empty; a finding must name at least one account")]
    NoAccounts { id: String },
    #[error("finding {id:?}: score {score} is outside 0..1")]
    Score { id: String, score: f64 },
    #[error("finding {id:?}: `{field}` = {value:?} is not an RFC 3339 time")]
    Time {
        id: String,
        field: &'static str,
        value: String,
    },
    #[error("finding {id:?}: `reason` is empty; say in plain words why it was raised")]
    NoReason { id: String },
    #[error("finding {id:?}: window_end {end} is before window_start {start}")]
    Window {
        id: String,
        start: String,
        end: String,
    },
}

/// The stable id of a finding: 32 hex digits of xxh3-128 over the detector
/// name and the evidence key parts (length-prefixed, so `["ab","c"]` and
/// `["a","bc"]` differ).
pub fn finding_id(detector: &str, key: &[&str]) -> String {
    let mut buf = Vec::with_capacity(64);
    for part in std::iter::once(detector).chain(key.iter().copied()) {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&buf))
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn rfc3339_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

impl Finding {
    /// Checks the contract's constraints.
    pub fn validate(&self) -> Result<(), FindingError> {
        let id = || self.finding_id.clone();
        if !DETECTORS.contains(&self.detector.as_str()) {
            return Err(FindingError::UnknownDetector {
                id: id(),
                detector: self.detector.clone(),
            });
        }
        if self.accounts.is_empty() {
            return Err(FindingError::NoAccounts { id: id() });
        }
        if !(0.0..=1.0).contains(&self.score) {
            return Err(FindingError::Score {
                id: id(),
                score: self.score,
            });
        }
        if self.reason.trim().is_empty() {
            return Err(FindingError::NoReason { id: id() });
        }
        let parse = |field: &'static str, v: &str| {
            chrono::DateTime::parse_from_rfc3339(v).map_err(|_| FindingError::Time {
                id: id(),
                field,
                value: v.to_string(),
            })
        };
        let s = parse("window_start", &self.window_start)?;
        let e = parse("window_end", &self.window_end)?;
        if e < s {
            return Err(FindingError::Window {
                id: id(),
                start: self.window_start.clone(),
                end: self.window_end.clone(),
            });
        }
        Ok(())
    }

    /// Writes the finding as one NDJSON line.
    pub fn write_ndjson(&self, mut w: impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut w, self)?;
        w.write_all(b"\n")
    }
}

/// A line of an NDJSON findings file that is not a finding.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: not a finding (the contract's JSON object): {source}")]
pub struct NdjsonError {
    pub line: usize,
    #[source]
    pub source: serde_json::Error,
}

/// Reads findings written one per line (as [`Finding::write_ndjson`]
/// writes them); blank lines are skipped.
pub fn read_ndjson(text: &str) -> Result<Vec<Finding>, NdjsonError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| NdjsonError {
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Sorts findings into the canonical output order (window start, detector,
/// id), so two runs over the same events write identical files.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.window_start, &a.detector, &a.finding_id).cmp(&(
            &b.window_start,
            &b.detector,
            &b.finding_id,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Finding {
        Finding {
            finding_id: finding_id("non_human_track", &["app", "acc", "pt-1"]),
            detector: "non_human_track".into(),
            accounts: vec!["acc".into()],
            devices: vec![],
            patrol_ids: vec!["pt-1".into()],
            window_start: rfc3339_ms(1_762_041_600_000),
            window_end: rfc3339_ms(1_762_045_200_000),
            score: 0.9,
            reason: "moved like a dog".into(),
            evidence: Map::new(),
        }
    }

    #[test]
    fn ids_are_stable_and_unambiguous() {
        assert_eq!(finding_id("d", &["a", "b"]), finding_id("d", &["a", "b"]));
        assert_ne!(finding_id("d", &["ab", "c"]), finding_id("d", &["a", "bc"]));
        assert_ne!(finding_id("d", &["a"]), finding_id("e", &["a"]));
        assert_eq!(finding_id("d", &["a"]).len(), 32);
    }

    #[test]
    fn valid_finding_passes_and_round_trips() {
        let f = sample();
        f.validate().unwrap();
        let mut out = Vec::new();
        f.write_ndjson(&mut out).unwrap();
        assert!(out.ends_with(b"\n"));
        let back: Finding = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, f);
        assert_eq!(f.window_start, "2025-11-02T00:00:00.000Z");
    }

    #[test]
    fn contract_violations_are_named() {
        let mut f = sample();
        f.detector = "dog".into();
        assert!(matches!(
            f.validate(),
            Err(FindingError::UnknownDetector { .. })
        ));
        let mut f = sample();
        f.accounts.clear();
        assert!(matches!(f.validate(), Err(FindingError::NoAccounts { .. })));
        let mut f = sample();
        f.score = 1.5;
        assert!(f
            .validate()
            .unwrap_err()
            .to_string()
            .contains("outside 0..1"));
        let mut f = sample();
        f.window_end = "yesterday".into();
        assert!(matches!(
            f.validate(),
            Err(FindingError::Time {
                field: "window_end",
                ..
            })
        ));
        let mut f = sample();
        std::mem::swap(&mut f.window_start, &mut f.window_end);
        assert!(matches!(f.validate(), Err(FindingError::Window { .. })));
    }
}
