//! `phone_farm`: one person sweeping through a row of phones, each bound to
//! a colleague's account.
//!
//! One person works one phone at a time, so a farm leaves a *chain* on its
//! network: sessions of different accounts on different phones that never
//! overlap and follow each other within seconds, in the same order day after
//! day, from phones that never leave that network. Colleagues doing the
//! 09:00 study on the office Wi-Fi overlap; a family sharing one phone is one
//! device and two or three accounts.
//!
//! 1. Chains (bucketing in the style of SynchroTrap): only sessions on the
//!    same network are compared, in start order, so the work is linear in
//!    the sessions. `session_chain` (SQL) gives each session the gap since
//!    every earlier session on the network ended; a chain continues while
//!    the gap is between 0 and [`MAX_HANDOFF_S`] and the account is new to
//!    the chain. A phone may come back in the chain with another account
//!    (farms put several colleagues' accounts on one phone), but a chain
//!    needs at least two phones: one phone switching accounts is a family
//!    or a help desk.
//! 2. Significance, free of constants fitted to a data set: under the null
//!    that sessions on a network start independently (a Poisson process of
//!    *any* rate), the chance that a session is followed by another that
//!    starts after it ended and within the chain's largest gap `G` is
//!    `e^{-λD}(1 - e^{-λG})`. The rate most favourable to chance is taken
//!    (the supremum over λ, in closed form), and the chain is kept only if
//!    the expected number of chance chains that tight among all sessions in
//!    the data is below [`ALPHA`].
//! 3. Groups: chains on one network that share [`MIN_SHARED_ACCOUNTS`]
//!    accounts are joined (union-find). A chain of [`MIN_CHAIN_ACCOUNTS`]
//!    that is not beyond chance alone (a small farm skips phones, its
//!    operator is interrupted) counts when its group is beyond chance
//!    together: the product of the chains' chances, the first among all
//!    sessions, each further one among the network's. The group's members
//!    are the accounts in its chains on at least a third of the days it
//!    swept (a group must span [`MIN_GROUP_DAYS`]), so one stray session
//!    does not make someone a member.
//! 4. The signature is reported with the figures: days, order consistency
//!    across days (Kendall's τ), phones that only ever served one account on
//!    one network (from `device_profile`).
//!
//! Farms whose phones run at the same time (a script, several hands) are
//! found by [`crate::coactive`] and reported under the same name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use groundtruth_finding::{rfc3339_ms, Finding};
use serde_json::{json, Map, Value};

pub use crate::phones::{ChainSession, DeviceProfile, DETECTOR, MIN_PHONES};
use crate::{date_string, round2, Draft, UnionFind};

/// Longest pause between putting one phone down and opening the app on the
/// next that still continues a chain, seconds. Unlocking a phone and opening
/// an app takes seconds; two minutes is generous.
pub const MAX_HANDOFF_S: f64 = 120.0;

/// Fewest accounts in a chain that may count towards a farm together with
/// others: two hand-offs. A farm's sweep skips phones now and then and its
/// operator is interrupted, so a small farm's day may leave chains shorter
/// than [`MIN_PHONES`]; such a chain counts only in a group of chains that
/// share accounts across days and are beyond chance together.
pub const MIN_CHAIN_ACCOUNTS: usize = 3;

/// Chains on one network are one group when they share at least this many
/// accounts: the same colleagues' accounts worked again. (One shared
/// account is what a farm's sweep and an honest colleague's session that
/// happened to follow it have in common.)
pub const MIN_SHARED_ACCOUNTS: usize = 2;

/// Fewest phones in a chain: one phone switching between accounts is a
/// shared family phone or a help desk, not a row of phones.
pub const MIN_CHAIN_DEVICES: usize = 2;

/// Fewest days a group's chains must span (chains join into a group only
/// through shared accounts, so the same accounts came back). A farm exists
/// to keep accounts active day after day; one day of serial sessions is
/// also what a training session or a help desk that signs residents in one
/// by one looks like.
pub const MIN_GROUP_DAYS: usize = 2;

/// A chain is kept when the expected number of chains at least as tight
/// arising by chance among all sessions in the data is below this.
pub const ALPHA: f64 = 0.01;

/// Shortest gap used in the significance test, seconds: clocks on phones
/// are not better than this.
const MIN_GAP_S: f64 = 1.0;

/// A chain: indices into the session slice.
#[derive(Debug, Clone)]
struct Chain {
    sessions: Vec<usize>,
    /// log10 of the chance of a chain this tight at the least suspicious rate.
    log10_p: f64,
    max_gap_s: f64,
    /// Long enough ([`MIN_PHONES`]) and beyond chance on its own among all
    /// the sessions.
    alone: bool,
}

/// log10 of sup over λ of Π e^{-λ D_i} (1 - e^{-λ G}), for `n` transitions
/// with total preceding duration `s` seconds and largest gap `g` seconds.
/// 0 (probability 1) when there is no duration to go on.
pub fn chain_log10_p(n: usize, s: f64, g: f64) -> f64 {
    if n == 0 || s <= 0.0 {
        return 0.0;
    }
    let g = g.max(MIN_GAP_S);
    let n = n as f64;
    // d/dλ = 0  <=>  x / (1 - x) = s / (n g), x = e^{-λ g}
    let r = s / (n * g);
    let x = r / (1.0 + r);
    let ln_p = (s / g) * x.ln() + n * (1.0 - x).ln();
    ln_p / std::f64::consts::LN_10
}

fn finish_chain(cur: &[usize], sessions: &[ChainSession], log10_budget: f64, out: &mut Vec<Chain>) {
    if cur.len() < MIN_CHAIN_ACCOUNTS {
        return;
    }
    // Phones in the chain (a session without a device id counts as its own).
    let phones: BTreeSet<Option<&str>> = cur
        .iter()
        .map(|&i| sessions[i].device_id.as_deref())
        .collect();
    let unknown = cur
        .iter()
        .filter(|&&i| sessions[i].device_id.is_none())
        .count();
    if phones.len() + unknown.saturating_sub(1) < MIN_CHAIN_DEVICES {
        return;
    }
    let mut s = 0.0;
    let mut g: f64 = 0.0;
    for w in cur.windows(2) {
        let a = &sessions[w[0]];
        s += (a.end_us - a.start_us).max(0) as f64 / 1e6;
        g = g.max(sessions[w[1]].gap_s.unwrap_or(0.0));
    }
    let log10_p = chain_log10_p(cur.len() - 1, s, g);
    out.push(Chain {
        sessions: cur.to_vec(),
        log10_p,
        max_gap_s: g,
        alone: cur.len() >= MIN_PHONES && log10_p + log10_budget < ALPHA.log10(),
    });
}

/// Whether a group of chains on one network is beyond chance: one of them
/// is on its own, or together. Together, under the same null (sessions on
/// a network starting independently), the chance of all of them is the
/// product of theirs; the first could have been any chain among all the
/// sessions (`all`), each further one any among the network's sessions
/// (`on_net`), since it had to share accounts with the first.
fn group_beyond_chance(group: &[&Chain], all: usize, on_net: usize) -> bool {
    if group.iter().any(|c| c.alone) {
        return true;
    }
    let log10_p: f64 = group.iter().map(|c| c.log10_p).sum();
    let budget = (all.max(1) as f64).log10()
        + group.len().saturating_sub(1) as f64 * (on_net.max(1) as f64).log10();
    log10_p + budget < ALPHA.log10()
}

/// Finds the chains (candidates: [`Chain::alone`] says which are beyond
/// chance on their own). `sessions` must be ordered by (net_key, start).
fn chains(sessions: &[ChainSession]) -> Vec<Chain> {
    // Every session could start a chain: that many tests.
    let log10_budget = (sessions.len().max(1) as f64).log10();
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut accounts: BTreeSet<&str> = BTreeSet::new();
    for (i, s) in sessions.iter().enumerate() {
        let continues = cur.last().is_some_and(|&j| {
            sessions[j].net_key == s.net_key
                && s.gap_s.is_some_and(|g| (0.0..=MAX_HANDOFF_S).contains(&g))
                && !accounts.contains(s.account_id.as_str())
        });
        if !continues {
            finish_chain(&cur, sessions, log10_budget, &mut out);
            cur.clear();
            accounts.clear();
        }
        cur.push(i);
        accounts.insert(&s.account_id);
    }
    finish_chain(&cur, sessions, log10_budget, &mut out);
    out
}

/// Kendall's τ between the orders of the accounts two chains share
/// (`None` with fewer than 3 in common).
fn kendall_tau(a: &[&str], b: &[&str]) -> Option<f64> {
    let pos_b: HashMap<&str, usize> = b.iter().enumerate().map(|(i, x)| (*x, i)).collect();
    let common: Vec<usize> = a.iter().filter_map(|x| pos_b.get(x).copied()).collect();
    let m = common.len();
    if m < 3 {
        return None;
    }
    let mut concordant = 0i64;
    let mut discordant = 0i64;
    for i in 0..m {
        for j in i + 1..m {
            if common[i] < common[j] {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    Some((concordant - discordant) as f64 / (concordant + discordant) as f64)
}

/// Runs the detector.
pub fn detect(sessions: &[ChainSession], devices: &[DeviceProfile]) -> Vec<Finding> {
    let found = chains(sessions);
    // Join chains on one network that share accounts.
    let mut uf = UnionFind::new(found.len());
    let mut by_account: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (c, chain) in found.iter().enumerate() {
        for &i in &chain.sessions {
            let s = &sessions[i];
            by_account
                .entry((s.net_key.as_str(), s.account_id.as_str()))
                .or_default()
                .push(c);
        }
    }
    let mut shared: HashMap<(usize, usize), usize> = HashMap::new();
    for cs in by_account.values() {
        for (k, &a) in cs.iter().enumerate() {
            for &b in &cs[k + 1..] {
                *shared.entry((a, b)).or_default() += 1;
            }
        }
    }
    for ((a, b), n) in shared {
        if n >= MIN_SHARED_ACCOUNTS {
            uf.union(a, b);
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for c in 0..found.len() {
        groups.entry(uf.find(c)).or_default().push(c);
    }
    let mut on_net: HashMap<&str, usize> = HashMap::new();
    for s in sessions {
        *on_net.entry(s.net_key.as_str()).or_default() += 1;
    }
    let profiles: HashMap<&str, &DeviceProfile> =
        devices.iter().map(|d| (d.device_id.as_str(), d)).collect();
    let mut out: Vec<Finding> = groups
        .into_values()
        .filter_map(|g| group_finding(&g, &found, sessions, &on_net, &profiles))
        .collect();
    let named: BTreeSet<&str> = out
        .iter()
        .flat_map(|f| f.accounts.iter().map(String::as_str))
        .collect();
    let racks = crate::coactive::detect(sessions, devices, &named);
    out.extend(racks);
    out
}

fn group_finding(
    group: &[usize],
    found: &[Chain],
    sessions: &[ChainSession],
    on_net: &HashMap<&str, usize>,
    profiles: &HashMap<&str, &DeviceProfile>,
) -> Option<Finding> {
    let chains: Vec<&Chain> = group.iter().map(|&c| &found[c]).collect();
    let net_key = sessions[chains[0].sessions[0]].net_key.clone();
    if !group_beyond_chance(&chains, sessions.len(), on_net[net_key.as_str()]) {
        return None;
    }
    let members = members(&chains, sessions)?;
    let member_set: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let mut devs: BTreeSet<String> = BTreeSet::new();
    let mut apps: BTreeSet<&str> = BTreeSet::new();
    let mut regions: BTreeSet<&str> = BTreeSet::new();
    let mut days: BTreeSet<i32> = BTreeSet::new();
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    let mut n_sessions = 0usize;
    let mut max_gap_s: f64 = 0.0;
    let mut durations = Vec::new();
    for c in &chains {
        max_gap_s = max_gap_s.max(c.max_gap_s);
        for &i in &c.sessions {
            let s = &sessions[i];
            if !member_set.contains(s.account_id.as_str()) {
                continue;
            }
            n_sessions += 1;
            if let Some(d) = &s.device_id {
                devs.insert(d.clone());
            }
            apps.insert(&s.app_id);
            if let Some(r) = &s.region {
                regions.insert(r);
            }
            days.insert(s.event_date);
            start = start.min(s.start_us);
            end = end.max(s.end_us);
            durations.push((s.end_us - s.start_us) as f64 / 1e6);
        }
    }
    let order_tau = order_tau(&chains, sessions);
    let known: Vec<&&DeviceProfile> = devs
        .iter()
        .filter_map(|d| profiles.get(d.as_str()))
        .collect();
    let static_phones = known
        .iter()
        .filter(|p| p.accounts == 1 && p.networks == 1)
        .count();
    let static_share = if known.is_empty() {
        0.0
    } else {
        static_phones as f64 / known.len() as f64
    };
    let log10_p: f64 = chains.iter().map(|c| c.log10_p).sum();
    durations.sort_by(f64::total_cmp);
    let median_session_s = durations[durations.len() / 2];

    // Confidence: one significant chain is strong; repetition, a fixed
    // order and phones that never move make it near certain.
    let mut score = 0.7;
    score += 0.1 * ((days.len().min(4) as f64 - 1.0) / 3.0);
    score += 0.1 * order_tau.unwrap_or(0.0).max(0.0);
    score += 0.09 * static_share;
    let score = score.min(0.99);

    let first_start_us = sessions[chains[0].sessions[0]].start_us;
    let mut reason = format!(
        "{} accounts were worked one after another on one network ({}) on {} day{}: {} sessions that never overlapped, each starting within {:.0} s of the previous one's end.",
        members.len(),
        net_key,
        days.len(),
        if days.len() == 1 { "" } else { "s" },
        n_sessions,
        max_gap_s.ceil(),
    );
    if let Some(t) = order_tau.filter(|t| *t >= 0.8) {
        reason.push_str(&format!(
            " The accounts came in the same order each day (Kendall τ {t:.2})."
        ));
    }
    if static_phones > 0 {
        reason.push_str(&format!(
            " {static_phones} of the {} phones never served another account or left that network.",
            known.len()
        ));
    }
    reason.push_str(" One person working a row of phones looks like this.");

    let mut ev = Map::new();
    ev.insert("net_key".into(), json!(net_key));
    ev.insert("apps".into(), json!(apps));
    ev.insert("regions".into(), json!(regions));
    ev.insert("members".into(), json!(members));
    ev.insert(
        "days".into(),
        json!(days.iter().map(|d| date_string(*d)).collect::<Vec<_>>()),
    );
    ev.insert("chains".into(), json!(chains.len()));
    ev.insert("sessions".into(), json!(n_sessions));
    ev.insert("max_gap_s".into(), json!(round2(max_gap_s)));
    ev.insert("median_session_s".into(), json!(round2(median_session_s)));
    ev.insert("order_tau".into(), json!(order_tau.map(round2)));
    ev.insert("static_phones".into(), json!(static_phones));
    ev.insert("phones_with_profile".into(), json!(known.len()));
    ev.insert("chance_log10".into(), json!(round2(log10_p)));
    ev.insert("timeline".into(), timeline(&chains, sessions));
    Some(
        Draft {
            accounts: members,
            devices: devs.into_iter().collect(),
            span_us: (start, end),
            score,
            reason,
            evidence: ev,
        }
        // Keyed by where and when the farm was first seen: stable while
        // later days add chains (a live pipeline upserts the same finding).
        .finding(
            DETECTOR,
            &[&net_key, "serial", &rfc3339_ms(first_start_us / 1000)],
        ),
    )
}

/// The group's accounts: those in its chains on at least a third of the
/// chains' days (a sweep broken by an interruption leaves two chains on
/// one day). `None` when the chains span too few days or name too few
/// accounts.
fn members(chains: &[&Chain], sessions: &[ChainSession]) -> Option<Vec<String>> {
    // Days each account was in the group's chains (a sweep broken by an
    // interruption leaves two chains on one day).
    let mut account_days: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    let mut chain_days: BTreeSet<i32> = BTreeSet::new();
    for c in chains {
        for &i in &c.sessions {
            let s = &sessions[i];
            account_days
                .entry(s.account_id.as_str())
                .or_default()
                .insert(s.event_date);
            chain_days.insert(s.event_date);
        }
    }
    if chain_days.len() < MIN_GROUP_DAYS {
        return None;
    }
    let need = chain_days.len().div_ceil(3);
    let members: Vec<String> = account_days
        .iter()
        .filter(|(_, d)| d.len() >= need)
        .map(|(a, _)| a.to_string())
        .collect();
    (members.len() >= MIN_PHONES).then_some(members)
}

/// Order across days: the mean Kendall τ between consecutive chains'
/// orders of accounts.
fn order_tau(chains: &[&Chain], sessions: &[ChainSession]) -> Option<f64> {
    let orders: Vec<Vec<&str>> = chains
        .iter()
        .map(|c| {
            c.sessions
                .iter()
                .map(|&i| sessions[i].account_id.as_str())
                .collect()
        })
        .collect();
    let taus: Vec<f64> = orders
        .windows(2)
        .filter_map(|w| kendall_tau(&w[0], &w[1]))
        .collect();
    (!taus.is_empty()).then(|| taus.iter().sum::<f64>() / taus.len() as f64)
}

/// The serial timeline, chain by chain (for the case page).
fn timeline(chains: &[&Chain], sessions: &[ChainSession]) -> Value {
    const MAX_CHAINS: usize = 31;
    let timeline: Vec<Value> = chains
        .iter()
        .take(MAX_CHAINS)
        .map(|c| {
            Value::Array(
                c.sessions
                    .iter()
                    .map(|&i| {
                        let s = &sessions[i];
                        json!({
                            "account": s.account_id,
                            "device": s.device_id,
                            "start": rfc3339_ms(s.start_us / 1000),
                            "end": rfc3339_ms(s.end_us / 1000),
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    Value::Array(timeline)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A session for tests (start and end in seconds).
    pub(crate) fn sess(
        net: &str,
        acct: &str,
        dev: &str,
        start_s: i64,
        end_s: i64,
        day: i32,
    ) -> ChainSession {
        ChainSession {
            app_id: "zhiguitong".into(),
            account_id: acct.into(),
            session_id: format!("{acct}-{start_s}"),
            device_id: Some(dev.into()),
            net_key: net.into(),
            region: Some("450102".into()),
            start_us: start_s * 1_000_000,
            end_us: end_s * 1_000_000,
            gap_s: None,
            event_date: day,
        }
    }

    /// An office of 20 colleagues studying at 09:00 together on its Wi-Fi.
    pub(crate) fn office(v: &mut Vec<ChainSession>, day: i32) {
        let d0 = day as i64 * 86_400;
        for p in 0..20 {
            let s = d0 + 32_400 + (p * 37) % 200;
            v.push(sess(
                "wifi-office",
                &format!("o{p}"),
                &format!("od{p}"),
                s,
                s + 400 + p * 11,
                day,
            ));
        }
    }

    /// Orders by (net, start) and fills gap_s like `session_chain`.
    fn chain_order(mut v: Vec<ChainSession>) -> Vec<ChainSession> {
        v.sort_by(|a, b| (&a.net_key, a.start_us).cmp(&(&b.net_key, b.start_us)));
        let mut last: Option<(String, i64)> = None;
        for s in &mut v {
            s.gap_s = match &last {
                Some((n, e)) if *n == s.net_key => Some((s.start_us - e) as f64 / 1e6),
                _ => None,
            };
            let e = match &last {
                Some((n, e)) if *n == s.net_key => (*e).max(s.end_us),
                _ => s.end_us,
            };
            last = Some((s.net_key.clone(), e));
        }
        v
    }

    #[test]
    fn significance_grows_with_length_and_tightness() {
        let short = chain_log10_p(4, 4.0 * 120.0, 20.0);
        let long = chain_log10_p(29, 29.0 * 120.0, 20.0);
        let loose = chain_log10_p(29, 29.0 * 120.0, 110.0);
        assert!(long < short && short < 0.0);
        assert!(loose > long);
        assert_eq!(chain_log10_p(5, 0.0, 10.0), 0.0);
        // An 8-phone farm with 2-minute sessions 20 s apart is beyond chance
        // among a million sessions.
        assert!(chain_log10_p(7, 7.0 * 120.0, 20.0) + 6.0 < ALPHA.log10());
    }

    #[test]
    fn farm_found_office_and_family_not() {
        let mut v = Vec::new();
        for day in 0..3 {
            let d0 = day as i64 * 86_400;
            // Farm: 10 phones in a row at 06:40, same order every day.
            let mut t = d0 + 24_000;
            for p in 0..10 {
                let len = 60 + (p * 13 + day as i64 * 7) % 100;
                v.push(farm_phone(p, t, len, day));
                t += len + 5 + (p % 4) * 3;
            }
            office(&mut v, day);
            // Family: three accounts on one phone, one after another.
            let s = d0 + 70_000;
            for (k, a) in ["m", "n", "p"].iter().enumerate() {
                let s = s + k as i64 * 300;
                v.push(sess("wifi-home", a, "famdev", s, s + 280, day));
            }
        }
        let v = chain_order(v);
        let devices = devices("fd", 10);
        let f = detect(&v, &devices);
        assert_eq!(f.len(), 1, "{f:#?}");
        let f = &f[0];
        assert_eq!(f.detector, DETECTOR);
        assert_eq!(f.accounts.len(), 10);
        assert!(f.accounts.iter().all(|a| a.starts_with('f')));
        assert_eq!(f.evidence["order_tau"], json!(1.0));
        assert_eq!(f.evidence["static_phones"], json!(10));
        assert!(f.score > 0.95);
        f.validate().unwrap();
        // Same input, same id; and the same id before the third day came
        // (a live pipeline upserts one finding as the farm goes on).
        assert_eq!(detect(&v, &devices)[0].finding_id, f.finding_id);
        let two_days = chain_order(v.iter().filter(|s| s.event_date < 2).cloned().collect());
        let earlier = detect(&two_days, &devices);
        assert_eq!(earlier.len(), 1);
        assert_eq!(earlier[0].finding_id, f.finding_id);
    }

    /// Farm phone `p`'s account worked from `t` for `len` seconds.
    fn farm_phone(p: i64, t: i64, len: i64, day: i32) -> ChainSession {
        sess(
            "wifi-farm",
            &format!("f{p}"),
            &format!("fd{p}"),
            t,
            t + len,
            day,
        )
    }

    fn devices(prefix: &str, n: usize) -> Vec<DeviceProfile> {
        (0..n)
            .map(|p| DeviceProfile {
                device_id: format!("{prefix}{p}"),
                accounts: 1,
                networks: 1,
                days: 3,
                spread_m: Some(0.0),
            })
            .collect()
    }

    #[test]
    fn a_small_farm_that_skips_phones_is_found_from_its_days_together() {
        // Six phones swept twice a day for three days; every sweep skips
        // two of them, so no sweep chains five accounts, and sessions are
        // long (80-290 s), so no chain of four is beyond chance alone
        // among the day's sessions.
        let mut v = Vec::new();
        for day in 0..3 {
            let d0 = day as i64 * 86_400;
            for (sweep, start) in [(0i64, 33_780i64), (1, 61_200)] {
                let mut t = d0 + start;
                for p in 0..6i64 {
                    if (p + 2 * day as i64 + sweep) % 3 == 0 {
                        continue; // skipped this sweep
                    }
                    let len = 80 + (p * 47 + day as i64 * 31 + sweep * 13) % 210;
                    v.push(farm_phone(p, t, len, day));
                    t += len + 5 + (p % 3) * 6;
                }
            }
            office(&mut v, day);
        }
        let v = chain_order(v);
        let found = chains(&v);
        assert!(found.iter().all(|c| !c.alone), "no chain alone");
        let f = detect(&v, &devices("fd", 6));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts, ["f0", "f1", "f2", "f3", "f4", "f5"]);
        f[0].validate().unwrap();
        // One day of it is no farm (a training session looks like that).
        let one_day = chain_order(v.iter().filter(|s| s.event_date == 0).cloned().collect());
        assert_eq!(detect(&one_day, &devices("fd", 6)), Vec::new());
    }

    #[test]
    fn chance_hand_offs_on_a_busy_network_are_no_farm() {
        // A town hall's Wi-Fi: 80 colleagues on their own phones, each
        // opening the app two to four times a day at random for one to
        // five minutes. Sessions often follow one another within seconds,
        // and the same colleagues' again on other days.
        let mut x: u64 = 7;
        let mut next = |m: i64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % m as u64) as i64
        };
        let mut v = Vec::new();
        for day in 0..5 {
            let d0 = day as i64 * 86_400;
            for p in 0..80 {
                for _ in 0..2 + next(3) {
                    let s = d0 + 30_600 + next(30_000);
                    let len = 60 + next(240);
                    v.push(sess(
                        "wifi-hall",
                        &format!("h{p}"),
                        &format!("hd{p}"),
                        s,
                        s + len,
                        day,
                    ));
                }
            }
        }
        let v = chain_order(v);
        assert!(chains(&v).len() > 10, "hand-offs by chance are common");
        // People's phones go home at night.
        let mut phones = devices("hd", 80);
        for d in &mut phones {
            d.networks = 2;
        }
        let f = detect(&v, &phones);
        assert!(
            f.is_empty(),
            "{:?}",
            f.iter().map(|f| &f.reason).collect::<Vec<_>>()
        );
    }

    #[test]
    fn tau() {
        assert_eq!(kendall_tau(&["a", "b", "c"], &["a", "b", "c"]), Some(1.0));
        assert_eq!(kendall_tau(&["a", "b", "c"], &["c", "b", "a"]), Some(-1.0));
        assert_eq!(kendall_tau(&["a", "b"], &["a", "b"]), None);
    }
}
