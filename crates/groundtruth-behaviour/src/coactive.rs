//! `phone_farm`, second signature: a rack of phones run together by a
//! script (or by several hands), so the sessions are not serial but
//! simultaneous, every day, on phones that never leave one network.
//!
//! Group discovery in the style of SynchroTrap: sessions are bucketed by
//! (network, local day, [`SLOT_MIN`]-minute slot of the start), so only
//! accounts that share a bucket are ever compared. Two accounts are similar
//! when they share a bucket on at least [`MIN_DAYS`] days and on at least
//! [`MIN_SIMILARITY`] of the days either was on that network at all.
//! Similar pairs are joined (union-find). Buckets with more than
//! [`MAX_BUCKET`] accounts are skipped, in the spirit of FRAUDAR's
//! down-weighting of popular targets: a crowd on a big Wi-Fi says little
//! about any two of its members.
//!
//! An office that studies together at 09:00 on its Wi-Fi forms such a group
//! too; what separates a rack is its phones: a group is a farm only when at
//! least [`MIN_STATIC_SHARE`] of the phones it used there were never seen on
//! any other network (`device_profile`), however many accounts each
//! carried. People's phones go home at night.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use groundtruth_finding::{rfc3339_ms, Finding};
use serde_json::{json, Map};

use crate::phones::{ChainSession, DeviceProfile, DETECTOR, MIN_PHONES};
use crate::{date_string, round2, Draft, UnionFind};

/// Width of a time slot, minutes.
pub const SLOT_MIN: i64 = 10;

/// Fewest days two accounts share a slot on one network.
pub const MIN_DAYS: usize = 2;

/// Smallest share of either account's days on the network spent together.
pub const MIN_SIMILARITY: f64 = 0.5;

/// Largest bucket compared (accounts in one network's slot).
pub const MAX_BUCKET: usize = 200;

/// Smallest share of a group's phones that never left its network.
pub const MIN_STATIC_SHARE: f64 = 0.8;

/// Finds racks among `sessions`, leaving out accounts in `already` (found
/// as serial chains).
pub fn detect(
    sessions: &[ChainSession],
    devices: &[DeviceProfile],
    already: &BTreeSet<&str>,
) -> Vec<Finding> {
    let slot_us = SLOT_MIN * 60 * 1_000_000;
    // Intern accounts; days each account was on each network.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut on_net: HashMap<(&str, usize), BTreeSet<i32>> = HashMap::new();
    let mut buckets: BTreeMap<(&str, i32, i64), BTreeSet<usize>> = BTreeMap::new();
    let mut by_net: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in sessions.iter().enumerate() {
        by_net.entry(s.net_key.as_str()).or_default().push(i);
        let a = *ids.entry(s.account_id.as_str()).or_insert_with(|| {
            names.push(s.account_id.as_str());
            names.len() - 1
        });
        on_net
            .entry((s.net_key.as_str(), a))
            .or_default()
            .insert(s.event_date);
        buckets
            .entry((
                s.net_key.as_str(),
                s.event_date,
                s.start_us.div_euclid(slot_us),
            ))
            .or_default()
            .insert(a);
    }
    // Days each pair shared a slot, per network.
    let mut together: HashMap<(&str, usize, usize), BTreeSet<i32>> = HashMap::new();
    for ((net, day, _), accts) in &buckets {
        if accts.len() < 2 || accts.len() > MAX_BUCKET {
            continue;
        }
        let v: Vec<usize> = accts.iter().copied().collect();
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                together.entry((net, v[i], v[j])).or_default().insert(*day);
            }
        }
    }
    let mut edges: BTreeMap<&str, Vec<(usize, usize, f64)>> = BTreeMap::new();
    for ((net, a, b), days) in &together {
        if days.len() < MIN_DAYS {
            continue;
        }
        let da = on_net.get(&(*net, *a)).map_or(0, BTreeSet::len);
        let db = on_net.get(&(*net, *b)).map_or(0, BTreeSet::len);
        let sim = days.len() as f64 / da.min(db).max(1) as f64;
        if sim >= MIN_SIMILARITY {
            edges.entry(net).or_default().push((*a, *b, sim));
        }
    }
    let profiles: HashMap<&str, &DeviceProfile> =
        devices.iter().map(|d| (d.device_id.as_str(), d)).collect();
    let mut out = Vec::new();
    for (net, mut es) in edges {
        es.sort_by_key(|e| (e.0, e.1));
        // Components of this network's similarity graph.
        let nodes: Vec<usize> = es
            .iter()
            .flat_map(|e| [e.0, e.1])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let local = |a: usize| nodes.binary_search(&a).unwrap_or(0);
        let mut uf = UnionFind::new(nodes.len());
        for &(a, b, _) in &es {
            uf.union(local(a), local(b));
        }
        let mut comps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for &a in &nodes {
            comps.entry(uf.find(local(a))).or_default().insert(a);
        }
        for members in comps.values() {
            if members.len() < MIN_PHONES {
                continue;
            }
            let names_in: BTreeSet<&str> = members.iter().map(|&m| names[m]).collect();
            if names_in.iter().filter(|a| already.contains(*a)).count() * 2 >= names_in.len() {
                continue;
            }
            let sims: Vec<f64> = es
                .iter()
                .filter(|(a, _, _)| members.contains(a))
                .map(|e| e.2)
                .collect();
            let mine: Vec<&ChainSession> = by_net
                .get(net)
                .into_iter()
                .flatten()
                .map(|&i| &sessions[i])
                .filter(|s| names_in.contains(s.account_id.as_str()))
                .collect();
            if let Some(f) = judge(net, &names_in, &sims, &mine, &profiles) {
                out.push(f);
            }
        }
    }
    out
}

fn judge(
    net: &str,
    members: &BTreeSet<&str>,
    sims: &[f64],
    mine: &[&ChainSession],
    profiles: &HashMap<&str, &DeviceProfile>,
) -> Option<Finding> {
    let devs: BTreeSet<&str> = mine.iter().filter_map(|s| s.device_id.as_deref()).collect();
    let known: Vec<&&DeviceProfile> = devs.iter().filter_map(|d| profiles.get(d)).collect();
    if known.is_empty() {
        return None;
    }
    let static_phones = known.iter().filter(|p| p.networks == 1).count();
    let static_share = static_phones as f64 / known.len() as f64;
    if static_share < MIN_STATIC_SHARE {
        return None;
    }
    let days: BTreeSet<i32> = mine.iter().map(|s| s.event_date).collect();
    let start = mine.iter().map(|s| s.start_us).min()?;
    let end = mine.iter().map(|s| s.end_us).max()?;
    let mean_sim = sims.iter().sum::<f64>() / sims.len().max(1) as f64;
    let reason = format!(
        "{} accounts were active together on one network ({net}) on {} days, in the same {SLOT_MIN}-minute slots (similarity {mean_sim:.2}), on {static_phones} of {} phones that never left that network. People's phones go home; a rack of phones run together looks like this.",
        members.len(),
        days.len(),
        known.len(),
    );
    let score = 0.7 + 0.1 * mean_sim + 0.15 * static_share;
    let mut ev = Map::new();
    ev.insert("signature".into(), json!("simultaneous"));
    ev.insert("net_key".into(), json!(net));
    ev.insert("members".into(), json!(members));
    ev.insert(
        "days".into(),
        json!(days.iter().map(|d| date_string(*d)).collect::<Vec<_>>()),
    );
    ev.insert("mean_similarity".into(), json!(round2(mean_sim)));
    ev.insert("static_phones".into(), json!(static_phones));
    ev.insert("phones_with_profile".into(), json!(known.len()));
    ev.insert(
        "timeline".into(),
        json!(mine
            .iter()
            .take(2000)
            .map(|s| json!({
                "account": s.account_id,
                "device": s.device_id,
                "start": rfc3339_ms(s.start_us / 1000),
                "end": rfc3339_ms(s.end_us / 1000),
            }))
            .collect::<Vec<_>>()),
    );
    let first_member = *members.first()?;
    Some(
        Draft {
            accounts: members.iter().map(|a| a.to_string()).collect(),
            devices: devs.iter().map(|d| d.to_string()).collect(),
            span_us: (start, end),
            score: score.min(0.99),
            reason,
            evidence: ev,
        }
        .finding(
            DETECTOR,
            &[net, "simultaneous", &rfc3339_ms(start / 1000), first_member],
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sess(net: &str, acct: &str, dev: &str, start_s: i64, len: i64, day: i32) -> ChainSession {
        crate::farm::tests::sess(net, acct, dev, start_s, start_s + len, day)
    }

    fn profile(dev: String, networks: u32) -> DeviceProfile {
        DeviceProfile {
            device_id: dev,
            accounts: 1,
            networks,
            days: 3,
            spread_m: None,
        }
    }

    #[test]
    fn rack_found_office_not() {
        let mut v = Vec::new();
        let mut devices = Vec::new();
        for day in 0..3 {
            let d0 = day as i64 * 86_400;
            for p in 0..8 {
                let s = d0 + 24_000 + (p * 11 + day as i64 * 7) % 90;
                v.push(sess(
                    "wifi-rack",
                    &format!("r{p}"),
                    &format!("rd{p}"),
                    s,
                    120,
                    day,
                ));
            }
            crate::farm::tests::office(&mut v, day);
        }
        for p in 0..8 {
            devices.push(profile(format!("rd{p}"), 1));
        }
        for p in 0..20 {
            // Office phones also seen at home.
            devices.push(profile(format!("od{p}"), 2));
        }
        let f = detect(&v, &devices, &BTreeSet::new());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].accounts.len(), 8);
        assert!(f[0].accounts.iter().all(|a| a.starts_with('r')));
        assert_eq!(f[0].evidence["signature"], json!("simultaneous"));
        f[0].validate().unwrap();
        // Accounts already named by a chain are not reported twice.
        let named: BTreeSet<&str> = ["r0", "r1", "r2", "r3"].into_iter().collect();
        assert!(detect(&v, &devices, &named).is_empty());
        // One day together is not a pattern.
        let one: Vec<ChainSession> = v.iter().filter(|s| s.event_date == 0).cloned().collect();
        assert!(detect(&one, &devices, &BTreeSet::new()).is_empty());
    }
}
