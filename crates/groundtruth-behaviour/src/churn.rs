//! `record_churn`: a registry worker graded on "update frequency" who
//! deletes and re-enters the same records, or saves updates that change
//! nothing.
//!
//! From `record_churn_daily` (per account, registry and day): the day's
//! churn is its re-entries plus its no-op updates. The baseline is every
//! account's days in the same app and registry over the week up to that day
//! ([`crate::baseline::trailing`]): a day is flagged when its
//! churn is above the peers' median by [`K_SIGMA`] robust standard
//! deviations and at least [`MIN_CHURN`], and churn is at least
//! [`MIN_SHARE`] of the day's operations. A census clean-up (many real
//! changes to many different records, deletions that stay deleted) has no
//! churn however busy it is.

use std::collections::BTreeMap;

use groundtruth_finding::Finding;
use serde_json::{json, Map};

use crate::baseline::trailing;
use crate::{date_string, round2, Draft};

/// Detector name (contract).
pub const DETECTOR: &str = "record_churn";

/// Robust standard deviations above the peers' median.
pub const K_SIGMA: f64 = 6.0;

/// Fewest churn operations in a flagged day (a mistaken deletion re-entered
/// or a save with nothing changed happens to anyone now and then).
pub const MIN_CHURN: f64 = 5.0;

/// Smallest share of the day's operations that are churn.
pub const MIN_SHARE: f64 = 0.2;

/// One row of `record_churn_daily`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnDay {
    pub app_id: String,
    pub account_id: String,
    pub registry: Option<String>,
    pub event_date: i32,
    pub region: Option<String>,
    pub ops: i64,
    pub creates: i64,
    pub updates: i64,
    pub deletes: i64,
    pub re_entries: i64,
    pub no_op_updates: i64,
    pub records: i64,
    pub re_entered_records: i64,
    pub first_us: i64,
    pub last_us: i64,
}

impl ChurnDay {
    fn churn(&self) -> f64 {
        (self.re_entries + self.no_op_updates) as f64
    }
}

/// Runs the detector.
pub fn detect(days: &[ChurnDay]) -> Vec<Finding> {
    let mut peers: BTreeMap<(&str, Option<&str>), Vec<&ChurnDay>> = BTreeMap::new();
    for d in days {
        peers
            .entry((d.app_id.as_str(), d.registry.as_deref()))
            .or_default()
            .push(d);
    }
    // (app, account, registry) -> flagged days with the peers' median.
    type Flagged<'a> = BTreeMap<(&'a str, &'a str, Option<&'a str>), Vec<(&'a ChurnDay, f64)>>;
    let mut flagged: Flagged<'_> = BTreeMap::new();
    for ((app, registry), ds) in &peers {
        let bases = trailing(
            &ds.iter()
                .map(|d| (d.event_date, d.churn()))
                .collect::<Vec<_>>(),
        );
        for d in ds {
            let Some(base) = bases.get(&d.event_date) else {
                continue;
            };
            let limit = base.upper(K_SIGMA, MIN_CHURN);
            let c = d.churn();
            if c >= limit && c >= MIN_SHARE * d.ops as f64 {
                flagged
                    .entry((app, d.account_id.as_str(), *registry))
                    .or_default()
                    .push((d, base.median));
            }
        }
    }
    flagged
        .into_iter()
        .map(|((app, account, registry), ds)| finding(app, account, registry, &ds))
        .collect()
}

fn finding(app: &str, account: &str, registry: Option<&str>, ds: &[(&ChurnDay, f64)]) -> Finding {
    let re: i64 = ds.iter().map(|d| d.0.re_entries).sum();
    let noop: i64 = ds.iter().map(|d| d.0.no_op_updates).sum();
    let ops: i64 = ds.iter().map(|d| d.0.ops).sum();
    let recs: i64 = ds.iter().map(|d| d.0.re_entered_records).max().unwrap_or(0);
    let peer_median = ds.iter().map(|d| d.1).fold(0.0, f64::max);
    let start = ds.iter().map(|d| d.0.first_us).min().unwrap_or(0);
    let end = ds.iter().map(|d| d.0.last_us).max().unwrap_or(0);
    let reg = registry.unwrap_or("registry");
    let reason = format!(
        "On {} day{} this account's {reg} work was mostly churn: {re} deletions and re-entries of the same records (at most {recs} distinct records a day) and {noop} updates that changed nothing, {:.0}% of {ops} operations; peers churn {peer_median:.0} a day.",
        ds.len(),
        if ds.len() == 1 { "" } else { "s" },
        100.0 * (re + noop) as f64 / ops.max(1) as f64,
    );
    let score = (0.75 + 0.05 * ds.len().min(4) as f64).min(0.99);
    let mut ev = Map::new();
    ev.insert("app_id".into(), json!(app));
    ev.insert("registry".into(), json!(registry));
    ev.insert("re_entries".into(), json!(re));
    ev.insert("no_op_updates".into(), json!(noop));
    ev.insert("operations".into(), json!(ops));
    ev.insert(
        "peer_median_churn_per_day".into(),
        json!(round2(peer_median)),
    );
    ev.insert(
        "days".into(),
        json!(ds
            .iter()
            .map(|(d, _)| json!({
                "date": date_string(d.event_date),
                "ops": d.ops,
                "creates": d.creates,
                "updates": d.updates,
                "deletes": d.deletes,
                "re_entries": d.re_entries,
                "no_op_updates": d.no_op_updates,
                "records": d.records,
                "re_entered_records": d.re_entered_records,
            }))
            .collect::<Vec<_>>()),
    );
    Draft {
        accounts: vec![account.to_string()],
        devices: Vec::new(),
        span_us: (start, end),
        score,
        reason,
        evidence: ev,
    }
    .finding(
        DETECTOR,
        &[app, account, reg, &date_string(ds[0].0.event_date)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(account: &str, date: i32, ops: i64, re: i64, noop: i64) -> ChurnDay {
        ChurnDay {
            app_id: "population".into(),
            account_id: account.into(),
            registry: Some("population".into()),
            event_date: date,
            region: None,
            ops,
            creates: re + 3,
            updates: ops - re - 3,
            deletes: re,
            re_entries: re,
            no_op_updates: noop,
            records: ops,
            re_entered_records: re.min(6),
            first_us: date as i64 * 86_400_000_000,
            last_us: date as i64 * 86_400_000_000 + 3_600_000_000,
        }
    }

    #[test]
    fn churner_flagged_census_and_slips_not() {
        let mut ds = Vec::new();
        for a in 0..20 {
            for d in 0..5 {
                // Honest: now and then one slip.
                ds.push(day(&format!("w{a}"), d, 25, 0, ((a + d) % 7 == 0) as i64));
            }
        }
        // Census clean-up: 180 real operations, no churn.
        ds.push(day("census", 2, 180, 0, 0));
        for d in 0..5 {
            ds.push(day("churner", d, 90, 25, 40));
        }
        let f = detect(&ds);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["churner".to_string()]);
        f[0].validate().unwrap();
    }
}
