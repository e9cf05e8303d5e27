//! `report_inflation`: a unit told to "report more cases" files bursts of
//! trivial or duplicate reports before an assessment.
//!
//! From `reports_daily` (per account and day): a near-copy is a report of the
//! same category from the same spot within the hour of the account's
//! previous one (`reports` view). The baseline is every account's days in
//! the same app and kind of day (weekday, weekend) over the week up to that
//! day ([`crate::baseline::trailing`]): a day is flagged when
//! its near-copies are [`K_SIGMA`] robust standard deviations above the
//! peers' median, at least [`MIN_COPIES`], and at least [`MIN_SHARE`] of the
//! day's reports. A unit with a genuinely bad week files more reports, but
//! about different things in different places, so its copies stay at the
//! baseline.

use std::collections::{BTreeMap, BTreeSet};

use groundtruth_finding::Finding;
use serde_json::{json, Map};

use crate::baseline::{trailing, Robust};
use crate::{date_string, is_weekend, round2, Draft};

/// Detector name (contract).
pub const DETECTOR: &str = "report_inflation";

/// Robust standard deviations above the peers' median.
pub const K_SIGMA: f64 = 6.0;

/// Fewest near-copies in a flagged day (two reports about one pothole
/// happen).
pub const MIN_COPIES: f64 = 5.0;

/// Smallest share of the day's reports that are near-copies.
pub const MIN_SHARE: f64 = 0.3;

/// One row of `reports_daily`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportDay {
    pub app_id: String,
    pub account_id: String,
    pub event_date: i32,
    pub region: Option<String>,
    pub reports: i64,
    pub near_copies: i64,
    pub categories: i64,
    pub sessions: i64,
    pub first_us: i64,
    pub last_us: i64,
}

/// Runs the detector.
pub fn detect(days: &[ReportDay]) -> Vec<Finding> {
    let mut peers: BTreeMap<(&str, bool), Vec<&ReportDay>> = BTreeMap::new();
    for d in days {
        peers
            .entry((d.app_id.as_str(), is_weekend(d.event_date)))
            .or_default()
            .push(d);
    }
    let mut flagged: BTreeMap<(&str, &str), Vec<(&ReportDay, Robust)>> = BTreeMap::new();
    for ((app, _), ds) in &peers {
        let bases = trailing(
            &ds.iter()
                .map(|d| (d.event_date, d.near_copies as f64))
                .collect::<Vec<_>>(),
        );
        for d in ds {
            let Some(&base) = bases.get(&d.event_date) else {
                continue;
            };
            let limit = base.upper(K_SIGMA, MIN_COPIES);
            let c = d.near_copies as f64;
            if c >= limit && c >= MIN_SHARE * d.reports as f64 {
                flagged
                    .entry((app, d.account_id.as_str()))
                    .or_default()
                    .push((d, base));
            }
        }
    }
    // How many accounts of a region were flagged on each day (a unit-wide push).
    let mut region_day: BTreeMap<(Option<&str>, i32), usize> = BTreeMap::new();
    for ds in flagged.values() {
        for (d, _) in ds {
            *region_day
                .entry((d.region.as_deref(), d.event_date))
                .or_default() += 1;
        }
    }
    flagged
        .into_iter()
        .map(|((app, account), mut ds)| {
            ds.sort_by_key(|d| d.0.event_date);
            let peers_same_day = ds
                .iter()
                .map(|(d, _)| region_day[&(d.region.as_deref(), d.event_date)] - 1)
                .max()
                .unwrap_or(0);
            // The account's usual day: its unflagged days before the first flagged one.
            let first = ds[0].0.event_date;
            let own_other_days: Vec<f64> = days
                .iter()
                .filter(|d| {
                    d.app_id == app
                        && d.account_id == account
                        && d.event_date < first
                        && d.event_date > first - crate::baseline::LOOKBACK_DAYS
                })
                .map(|d| d.reports as f64)
                .collect();
            finding(app, account, &ds, peers_same_day, &own_other_days)
        })
        .collect()
}

fn finding(
    app: &str,
    account: &str,
    ds: &[(&ReportDay, Robust)],
    peers_same_day: usize,
    own_other_days: &[f64],
) -> Finding {
    let reports: i64 = ds.iter().map(|d| d.0.reports).sum();
    let copies: i64 = ds.iter().map(|d| d.0.near_copies).sum();
    let start = ds.iter().map(|d| d.0.first_us).min().unwrap_or(0);
    let end = ds.iter().map(|d| d.0.last_us).max().unwrap_or(0);
    let dates: Vec<String> = ds.iter().map(|d| date_string(d.0.event_date)).collect();
    let usual = if own_other_days.is_empty() {
        None
    } else {
        Some(own_other_days.iter().sum::<f64>() / own_other_days.len() as f64)
    };
    let mut reason = format!(
        "On {} ({} day{}) this account filed {reports} reports, {copies} of them near-copies of the one before (same category, same spot, within the hour); peers file {:.0} such copies a day.",
        dates.join(", "),
        ds.len(),
        if ds.len() == 1 { "" } else { "s" },
        ds[0].1.median,
    );
    if let Some(u) = usual {
        reason.push_str(&format!(" In the days before it filed {u:.1} a day."));
    }
    if peers_same_day > 0 {
        reason.push_str(&format!(
            " {peers_same_day} other account{} in the same region did the same that day.",
            if peers_same_day == 1 { "" } else { "s" }
        ));
    }
    let score =
        (0.75 + 0.05 * ds.len().min(3) as f64 + 0.05 * (peers_same_day > 0) as u8 as f64).min(0.99);
    let regions: BTreeSet<&str> = ds.iter().filter_map(|d| d.0.region.as_deref()).collect();
    let mut ev = Map::new();
    ev.insert("app_id".into(), json!(app));
    ev.insert("regions".into(), json!(regions));
    ev.insert("reports".into(), json!(reports));
    ev.insert("near_copies".into(), json!(copies));
    ev.insert("usual_reports_per_day".into(), json!(usual.map(round2)));
    ev.insert(
        "same_region_accounts_same_day".into(),
        json!(peers_same_day),
    );
    ev.insert(
        "days".into(),
        json!(ds
            .iter()
            .map(|(d, b)| json!({
                "date": date_string(d.event_date),
                "reports": d.reports,
                "near_copies": d.near_copies,
                "categories": d.categories,
                "sessions": d.sessions,
                "peer_median_copies": round2(b.median),
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
    .finding(DETECTOR, &[app, account, &dates[0]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(account: &str, date: i32, reports: i64, copies: i64) -> ReportDay {
        ReportDay {
            app_id: "grid-report".into(),
            account_id: account.into(),
            event_date: date,
            region: Some("450102".into()),
            reports,
            near_copies: copies,
            categories: 3,
            sessions: reports.min(4),
            first_us: date as i64 * 86_400_000_000,
            last_us: date as i64 * 86_400_000_000 + 1,
        }
    }

    #[test]
    fn copies_flagged_bad_week_not() {
        // 2026-11-02 (Monday) = day 20394.
        let mon = 20394;
        let mut ds = Vec::new();
        for a in 0..30 {
            for d in 0..5 {
                ds.push(day(
                    &format!("g{a}"),
                    mon + d,
                    1 + (a + d as usize) as i64 % 4,
                    0,
                ));
            }
        }
        // Bad week: three times the reports, all different.
        for d in 0..5 {
            ds.push(day("bad", mon + d, 11, 0));
        }
        // Inflating: two days of copy bursts.
        ds.push(day("infl", mon + 2, 38, 33));
        ds.push(day("infl", mon + 3, 30, 27));
        ds.push(day("infl", mon, 2, 0));
        let f = detect(&ds);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["infl".to_string()]);
        assert_eq!(f[0].evidence["days"].as_array().unwrap().len(), 2);
        f[0].validate().unwrap();
    }
}
