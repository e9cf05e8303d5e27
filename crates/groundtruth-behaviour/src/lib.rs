//! `groundtruth-behaviour`: the behaviour detectors, free of I/O.
//!
//! Each detector takes rows of one SQL feature view (`sql/*.sql`, computed
//! by DataFusion in `groundtruth-detect`) as plain structs and returns
//! contract findings:
//!
//! | detector | view(s) | module |
//! |---|---|---|
//! | `phone_farm` | `session_chain`, `device_profile` | [`farm`] (serial chains), [`coactive`] (racks run together) |
//! | `bulk_check_in` | `check_ins` | [`checkin`] |
//! | `registration_farm` | `registrations` | [`registration`] |
//! | `record_churn` | `record_churn_daily` | [`churn`] |
//! | `report_inflation` | `reports` | [`reports`] |
//!
//! Thresholds are either physical or logical limits (one person works one
//! phone at a time; GPS never repeats a fix to the last digit) or robust
//! baselines of the data's own peers ([`baseline::Robust`]); each is
//! documented where it is defined.

pub mod baseline;
pub mod checkin;
pub mod churn;
pub mod coactive;
pub mod farm;
mod phones;
pub mod registration;
pub mod reports;
pub mod stats;

use groundtruth_finding::{finding_id, rfc3339_ms, Finding};
use serde_json::{Map, Value};

/// Every input of the behaviour detectors.
#[derive(Debug, Default, Clone)]
pub struct Input {
    /// `session_chain`, ordered by (net_key, seq).
    pub sessions: Vec<farm::ChainSession>,
    pub devices: Vec<farm::DeviceProfile>,
    /// `check_ins`, ordered by (device_id, t_us).
    pub check_ins: Vec<checkin::CheckIn>,
    /// `registrations`, ordered by (app_id, source, t_us).
    pub registrations: Vec<registration::Registration>,
    pub churn_days: Vec<churn::ChurnDay>,
    pub reports: Vec<reports::Report>,
}

/// Findings of one detector and how long it took.
#[derive(Debug, Clone)]
pub struct DetectorRun {
    pub detector: &'static str,
    pub findings: Vec<Finding>,
    pub seconds: f64,
}

/// The five detectors' names, in the order [`detect`] runs them.
pub const DETECTORS: [&str; 5] = [
    farm::DETECTOR,
    checkin::DETECTOR,
    registration::DETECTOR,
    churn::DETECTOR,
    reports::DETECTOR,
];

/// Runs the five detectors.
pub fn detect(input: &Input) -> Vec<DetectorRun> {
    detect_only(input, &|_| true)
}

/// Runs the detectors `wanted` names (the live pipeline judges each in its
/// own windows).
pub fn detect_only(input: &Input, wanted: &dyn Fn(&str) -> bool) -> Vec<DetectorRun> {
    let mut out = Vec::new();
    let mut time = |detector: &'static str, f: &dyn Fn() -> Vec<Finding>| {
        if !wanted(detector) {
            return;
        }
        let t = std::time::Instant::now();
        let findings = f();
        out.push(DetectorRun {
            detector,
            findings,
            seconds: t.elapsed().as_secs_f64(),
        });
    };
    time(farm::DETECTOR, &|| {
        farm::detect(&input.sessions, &input.devices)
    });
    time(checkin::DETECTOR, &|| checkin::detect(&input.check_ins));
    time(registration::DETECTOR, &|| {
        registration::detect(&input.registrations)
    });
    time(churn::DETECTOR, &|| churn::detect(&input.churn_days));
    time(reports::DETECTOR, &|| reports::detect(&input.reports));
    out
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (Arrow `Date32`).
pub fn date_string(days: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day {days}"))
}

/// True for Saturday and Sunday of a day count since 1970-01-01.
pub fn is_weekend(days: i32) -> bool {
    // 1970-01-01 was a Thursday.
    matches!((days as i64 + 3).rem_euclid(7), 5 | 6)
}

/// Disjoint sets over `0..n` (path halving, union by size).
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

/// What a detector concluded; [`Draft::finding`] makes the contract finding.
pub(crate) struct Draft {
    pub accounts: Vec<String>,
    pub devices: Vec<String>,
    /// Event-time span of the evidence, epoch microseconds.
    pub span_us: (i64, i64),
    pub score: f64,
    pub reason: String,
    pub evidence: Map<String, Value>,
}

impl Draft {
    /// The finding, its id hashed from the detector and `key` (the same
    /// evidence gives the same id), score rounded to three places.
    pub(crate) fn finding(self, detector: &str, key: &[&str]) -> Finding {
        Finding {
            finding_id: finding_id(detector, key),
            detector: detector.into(),
            accounts: self.accounts,
            devices: self.devices,
            patrol_ids: Vec::new(),
            window_start: rfc3339_ms(self.span_us.0.div_euclid(1000)),
            window_end: rfc3339_ms(self.span_us.1.div_euclid(1000)),
            score: (self.score.clamp(0.0, 1.0) * 1000.0).round() / 1000.0,
            reason: self.reason,
            evidence: self.evidence,
        }
    }
}

/// Rounds for evidence (two decimals).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_string(0), "1970-01-01");
        // 2026-11-02 is a Monday, 2026-11-07 a Saturday.
        let mon = (chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32;
        assert_eq!(date_string(mon), "2026-11-02");
        assert!(!is_weekend(mon));
        assert!(!is_weekend(mon + 4));
        assert!(is_weekend(mon + 5));
        assert!(is_weekend(mon + 6));
    }

    #[test]
    fn union_find() {
        let mut u = UnionFind::new(5);
        u.union(0, 1);
        u.union(3, 4);
        u.union(1, 4);
        assert_eq!(u.find(0), u.find(3));
        assert_ne!(u.find(0), u.find(2));
    }
}
