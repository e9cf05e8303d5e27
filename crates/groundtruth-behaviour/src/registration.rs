//! `registration_farm`: new accounts bought from a promoter.
//!
//! Promoters are paid per registration (about 1 RMB), so they produce them
//! in bursts: many "new residents" through one referrer within a short time,
//! typed on a handful of phones or emulators from a handful of addresses,
//! and the accounts never come back. A community worker registering elderly
//! residents at a help desk does a few a day on her own phone, and those
//! residents then use the app.
//!
//! From the `registrations` view, per source (the referrer, or the device
//! when there is none):
//! 1. **Bursts**: registrations follow each other within [`BURST_GAP_S`].
//! 2. A burst of at least [`MIN_BURST`] is flagged when at least two of:
//!    - *reused phones*: at least [`REUSE`] registrations per device (each
//!      resident registers on their own phone);
//!    - *reused addresses*: at least 2 x [`REUSE`] per IP address;
//!    - *emulators*: attestation `virtual` or `none` on a share of at least
//!      [`EMULATOR_SHARE`];
//!    - *never came back*: of the accounts the data saw for a day or more
//!      after registering, so few returned that the binomial chance of so
//!      few at the return rate of all other registrations is below
//!      [`NO_RETURN_P`].
//! 3. When the referrer is itself an account (an official's own referral
//!    code, not a promotion code), that account is named too: the bought
//!    registrations fill its quota, and it is who an inspector must ask.

use std::collections::{BTreeMap, BTreeSet};

use groundtruth_finding::{rfc3339_ms, Finding};
use serde_json::{json, Map};

use crate::{round2, Draft};

/// Detector name (contract).
pub const DETECTOR: &str = "registration_farm";

/// Longest pause inside a burst, seconds: a promoter's stall or session.
pub const BURST_GAP_S: f64 = 1800.0;

/// Fewest registrations in a flagged burst.
pub const MIN_BURST: usize = 10;

/// Registrations per device that count as reuse.
pub const REUSE: f64 = 3.0;

/// Share of emulator or unattested registrations that counts.
pub const EMULATOR_SHARE: f64 = 0.2;

/// Chance threshold of the "never came back" test.
pub const NO_RETURN_P: f64 = 1e-4;

/// The span of a source's "busiest hour" (the evidence's normal rate beside
/// a burst), microseconds.
const HOUR_US: i64 = 3_600_000_000;

/// Time after registration before "did not come back" is read, seconds.
pub const RETURN_HORIZON_S: f64 = 86_400.0;

/// One row of `registrations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub event_id: String,
    pub app_id: String,
    pub account_id: String,
    /// The referrer, or `device:<id>` when there is none.
    pub source: String,
    pub referrer: Option<String>,
    /// The referrer is an account with activity of its own: an official's
    /// referral code, whose quota the registrations fill.
    pub referrer_is_account: bool,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    pub integrity: Option<String>,
    pub claimed_region: Option<String>,
    pub t_us: i64,
    /// Active on a later local day (`None` when unknown).
    pub returned: Option<bool>,
    pub observed_s: f64,
    pub since_source_prev_s: Option<f64>,
}

impl Registration {
    fn observed(&self) -> bool {
        self.observed_s >= RETURN_HORIZON_S && self.returned.is_some()
    }
}

/// ln P(X <= k) for X ~ Binomial(n, p).
pub fn binomial_ln_cdf(k: usize, n: usize, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return f64::NEG_INFINITY;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, i) incrementally; log-sum-exp over i = 0..=k.
    let mut terms = Vec::with_capacity(k + 1);
    let mut ln_c = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_c + i as f64 * lp + (n - i) as f64 * lq);
    }
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// Runs the detector. `rows` ordered by (app_id, source, t_us).
pub fn detect(rows: &[Registration]) -> Vec<Finding> {
    // Bursts.
    let mut bursts: Vec<&[Registration]> = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        let split = i == rows.len()
            || rows[i].app_id != rows[i - 1].app_id
            || rows[i].source != rows[i - 1].source
            || rows[i].since_source_prev_s.is_none_or(|g| g > BURST_GAP_S);
        if split {
            bursts.push(&rows[start..i]);
            start = i;
        }
    }
    let busiest = busiest_hours(rows);
    let all = Returns::of(rows.iter());
    let sources: BTreeMap<(&str, &str), Returns> = rows
        .chunk_by(|a, b| a.app_id == b.app_id && a.source == b.source)
        .map(|run| {
            (
                (run[0].app_id.as_str(), run[0].source.as_str()),
                Returns::of(run.iter()),
            )
        })
        .collect();
    bursts
        .into_iter()
        .filter(|b| b.len() >= MIN_BURST)
        .filter_map(|b| {
            let source = sources
                .get(&(b[0].app_id.as_str(), b[0].source.as_str()))
                .copied()
                .unwrap_or_default();
            judge(b, all, source, &busiest)
        })
        .collect()
}

/// Registrations the data saw long enough to know whether they came back,
/// and how many did.
#[derive(Debug, Clone, Copy, Default)]
struct Returns {
    observed: usize,
    returned: usize,
}

impl Returns {
    fn of<'a>(rows: impl Iterator<Item = &'a Registration>) -> Returns {
        let mut r = Returns::default();
        for x in rows.filter(|x| x.observed()) {
            r.observed += 1;
            r.returned += usize::from(x.returned == Some(true));
        }
        r
    }

    /// The return rate of `all` but `self` (smoothed), and the chance
    /// (ln) of so few of `self` returning at that rate.
    fn against(self, all: Returns) -> (f64, f64) {
        let (n, back) = (all.observed - self.observed, all.returned - self.returned);
        let rate = (back as f64 + 1.0) / (n as f64 + 2.0);
        (rate, binomial_ln_cdf(self.returned, self.observed, rate))
    }
}

/// Per (app, source): the most registrations it made within one hour.
/// `rows` ordered by (app_id, source, t_us).
fn busiest_hours(rows: &[Registration]) -> BTreeMap<(&str, &str), usize> {
    rows.chunk_by(|a, b| a.app_id == b.app_id && a.source == b.source)
        .map(|run| {
            let key = (run[0].app_id.as_str(), run[0].source.as_str());
            (key, busiest_hour(run))
        })
        .collect()
}

/// The most of `rows` (one source's, by time) within one hour.
fn busiest_hour(rows: &[Registration]) -> usize {
    let mut from = 0;
    let mut most = 0;
    for (i, r) in rows.iter().enumerate() {
        while r.t_us - rows[from].t_us >= HOUR_US {
            from += 1;
        }
        most = most.max(i - from + 1);
    }
    most
}

/// The median of the other sources' busiest hours in `app` (`None` when
/// there is no other source): the normal pace of registering beside a
/// burst. A help desk registers a few residents an hour at its busiest.
fn others_busiest_hour(
    busiest: &BTreeMap<(&str, &str), usize>,
    app: &str,
    source: &str,
) -> Option<f64> {
    let mut v: Vec<usize> = busiest
        .iter()
        .filter(|((a, s), _)| *a == app && *s != source)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m] as f64
    } else {
        (v[m - 1] + v[m]) as f64 / 2.0
    })
}

fn judge(
    b: &[Registration],
    all: Returns,
    source: Returns,
    busiest: &BTreeMap<(&str, &str), usize>,
) -> Option<Finding> {
    let n = b.len();
    let devices: BTreeSet<&str> = b.iter().filter_map(|r| r.device_id.as_deref()).collect();
    let no_device = b.iter().filter(|r| r.device_id.is_none()).count();
    let ips: BTreeSet<&str> = b.iter().filter_map(|r| r.ip.as_deref()).collect();
    let no_ip = b.iter().filter(|r| r.ip.is_none()).count();
    let per_device = n as f64 / (devices.len() + no_device).max(1) as f64;
    let per_ip = n as f64 / (ips.len() + no_ip).max(1) as f64;
    let emulated = b
        .iter()
        .filter(|r| matches!(r.integrity.as_deref(), Some("virtual" | "none")))
        .count();
    let emulated_share = emulated as f64 / n as f64;
    // Against the return rate of everyone else: the burst's own, and its
    // source's as a whole. A promoter works in sessions hours apart, and
    // what he sells never comes back from any of them: a short session is
    // judged with the rest of its source, provided its own accounts came
    // back no more often than everyone else's.
    let burst = Returns::of(b.iter());
    let (seen, came_back) = (burst.observed, burst.returned);
    let (base_rate, ln_p_return) = burst.against(all);
    let (_, ln_p_source) = source.against(all);
    let source_wide = source.observed > burst.observed
        && ln_p_source < NO_RETURN_P.ln()
        && (came_back as f64) <= base_rate * seen as f64;
    let no_return = seen > 0 && (ln_p_return < NO_RETURN_P.ln() || source_wide);

    let signals = [
        (per_device >= REUSE, "reused phones"),
        (per_ip >= 2.0 * REUSE, "reused addresses"),
        (emulated_share >= EMULATOR_SHARE, "emulators"),
        (no_return, "never came back"),
    ];
    let hits: Vec<&str> = signals.iter().filter(|s| s.0).map(|s| s.1).collect();
    if hits.len() < 2 {
        return None;
    }
    let first = &b[0];
    let start = b.iter().map(|r| r.t_us).min().unwrap_or(0);
    let end = b.iter().map(|r| r.t_us).max().unwrap_or(0);
    let minutes = (end - start) as f64 / 60e6;
    let who = match &first.referrer {
        Some(r) => format!("referrer {r}"),
        None => first.source.clone(),
    };
    let mut reason = format!(
        "{n} new accounts were registered through {who} in {minutes:.0} minutes on {} phone{} from {} address{}.",
        devices.len() + no_device,
        if devices.len() + no_device == 1 { "" } else { "s" },
        ips.len() + no_ip,
        if ips.len() + no_ip == 1 { "" } else { "es" },
    );
    if emulated > 0 {
        reason.push_str(&format!(
            " {emulated} came from emulators or unattested phones."
        ));
    }
    if seen > 0 {
        reason.push_str(&format!(
            " {came_back} of {seen} came back on a later day (others: {:.0}%){}.",
            base_rate * 100.0,
            if source_wide && ln_p_return >= NO_RETURN_P.ln() {
                format!(
                    "; of all {} registered through this source, {} did",
                    source.observed, source.returned
                )
            } else {
                String::new()
            }
        ));
    }
    let score = (0.6 + 0.1 * hits.len() as f64).min(0.99);

    let mut ev = Map::new();
    ev.insert("app_id".into(), json!(first.app_id));
    ev.insert("referrer".into(), json!(first.referrer));
    ev.insert("signals".into(), json!(hits));
    ev.insert("registrations".into(), json!(n));
    ev.insert("minutes".into(), json!(round2(minutes)));
    ev.insert("devices".into(), json!(devices.len() + no_device));
    ev.insert("ips".into(), json!(ips.iter().collect::<Vec<_>>()));
    ev.insert("per_device".into(), json!(round2(per_device)));
    ev.insert("per_ip".into(), json!(round2(per_ip)));
    ev.insert("emulated".into(), json!(emulated));
    ev.insert("observed".into(), json!(seen));
    ev.insert("came_back".into(), json!(came_back));
    ev.insert("others_return_rate".into(), json!(round2(base_rate)));
    ev.insert("source_observed".into(), json!(source.observed));
    ev.insert("source_came_back".into(), json!(source.returned));
    // The normal pace beside the burst: its own busiest hour against the
    // other sources' (median) in the same app.
    ev.insert("busiest_hour".into(), json!(busiest_hour(b)));
    ev.insert(
        "others_busiest_hour".into(),
        json!(others_busiest_hour(busiest, &first.app_id, &first.source).map(round2)),
    );
    ev.insert(
        "claimed_regions".into(),
        json!(b
            .iter()
            .filter_map(|r| r.claimed_region.as_deref())
            .collect::<BTreeSet<_>>()),
    );
    // Registration times (for the burst histogram).
    ev.insert(
        "times".into(),
        json!(b
            .iter()
            .map(|r| rfc3339_ms(r.t_us / 1000))
            .collect::<Vec<_>>()),
    );
    let mut accounts: BTreeSet<String> = b.iter().map(|r| r.account_id.clone()).collect();
    if let Some(r) = first
        .referrer
        .as_ref()
        .filter(|_| first.referrer_is_account)
    {
        accounts.insert(r.clone());
        reason.push_str(&format!(
            " The referral code is account {r}'s own: these registrations count for it."
        ));
        ev.insert("referrer_account".into(), json!(r));
    }
    Some(
        Draft {
            accounts: accounts.into_iter().collect(),
            devices: devices.iter().map(|d| d.to_string()).collect(),
            span_us: (start, end),
            score,
            reason,
            evidence: ev,
        }
        .finding(
            DETECTOR,
            &[&first.app_id, &first.source, &rfc3339_ms(start / 1000)],
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reg(
        i: usize,
        source: &str,
        dev: &str,
        t_s: i64,
        prev: Option<f64>,
        back: bool,
    ) -> Registration {
        Registration {
            event_id: format!("e{i}"),
            app_id: "resident-service".into(),
            account_id: format!("r{i}"),
            source: source.into(),
            referrer: Some(source.into()),
            referrer_is_account: false,
            device_id: Some(dev.into()),
            ip: Some(format!("10.0.0.{}", i % 3)),
            integrity: Some("basic".into()),
            claimed_region: Some("450102".into()),
            t_us: t_s * 1_000_000,
            returned: Some(back),
            observed_s: 5.0 * 86_400.0,
            since_source_prev_s: prev,
        }
    }

    #[test]
    fn farm_burst_flagged_help_desk_not() {
        let mut rows = Vec::new();
        // Help desk: 4 a day for 5 days on one phone, residents come back.
        for d in 0..5 {
            for k in 0..4 {
                let i = d * 4 + k;
                let t = d as i64 * 86_400 + 33_000 + k as i64 * 3_000;
                let prev = (i > 0).then_some(if k == 0 { 80_000.0 } else { 3_000.0 });
                rows.push(reg(i, "staff-1", "desk", t, prev, i % 3 != 0));
            }
        }
        // Farm: 40 in 40 minutes on 4 phones, nobody comes back.
        for k in 0..40 {
            let i = 100 + k;
            rows.push(reg(
                i,
                "PR1",
                &format!("fd{}", k % 4),
                50_000 + k as i64 * 60,
                (k > 0).then_some(60.0),
                false,
            ));
        }
        // Honest residents: one each, most come back.
        for k in 0..60 {
            let i = 200 + k;
            rows.push(reg(
                i,
                &format!("device:h{k}"),
                &format!("h{k}"),
                40_000 + k as i64 * 900,
                None,
                k % 4 != 0,
            ));
        }
        rows.sort_by(|a, b| (&a.app_id, &a.source, a.t_us).cmp(&(&b.app_id, &b.source, b.t_us)));
        let f = detect(&rows);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts.len(), 40);
        assert!(f[0].evidence["signals"].as_array().unwrap().len() >= 2);
        // Beside the burst, the normal pace: 40 within its busiest hour;
        // the other sources' busiest hours (the help desk's 2, 60
        // residents' 1 each) have a median of 1.
        assert_eq!(f[0].evidence["busiest_hour"], 40);
        assert_eq!(f[0].evidence["others_busiest_hour"], 1.0);
        f[0].validate().unwrap();

        // The same farm through an official's own referral code (an
        // account with activity of its own): that official is named too.
        for r in rows.iter_mut().filter(|r| r.source == "PR1") {
            r.referrer_is_account = true;
        }
        let f = detect(&rows);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts.len(), 41);
        assert!(f[0].accounts.contains(&"PR1".to_string()));
        assert_eq!(f[0].evidence["referrer_account"], "PR1");
        assert!(f[0].reason.contains("account PR1's own"), "{}", f[0].reason);
    }

    /// A promoter's second session, hours after the first: a dozen
    /// accounts on four phones from a dozen addresses. Alone, 0 of 12 not
    /// coming back at the others' 50% is not beyond chance (1 in 4,096);
    /// with the first session's 20 it is, and the session is found.
    #[test]
    fn a_promoters_short_second_session_is_judged_with_the_first() {
        let mut rows = Vec::new();
        let mut session =
            |from: usize, n: usize, t0: i64, phones: usize, first_prev: Option<f64>| {
                for k in 0..n {
                    let mut r = reg(
                        from + k,
                        "PR2",
                        &format!("fd{}", k % phones),
                        t0 + k as i64 * 240,
                        if k == 0 { first_prev } else { Some(240.0) },
                        false,
                    );
                    r.ip = Some(format!("10.9.0.{}", from + k));
                    rows.push(r);
                }
            };
        session(0, 20, 30_000, 5, None);
        session(100, 12, 50_000, 4, Some(15_000.0));
        // Everyone else: one each, half come back.
        for k in 0..80 {
            rows.push(reg(
                300 + k,
                &format!("device:h{k}"),
                &format!("h{k}"),
                20_000 + k as i64 * 600,
                None,
                k % 2 == 0,
            ));
        }
        rows.sort_by(|a, b| (&a.app_id, &a.source, a.t_us).cmp(&(&b.app_id, &b.source, b.t_us)));
        let f = detect(&rows);
        assert_eq!(f.len(), 2, "{f:#?}");
        let second = f
            .iter()
            .find(|f| f.accounts.len() == 12)
            .expect("the second session");
        assert!(
            second
                .reason
                .contains("of all 32 registered through this source, 0 did"),
            "{}",
            second.reason
        );
        assert_eq!(second.evidence["source_observed"], 32);

        // A help desk's honest afternoon after a farm's morning through
        // the same code: its residents came back, and it is not named.
        for r in rows
            .iter_mut()
            .filter(|r| r.source == "PR2" && r.t_us >= 50_000_000_000)
        {
            r.returned = Some(true);
        }
        let f = detect(&rows);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts.len(), 20);
    }

    #[test]
    fn binomial_cdf_known_values() {
        // P(X <= 0 | 10, 0.5) = 1/1024
        assert!((binomial_ln_cdf(0, 10, 0.5) - (1.0f64 / 1024.0).ln()).abs() < 1e-9);
        // P(X <= 5 | 10, 0.5) = 638/1024
        assert!((binomial_ln_cdf(5, 10, 0.5) - (638.0f64 / 1024.0).ln()).abs() < 1e-9);
        assert_eq!(binomial_ln_cdf(10, 10, 0.3), 0.0);
    }

    proptest! {
        #[test]
        fn binomial_cdf_is_a_monotone_probability(n in 1usize..300, p in 0.01f64..0.99, k in 0usize..300) {
            let k = k.min(n);
            let a = binomial_ln_cdf(k, n, p);
            prop_assert!(a <= 1e-9);
            if k < n {
                prop_assert!(binomial_ln_cdf(k + 1, n, p) >= a - 1e-9);
            }
        }
    }
}
