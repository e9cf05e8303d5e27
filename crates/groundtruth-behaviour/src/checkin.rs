//! `bulk_check_in`: one device clocking in many accounts, or check-ins that
//! no phone GPS could have produced.
//!
//! A check-in (打卡) says "this person was at this duty point now". Three
//! signatures of a machine or a helper doing it for others, all from the
//! `check_ins` view:
//! - **one device, many accounts in a day**: people check in on their own
//!   phone; a family may share one among two or three accounts
//!   ([`FAMILY_ACCOUNTS`]);
//! - **copied coordinates**: phone GPS scatters by metres from fix to fix
//!   (5-30 m accuracy), so two check-ins at exactly the same latitude and
//!   longitude (to the last digit sent) are a copy, not a measurement;
//! - **machine timing**: the device's check-ins follow each other at
//!   near-constant intervals (coefficient of variation below
//!   [`MAX_REGULAR_CV`]; people arriving at a door do not);
//! - **far from the duty point**: the point's place is learnt from everyone
//!   who checks in there (median); a check-in more than [`FAR_M`] from it is
//!   not at the post.
//!
//! A device-day is flagged when it clocked in more accounts than a family
//! shares a phone among, with at least one other signature; or more than
//! [`FAMILY_ACCOUNTS`] + 1 accounts outright. Separately, one account whose
//! check-ins sit on exactly the same coordinates on [`SAME_SPOT_DAYS`] or
//! more days is flagged (a mock-location app replaying one position).
//!
//! **Measured or registered.** Some apps send the phone's fix; others send
//! the duty point's registered coordinates (the post's QR code, beacon or
//! venue was scanned), so every honest check-in there repeats them exactly.
//! Which one an app (and each duty point) does is learnt from the data
//! before an exact repeat counts as a sign ([`Sources`]): a point is
//! *registered* when most of the accounts seen there (at least
//! [`MIN_POINT_ACCOUNTS`]) share one exact coordinate, which different
//! people's phones never do; an app is registered when most of its points
//! that can be told are, or, without points, when most of its check-ins sit
//! on coordinates that several accounts share. On registered coordinates
//! copied positions say nothing; the other signs (one device, many
//! accounts; machine timing) hold either way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use groundtruth_finding::{rfc3339_ms, Finding};
use serde_json::{json, Map};

use crate::{date_string, round2, Draft};

/// Detector name (contract).
pub const DETECTOR: &str = "bulk_check_in";

/// Most accounts a household shares one phone among.
pub const FAMILY_ACCOUNTS: usize = 3;

/// Largest coefficient of variation of the intervals between a device's
/// check-ins that counts as machine timing. Independent arrivals give about
/// 1 (exponential gaps); a script stepping through a list gives about 0.
pub const MAX_REGULAR_CV: f64 = 0.1;

/// Distance from the duty point beyond any phone GPS error or compound, metres.
pub const FAR_M: f64 = 500.0;

/// Fewest accounts whose check-ins fix the duty point's place.
pub const MIN_POINT_ACCOUNTS: i64 = 3;

/// Days on which one account's check-ins repeat one exact coordinate.
pub const SAME_SPOT_DAYS: i64 = 3;

/// One row of `check_ins`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckIn {
    pub event_id: String,
    pub app_id: String,
    pub account_id: String,
    pub device_id: Option<String>,
    pub region: Option<String>,
    pub point_id: Option<String>,
    pub t_us: i64,
    pub event_date: i32,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub from_point_m: Option<f64>,
    pub point_accounts: Option<i64>,
    pub same_spot_check_ins: i64,
    pub same_spot_accounts: i64,
    pub same_spot_days: i64,
    pub device_day_accounts: i64,
    pub since_device_prev_s: Option<f64>,
}

impl CheckIn {
    fn far(&self) -> bool {
        self.point_accounts.unwrap_or(0) >= MIN_POINT_ACCOUNTS
            && self.from_point_m.is_some_and(|d| d > FAR_M)
    }
}

/// Whether coordinates are the phone's own fix (measured) or the duty
/// point's registered ones, per app and per duty point.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// (app, point) -> registered, for points with enough accounts.
    points: HashMap<(&'a str, &'a str), bool>,
    /// app -> registered.
    apps: HashMap<&'a str, bool>,
}

impl<'a> Sources<'a> {
    /// Learns the sources from the check-ins themselves.
    pub fn learn(rows: &'a [CheckIn]) -> Sources<'a> {
        type Coord = (u64, u64);
        let coord = |r: &CheckIn| Some((r.lat?.to_bits(), r.lon?.to_bits()));
        let mut at_points: HashMap<(&str, &str), HashMap<Coord, BTreeSet<&str>>> = HashMap::new();
        let mut at_coords: HashMap<&str, HashMap<Coord, BTreeSet<&str>>> = HashMap::new();
        for r in rows {
            let Some(c) = coord(r) else { continue };
            if let Some(p) = &r.point_id {
                at_points
                    .entry((&r.app_id, p))
                    .or_default()
                    .entry(c)
                    .or_default()
                    .insert(&r.account_id);
            }
            at_coords
                .entry(&r.app_id)
                .or_default()
                .entry(c)
                .or_default()
                .insert(&r.account_id);
        }
        let mut points = HashMap::new();
        let mut votes: HashMap<&str, (usize, usize)> = HashMap::new();
        for ((app, point), coords) in at_points {
            let accounts: BTreeSet<&str> = coords.values().flatten().copied().collect();
            if (accounts.len() as i64) < MIN_POINT_ACCOUNTS {
                continue;
            }
            let modal = coords.values().map(BTreeSet::len).max().unwrap_or(0);
            let registered = 2 * modal > accounts.len();
            points.insert((app, point), registered);
            let v = votes.entry(app).or_default();
            v.0 += usize::from(registered);
            v.1 += 1;
        }
        let mut apps = HashMap::new();
        for (app, coords) in at_coords {
            let registered = match votes.get(app) {
                Some(&(reg, of)) => 2 * reg > of,
                None => {
                    let all: usize = coords.values().map(BTreeSet::len).sum();
                    let shared: usize =
                        coords.values().map(BTreeSet::len).filter(|&n| n >= 2).sum();
                    2 * shared > all
                }
            };
            apps.insert(app, registered);
        }
        Sources { points, apps }
    }

    /// True when `r`'s coordinates are a phone's own fix as far as the data
    /// tell (its point's verdict, else its app's).
    pub fn measured(&self, r: &CheckIn) -> bool {
        if let Some(p) = &r.point_id {
            if let Some(reg) = self.points.get(&(r.app_id.as_str(), p.as_str())) {
                return !reg;
            }
        }
        !self.apps.get(r.app_id.as_str()).copied().unwrap_or(false)
    }
}

/// What one device did on one day.
#[derive(Debug, Default)]
struct DeviceDay<'a> {
    rows: Vec<&'a CheckIn>,
    /// Check-ins on measured coordinates that repeat another's exactly.
    copies: usize,
}

impl DeviceDay<'_> {
    fn accounts(&self) -> BTreeSet<&str> {
        self.rows.iter().map(|r| r.account_id.as_str()).collect()
    }
    fn far(&self) -> usize {
        self.rows.iter().filter(|r| r.far()).count()
    }
    /// (mean interval s, coefficient of variation) with at least 2 intervals.
    fn timing(&self) -> Option<(f64, f64)> {
        let iv: Vec<f64> = self
            .rows
            .iter()
            .filter_map(|r| r.since_device_prev_s)
            .collect();
        if iv.len() < 2 {
            return None;
        }
        let n = iv.len() as f64;
        let mean = iv.iter().sum::<f64>() / n;
        if mean <= 0.0 {
            return Some((0.0, 0.0));
        }
        let var = iv.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Some((mean, var.sqrt() / mean))
    }
    fn regular(&self) -> bool {
        self.timing().is_some_and(|(_, cv)| cv <= MAX_REGULAR_CV)
    }
    fn flagged(&self) -> bool {
        let n = self.accounts().len();
        n > FAMILY_ACCOUNTS + 1
            || (n >= FAMILY_ACCOUNTS && (self.copies >= 2 || self.regular() || self.far() >= 1))
    }
}

/// Runs the detector. `rows` in any order.
pub fn detect(rows: &[CheckIn]) -> Vec<Finding> {
    let mut days: BTreeMap<(&str, i32), DeviceDay<'_>> = BTreeMap::new();
    for r in rows {
        if let Some(d) = &r.device_id {
            if r.device_day_accounts as usize >= FAMILY_ACCOUNTS {
                days.entry((d.as_str(), r.event_date))
                    .or_default()
                    .rows
                    .push(r);
            }
        }
    }
    let sources = Sources::learn(rows);
    let mut per_device: BTreeMap<&str, Vec<DeviceDay<'_>>> = BTreeMap::new();
    for ((dev, _), mut dd) in days {
        dd.rows.sort_by_key(|r| (r.t_us, r.event_id.as_str()));
        dd.copies = dd
            .rows
            .iter()
            .filter(|r| r.same_spot_check_ins >= 2 && sources.measured(r))
            .count();
        if dd.flagged() {
            per_device.entry(dev).or_default().push(dd);
        }
    }
    let mut out: Vec<Finding> = per_device
        .into_iter()
        .map(|(dev, dds)| device_finding(dev, &dds))
        .collect();
    out.extend(same_spot_accounts(rows, &out, &sources));
    out
}

fn device_finding(device: &str, dds: &[DeviceDay<'_>]) -> Finding {
    let rows: Vec<&CheckIn> = dds.iter().flat_map(|d| d.rows.iter().copied()).collect();
    let accounts: BTreeSet<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
    let days: Vec<String> = dds
        .iter()
        .map(|d| date_string(d.rows[0].event_date))
        .collect();
    let copies: usize = dds.iter().map(|d| d.copies).sum();
    let far: Vec<&&CheckIn> = rows.iter().filter(|r| r.far()).collect();
    let regular_days = dds.iter().filter(|d| d.regular()).count();
    let max_accounts = dds.iter().map(|d| d.accounts().len()).max().unwrap_or(0);
    let timing: Vec<(f64, f64)> = dds.iter().filter_map(DeviceDay::timing).collect();
    let start = rows.iter().map(|r| r.t_us).min().unwrap_or(0);
    let end = rows.iter().map(|r| r.t_us).max().unwrap_or(0);

    let mut reason = format!(
        "One device ({device}) clocked in {} accounts on {} day{} (up to {max_accounts} in a day).",
        accounts.len(),
        days.len(),
        if days.len() == 1 { "" } else { "s" },
    );
    if copies > 0 {
        reason.push_str(&format!(
            " {copies} check-ins repeat exact coordinates, which real GPS never does."
        ));
    }
    if regular_days > 0 {
        let mean = timing.iter().map(|t| t.0).sum::<f64>() / timing.len().max(1) as f64;
        reason.push_str(&format!(
            " They came every {mean:.0} s like clockwork on {regular_days} day{}.",
            if regular_days == 1 { "" } else { "s" }
        ));
    }
    if !far.is_empty() {
        reason.push_str(&format!(
            " {} were more than {FAR_M:.0} m from the duty point they claim.",
            far.len()
        ));
    }
    let mut score: f64 = 0.6;
    score += 0.1 * (copies > 0) as u8 as f64;
    score += 0.1 * (regular_days > 0) as u8 as f64;
    score += 0.08 * (!far.is_empty()) as u8 as f64;
    score += 0.1 * ((days.len().min(3) as f64 - 1.0) / 2.0);
    let score = score.min(0.99);

    let mut ev = Map::new();
    ev.insert("device".into(), json!(device));
    ev.insert("days".into(), json!(days));
    ev.insert("accounts_per_day_max".into(), json!(max_accounts));
    ev.insert("copied_coordinates".into(), json!(copies));
    ev.insert("regular_days".into(), json!(regular_days));
    ev.insert(
        "interval_s".into(),
        json!(timing
            .iter()
            .map(|(m, cv)| json!({"mean": round2(*m), "cv": round2(*cv)}))
            .collect::<Vec<_>>()),
    );
    ev.insert("far_from_point".into(), json!(far.len()));
    // The scatter (for the case page): every check-in with its position.
    ev.insert(
        "check_ins".into(),
        json!(rows
            .iter()
            .take(500)
            .map(|r| json!({
                "account": r.account_id,
                "ts": rfc3339_ms(r.t_us / 1000),
                "lat": r.lat,
                "lon": r.lon,
                "accuracy_m": r.accuracy_m,
                "point_id": r.point_id,
                "from_point_m": r.from_point_m.map(round2),
            }))
            .collect::<Vec<_>>()),
    );
    Draft {
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        devices: vec![device.to_string()],
        span_us: (start, end),
        score,
        reason,
        evidence: ev,
    }
    .finding(DETECTOR, &[device, &days[0]])
}

/// Accounts alone on one exact coordinate on many days (not already named).
fn same_spot_accounts(
    rows: &[CheckIn],
    already: &[Finding],
    sources: &Sources<'_>,
) -> Vec<Finding> {
    let named: BTreeSet<&str> = already
        .iter()
        .flat_map(|f| f.accounts.iter().map(String::as_str))
        .collect();
    let mut spots: BTreeMap<(&str, &str), Vec<&CheckIn>> = BTreeMap::new();
    for r in rows {
        if r.same_spot_accounts == 1 && r.same_spot_days >= SAME_SPOT_DAYS && sources.measured(r) {
            spots
                .entry((r.app_id.as_str(), r.account_id.as_str()))
                .or_default()
                .push(r);
        }
    }
    spots
        .into_iter()
        .filter(|((_, a), _)| !named.contains(a))
        .map(|((app, account), rs)| {
            let (lat, lon) = (rs[0].lat.unwrap_or(0.0), rs[0].lon.unwrap_or(0.0));
            let days: BTreeSet<String> = rs.iter().map(|r| date_string(r.event_date)).collect();
            let start = rs.iter().map(|r| r.t_us).min().unwrap_or(0);
            let end = rs.iter().map(|r| r.t_us).max().unwrap_or(0);
            let devices: BTreeSet<String> = rs.iter().filter_map(|r| r.device_id.clone()).collect();
            let mut ev = Map::new();
            ev.insert("app_id".into(), json!(app));
            ev.insert("lat".into(), json!(lat));
            ev.insert("lon".into(), json!(lon));
            ev.insert("days".into(), json!(days));
            ev.insert("check_ins".into(), json!(rs.len()));
            Draft {
                accounts: vec![account.to_string()],
                devices: devices.into_iter().collect(),
                span_us: (start, end),
                score: 0.85,
                reason: format!(
                    "{} check-ins on {} days sit on exactly the same coordinates ({lat}, {lon}); phone GPS never repeats a fix to the last digit, so the position was supplied, not measured.",
                    rs.len(),
                    days.len()
                ),
                evidence: ev,
            }
            .finding(DETECTOR, &[app, account, "same-spot"])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(acct: &str, dev: &str, t_s: i64, day: i32) -> CheckIn {
        CheckIn {
            event_id: format!("{acct}-{t_s}"),
            app_id: "attendance".into(),
            account_id: acct.into(),
            device_id: Some(dev.into()),
            region: None,
            point_id: Some("p1".into()),
            t_us: t_s * 1_000_000,
            event_date: day,
            lat: Some(22.8),
            lon: Some(108.3),
            accuracy_m: Some(10.0),
            from_point_m: Some(8.0),
            point_accounts: Some(20),
            same_spot_check_ins: 1,
            same_spot_accounts: 1,
            same_spot_days: 1,
            device_day_accounts: 1,
            since_device_prev_s: None,
        }
    }

    fn device_day(accounts: usize, step: impl Fn(usize) -> i64, copy: bool) -> Vec<CheckIn> {
        let mut t = 30_000;
        (0..accounts)
            .map(|i| {
                let mut r = row(&format!("a{i}"), "dev", t, 100);
                r.device_day_accounts = accounts as i64;
                r.since_device_prev_s = (i > 0).then(|| step(i) as f64);
                if copy {
                    r.same_spot_check_ins = accounts as i64;
                    r.same_spot_accounts = accounts as i64;
                }
                t += step(i + 1);
                r
            })
            .collect()
    }

    #[test]
    fn scripted_device_flagged() {
        let rows = device_day(6, |_| 7, true);
        let f = detect(&rows);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].accounts.len(), 6);
        assert!(f[0].reason.contains("clockwork"));
        f[0].validate().unwrap();
    }

    #[test]
    fn family_phone_not_flagged() {
        // Three accounts on one phone, irregular, honest GPS.
        let rows = device_day(3, |i| [0, 40, 700, 90][i.min(3)], false);
        assert!(detect(&rows).is_empty());
        // Two accounts even with identical timing.
        assert!(detect(&device_day(2, |_| 7, false)).is_empty());
    }

    /// A venue app: every visit to a venue carries the venue's coordinates.
    #[test]
    fn registered_coordinates_are_no_sign() {
        let mut rows = Vec::new();
        for venue in 0..6 {
            for a in 0..5 {
                for d in 0..4 {
                    let mut r = row(
                        &format!("v{venue}a{a}"),
                        &format!("dv{venue}a{a}"),
                        30_000 + d as i64 * 86_400,
                        100 + d,
                    );
                    r.point_id = Some(format!("venue{venue}"));
                    r.lat = Some(22.8 + venue as f64 * 0.01);
                    r.lon = Some(108.3);
                    r.same_spot_check_ins = 20;
                    r.same_spot_accounts = 5;
                    r.same_spot_days = 4;
                    rows.push(r);
                }
            }
        }
        // A regular at a venue nobody else visited in the data.
        for d in 0..4 {
            let mut r = row("regular", "dreg", 40_000 + d as i64 * 86_400, 100 + d);
            r.point_id = Some("corner-cafe".into());
            r.lat = Some(23.1);
            r.same_spot_check_ins = 4;
            r.same_spot_days = 4;
            rows.push(r);
        }
        let s = Sources::learn(&rows);
        assert!(!s.measured(&rows[0]));
        assert!(!s.measured(rows.last().unwrap()), "the app's verdict");
        assert!(detect(&rows).is_empty());
        // The same regular in an app of phone fixes is a replayed position.
        let solo: Vec<CheckIn> = rows
            .iter()
            .filter(|r| r.account_id == "regular")
            .cloned()
            .collect();
        assert!(Sources::learn(&solo).measured(&solo[0]));
        assert_eq!(detect(&solo).len(), 1);
    }

    #[test]
    fn replayed_spot_flagged() {
        let rows: Vec<CheckIn> = (0..4)
            .map(|d| {
                let mut r = row("solo", "d1", 30_000 + d as i64 * 86_400, 100 + d);
                r.same_spot_check_ins = 4;
                r.same_spot_days = 4;
                r
            })
            .collect();
        let f = detect(&rows);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].accounts, vec!["solo".to_string()]);
    }
}
