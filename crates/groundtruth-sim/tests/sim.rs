use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use groundtruth_sim::{
    haversine_m, simulate, CountSink, NdjsonSink, Scenario, SimError, SimSummary, VecSink,
};
use serde_json::Value;

const SMALL: &str = include_str!("../../../pipelines/sim-small.toml");
const WEEK: &str = include_str!("../../../pipelines/sim-week.toml");

const KINDS: &[&str] = &[
    "session_start",
    "session_end",
    "check_in",
    "patrol_start",
    "patrol_end",
    "track_point",
    "task_complete",
    "interaction",
    "register",
    "record_create",
    "record_update",
    "record_delete",
    "report_submit",
];

fn run(sc: &Scenario) -> (VecSink, SimSummary) {
    let mut sink = VecSink::default();
    let summary = simulate(sc, &mut sink).expect("simulate");
    (sink, summary)
}

fn small() -> Scenario {
    Scenario::from_toml_str(SMALL).expect("sim-small.toml parses")
}

/// The contract rules of shared/contract/events.schema.json, checked by hand.
fn check_event(line: &[u8], key: &str) -> Result<Value, String> {
    let s = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    if s.contains('\n') {
        return Err("event contains a newline".into());
    }
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}: {s}"))?;
    let o = v.as_object().ok_or("not an object")?;
    for f in ["event_id", "ts", "app_id", "account_id", "kind"] {
        let x = o
            .get(f)
            .and_then(Value::as_str)
            .ok_or(format!("missing string {f}: {s}"))?;
        if x.is_empty() || x.len() > 128 {
            return Err(format!("{f} length out of range: {s}"));
        }
    }
    if o["account_id"].as_str() != Some(key) {
        return Err(format!("message key {key} is not the account_id: {s}"));
    }
    let kind = o["kind"].as_str().unwrap_or_default();
    if !KINDS.contains(&kind) {
        return Err(format!("unknown kind {kind}"));
    }
    let ts = chrono::DateTime::parse_from_rfc3339(o["ts"].as_str().unwrap_or_default())
        .map_err(|e| format!("ts not RFC 3339: {e}: {s}"))?;
    if ts.offset().local_minus_utc() != 8 * 3600 {
        return Err(format!("ts offset is not +08:00: {s}"));
    }
    if let Some(r) = o.get("region") {
        let r = r.as_str().ok_or("region not a string")?;
        if r.len() != 6 || !r.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("region not 6 digits: {s}"));
        }
    }
    for (f, max) in [
        ("device_id", 128),
        ("device_model", 128),
        ("os_version", 64),
        ("app_version", 64),
        ("network_id", 128),
        ("module", 64),
        ("session_id", 128),
    ] {
        if let Some(x) = o.get(f) {
            let x = x.as_str().ok_or(format!("{f} not a string: {s}"))?;
            if x.len() > max {
                return Err(format!("{f} too long: {s}"));
            }
        }
    }
    if let Some(ip) = o.get("ip") {
        ip.as_str()
            .and_then(|x| x.parse::<std::net::IpAddr>().ok())
            .ok_or(format!("bad ip: {s}"))?;
    }
    if let Some(i) = o.get("integrity") {
        if !["strong", "device", "basic", "virtual", "none"].contains(&i.as_str().unwrap_or("")) {
            return Err(format!("bad integrity: {s}"));
        }
    }
    match (o.get("lat"), o.get("lon")) {
        (None, None) => {}
        (Some(la), Some(lo)) => {
            let (la, lo) = (
                la.as_f64().ok_or("lat not a number")?,
                lo.as_f64().ok_or("lon not a number")?,
            );
            if !(-90.0..=90.0).contains(&la) || !(-180.0..=180.0).contains(&lo) {
                return Err(format!("lat/lon out of range: {s}"));
            }
        }
        _ => return Err(format!("lat without lon or lon without lat: {s}")),
    }
    for f in ["accuracy_m", "speed_mps"] {
        if let Some(x) = o.get(f) {
            if x.as_f64().ok_or(format!("{f} not a number"))? < 0.0 {
                return Err(format!("{f} negative: {s}"));
            }
        }
    }
    if let Some(m) = o.get("mock_location") {
        m.as_bool().ok_or("mock_location not a boolean")?;
    }
    if let Some(a) = o.get("attrs") {
        a.as_object().ok_or("attrs not an object")?;
    }
    let patrol_id = o
        .get("attrs")
        .and_then(|a| a.get("patrol_id"))
        .and_then(Value::as_str);
    match kind {
        "track_point" if o.get("lat").is_none() || patrol_id.is_none() => {
            return Err(format!(
                "track_point without lat/lon or attrs.patrol_id: {s}"
            ));
        }
        "patrol_start" | "patrol_end" if patrol_id.is_none() => {
            return Err(format!("{kind} without attrs.patrol_id: {s}"));
        }
        "record_update" => {
            o["attrs"]["changed_fields"]
                .as_u64()
                .ok_or(format!("record_update without changed_fields: {s}"))?;
        }
        "session_end" => {
            o["attrs"]["duration_s"]
                .as_u64()
                .ok_or(format!("session_end without duration_s: {s}"))?;
        }
        _ => {}
    }
    Ok(v)
}

struct Parsed {
    events: Vec<Value>,
    ts_ms: Vec<i64>,
}

fn parse_all(sink: &VecSink) -> Parsed {
    let mut events = Vec::with_capacity(sink.0.len());
    let mut ts_ms = Vec::with_capacity(sink.0.len());
    for (k, line) in &sink.0 {
        let v = check_event(line, k).unwrap_or_else(|e| panic!("contract violation: {e}"));
        let ts =
            chrono::DateTime::parse_from_rfc3339(v["ts"].as_str().unwrap_or_default()).expect("ts");
        ts_ms.push(ts.timestamp_millis());
        events.push(v);
    }
    Parsed { events, ts_ms }
}

#[test]
fn sim_week_toml_is_the_default() {
    let sc = Scenario::from_toml_str(WEEK).expect("sim-week.toml parses");
    assert_eq!(sc, Scenario::default_week());
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let sc = small();
    let mut a = NdjsonSink::new(Vec::new());
    let mut b = NdjsonSink::new(Vec::new());
    let sa = simulate(&sc, &mut a).unwrap();
    let sb = simulate(&sc, &mut b).unwrap();
    assert!(!a.0.is_empty());
    assert_eq!(a.0, b.0, "same seed must give byte-identical output");
    assert_eq!(sa.labels, sb.labels);
    let mut other = sc.clone();
    other.seed += 1;
    let mut c = NdjsonSink::new(Vec::new());
    simulate(&other, &mut c).unwrap();
    assert_ne!(a.0, c.0, "another seed must give other output");
}

#[test]
fn small_events_meet_the_contract_and_are_sorted() {
    let (sink, summary) = run(&small());
    assert_eq!(summary.events as usize, sink.0.len());
    assert!(
        (10_000..200_000).contains(&sink.0.len()),
        "sim-small should be a few tens of thousands of events, got {}",
        sink.0.len()
    );
    let p = parse_all(&sink);
    // event ids unique
    let ids: HashSet<&str> = p
        .events
        .iter()
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), p.events.len(), "event_id must be unique");
    // sorted by event time
    for w in p.ts_ms.windows(2) {
        assert!(w[0] <= w[1], "events out of order: {} > {}", w[0], w[1]);
    }
    // all kinds present
    let kinds: BTreeSet<&str> = p
        .events
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    for k in KINDS {
        assert!(kinds.contains(k), "kind {k} never generated");
    }
}

#[test]
fn every_account_and_patrol_has_exactly_one_label() {
    let (sink, summary) = run(&small());
    let p = parse_all(&sink);
    let mut acc_rows: HashMap<&str, usize> = HashMap::new();
    for a in &summary.labels.accounts {
        *acc_rows.entry(a.account_id.as_str()).or_default() += 1;
    }
    let mut pat_rows: HashMap<&str, usize> = HashMap::new();
    for pl in &summary.labels.patrols {
        *pat_rows.entry(pl.patrol_id.as_str()).or_default() += 1;
        assert!(["human", "non_human_track"].contains(&pl.label.as_str()));
    }
    assert!(
        acc_rows.values().all(|&n| n == 1),
        "duplicate account label rows"
    );
    assert!(
        pat_rows.values().all(|&n| n == 1),
        "duplicate patrol label rows"
    );
    let seen_acc: HashSet<&str> = p
        .events
        .iter()
        .map(|v| v["account_id"].as_str().unwrap())
        .collect();
    let seen_pat: HashSet<&str> = p
        .events
        .iter()
        .filter_map(|v| {
            v.get("attrs")
                .and_then(|a| a.get("patrol_id"))
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(
        seen_acc.len(),
        acc_rows.len(),
        "label rows must match the accounts seen"
    );
    for a in &seen_acc {
        assert!(acc_rows.contains_key(a), "account {a} has no label");
    }
    assert_eq!(
        seen_pat.len(),
        pat_rows.len(),
        "label rows must match the patrols seen"
    );
    for pid in &seen_pat {
        assert!(pat_rows.contains_key(pid), "patrol {pid} has no label");
    }
    assert_eq!(summary.accounts as usize, acc_rows.len());
    assert_eq!(summary.patrols as usize, pat_rows.len());

    let acc_labels: BTreeSet<(&str, &str)> = summary
        .labels
        .accounts
        .iter()
        .map(|a| (a.label.as_str(), a.scenario.as_str()))
        .collect();
    let labels: BTreeSet<&str> = acc_labels.iter().map(|x| x.0).collect();
    for l in [
        "honest",
        "phone_farm",
        "bulk_check_in",
        "registration_farm",
        "record_churn",
        "report_inflation",
        "non_human_track",
    ] {
        assert!(
            labels.contains(l),
            "account label {l} missing; have {labels:?}"
        );
    }
    for s in [
        "office_wifi_study",
        "family_shared_phone",
        "help_desk_registration",
        "census_cleanup",
        "bad_week",
        "routine",
    ] {
        assert!(
            acc_labels.contains(&("honest", s)),
            "honest confounder {s} missing; have {acc_labels:?}"
        );
    }
    for s in ["farm_operator", "farm_account"] {
        assert!(
            acc_labels.contains(&("phone_farm", s)),
            "phone_farm/{s} missing"
        );
    }
    let pat: BTreeSet<(&str, &str)> = summary
        .labels
        .patrols
        .iter()
        .map(|p| (p.label.as_str(), p.scenario.as_str()))
        .collect();
    for s in ["walk", "bike", "car", "boat", "poor_gps"] {
        assert!(
            pat.contains(&("human", s)),
            "human patrol {s} missing; have {pat:?}"
        );
    }
    for s in ["dog_leg", "straight_line", "teleport", "replay"] {
        assert!(
            pat.contains(&("non_human_track", s)),
            "non-human patrol {s} missing; have {pat:?}"
        );
    }

    // CSVs
    let mut a = Vec::new();
    summary.labels.write_accounts_csv(&mut a).unwrap();
    let a = String::from_utf8(a).unwrap();
    assert!(a.starts_with("account_id,label,scenario\n"));
    assert_eq!(a.lines().count(), summary.labels.accounts.len() + 1);
    let mut pc = Vec::new();
    summary.labels.write_patrols_csv(&mut pc).unwrap();
    let pc = String::from_utf8(pc).unwrap();
    assert!(pc.starts_with("patrol_id,account_id,label,scenario\n"));
    assert_eq!(pc.lines().count(), summary.labels.patrols.len() + 1);
}

/// (ts_ms, lat, lon, accuracy) per patrol.
fn tracks(p: &Parsed) -> HashMap<String, Vec<(i64, f64, f64, f64)>> {
    let mut t: HashMap<String, Vec<(i64, f64, f64, f64)>> = HashMap::new();
    for (v, &ts) in p.events.iter().zip(&p.ts_ms) {
        if v["kind"] == "track_point" {
            let pid = v["attrs"]["patrol_id"].as_str().unwrap().to_string();
            t.entry(pid).or_default().push((
                ts,
                v["lat"].as_f64().unwrap(),
                v["lon"].as_f64().unwrap(),
                v["accuracy_m"].as_f64().unwrap_or(-1.0),
            ));
        }
    }
    t
}

fn speeds(fixes: &[(i64, f64, f64, f64)]) -> Vec<f64> {
    fixes
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| haversine_m(w[0].1, w[0].2, w[1].1, w[1].2) / ((w[1].0 - w[0].0) as f64 / 1000.0))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

type Track = Vec<(i64, f64, f64, f64)>;

/// Each replay's first 20 fixes lie within 10 m (a shift of metres) of the
/// path of a human patrol at least 12 h older (of its segments: a copy may
/// be resampled between the source's fixes).
fn assert_replays_copy_earlier_walks<'a>(get: &dyn Fn(&str) -> Vec<&'a Track>) {
    let humans: Vec<&Track> = ["walk", "bike"].iter().flat_map(|s| get(s)).collect();
    let replays = get("replay");
    assert!(!replays.is_empty());
    for r in &replays {
        let found = humans.iter().any(|h| {
            h[0].0 <= r[0].0 - 12 * 3_600_000
                && r.iter().take(20).all(|f| {
                    h.windows(2).any(|g| {
                        haversine_m(f.1, f.2, g[0].1, g[0].2)
                            .min(haversine_m(f.1, f.2, g[1].1, g[1].2))
                            < 10.0 + haversine_m(g[0].1, g[0].2, g[1].1, g[1].2)
                    })
                })
        });
        assert!(found, "a replay does not lie on an earlier human patrol");
    }
}

#[test]
fn tracks_are_physically_sane() {
    let (sink, summary) = run(&small());
    let p = parse_all(&sink);
    let t = tracks(&p);
    let by_scenario: BTreeMap<&str, Vec<&str>> =
        summary
            .labels
            .patrols
            .iter()
            .fold(BTreeMap::new(), |mut m, pl| {
                m.entry(pl.scenario.as_str())
                    .or_insert_with(Vec::new)
                    .push(pl.patrol_id.as_str());
                m
            });
    let get = |s: &str| -> Vec<&Vec<(i64, f64, f64, f64)>> {
        by_scenario
            .get(s)
            .map(|ids| ids.iter().filter_map(|id| t.get(*id)).collect())
            .unwrap_or_default()
    };
    let walks = get("walk");
    assert!(!walks.is_empty());
    for w in &walks {
        let m = median(speeds(w));
        assert!(
            (0.8..=1.8).contains(&m),
            "honest walk median speed {m:.2} m/s outside 0.8..1.8"
        );
        let max = speeds(w).into_iter().fold(0.0, f64::max);
        assert!(max < 8.0, "honest walk with a {max:.1} m/s jump");
    }
    for b in get("bike") {
        let m = median(speeds(b));
        assert!((2.0..=6.0).contains(&m), "bike median {m:.2}");
    }
    for b in get("boat") {
        let m = median(speeds(b));
        assert!((1.5..=6.0).contains(&m), "boat median {m:.2}");
    }
    for b in get("poor_gps") {
        assert!(
            b.iter().all(|f| (50.0..=100.0).contains(&f.3)),
            "poor GPS accuracy must be 50-100 m"
        );
        let max = speeds(b).into_iter().fold(0.0, f64::max);
        assert!(
            max < 15.0,
            "poor GPS should be jumpy but plausible, got {max:.1} m/s"
        );
    }
    let dogs = get("dog_leg");
    assert!(!dogs.is_empty());
    for d in &dogs {
        let max = speeds(d).into_iter().fold(0.0, f64::max);
        assert!(
            max > 4.0,
            "dog patrol max speed {max:.2} m/s should exceed 4"
        );
    }
    let tele = get("teleport");
    assert!(!tele.is_empty());
    for d in &tele {
        let max = speeds(d).into_iter().fold(0.0, f64::max);
        assert!(
            max > 100.0,
            "teleport max implied speed {max:.1} m/s should exceed 100"
        );
    }
    // A replay copies an earlier (>= 12 h) human patrol, a few metres off.
    assert_replays_copy_earlier_walks(&get);
    for s in get("straight_line") {
        let acc: HashSet<u64> = s.iter().map(|f| f.3.to_bits()).collect();
        assert_eq!(
            acc.len(),
            1,
            "straight-line (mock) accuracy must be constant"
        );
        let dts: HashSet<i64> = s.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert_eq!(
            dts.len(),
            1,
            "straight-line (mock) fix interval must be exact"
        );
    }
}

/// The variations an outside world has: site surveys stay on a small plot
/// at a walker's pace, train rides reach train speeds, slow dogs never run,
/// careful replays still lie on an earlier patrol's path.
#[test]
fn look_alikes_and_careful_fakes_are_what_they_say() {
    let mut sc = small();
    sc.confounders.site_surveyors = 3;
    sc.confounders.train_riders = 2;
    sc.fraud.non_human_track.slow_dog_share = 1.0;
    sc.fraud.non_human_track.replay_variants = true;
    sc.validate().expect("valid");
    let (sink, summary) = run(&sc);
    let p = parse_all(&sink);
    let t = tracks(&p);
    let get = |s: &str| -> Vec<&Vec<(i64, f64, f64, f64)>> {
        summary
            .labels
            .patrols
            .iter()
            .filter(|l| l.scenario == s)
            .filter_map(|l| t.get(&l.patrol_id))
            .collect()
    };
    let q = |mut v: Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let sites = get("site");
    assert!(!sites.is_empty());
    for s in &sites {
        let (la, lo) = (
            s.iter().map(|f| f.1).sum::<f64>() / s.len() as f64,
            s.iter().map(|f| f.2).sum::<f64>() / s.len() as f64,
        );
        let far = s
            .iter()
            .map(|f| haversine_m(la, lo, f.1, f.2))
            .fold(0.0, f64::max);
        assert!(
            far < 300.0,
            "a site survey reached {far:.0} m from its centre"
        );
        let m = median(speeds(s));
        assert!((0.2..=1.6).contains(&m), "site survey median speed {m:.2}");
    }
    let trains = get("train");
    assert!(!trains.is_empty());
    for tr in &trains {
        let top = q(speeds(tr), 0.95);
        assert!(
            (30.0..100.0).contains(&top),
            "a train ride's p95 speed {top:.1} m/s"
        );
    }
    let dogs = get("dog_leg");
    assert!(!dogs.is_empty());
    for d in &dogs {
        let top = q(speeds(d), 0.95);
        assert!(top < 3.0, "a slow dog's p95 speed {top:.2} m/s");
    }
    assert_replays_copy_earlier_walks(&get);
}

#[test]
fn fraud_signatures_are_present() {
    let (sink, summary) = run(&small());
    let p = parse_all(&sink);
    let label = summary.labels.account_map();
    let lab = |v: &Value| label[v["account_id"].as_str().unwrap()];
    // bulk check-in: one device, identical coordinates, many accounts
    let mut dev_accounts: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut coords: HashSet<(String, String)> = HashSet::new();
    for v in &p.events {
        if v["kind"] == "check_in" && lab(v).0 == "bulk_check_in" {
            dev_accounts
                .entry(v["device_id"].as_str().unwrap())
                .or_default()
                .insert(v["account_id"].as_str().unwrap());
            coords.insert((v["lat"].to_string(), v["lon"].to_string()));
        }
    }
    assert_eq!(dev_accounts.len(), 1);
    assert!(dev_accounts.values().next().unwrap().len() >= 5);
    assert_eq!(
        coords.len(),
        1,
        "bulk check-ins share identical coordinates"
    );
    // registration farm: devices reused for many registrations; never come back
    let mut reg_dev: HashMap<&str, usize> = HashMap::new();
    let mut farm_kinds: HashSet<&str> = HashSet::new();
    for v in &p.events {
        if lab(v).0 == "registration_farm" {
            farm_kinds.insert(v["kind"].as_str().unwrap());
            if v["kind"] == "register" {
                *reg_dev.entry(v["device_id"].as_str().unwrap()).or_default() += 1;
            }
        }
    }
    assert!(
        reg_dev.values().all(|&n| n >= 5),
        "farm devices are reused: {reg_dev:?}"
    );
    assert_eq!(
        farm_kinds,
        HashSet::from(["session_start", "register", "session_end"])
    );
    // record churn: no-op updates and delete/create of the same key
    let noop = p
        .events
        .iter()
        .filter(|v| {
            lab(v).0 == "record_churn"
                && v["kind"] == "record_update"
                && v["attrs"]["changed_fields"] == 0
        })
        .count();
    assert!(noop >= 20);
    let honest_noop = p
        .events
        .iter()
        .filter(|v| {
            lab(v).0 == "honest"
                && v["kind"] == "record_update"
                && v["attrs"]["changed_fields"] == 0
        })
        .count();
    assert_eq!(honest_noop, 0);
    // phone farm: all farm-phone sessions on one network
    let farm_nets: HashSet<&str> = p
        .events
        .iter()
        .filter(|v| lab(v) == ("phone_farm", "farm_account") && v["app_id"] == "zhiguitong")
        .filter_map(|v| v.get("network_id").and_then(Value::as_str))
        .collect();
    assert!(!farm_nets.is_empty());
    // family: one device, several accounts
    let mut fam: HashMap<&str, HashSet<&str>> = HashMap::new();
    for v in &p.events {
        if lab(v) == ("honest", "family_shared_phone") {
            fam.entry(v["device_id"].as_str().unwrap())
                .or_default()
                .insert(v["account_id"].as_str().unwrap());
        }
    }
    assert!(
        fam.values().any(|a| a.len() >= 2),
        "a family phone carries 2+ accounts: {fam:?}"
    );
}

#[test]
fn filler_varies_as_asked() {
    // Filler in two categories, three texts with their figures redrawn,
    // spread over a neighbourhood, half without a position.
    let mut sc = small();
    sc.honest.report_text = true;
    let ri = &mut sc.fraud.report_inflation;
    ri.categories = 2;
    ri.texts = 3;
    ri.spot_spread_m = 400.0;
    ri.located_share = 0.5;
    let (sink, summary) = run(&sc);
    let p = parse_all(&sink);
    let label = summary.labels.account_map();
    // A burst is a session of an inflating worker with several reports
    // (an honest report is a session of its own).
    let mut sessions: HashMap<&str, Vec<&Value>> = HashMap::new();
    for v in &p.events {
        if v["kind"] == "report_submit"
            && label[v["account_id"].as_str().unwrap()].0 == "report_inflation"
        {
            sessions
                .entry(v["session_id"].as_str().unwrap())
                .or_default()
                .push(v);
        }
    }
    let bursts: Vec<&Vec<&Value>> = sessions.values().filter(|b| b.len() >= 2).collect();
    let filler: Vec<&Value> = bursts.iter().flat_map(|b| b.iter().copied()).collect();
    assert!(filler.len() >= 20, "{} filler reports", filler.len());
    let located = filler.iter().filter(|v| v["lat"].is_f64()).count();
    let share = located as f64 / filler.len() as f64;
    assert!((0.3..0.7).contains(&share), "located share {share}");
    let mut two_categories = false;
    let mut spread = 0.0f64;
    for b in &bursts {
        let cats: HashSet<&str> = b
            .iter()
            .filter_map(|v| v["attrs"]["category"].as_str())
            .collect();
        assert!(cats.len() <= 2, "{cats:?}");
        two_categories |= cats.len() == 2;
        let texts: HashSet<String> = b
            .iter()
            .filter_map(|v| v["attrs"]["summary"].as_str())
            .map(|t| t.chars().filter(|c| !c.is_ascii_digit()).collect())
            .collect();
        // Three texts, each naming the report's category.
        assert!(texts.len() <= 3 * cats.len(), "{texts:?}");
        let pts: Vec<(f64, f64)> = b
            .iter()
            .filter_map(|v| Some((v["lat"].as_f64()?, v["lon"].as_f64()?)))
            .collect();
        for w in pts.windows(2) {
            spread = spread.max(haversine_m(w[0].0, w[0].1, w[1].0, w[1].1));
        }
    }
    assert!(two_categories, "no burst used two categories");
    assert!(
        spread > 200.0,
        "reports of a burst at most {spread} m apart"
    );
}

#[test]
fn validation_lists_every_problem() {
    let text = r#"
[honest]
gps_gap_prob = 1.5
[fraud.phone_farm]
phones = 1
[fraud.bulk_check_in]
time = "8:29"
"#;
    let err = Scenario::from_toml_str(text).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SimError::InvalidScenario { ref problems } if problems.len() == 3),
        "{msg}"
    );
    assert!(
        msg.contains("honest.gps_gap_prob must be between 0 and 1, got 1.5"),
        "{msg}"
    );
    assert!(
        msg.contains("fraud.phone_farm.phones must be >= 2, got 1"),
        "{msg}"
    );
    assert!(msg.contains("fraud.bulk_check_in.time"), "{msg}");
}

#[test]
fn unknown_key_is_an_error() {
    let err = Scenario::from_toml_str("seed = 1\n[fraud.phone_farm]\nphonez = 3\n").unwrap_err();
    assert!(matches!(err, SimError::ScenarioSyntax(_)));
    assert!(err.to_string().contains("phonez"), "{err}");
    assert!(Scenario::from_toml_str("colour = 1").is_err());
}

#[test]
fn fraud_blocks_can_be_switched_off() {
    let mut sc = small();
    sc.fraud.phone_farm.enabled = false;
    sc.fraud.bulk_check_in.enabled = false;
    sc.fraud.registration_farm.enabled = false;
    sc.fraud.record_churn.enabled = false;
    sc.fraud.report_inflation.enabled = false;
    sc.fraud.non_human_track.enabled = false;
    sc.validate().unwrap();
    let (_, summary) = run(&sc);
    assert!(summary.labels.accounts.iter().all(|a| a.label == "honest"));
    assert!(summary.labels.patrols.iter().all(|p| p.label == "human"));
}

/// Throughput of the default week: `cargo test --release -p groundtruth-sim -- --ignored --nocapture`.
#[test]
#[ignore]
fn week_throughput() {
    let sc = Scenario::from_toml_str(WEEK).unwrap();
    let mut sink = CountSink::default();
    let t = std::time::Instant::now();
    let s = simulate(&sc, &mut sink).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "sim-week: {} events, {} accounts, {} patrols, {:.1} MB in {:.2} s = {:.0} events/s",
        s.events,
        s.accounts,
        s.patrols,
        sink.bytes as f64 / 1e6,
        secs,
        s.events as f64 / secs
    );
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for a in &s.labels.accounts {
        *by.entry(format!("{}/{}", a.label, a.scenario)).or_default() += 1;
    }
    println!("accounts by label: {by:?}");
    assert!(s.events > 200_000);
}

/// Writes a scenario's events and labels to $SIM_DUMP_DIR (default: the temp dir) for inspection:
/// `SIM_DUMP_DIR=/tmp SIM_DUMP_SCENARIO=week cargo test -p groundtruth-sim dump -- --ignored`
/// (`SIM_DUMP_SCENARIO` = `small` (default) or `week`; files `sim-<name>.ndjson`, `-accounts.csv`, `-patrols.csv`).
#[test]
#[ignore]
fn dump() {
    let dir = std::env::var("SIM_DUMP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let name = std::env::var("SIM_DUMP_SCENARIO").unwrap_or_else(|_| "small".into());
    let sc = Scenario::from_toml_str(if name == "week" { WEEK } else { SMALL }).unwrap();
    let f = std::fs::File::create(dir.join(format!("sim-{name}.ndjson"))).unwrap();
    let mut sink = NdjsonSink::new(std::io::BufWriter::new(f));
    let s = simulate(&sc, &mut sink).unwrap();
    use std::io::Write as _;
    sink.0.flush().unwrap();
    let a = std::fs::File::create(dir.join(format!("sim-{name}-accounts.csv"))).unwrap();
    s.labels.write_accounts_csv(a).unwrap();
    let p = std::fs::File::create(dir.join(format!("sim-{name}-patrols.csv"))).unwrap();
    s.labels.write_patrols_csv(p).unwrap();
}
