//! `report_inflation`: a unit told to "report more cases" files a burst of
//! filler reports before an assessment.
//!
//! The unit is the reporting accounts of one region in one app. A day of a
//! unit is judged on two questions, each a significance test against
//! baselines of the same data (nothing fitted to a data set):
//!
//! 1. **A surge.** The day's reports against what is expected of the unit:
//!    the larger of its own median day over the week before (when it has
//!    [`MIN_HISTORY_DAYS`] of them) and its peers' median rate per account
//!    that week times its accounts (when other units have
//!    [`MIN_PEER_ACCOUNTS`]), times the day's level among the peers (a
//!    weekend, a holiday, a city-wide emergency), never below one report
//!    a day. Poisson tail.
//! 2. **Filler, not work.** A genuinely bad week also raises the count; it
//!    raises every category and its reports say different things. Filler
//!    shows in the make-up of the day: (a) summaries that repeat an earlier
//!    summary of the unit that week word for word (digits, spaces and
//!    punctuation aside), against the peers' repeat share; (b) reports
//!    crowded into two categories, against the larger of those categories'
//!    share among the peers' reports and among the unit's own over its
//!    week before (a unit's mix of cases is its own; corrected for the
//!    choice of the two); (c) reports
//!    of the same category from the same spot within the hour of the
//!    author's previous one (`near_copy`), against the peers' share;
//!    (d) reports filed within [`RAPID_S`] of the same author's previous
//!    report, one after another from a desk, against the runs the peers'
//!    rate predicts for authors filing as many. Binomial and Poisson tails.
//!
//! A day is flagged when both hold after a Bonferroni correction over every
//! unit-day judged ([`ALPHA`]), or, without a significant surge, when the
//! day is above its expected count and its repeats, same-spot copies or
//! runs are beyond the peers' *and* beyond the unit's own week before (a
//! few accounts' filler inflates a large unit's day by less than its
//! spread; a unit whose honest way of working repeats spots or texts does
//! so every day, so its own week explains it), or, on the unit's first
//! days (too few of its own days before to know its way of working), when
//! a few accounts whose filler is beyond chance filed more of its day than
//! their share of its accounts (`few_accounts_surplus`). A unit's flagged
//! days within a week of each other make one finding; it names the unit's
//! accounts that filed more than their usual those days (their own week
//! before, or their share of the unit's expected day) and whose filler by
//! a sign that fired is beyond chance for an honest account writing as
//! much (corrected for the unit's accounts).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use groundtruth_finding::Finding;
use serde_json::{json, Map, Value};

use crate::baseline::{Robust, LOOKBACK_DAYS};
use crate::stats::{binomial_ln_sf, ln_choose, poisson_ln_sf};
use crate::{date_string, round2, Draft};

/// Detector name (contract).
pub const DETECTOR: &str = "report_inflation";

/// Expected number of falsely flagged unit-days in the data.
pub const ALPHA: f64 = 0.01;

/// Days of the unit's own history a baseline needs.
pub const MIN_HISTORY_DAYS: usize = 3;

/// Other units whose own text collision rates make a median.
pub const MIN_PEER_UNITS: usize = 3;

/// Accounts of other units a peer rate needs.
pub const MIN_PEER_ACCOUNTS: usize = 5;

/// A report filed within this many seconds of its author's previous one
/// was filed one after another: less than it takes to get to another case
/// and write it up (a report names a case, a category, a place, often a
/// photo). Filler is typed in runs at a desk; a person reporting what
/// they found files as they go. No threshold of its own: the count of such
/// reports is tested against what the peers' own runs predict for authors
/// filing as many (see `rapid_room`), so an app whose honest users batch
/// their reports (offline, then synced) sets its own baseline.
pub const RAPID_S: i64 = 120;

/// How many reports of an author's day may follow the previous one within
/// [`RAPID_S`] by chance, up to a rate: reports spread over a working day
/// at random fall that close about (n - 1) x (n - 1) x [`RAPID_S`] / (the
/// day's length) times, so an author filing three times as many has about
/// nine times the runs by chance. The rate is the peers' (their runs over
/// their `(n - 1)^2`), never the length of a working day assumed.
fn rapid_room(n: u64) -> f64 {
    let k = n.saturating_sub(1) as f64;
    k * k
}

/// The rate of `runs` in `room` (see `rapid_room`): the posterior mean
/// under Jeffreys' prior for a Poisson rate, so that a handful of peers'
/// runs, or none, still gives a rate, without a guess of ours pulling it.
fn rapid_rate(runs: u64, room: f64) -> f64 {
    (runs as f64 + 0.5) / room.max(1.0)
}

/// Runs expected of an author filing `n` reports a day at `rate` runs per
/// [`rapid_room`] (never more than `n - 1`).
fn rapid_expected(n: u64, rate: f64) -> f64 {
    (rate * rapid_room(n)).min(n.saturating_sub(1) as f64)
}

/// Fewest reports a day of inflation holds (a handful of reports is no
/// campaign, whatever the rates say).
pub const MIN_REPORTS: u64 = 8;

/// One report (a row of the `reports` view).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub app_id: String,
    pub account_id: String,
    pub region: Option<String>,
    pub category: Option<String>,
    /// The report's free text (`attrs.summary`), when it has one.
    pub summary: Option<String>,
    pub t_us: i64,
    pub event_date: i32,
    /// Same category, same spot, within the hour of the author's previous.
    pub near_copy: bool,
    /// The report carries a position.
    pub located: bool,
}

/// The words of a summary: letters only, lower case, so that two reports
/// that differ in a number, a space or a comma read as one text.
pub fn text_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect()
}

/// What one unit did on one day.
#[derive(Debug, Default, Clone)]
struct UnitDay {
    reports: u64,
    with_text: u64,
    repeats: u64,
    /// For each report with text: how many texts the unit wrote in the
    /// week before it.
    prior_texts: Vec<u64>,
    located: u64,
    copies: u64,
    /// Filed within [`RAPID_S`] of the author's previous report.
    rapid: u64,
    categories: BTreeMap<String, u64>,
    /// Per account: (reports, repeats, copies, per category).
    accounts: BTreeMap<String, AccountDay>,
    first_us: i64,
    last_us: i64,
}

impl UnitDay {
    /// The sum of [`rapid_room`] over the day's authors.
    fn rapid_room(&self) -> f64 {
        self.accounts.values().map(|a| rapid_room(a.reports)).sum()
    }
}

#[derive(Debug, Default, Clone)]
struct AccountDay {
    reports: u64,
    repeats: u64,
    /// As [`UnitDay::prior_texts`], for this account's texts.
    prior_texts: Vec<u64>,
    located: u64,
    copies: u64,
    rapid: u64,
    categories: BTreeMap<String, u64>,
}

/// The verdict on one unit-day that was judged.
#[derive(Debug, Clone)]
struct Judged {
    date: i32,
    expected: f64,
    surge_ln_p: f64,
    /// Which filler signs fired, with their ln p.
    signs: Vec<(&'static str, f64)>,
    top_categories: Vec<String>,
    peer_top_share: f64,
    /// The same two categories' share of the unit's own reports over its
    /// ordinary days of the week before (when it has enough of them).
    own_top_share: Option<f64>,
    /// Repeats expected of an honest unit writing as many texts.
    expected_repeats: Option<f64>,
    /// The chance two honest texts of the unit read the same.
    collision: Option<f64>,
    /// The peers' share of same-spot copies among located reports.
    peer_copy_share: f64,
    /// The peers' runs per [`rapid_room`] of their author-days.
    peer_rapid_rate: f64,
    /// Runs expected of the unit's authors that day at that rate.
    expected_rapid: f64,
    /// The signs against the unit's own week before (repeats, copies and
    /// runs; only when it has a week before), with their ln p.
    own_signs: Vec<(&'static str, f64)>,
    /// Days of the week before on which the unit reported.
    own_days: usize,
}

/// (app, region), or (app, "account …") for reports without a region.
type Unit = (String, String);

/// Runs the detector. `reports` in any order.
pub fn detect(reports: &[Report]) -> Vec<Finding> {
    let mut by_app: BTreeMap<&str, Vec<&Report>> = BTreeMap::new();
    for r in reports {
        by_app.entry(&r.app_id).or_default().push(r);
    }
    let mut out = Vec::new();
    for (app, mut rs) in by_app {
        rs.sort_by(|a, b| (a.t_us, &a.account_id).cmp(&(b.t_us, &b.account_id)));
        out.extend(detect_app(app, &rs));
    }
    out
}

fn unit_of(r: &Report) -> String {
    match &r.region {
        Some(g) => g.clone(),
        // No region: the account is its own unit.
        None => format!("account {}", r.account_id),
    }
}

fn detect_app(app: &str, rs: &[&Report]) -> Vec<Finding> {
    // Unit-days, with word-for-word repeats within the unit's week.
    let mut days: BTreeMap<Unit, BTreeMap<i32, UnitDay>> = BTreeMap::new();
    let mut last_seen: HashMap<(String, String), i32> = HashMap::new();
    // Per unit: the dates of its texts in the week so far, and how often
    // each text came.
    let mut recent: HashMap<String, VecDeque<i32>> = HashMap::new();
    let mut texts: BTreeMap<String, HashMap<String, u64>> = BTreeMap::new();
    let mut active: BTreeSet<i32> = BTreeSet::new();
    let mut last_filed: HashMap<&str, i64> = HashMap::new();
    for r in rs {
        let unit = unit_of(r);
        let rapid = last_filed
            .insert(r.account_id.as_str(), r.t_us)
            .is_some_and(|t| r.t_us - t <= RAPID_S * 1_000_000);
        active.insert(r.event_date);
        let key = r.summary.as_deref().map(text_key).filter(|k| !k.is_empty());
        let mut prior = None;
        if let Some(k) = &key {
            let q = recent.entry(unit.clone()).or_default();
            while q
                .front()
                .is_some_and(|&d| d <= r.event_date - LOOKBACK_DAYS)
            {
                q.pop_front();
            }
            prior = Some(q.len() as u64);
            q.push_back(r.event_date);
            *texts
                .entry(unit.clone())
                .or_default()
                .entry(k.clone())
                .or_default() += 1;
        }
        let repeat = key.is_some_and(|k| {
            let key = (unit.clone(), k);
            let seen = last_seen
                .get(&key)
                .is_some_and(|&d| d > r.event_date - LOOKBACK_DAYS);
            last_seen.insert(key, r.event_date);
            seen
        });
        let d = days
            .entry((app.to_string(), unit))
            .or_default()
            .entry(r.event_date)
            .or_insert_with(|| UnitDay {
                first_us: r.t_us,
                last_us: r.t_us,
                ..UnitDay::default()
            });
        d.reports += 1;
        if let Some(n) = prior {
            d.with_text += 1;
            d.prior_texts.push(n);
        }
        d.repeats += u64::from(repeat);
        d.located += u64::from(r.located);
        d.copies += u64::from(r.near_copy);
        d.rapid += u64::from(rapid);
        d.first_us = d.first_us.min(r.t_us);
        d.last_us = d.last_us.max(r.t_us);
        let a = d.accounts.entry(r.account_id.clone()).or_default();
        a.reports += 1;
        a.repeats += u64::from(repeat);
        a.prior_texts.extend(prior);
        a.located += u64::from(r.located);
        a.copies += u64::from(r.near_copy);
        a.rapid += u64::from(rapid);
        if let Some(c) = &r.category {
            *d.categories.entry(c.clone()).or_default() += 1;
            *a.categories.entry(c.clone()).or_default() += 1;
        }
    }
    let collisions = Collisions::new(&texts);
    let tested: usize = days.values().map(BTreeMap::len).sum();
    let ln_budget = (tested.max(1) as f64).ln();
    let ln_alpha = ALPHA.ln();

    let mut flagged: BTreeMap<&Unit, Vec<Judged>> = BTreeMap::new();
    let mut weeks: HashMap<i32, Weeks<'_>> = HashMap::new();
    for (unit, ud) in &days {
        for (&date, d) in ud {
            if d.reports < MIN_REPORTS {
                continue;
            }
            let w = weeks
                .entry(date)
                .or_insert_with(|| Weeks::new(app, date, &days, &active));
            let Some(j) = judge(unit, date, d, &days, &active, w, &collisions) else {
                continue;
            };
            let surge = j.surge_ln_p + ln_budget < ln_alpha;
            let signs = fired(&j, ln_budget);
            // Without a significant surge, filler that is beyond the
            // peers' and beyond the unit's own week before, on a day above
            // its expected count: a few accounts' copies inflate a large
            // unit's day by less than its day-to-day spread, yet they are
            // inflation. A unit whose honest way of working repeats texts
            // or spots does so every day and is not beyond its own week.
            let beyond_own = d.reports as f64 > j.expected
                && j.own_signs.iter().any(|(sign, ln_p)| {
                    signs.contains(sign) && ln_p + ln_budget + 3f64.ln() < ln_alpha
                });
            // On the unit's first days its own week cannot speak for its
            // way of working (the data, or the unit's use of the app, has
            // just begun): then filler shows in who filed it.
            let first_days = j.own_days < MIN_HISTORY_DAYS
                && d.reports as f64 > j.expected
                && few_accounts_surplus(&j, ud, ln_budget);
            if (surge || beyond_own || first_days) && !signs.is_empty() {
                flagged.entry(unit).or_default().push(j);
            }
        }
    }
    let mut out = Vec::new();
    for (unit, js) in flagged {
        // Episodes: flagged days within a week of the previous one.
        let mut episode: Vec<Judged> = Vec::new();
        for j in js {
            if episode
                .last()
                .is_some_and(|p| j.date - p.date >= LOOKBACK_DAYS)
            {
                out.extend(finding(
                    unit,
                    &std::mem::take(&mut episode),
                    &days,
                    ln_budget,
                ));
            }
            episode.push(j);
        }
        out.extend(finding(unit, &episode, &days, ln_budget));
    }
    out
}

/// Fewest texts a unit needs for its own collision rate to count.
const MIN_TEXTS: u64 = 10;

/// How often two texts of one unit read the same, per unit: the chance a
/// report repeats a given earlier report of its unit by honest coincidence
/// (a small vocabulary, one street named in many reports).
struct Collisions {
    /// unit -> (pairs that read the same, pairs).
    units: BTreeMap<String, (f64, f64)>,
}

impl Collisions {
    fn new(texts: &BTreeMap<String, HashMap<String, u64>>) -> Collisions {
        let units = texts
            .iter()
            .map(|(u, t)| {
                let n: u64 = t.values().sum();
                let same: f64 = t.values().map(|&k| (k * k.saturating_sub(1)) as f64).sum();
                (u.clone(), (same, (n * n.saturating_sub(1)) as f64))
            })
            .collect();
        Collisions { units }
    }

    /// The rate for `unit` under the null: the larger of the median of its
    /// peers' own rates (units with [`MIN_TEXTS`] texts; a filler unit
    /// among them does not move a median) and the peers' pooled rate (one
    /// coincidence added, so no rate is taken as zero).
    fn null_for(&self, unit: &str) -> Option<f64> {
        let min_pairs = (MIN_TEXTS * (MIN_TEXTS - 1)) as f64;
        let peers = || self.units.iter().filter(move |(u, _)| u.as_str() != unit);
        let rates: Vec<f64> = peers()
            .filter(|(_, (_, pairs))| *pairs >= min_pairs)
            .map(|(_, (same, pairs))| same / pairs)
            .collect();
        let median = (rates.len() >= MIN_PEER_UNITS)
            .then(|| Robust::of(rates).map(|r| r.median))
            .flatten();
        let (same, pairs) = peers().fold((0.0, 0.0), |a, (_, (s, p))| (a.0 + s, a.1 + p));
        let pooled = (pairs > 0.0).then(|| (same + 1.0) / (pairs + 2.0));
        match (median, pooled) {
            (Some(m), Some(p)) => Some(m.max(p)),
            (m, p) => m.or(p),
        }
    }
}

/// What the peer baselines read of a unit's (or several units') week.
#[derive(Debug, Default, Clone)]
struct Week {
    reports: u64,
    located: u64,
    copies: u64,
    rapid: u64,
    /// The sum of [`rapid_room`] over its author-days.
    rapid_room: f64,
    categories: BTreeMap<String, u64>,
}

impl Week {
    fn add_day(&mut self, d: &UnitDay) {
        self.reports += d.reports;
        self.located += d.located;
        self.copies += d.copies;
        self.rapid += d.rapid;
        self.rapid_room += d.rapid_room();
        for (c, k) in &d.categories {
            *self.categories.entry(c.clone()).or_default() += k;
        }
    }

    fn minus(&self, o: &Week) -> Week {
        Week {
            reports: self.reports - o.reports,
            located: self.located - o.located,
            copies: self.copies - o.copies,
            rapid: self.rapid - o.rapid,
            rapid_room: (self.rapid_room - o.rapid_room).max(0.0),
            categories: self
                .categories
                .iter()
                .map(|(c, k)| (c.clone(), k - o.categories.get(c).copied().unwrap_or(0)))
                .filter(|(_, k)| *k > 0)
                .collect(),
        }
    }
}

/// Every unit's week up to one day (with its reporting accounts), and
/// their sum.
struct Weeks<'a> {
    units: BTreeMap<&'a Unit, (Week, usize)>,
    /// Every unit's reports per day of the week.
    per_day: BTreeMap<i32, u64>,
    /// Every account's reports per active day that week, with its unit.
    accounts: Vec<(&'a Unit, f64)>,
    total: Week,
}

impl<'a> Weeks<'a> {
    fn new(
        app: &str,
        date: i32,
        days: &'a BTreeMap<Unit, BTreeMap<i32, UnitDay>>,
        active: &BTreeSet<i32>,
    ) -> Weeks<'a> {
        let week = (date - LOOKBACK_DAYS + 1)..=date;
        let active_days = active.range(week.clone()).count().max(1) as f64;
        let mut units = BTreeMap::new();
        let mut rates = Vec::new();
        let mut total = Week::default();
        let mut per_day: BTreeMap<i32, u64> = BTreeMap::new();
        for (u, ud) in days {
            if u.0 != app {
                continue;
            }
            let mut w = Week::default();
            let mut accounts: BTreeMap<&str, u64> = BTreeMap::new();
            for (day, d) in ud.range(week.clone()) {
                *per_day.entry(*day).or_default() += d.reports;
                w.add_day(d);
                total.add_day(d);
                for (a, x) in &d.accounts {
                    *accounts.entry(a.as_str()).or_default() += x.reports;
                }
            }
            if w.reports == 0 {
                continue;
            }
            rates.extend(accounts.values().map(|&n| (u, n as f64 / active_days)));
            units.insert(u, (w, accounts.len()));
        }
        Weeks {
            units,
            per_day,
            accounts: rates,
            total,
        }
    }

    /// How busy the app is on `date` for `unit`'s peers: their reports
    /// that day over their median day of the week before (days the app was
    /// used), when they have [`MIN_HISTORY_DAYS`] of them, else 1. A
    /// weekend or a holiday when few file lowers it, a city-wide
    /// emergency when everyone files raises it; a unit's expected day
    /// follows it.
    fn day_level(&self, date: i32, ud: &BTreeMap<i32, UnitDay>, active: &BTreeSet<i32>) -> f64 {
        let peers_on = |day: i32| {
            let all = self.per_day.get(&day).copied().unwrap_or(0);
            all.saturating_sub(ud.get(&day).map_or(0, |x| x.reports)) as f64
        };
        let before: Vec<f64> = active
            .range((date - LOOKBACK_DAYS + 1)..date)
            .map(|&day| peers_on(day))
            .collect();
        if before.len() < MIN_HISTORY_DAYS {
            return 1.0;
        }
        Robust::of(before)
            .map(|r| r.median)
            .filter(|m| *m > 0.0)
            .map_or(1.0, |m| (peers_on(date) + 1.0) / (m + 1.0))
    }

    /// The peers of `unit`: every other unit's week, and the median rate of
    /// reports per account and day of their accounts (when there are
    /// [`MIN_PEER_ACCOUNTS`]).
    fn peers(&self, unit: &Unit) -> (Week, Option<f64>) {
        let others = match self.units.get(unit) {
            Some((w, _)) => self.total.minus(w),
            None => self.total.clone(),
        };
        let rates: Vec<f64> = self
            .accounts
            .iter()
            .filter(|(u, _)| *u != unit)
            .map(|(_, r)| *r)
            .collect();
        let rate = (rates.len() >= MIN_PEER_ACCOUNTS)
            .then(|| Robust::of(rates).map(|r| r.median))
            .flatten();
        (others, rate)
    }
}

fn judge(
    unit: &Unit,
    date: i32,
    d: &UnitDay,
    days: &BTreeMap<Unit, BTreeMap<i32, UnitDay>>,
    active: &BTreeSet<i32>,
    weeks: &Weeks<'_>,
    collisions: &Collisions,
) -> Option<Judged> {
    let ud = &days[unit];
    // The unit's own week before: its counts on the days the app was used.
    let history: Vec<f64> = active
        .range((date - LOOKBACK_DAYS + 1)..date)
        .map(|day| ud.get(day).map_or(0.0, |x| x.reports as f64))
        .collect();
    let own = (history.len() >= MIN_HISTORY_DAYS)
        .then(|| Robust::of(history.iter().copied()).map(|r| r.median))
        .flatten();
    let (p, peer_rate) = weeks.peers(unit);
    let week_accounts = weeks.units.get(unit).map_or(0, |w| w.1);
    let from_peers = peer_rate.map(|r| r * week_accounts as f64);
    if own.is_none() && from_peers.is_none() {
        return None;
    }
    let level = weeks.day_level(date, ud, active);
    let expected = (own.unwrap_or(0.0).max(from_peers.unwrap_or(0.0)) * level).max(1.0);
    let surge_ln_p = poisson_ln_sf(d.reports, expected);

    let mut signs = Vec::new();
    // (a) Word-for-word repeats: each text could repeat any of the unit's
    // texts of the week before it, each with the chance two texts of one
    // honest unit read the same.
    let collision = collisions.null_for(&unit.1);
    let expected_repeats = collision.map(|c| {
        d.prior_texts
            .iter()
            .map(|&n| (n as f64 * c).min(1.0))
            .sum::<f64>()
    });
    if let Some(mu) = expected_repeats.filter(|_| d.repeats >= 2) {
        signs.push(("repeated_text", poisson_ln_sf(d.repeats, mu.max(1e-9))));
    }
    // (b) Two categories crowding out the rest.
    let mut cats: Vec<(&String, &u64)> = d.categories.iter().collect();
    cats.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = cats.iter().take(2).map(|c| c.0.clone()).collect();
    let known: BTreeSet<&String> = p.categories.keys().chain(d.categories.keys()).collect();
    let k_all = known.len() as u64;
    let peer_cat_total: u64 = p.categories.values().sum();
    let peer_top: u64 = top.iter().filter_map(|c| p.categories.get(c)).sum();
    let peer_top_share = (peer_top as f64 + 1.0) / (peer_cat_total as f64 + k_all as f64);
    // A unit's own mix of cases is its own (land disputes in the country,
    // noise in town): the two categories are crowded only beyond both the
    // peers' share and the unit's own usual share, over its ordinary days
    // of the week before (days with at most twice its median day's
    // reports, so that the first days of a campaign do not become its
    // usual for the next), when it has [`MIN_HISTORY_DAYS`] of them.
    // Filler crowds categories the unit itself rarely used.
    let before: Vec<&UnitDay> = active
        .range((date - LOOKBACK_DAYS + 1)..date)
        .filter_map(|day| ud.get(day))
        .collect();
    let per_day: Vec<(u64, u64)> = before
        .iter()
        .map(|x| {
            let n: u64 = x.categories.values().sum();
            let in_top: u64 = top.iter().filter_map(|c| x.categories.get(c)).sum();
            (n, in_top)
        })
        .filter(|(n, _)| *n > 0)
        .collect();
    let usual_day = Robust::of(per_day.iter().map(|(n, _)| *n as f64)).map_or(0.0, |r| r.median);
    let ordinary: Vec<&(u64, u64)> = per_day
        .iter()
        .filter(|(n, _)| *n as f64 <= 2.0 * usual_day)
        .collect();
    let own_top_share = (ordinary.len() >= MIN_HISTORY_DAYS).then(|| {
        let n: u64 = ordinary.iter().map(|d| d.0).sum();
        let in_top: u64 = ordinary.iter().map(|d| d.1).sum();
        (in_top as f64 + 1.0) / (n as f64 + k_all as f64)
    });
    if k_all >= 4 && peer_cat_total > 0 {
        let in_top: u64 = cats.iter().take(2).map(|c| *c.1).sum();
        let categorised: u64 = d.categories.values().sum();
        signs.push((
            "two_categories",
            binomial_ln_sf(
                in_top,
                categorised,
                top_share(peer_top_share, own_top_share),
            ) + ln_choose(k_all, 2),
        ));
    }
    // (c) Same-spot copies.
    let peer_copy_share = (p.copies as f64 + 1.0) / (p.located as f64 + 2.0);
    if d.copies >= 2 {
        signs.push((
            "same_spot_copies",
            binomial_ln_sf(d.copies, d.located, peer_copy_share),
        ));
    }
    // (d) Reports filed one after another, against the runs the peers'
    // rate predicts for authors filing as many as the unit's did.
    let peer_rapid_rate = rapid_rate(p.rapid, p.rapid_room);
    let expected_rapid = runs_expected(d, peer_rapid_rate);
    if d.rapid >= 2 {
        signs.push((
            "rapid_succession",
            poisson_ln_sf(d.rapid, expected_rapid.max(1e-9)),
        ));
    }
    let own_signs = own_signs(d, &before);
    Some(Judged {
        date,
        expected,
        surge_ln_p,
        own_signs,
        own_days: before.len(),
        signs,
        top_categories: top,
        peer_top_share,
        own_top_share,
        expected_repeats,
        collision,
        peer_copy_share,
        peer_rapid_rate,
        expected_rapid,
    })
}

/// Runs expected of a unit-day's authors at `rate` (see `rapid_room`).
fn runs_expected(d: &UnitDay, rate: f64) -> f64 {
    d.accounts
        .values()
        .map(|a| rapid_expected(a.reports, rate))
        .sum()
}

/// The day's repeats, copies and runs against the unit's own week before
/// (`before`: its days of it), with their ln p; none without a week before.
fn own_signs(d: &UnitDay, before: &[&UnitDay]) -> Vec<(&'static str, f64)> {
    let mut own_signs = Vec::new();
    if before.is_empty() {
        return own_signs;
    }
    let sum = |f: fn(&UnitDay) -> u64| before.iter().map(|x| f(x)).sum::<u64>() as f64;
    let repeat_share = (sum(|x| x.repeats) + 1.0) / (sum(|x| x.with_text) + 2.0);
    if d.repeats >= 2 {
        own_signs.push((
            "repeated_text",
            binomial_ln_sf(d.repeats, d.with_text, repeat_share),
        ));
    }
    let copy_share = (sum(|x| x.copies) + 1.0) / (sum(|x| x.located) + 2.0);
    if d.copies >= 2 {
        own_signs.push((
            "same_spot_copies",
            binomial_ln_sf(d.copies, d.located, copy_share),
        ));
    }
    let room: f64 = before.iter().map(|x| x.rapid_room()).sum();
    let own_rate = rapid_rate(sum(|x| x.rapid) as u64, room);
    if d.rapid >= 2 {
        own_signs.push((
            "rapid_succession",
            poisson_ln_sf(d.rapid, runs_expected(d, own_rate).max(1e-9)),
        ));
    }
    own_signs
}

/// A few accounts filed far beyond their share of the unit's day, and their
/// surplus is filler: each one's copies, repeats or runs are beyond chance
/// for an honest account writing as much (against the peers' share, corrected for
/// the unit's accounts), and together they filed more of the unit's
/// reports that day than their share of its reporting accounts, beyond
/// chance after the correction over every unit-day judged. The baseline is
/// the unit's own other people that day: a unit whose honest way of
/// working repeats spots, or files more than its peers, does so across its
/// people. Two crowded categories are no sign here: a unit's mix of cases
/// is its own, and its first days do not show it.
fn few_accounts_surplus(j: &Judged, ud: &BTreeMap<i32, UnitDay>, ln_budget: f64) -> bool {
    let Some(d) = ud.get(&j.date) else {
        return false;
    };
    let per_account = fillers(std::slice::from_ref(j), ud, ln_budget);
    let n_accounts = per_account.len().max(1) as f64;
    let (mut filed, mut who) = (0u64, 0usize);
    for (n, filler) in per_account.values() {
        let beyond = filler
            .iter()
            .filter(|(sign, _)| **sign != "two_categories")
            .any(|(_, &(obs, exp))| {
                obs >= 2 && poisson_ln_sf(obs, exp.max(1e-9)) + n_accounts.ln() < ALPHA.ln()
            });
        if beyond {
            filed += n;
            who += 1;
        }
    }
    let share = who as f64 / n_accounts;
    who > 0 && share < 1.0 && binomial_ln_sf(filed, d.reports, share) + ln_budget < ALPHA.ln()
}

/// The share two categories are tested against: the larger of the peers'
/// and the unit's own usual share.
fn top_share(peers: f64, own: Option<f64>) -> f64 {
    peers.max(own.unwrap_or(0.0))
}

/// The signs that fired on a judged day (after the correction).
fn fired(j: &Judged, ln_budget: f64) -> Vec<&'static str> {
    j.signs
        .iter()
        .filter(|(_, p)| p + ln_budget + 3f64.ln() < ALPHA.ln())
        .map(|(s, _)| *s)
        .collect()
}

/// Per fired sign: an account's filler (observed, expected).
type Filler<'a> = BTreeMap<&'a str, (u64, f64)>;

fn finding(
    unit: &Unit,
    episode: &[Judged],
    days: &BTreeMap<Unit, BTreeMap<i32, UnitDay>>,
    ln_budget: f64,
) -> Option<Finding> {
    if episode.is_empty() {
        return None;
    }
    let ud = &days[unit];
    // Accounts: their reports on the flagged days against their usual.
    let flagged_days = episode.len() as f64;
    let per_account = fillers(episode, ud, ln_budget);
    let named = named_accounts(&per_account, episode, ud, flagged_days);
    if named.is_empty() {
        return None;
    }
    let totals = Totals::of(episode, ud);
    let mut all_signs: BTreeSet<&str> = BTreeSet::new();
    for j in episode {
        all_signs.extend(fired(j, ln_budget));
    }
    let dates: Vec<String> = episode.iter().map(|j| date_string(j.date)).collect();
    let start = episode.iter().map(|j| ud[&j.date].first_us).min()?;
    let end = episode.iter().map(|j| ud[&j.date].last_us).max()?;
    let (app, region) = (unit.0.as_str(), unit.1.as_str());

    let reason = reason(unit, episode, ud, &all_signs, &totals, &dates);
    let score =
        (0.7 + 0.1 * (all_signs.len() as f64 - 1.0) + 0.05 * (episode.len().min(3) as f64 - 1.0))
            .min(0.97);

    let ev = evidence(unit, episode, ud, &all_signs, &totals, &named, ln_budget);
    Some(
        Draft {
            accounts: named.into_iter().map(|a| a.0).collect(),
            devices: Vec::new(),
            span_us: (start, end),
            score,
            reason,
            evidence: ev,
        }
        .finding(DETECTOR, &[app, region, &dates[0]]),
    )
}

/// What an episode's days add up to.
#[derive(Debug, Clone, Copy)]
struct Totals {
    reports: u64,
    repeats: u64,
    with_text: u64,
    copies: u64,
    rapid: u64,
    /// Reports expected of the unit those days.
    expected: f64,
}

impl Totals {
    fn of(episode: &[Judged], ud: &BTreeMap<i32, UnitDay>) -> Totals {
        let sum = |f: fn(&UnitDay) -> u64| episode.iter().map(|j| f(&ud[&j.date])).sum();
        Totals {
            reports: sum(|d| d.reports),
            repeats: sum(|d| d.repeats),
            with_text: sum(|d| d.with_text),
            copies: sum(|d| d.copies),
            rapid: sum(|d| d.rapid),
            expected: episode.iter().map(|j| j.expected).sum(),
        }
    }
}

/// Per account of the unit: its reports on the episode's days, and per
/// sign that fired its filler (observed, expected of an honest account
/// writing as much).
fn fillers<'u>(
    episode: &[Judged],
    ud: &'u BTreeMap<i32, UnitDay>,
    ln_budget: f64,
) -> BTreeMap<&'u str, (u64, Filler<'static>)> {
    let mut per_account: BTreeMap<&str, (u64, Filler<'_>)> = BTreeMap::new();
    for j in episode {
        let d = &ud[&j.date];
        let signs = fired(j, ln_budget);
        for (a, ad) in &d.accounts {
            let e = per_account.entry(a).or_default();
            e.0 += ad.reports;
            for sign in &signs {
                let (obs, exp) = match *sign {
                    "repeated_text" => (
                        ad.repeats,
                        ad.prior_texts
                            .iter()
                            .map(|&n| (n as f64 * j.collision.unwrap_or(1.0)).min(1.0))
                            .sum(),
                    ),
                    "same_spot_copies" => (ad.copies, ad.located as f64 * j.peer_copy_share),
                    "rapid_succession" => (ad.rapid, rapid_expected(ad.reports, j.peer_rapid_rate)),
                    _ => {
                        let k: u64 = ad.categories.values().sum();
                        (
                            j.top_categories
                                .iter()
                                .filter_map(|c| ad.categories.get(c))
                                .sum(),
                            k as f64 * top_share(j.peer_top_share, j.own_top_share),
                        )
                    }
                };
                let f = e.1.entry(sign).or_default();
                f.0 += obs;
                f.1 += exp;
            }
        }
    }
    per_account
}

/// The accounts named: filler beyond chance by a sign that fired, and more
/// reports than their usual (own week before, or their share of the
/// unit's expected day). (account, reports, usual).
fn named_accounts(
    per_account: &BTreeMap<&str, (u64, Filler<'static>)>,
    episode: &[Judged],
    ud: &BTreeMap<i32, UnitDay>,
    flagged_days: f64,
) -> Vec<(String, u64, f64)> {
    let Some(first) = episode.first() else {
        return Vec::new();
    };
    let history_days: Vec<i32> = ((first.date - LOOKBACK_DAYS + 1)..first.date).collect();
    let n_accounts = per_account.len().max(1) as f64;
    let mut named: Vec<(String, u64, f64)> = Vec::new();
    for (a, (n, filler)) in per_account {
        // Its filler is beyond chance by a sign that fired (at least two).
        let filler_beyond_chance = filler.values().any(|&(obs, exp)| {
            obs >= 2 && poisson_ln_sf(obs, exp.max(1e-9)) + n_accounts.ln() < ALPHA.ln()
        });
        let before: u64 = history_days
            .iter()
            .filter_map(|day| ud.get(day))
            .filter_map(|x| x.accounts.get(*a))
            .map(|x| x.reports)
            .sum();
        let unit_before: u64 = history_days
            .iter()
            .filter_map(|day| ud.get(day))
            .map(|x| x.reports)
            .sum();
        // Usual: its own rate over the week before, or its share of the
        // unit's expected day when it has no week before.
        let own = before as f64 / (history_days.len() as f64);
        let share = episode.iter().map(|j| j.expected).sum::<f64>() / flagged_days / n_accounts;
        let usual = if unit_before > 0 {
            own.max(share)
        } else {
            share
        }
        .max(0.2)
            * flagged_days;
        // More than its usual: the filler is on top of its work. (Whether
        // the surplus alone is beyond chance is not asked: one burst of
        // filler among a large unit's accounts need not be, while its make-
        // up is.)
        if filler_beyond_chance && *n as f64 > usual {
            named.push((a.to_string(), *n, usual));
        }
    }
    named
}

/// The finding's sentence: the surplus, then what fills it.
fn reason(
    unit: &Unit,
    episode: &[Judged],
    ud: &BTreeMap<i32, UnitDay>,
    all_signs: &BTreeSet<&str>,
    totals: &Totals,
    dates: &[String],
) -> String {
    let Totals {
        reports,
        repeats,
        with_text,
        copies,
        rapid,
        expected,
    } = *totals;
    let (app, region) = (unit.0.as_str(), unit.1.as_str());
    let Some(first) = episode.first() else {
        return String::new();
    };
    let mut reason = format!(
        "Unit {region} filed {reports} reports in {app} on {} day{} ({}), against {:.0} expected from its own week before and its peers.",
        episode.len(),
        if episode.len() == 1 { "" } else { "s" },
        dates.join(", "),
        expected,
    );
    let mut parts = Vec::new();
    if all_signs.contains("repeated_text") {
        parts.push(format!(
            "{repeats} of the {with_text} with text repeat an earlier report's text word for word"
        ));
    }
    if all_signs.contains("two_categories") {
        let top = &first.top_categories;
        let in_top: u64 = episode
            .iter()
            .map(|j| {
                j.top_categories
                    .iter()
                    .filter_map(|c| ud[&j.date].categories.get(c))
                    .sum::<u64>()
            })
            .sum();
        parts.push(format!(
            "{in_top} fall in two categories ({}) that make {:.0}% of the peers' reports{}",
            top.join(", "),
            100.0 * first.peer_top_share,
            first
                .own_top_share
                .map(|o| format!(" and {:.0}% of its own the week before", 100.0 * o))
                .unwrap_or_default()
        ));
    }
    if all_signs.contains("same_spot_copies") {
        parts.push(format!(
            "{copies} repeat the author's previous report from the same spot within the hour"
        ));
    }
    if all_signs.contains("rapid_succession") {
        parts.push(format!(
            "{rapid} were filed within {} minutes of the same author's previous report, one after another",
            RAPID_S / 60
        ));
    }
    reason.push_str(&format!(
        " {}; a genuinely bad week raises every category and says different things.",
        capitalise(&parts.join("; "))
    ));
    reason
}

/// The finding's evidence: totals, each day's figures and signs, the
/// accounts named.
#[allow(clippy::too_many_arguments)]
fn evidence(
    unit: &Unit,
    episode: &[Judged],
    ud: &BTreeMap<i32, UnitDay>,
    all_signs: &BTreeSet<&str>,
    totals: &Totals,
    named: &[(String, u64, f64)],
    ln_budget: f64,
) -> Map<String, Value> {
    let Totals {
        reports,
        repeats,
        with_text,
        copies,
        rapid,
        expected,
    } = *totals;
    let (app, region) = (unit.0.as_str(), unit.1.as_str());
    let mut ev = Map::new();
    ev.insert("app_id".into(), json!(app));
    ev.insert("region".into(), json!(region));
    ev.insert("signs".into(), json!(all_signs));
    ev.insert("reports".into(), json!(reports));
    ev.insert("expected_reports".into(), json!(round2(expected)));
    ev.insert("repeated_text".into(), json!(repeats));
    ev.insert("with_text".into(), json!(with_text));
    ev.insert("same_spot_copies".into(), json!(copies));
    ev.insert("rapid_succession".into(), json!(rapid));
    ev.insert(
        "days".into(),
        Value::Array(
            episode
                .iter()
                .map(|j| {
                    let d = &ud[&j.date];
                    json!({
                        "date": date_string(j.date),
                        "reports": d.reports,
                        "expected": round2(j.expected),
                        "surge_log10_p": round2(j.surge_ln_p / std::f64::consts::LN_10),
                        "repeated_text": d.repeats,
                        "with_text": d.with_text,
                        "expected_repeats": j.expected_repeats.map(round2),
                        "top_categories": j.top_categories,
                        "top_categories_reports": j.top_categories.iter().filter_map(|c| d.categories.get(c)).sum::<u64>(),
                        "peer_top_share": round2(j.peer_top_share),
                        "own_top_share": j.own_top_share.map(round2),
                        "same_spot_copies": d.copies,
                        "rapid_succession": d.rapid,
                        "expected_rapid": round2(j.expected_rapid),
                        "signs": fired(j, ln_budget),
                    })
                })
                .collect(),
        ),
    );
    ev.insert(
        "accounts".into(),
        Value::Array(
            named
                .iter()
                .map(|(a, n, usual)| json!({"account": a, "reports": n, "usual": round2(*usual)}))
                .collect(),
        ),
    );
    ev
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-02 (Monday) = day 20394.
    const MON: i32 = 20394;
    const CATS: [&str; 8] = [
        "family", "noise", "debt", "tenancy", "land", "wages", "marriage", "traffic",
    ];
    const PLACES: [&str; 8] = [
        "东街", "西村", "南门", "北岸", "河口", "桥头", "新村", "老街",
    ];
    const WHO: [&str; 8] = [
        "住户", "商户", "村民", "租户", "老人", "学生", "司机", "业主",
    ];
    const DONE: [&str; 4] = [
        "已上门了解情况",
        "已电话回访",
        "已转交相关部门",
        "现场劝解后暂平息",
    ];

    /// Microseconds of second `sec` of `day`.
    fn at(day: i32, sec: i64) -> i64 {
        (day as i64 * 86_400 + sec) * 1_000_000
    }

    /// `v` with no report carrying a text.
    fn without_text(v: Vec<Report>) -> Vec<Report> {
        v.into_iter()
            .map(|mut r| {
                r.summary = None;
                r
            })
            .collect()
    }

    fn report(unit: &str, acct: &str, day: i32, i: u64, cat: &str, text: String) -> Report {
        Report {
            app_id: "disputes".into(),
            account_id: acct.into(),
            region: Some(unit.into()),
            category: Some(cat.into()),
            summary: Some(text),
            t_us: at(day, 32_400 + i as i64 * 600),
            event_date: day,
            near_copy: false,
            located: false,
        }
    }

    /// A varied report: the k-th of its author, any category, any place.
    fn varied(unit: &str, acct: &str, day: i32, k: u64, seed: u64) -> Report {
        let h = (seed * 2_654_435_761 + k * 40_503 + day as u64 * 97) % 1_000_003;
        let cat = CATS[(h % 8) as usize];
        let place = PLACES[((h / 8) % 8) as usize];
        let who = WHO[((h / 64) % 8) as usize];
        let done = DONE[((h / 512) % 4) as usize];
        let text = format!(
            "{place}{}号{who}反映{cat}问题，{done}（{}）。",
            h % 300,
            h % 7
        );
        report(unit, acct, day, k, cat, text)
    }

    /// Eight honest units of four accounts, one to three reports a day.
    fn world() -> Vec<Report> {
        let mut v = Vec::new();
        for u in 0..8 {
            for a in 0..4 {
                for d in 0..14 {
                    let n = 1 + (u + a + d) % 3;
                    for k in 0..n as u64 {
                        v.push(varied(
                            &format!("4501{u:02}"),
                            &format!("u{u}a{a}"),
                            MON + d,
                            k,
                            (u * 10 + a) as u64,
                        ));
                    }
                }
            }
        }
        v
    }

    #[test]
    fn honest_world_and_bad_week_not_flagged() {
        let mut v = world();
        // A bad week in unit 450100: four times the reports, all kinds.
        for a in 0..4 {
            for d in 3..8 {
                for k in 10..18 {
                    v.push(varied(
                        "450100",
                        &format!("u0a{a}"),
                        MON + d,
                        k,
                        77 + a as u64,
                    ));
                }
            }
        }
        assert_eq!(detect(&v), Vec::new());
    }

    /// A rural unit whose cases are mostly land and marriage disputes,
    /// which the town's units hardly ever see, has a bad week: more of
    /// its usual cases, varied text. Its two categories are beyond the
    /// peers' share, not beyond its own, and it is not flagged.
    #[test]
    fn a_unit_with_its_own_mix_of_cases_has_a_bad_week_unflagged() {
        let mut v: Vec<Report> = world()
            .into_iter()
            .filter(|r| r.region.as_deref() != Some("450107"))
            .map(|mut r| {
                // The town: no land or marriage cases at all.
                if matches!(r.category.as_deref(), Some("land" | "marriage")) {
                    r.category = Some("noise".into());
                }
                r
            })
            .collect();
        for a in 0..4 {
            for d in 0..14 {
                let n = if (7..10).contains(&d) {
                    8
                } else {
                    1 + (a + d) % 3
                };
                for k in 0..n as u64 {
                    let mut r = varied("450107", &format!("u7a{a}"), MON + d, k, 700 + a as u64);
                    // Half its cases are land and marriage, every week.
                    if k % 2 == 0 {
                        r.category = Some(["land", "marriage"][((k / 2) % 2) as usize].into());
                    }
                    v.push(r);
                }
            }
        }
        assert_eq!(detect(&v), Vec::new());
    }

    #[test]
    fn filler_burst_found_by_text_or_by_categories() {
        for with_text in [true, false] {
            let mut v = world();
            // Unit 450103, accounts 0-2, three days before an assessment:
            // ten a day each, in two categories, from three texts.
            for a in 0..3 {
                for d in 5..8 {
                    for k in 10..20u64 {
                        let cat = ["family", "noise"][(k % 2) as usize];
                        let mut r = report(
                            "450103",
                            &format!("u3a{a}"),
                            MON + d,
                            k,
                            cat,
                            format!("新村小区两户因{cat}发生争执，现场劝解后暂平息。"),
                        );
                        if !with_text {
                            r.summary = None;
                        }
                        v.push(r);
                    }
                }
            }
            let f = detect(&v);
            assert_eq!(f.len(), 1, "{f:#?}");
            let f = &f[0];
            assert_eq!(f.accounts, vec!["u3a0", "u3a1", "u3a2"]);
            let signs = f.evidence["signs"].as_array().unwrap();
            assert!(signs.contains(&json!("two_categories")), "{signs:?}");
            assert_eq!(signs.contains(&json!("repeated_text")), with_text);
            assert_eq!(f.evidence["days"].as_array().unwrap().len(), 3);
            f.validate().unwrap();
            // The same id on the first day alone (a live pipeline upserts).
            let first: Vec<Report> = v
                .iter()
                .filter(|r| r.event_date <= MON + 5)
                .cloned()
                .collect();
            let early = detect(&first);
            assert_eq!(early.len(), 1);
            assert_eq!(early[0].finding_id, f.finding_id);
        }
    }

    #[test]
    fn same_spot_copies_are_a_sign() {
        let mut v = world();
        for d in 5..7 {
            for k in 10..40u64 {
                let mut r = varied("450105", "u5a1", MON + d, k, 5);
                r.located = true;
                r.near_copy = k % 10 != 0;
                r.summary = None;
                v.push(r);
            }
        }
        let f = detect(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["u5a1"]);
        assert_eq!(f[0].evidence["signs"], json!(["same_spot_copies"]));
    }

    /// `world()` with positions (and no texts) and unit 450106: twelve
    /// accounts filing three or four located reports a day, `habit` in ten
    /// of them from the spot of the author's previous report within the
    /// hour.
    fn with_large_unit(habit: u64) -> Vec<Report> {
        let mut v = world();
        for r in &mut v {
            r.located = true;
            r.summary = None;
        }
        for a in 0..12u64 {
            for d in 0..14 {
                for k in 0..3 + (a + d as u64) % 2 {
                    let mut r = varied("450106", &format!("big{a:02}"), MON + d, k, 60 + a);
                    r.located = true;
                    r.summary = None;
                    r.near_copy = (k + a + d as u64) % 10 < habit;
                    v.push(r);
                }
            }
        }
        v
    }

    /// Two accounts' copies: eight reports each with one text from one
    /// spot, a minute apart, on day 9.
    fn copies(v: &mut Vec<Report>, accounts: [&str; 2]) {
        for a in accounts {
            for k in 0..8u64 {
                let mut r = report(
                    "450106",
                    a,
                    MON + 9,
                    20 + k,
                    "land",
                    "东街群众来电，涉及宅基地纠纷，约30人，已登记跟进。".into(),
                );
                r.located = true;
                r.near_copy = k > 0;
                v.push(r);
            }
        }
    }

    #[test]
    fn a_few_accounts_copies_in_a_large_unit_are_inflation_without_a_surge() {
        let mut v = with_large_unit(0);
        copies(&mut v, ["big03", "big07"]);
        // 16 filler reports on top of about 42 a day: within the unit's
        // day-to-day spread after the correction, beyond its own week
        // and its peers by what they are.
        let f = detect(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["big03", "big07"]);
        assert_eq!(f[0].evidence["signs"], json!(["same_spot_copies"]));
        f[0].validate().unwrap();
    }

    /// The data's first three days: `world()`'s (located, without text),
    /// and unit 450106 of twelve
    /// accounts filing located reports as their peers do (one to three a
    /// day), `habit` in ten of them from the spot of the author's previous
    /// one; `extra` more a day by big11.
    fn first_three_days(habit: u64, extra: u64) -> Vec<Report> {
        let mut v = without_text(world());
        v.retain(|r| r.event_date < MON + 3);
        for r in &mut v {
            r.located = true;
        }
        for a in 0..12u64 {
            for d in 0..3 {
                let more = if a == 11 { extra } else { 0 };
                for k in 0..1 + (a + d as u64) % 3 + more {
                    let mut r = varied("450106", &format!("big{a:02}"), MON + d, k, 60 + a);
                    r.located = true;
                    r.summary = None;
                    r.near_copy = (k + a + d as u64) % 10 < habit;
                    v.push(r);
                }
            }
        }
        v
    }

    #[test]
    fn inflation_from_the_data_s_first_day_is_found_by_who_filed_it() {
        // The campaign runs on the first two days of the data: no week
        // before to compare with, and sixteen copies on top of about 24 a
        // day are no surge after the correction.
        let mut v = first_three_days(0, 0);
        for day in [0, 1] {
            for a in ["big03", "big07"] {
                for k in 0..8u64 {
                    let mut r = report("450106", a, MON + day, 20 + k, "land", "宅基地纠纷".into());
                    r.summary = None;
                    r.located = true;
                    r.near_copy = k > 0;
                    v.push(r);
                }
            }
        }
        let f = detect(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["big03", "big07"]);
        let signs = f[0].evidence["signs"].as_array().unwrap();
        assert!(signs.contains(&json!("same_spot_copies")), "{signs:?}");
        assert_eq!(f[0].evidence["days"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_spot_habit_or_a_heavy_reporter_on_the_data_s_first_days_is_not_inflation() {
        // Three in ten of the unit's reports from the spot of the previous
        // one (a market's stalls), spread over its people; one of them
        // files six more a day, with the same habit.
        assert_eq!(detect(&first_three_days(3, 6)), Vec::new());
    }

    /// Filler typed at a desk: `n` reports a day on days 5-7 by accounts
    /// 0-2 of unit 450103, one a minute, each run in one category (another
    /// each day), no text, no position.
    fn desk_filler(v: &mut Vec<Report>, n: u64) {
        for a in 0..3 {
            for d in 5..8 {
                for k in 0..n {
                    let mut r = varied("450103", &format!("u3a{a}"), MON + d, 100 + k, 9);
                    r.category = Some(CATS[((a + d) % 8) as usize].into());
                    r.summary = None;
                    r.t_us = at(MON + d, 50_000 + k as i64 * 60 + a as i64 * 7_000);
                    v.push(r);
                }
            }
        }
    }

    #[test]
    fn filler_typed_one_after_another_is_found_without_text_copies_or_two_categories() {
        let mut v = without_text(world());
        desk_filler(&mut v, 8);
        let f = detect(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["u3a0", "u3a1", "u3a2"]);
        assert_eq!(f[0].evidence["signs"], json!(["rapid_succession"]));
        assert!(f[0].reason.contains("within 2 minutes"), "{}", f[0].reason);
        f[0].validate().unwrap();
    }

    #[test]
    fn a_bad_week_filed_as_it_comes_has_runs_by_chance_and_is_unflagged() {
        // Reports at random times of the working day (9:00-17:30); unit
        // 450100 has a bad week of thirty a day per account, so many of
        // its reports follow the author's previous within two minutes by
        // chance, far more often than its peers' few a day do.
        let at_random = |r: &mut Report, salt: u64| {
            let h =
                (r.t_us as u64 / 1_000_000).wrapping_mul(2_654_435_761) ^ salt.wrapping_mul(40_503);
            let sec = 32_400 + (h % 30_600) as i64;
            r.t_us = at(r.event_date, sec);
        };
        let mut v = world();
        for a in 0..4u64 {
            for d in 3..8 {
                for k in 10..40 {
                    v.push(varied("450100", &format!("u0a{a}"), MON + d, k, 77 + a));
                }
            }
        }
        let mut runs = 0;
        let mut last: HashMap<String, i64> = HashMap::new();
        for (i, r) in v.iter_mut().enumerate() {
            at_random(r, i as u64);
            r.summary = None;
        }
        v.sort_by_key(|r| r.t_us);
        for r in &v {
            if let Some(t) = last.insert(r.account_id.clone(), r.t_us) {
                runs += usize::from(r.t_us - t <= RAPID_S * 1_000_000);
            }
        }
        assert!(runs >= 40, "the bad week has runs by chance: {runs}");
        assert_eq!(detect(&v), Vec::new());
    }

    #[test]
    fn filler_on_a_day_nobody_else_files_is_a_surge() {
        // Day 12 is a Saturday: nobody files, but unit 450103's three
        // accounts type twelve a minute apart before Monday's assessment,
        // fewer than the unit's usual weekday.
        let mut v = without_text(world());
        v.retain(|r| r.event_date != MON + 12);
        for a in 0..3 {
            for k in 0..4u64 {
                let mut r = varied("450103", &format!("u3a{a}"), MON + 12, k, 9);
                r.summary = None;
                r.t_us = at(MON + 12, 36_000 + (a * 4 + k) as i64 * 60);
                v.push(r);
            }
        }
        let f = detect(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, vec!["u3a0", "u3a1", "u3a2"]);
        assert_eq!(f[0].evidence["days"][0]["expected"], json!(1.0), "{f:#?}");
    }

    #[test]
    fn a_city_wide_emergency_is_no_units_surge() {
        // Day 9: a typhoon. Every unit files three times its reports, most
        // of them flooding, one after another as the calls come in.
        let mut v = without_text(world());
        for u in 0..8 {
            for a in 0..4 {
                for k in 0..6u64 {
                    let mut r = varied(
                        &format!("4501{u:02}"),
                        &format!("u{u}a{a}"),
                        MON + 9,
                        20 + k,
                        5,
                    );
                    r.summary = None;
                    if k % 3 != 0 {
                        r.category = Some("flooding".into());
                    }
                    r.t_us = at(
                        MON + 9,
                        30_000 + (u * 997 + a * 3_001) as i64 + k as i64 * 90,
                    );
                    v.push(r);
                }
            }
        }
        assert_eq!(detect(&v), Vec::new());
    }

    #[test]
    fn an_app_whose_people_file_in_batches_has_a_bad_week_unflagged() {
        // Everyone files a day's reports in one sitting, a minute apart
        // (offline, then synced); unit 450100 has a bad week, three times
        // its reports, all kinds.
        let mut v = world();
        for a in 0..4 {
            for d in 3..8 {
                for k in 10..16 {
                    v.push(varied(
                        "450100",
                        &format!("u0a{a}"),
                        MON + d,
                        k,
                        77 + a as u64,
                    ));
                }
            }
        }
        for r in &mut v {
            // The k-th report of a day (`report` files them 10 minutes
            // apart from 9:00) is filed at 17:00 plus k minutes.
            let k = (r.t_us - at(r.event_date, 32_400)) / 600_000_000;
            r.t_us = at(r.event_date, 61_200 + k * 60);
            r.summary = None;
        }
        assert_eq!(detect(&v), Vec::new());
    }

    #[test]
    fn a_unit_that_always_works_from_one_spot_is_not_inflating() {
        // Three in ten of its reports repeat the spot of the previous one,
        // every day (a market's stalls, a row of bins), more than its peers;
        // a day a fifth busier than usual with the same habit is no
        // inflation.
        let mut v = with_large_unit(3);
        for a in 0..8u64 {
            let mut r = varied("450106", &format!("big{a:02}"), MON + 9, 30, 90 + a);
            r.located = true;
            r.near_copy = a % 3 == 0;
            v.push(r);
        }
        assert_eq!(detect(&v), Vec::new());
    }

    #[test]
    fn text_key_ignores_digits_spaces_and_punctuation() {
        assert_eq!(
            text_key("河口组群众来电，涉及 family，约12人。"),
            text_key("河口组群众来电,涉及family,约9人")
        );
        assert_ne!(text_key("东街"), text_key("西村"));
        assert_eq!(text_key("123 ,."), "");
    }
}
