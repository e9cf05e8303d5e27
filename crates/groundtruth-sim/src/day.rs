//! Generation of one simulated day: honest routines, confounders, fraud.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::event::{Attrs, Ev, Kind, Ms, NONE};
use crate::geo::{self, gauss};
use crate::scenario::{parse_hms, Scenario};
use crate::text::{PLACES, TEMPLATES};
use crate::track::{self, Fix, Mode};
use crate::world::{Fake, Role, StoredTrack, World};
use crate::PatrolLabel;

const CATEGORIES: &[&str] = &[
    "sanitation",
    "road_damage",
    "neighbour_dispute",
    "safety_hazard",
    "illegal_construction",
    "flooding",
    "street_light",
];

/// Who and where: the fields shared by every event of one actor's action.
#[derive(Clone, Copy)]
struct Ctx {
    account: u32,
    region: u32,
    device: u32,
    net: u32,
    ip: u32,
    integrity: Option<&'static str>,
}

pub(crate) struct Day<'a> {
    pub sc: &'a Scenario,
    pub day: u32,
    /// Local midnight of this day, as UTC milliseconds.
    pub d0: Ms,
    pub weekday: bool,
    pub evs: &'a mut Vec<Ev>,
}

impl Day<'_> {
    fn at(&self, secs: f64) -> Ms {
        self.d0 + (secs * 1000.0).round() as Ms
    }
}

fn push(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    ts: Ms,
    kind: Kind,
    app: &'static str,
    module: &'static str,
) -> usize {
    let mut e = Ev::new(ts, kind, app, module, c.account);
    e.seq = w.seq;
    w.seq += 1;
    e.region = c.region;
    e.device = c.device;
    e.net = c.net;
    e.ip = c.ip;
    e.integrity = c.integrity;
    d.evs.push(e);
    d.evs.len() - 1
}

fn new_session(w: &mut World) -> u64 {
    w.session_ctr += 1;
    w.session_ctr
}

/// Opens a session: returns its id.
fn session_start(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    t: Ms,
    app: &'static str,
    module: &'static str,
    pos: Option<(f64, f64, f32)>,
) -> u64 {
    let sid = new_session(w);
    let i = push(w, d, c, t, Kind::SessionStart, app, module);
    d.evs[i].session = sid;
    if let Some((lat, lon, acc)) = pos {
        d.evs[i].pos = Some((lat, lon));
        d.evs[i].acc = acc;
    }
    sid
}

#[allow(clippy::too_many_arguments)]
fn session_end(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    sid: u64,
    start: Ms,
    end: Ms,
    app: &'static str,
    module: &'static str,
) {
    let i = push(w, d, c, end, Kind::SessionEnd, app, module);
    d.evs[i].session = sid;
    d.evs[i].attrs = Attrs::Duration(((end - start) / 1000).max(0) as u32);
}

fn noisy_pos(rng: &mut ChaCha8Rng, p: (f64, f64), sd: f64) -> (f64, f64, f32) {
    let (lat, lon) = geo::offset(p.0, p.1, gauss(rng, sd), gauss(rng, sd));
    (
        lat,
        lon,
        ((rng.random_range(sd * 0.5..sd * 2.0) * 10.0).round() / 10.0) as f32,
    )
}

/// Where an official's phone is at local second `sec`: (network, ip, position).
fn whereabouts(
    w: &World,
    o: u32,
    sec: f64,
    weekday: bool,
    rng: &mut ChaCha8Rng,
) -> (u32, u32, (f64, f64)) {
    let ofc = &w.officials[o as usize];
    let unit = &w.units[ofc.unit as usize];
    let at_work = weekday && (8.3 * 3600.0..17.7 * 3600.0).contains(&sec);
    let r: f64 = rng.random();
    if at_work && r < 0.85 {
        (unit.net, unit.ip, unit.office)
    } else if !at_work && r < 0.85 {
        (ofc.home_net, ofc.home_ip, ofc.home)
    } else {
        let p = if at_work { unit.office } else { ofc.home };
        (
            NONE,
            ofc.cell_ip,
            geo::offset(p.0, p.1, gauss(rng, 800.0), gauss(rng, 800.0)),
        )
    }
}

fn official_ctx(w: &World, o: u32) -> Ctx {
    let ofc = &w.officials[o as usize];
    Ctx {
        account: ofc.account,
        region: w.accounts[ofc.account as usize].region,
        device: ofc.device,
        net: NONE,
        ip: 0,
        integrity: None,
    }
}

/// A study session in `zhiguitong`: tasks and interactions. `short` = a farm sweep.
fn study_session(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    start: Ms,
    pos: Option<(f64, f64, f32)>,
    rng: &mut ChaCha8Rng,
    short: Option<u32>,
) -> Ms {
    let app = "zhiguitong";
    let sid = session_start(w, d, c, start, app, "study", pos);
    let mut t = start + rng.random_range(2_000..15_000);
    let day = d.day;
    let (ntask, task_dur, nint) = match short {
        Some(_) => (rng.random_range(1..=2), (20u32, 45u32), 1),
        None => (
            rng.random_range(1..=4),
            (60u32, 600u32),
            rng.random_range(0..=3),
        ),
    };
    let mut task = rng.random_range(1..=12u32);
    let mut ints_left = nint;
    for _ in 0..ntask {
        let dur = rng.random_range(task_dur.0..=task_dur.1);
        t += dur as Ms * 1000 + rng.random_range(0..3000);
        let i = push(
            w,
            d,
            c,
            t,
            Kind::TaskComplete,
            app,
            if task % 3 == 0 { "quiz" } else { "study" },
        );
        d.evs[i].session = sid;
        d.evs[i].attrs = Attrs::Task {
            task,
            day,
            duration: dur,
        };
        task = task % 12 + 1;
        if ints_left > 0 && (short.is_some() || rng.random::<bool>()) {
            ints_left -= 1;
            t += rng.random_range(3_000..40_000);
            let i = push(w, d, c, t, Kind::Interaction, app, "news");
            d.evs[i].session = sid;
            let r: f64 = rng.random();
            let action = if short.is_some() || r < 0.7 {
                "like"
            } else if r < 0.85 {
                "comment"
            } else {
                "share"
            };
            d.evs[i].attrs = Attrs::Interaction {
                action,
                target: day * 100 + rng.random_range(0..30),
            };
        }
    }
    let end = match short {
        Some(len) => start + len as Ms * 1000,
        None => t + rng.random_range(3_000..60_000),
    };
    let end = end.max(t + 1000);
    session_end(w, d, c, sid, start, end, app, "study");
    end
}

fn check_in(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    t: Ms,
    point: u32,
    pos: (f64, f64, f32),
    rng: &mut ChaCha8Rng,
) {
    let app = "attendance";
    let sid = session_start(w, d, c, t, app, "attendance", None);
    let tc = t + rng.random_range(3_000..15_000);
    let i = push(w, d, c, tc, Kind::CheckIn, app, "attendance");
    d.evs[i].session = sid;
    d.evs[i].pos = Some((pos.0, pos.1));
    d.evs[i].acc = pos.2;
    d.evs[i].attrs = Attrs::CheckIn { point };
    let end = tc + rng.random_range(5_000..30_000);
    session_end(w, d, c, sid, t, end, app, "attendance");
}

pub(crate) fn generate(w: &mut World, d: &mut Day<'_>, rng: &mut ChaCha8Rng) {
    let n_off = w.officials.len() as u32;
    for o in 0..n_off {
        official_day(w, d, o, rng);
    }
    residents_day(w, d, rng);
    registrations_day(w, d, rng);
    farms_day(w, d, rng);
    bulk_day(w, d, rng);
    regfarm_day(w, d, rng);
}

fn official_day(w: &mut World, d: &mut Day<'_>, o: u32, rng: &mut ChaCha8Rng) {
    let sc = d.sc;
    let h = &sc.honest;
    let wk = d.weekday;
    let own = w.officials[o as usize].own_activity;
    if own < 1.0 && rng.random::<f64>() >= own {
        return;
    }
    let base = official_ctx(w, o);
    let unit = w.officials[o as usize].unit;

    // Check-in at the duty point.
    let p_ci = if wk {
        h.checkin_prob_weekday
    } else {
        h.checkin_prob_weekend
    };
    if w.officials[o as usize].checks_in_self && rng.random::<f64>() < p_ci {
        let mean = parse_hms(&h.checkin_time).unwrap_or(30600) as f64;
        let sec = if wk {
            mean + gauss(rng, h.checkin_spread_min * 60.0)
        } else {
            rng.random_range(8.5 * 3600.0..10.0 * 3600.0)
        };
        let u = &w.units[unit as usize];
        let (office, point, net, ip) = (u.office, u.duty_point, u.net, u.ip);
        let sd = rng.random_range(5.0..30.0) / 2.0;
        let pos = if h.checkin_registered_coords {
            // The post's registered coordinates, as scanned.
            (office.0, office.1, f32::NAN)
        } else {
            noisy_pos(rng, office, sd)
        };
        let c = if rng.random::<f64>() < 0.6 {
            Ctx { net, ip, ..base }
        } else {
            Ctx {
                ip: w.officials[o as usize].cell_ip,
                ..base
            }
        };
        check_in(w, d, c, d.at(sec), point, pos, rng);
    }

    // Study sessions.
    let (lo, hi) = if wk {
        (h.study_sessions_weekday[0], h.study_sessions_weekday[1])
    } else {
        (h.study_sessions_weekend[0], h.study_sessions_weekend[1])
    };
    let mut n = rng.random_range(lo..=hi);
    let office_study = w.officials[o as usize].office_study && wk;
    if office_study {
        let u = &w.units[unit as usize];
        let (net, ip, office) = (u.net, u.ip, u.office);
        let c = Ctx { net, ip, ..base };
        let sec = 9.0 * 3600.0 + gauss(rng, 90.0);
        let pos = w.devices[base.device as usize]
            .shares_location
            .then(|| noisy_pos(rng, office, 15.0));
        study_session(w, d, c, d.at(sec), pos, rng, None);
        n = n.saturating_sub(1);
    }
    let slots: [(f64, f64); 4] = [(6.8, 8.2), (12.0, 13.6), (19.5, 22.5), (15.0, 17.0)];
    let mut used = [false; 4];
    for _ in 0..n {
        let mut k = rng.random_range(0..4);
        if used[k] {
            k = (k + 1) % 4;
        }
        used[k] = true;
        let sec = rng.random_range(slots[k].0 * 3600.0..slots[k].1 * 3600.0);
        let (net, ip, p) = whereabouts(w, o, sec, wk, rng);
        let c = Ctx { net, ip, ..base };
        let pos = w.devices[base.device as usize]
            .shares_location
            .then(|| noisy_pos(rng, p, 20.0));
        study_session(w, d, c, d.at(sec), pos, rng, None);
    }

    // Role work.
    let role = w.officials[o as usize].role;
    match role {
        Role::Patrol { .. } => {
            let fake = w.officials[o as usize].fake;
            let p = if wk {
                h.patrol_prob_weekday
            } else {
                h.patrol_prob_weekend
            };
            let p = if fake.is_some() && wk { 1.0 } else { p };
            if rng.random::<f64>() < p {
                let sec = if rng.random::<f64>() < 0.6 {
                    rng.random_range(8.75 * 3600.0..11.0 * 3600.0)
                } else {
                    rng.random_range(14.0 * 3600.0..16.5 * 3600.0)
                };
                patrol(w, d, o, d.at(sec), rng);
            }
        }
        Role::Registry { registry } => registry_day(w, d, o, registry, rng),
        Role::Grid => grid_day(w, d, o, rng),
        Role::Office => {}
    }
}

fn patrol(w: &mut World, d: &mut Day<'_>, o: u32, start: Ms, rng: &mut ChaCha8Rng) {
    let Role::Patrol { route, mode, app } = w.officials[o as usize].role else {
        return;
    };
    let ofc = &w.officials[o as usize];
    let phone = ofc.phone;
    let mut fake = ofc.fake;
    let nh = &d.sc.fraud.non_human_track;
    if fake.is_some() && rng.random::<f64>() >= nh.fake_day_share {
        fake = None;
    }
    let mut integrity = None;
    let mut src_idx = None;
    if fake == Some(Fake::Replay) {
        src_idx = replay_source(w, d.day, o, rng);
        if src_idx.is_none() {
            fake = None;
        }
    }
    let r = &w.routes[route as usize];
    let gap = d.sc.honest.gps_gap_prob;
    let mut route_id = route;
    let fixes: Vec<Fix> = match fake {
        None => track::human(rng, r, mode, start, phone, gap),
        Some(Fake::Dog) => {
            let slow = nh.slow_dog_share > 0.0 && rng.random::<f64>() < nh.slow_dog_share;
            track::dog(rng, r, start, phone, slow)
        }
        Some(Fake::Straight) => {
            let mock = rng.random::<f64>() < nh.mock_flag_share;
            if rng.random::<f64>() < 0.3 {
                integrity = Some("basic");
            }
            track::straight(rng, r, start, mock)
        }
        Some(Fake::Teleport) => track::teleport(rng, r, start, phone),
        Some(Fake::Replay) => {
            let s = &w.stored[src_idx.unwrap_or(0)];
            route_id = s.route;
            if rng.random::<bool>() {
                integrity = Some("basic");
            }
            track::replay(rng, &s.fixes, start, nh.replay_variants)
        }
    };
    if fixes.len() < 2 {
        return;
    }
    let scenario = match fake {
        Some(f) => f.name(),
        None if phone.poor_gps => "poor_gps",
        None => mode.name(),
    };
    w.patrol_ctr += 1;
    let pid = format!("pt-{}-{:06}", w.seed, w.patrol_ctr);
    let account = w.officials[o as usize].account;
    w.patrols.push(PatrolLabel {
        patrol_id: pid,
        account_id: w.accounts[account as usize].id.clone(),
        label: if fake.is_some() {
            "non_human_track".into()
        } else {
            "human".into()
        },
        scenario: scenario.into(),
    });
    let pidx = (w.patrols.len() - 1) as u32;
    let cell = w.routes[route_id as usize].cell_net;
    let c = Ctx {
        net: cell,
        ip: w.officials[o as usize].cell_ip,
        integrity,
        ..official_ctx(w, o)
    };
    emit_patrol(w, d, c, &fixes, app, pidx, route_id, rng);

    // Keep honest walk/bike patrols as material for replays.
    if fake.is_none() && !phone.poor_gps && matches!(mode, Mode::Walk | Mode::Bike) {
        keep_for_replays(w, d.day, o, route, fixes, rng);
    }
}

/// The stored patrol a replay copies: one of the official's own earlier
/// patrols half the time, else anyone's; only patrols of earlier days (a
/// replay is shifted by days).
fn replay_source(w: &World, day: u32, o: u32, rng: &mut ChaCha8Rng) -> Option<usize> {
    let older: Vec<usize> = w
        .stored
        .iter()
        .enumerate()
        .filter(|(_, s)| s.day < day)
        .map(|(i, _)| i)
        .collect();
    let own: Vec<usize> = older
        .iter()
        .copied()
        .filter(|&i| w.stored[i].official == o)
        .collect();
    if !own.is_empty() && rng.random::<bool>() {
        Some(own[rng.random_range(0..own.len())])
    } else if !older.is_empty() {
        Some(older[rng.random_range(0..older.len())])
    } else {
        None
    }
}

/// The events of a patrol: its session, the start, every fix, the end.
#[allow(clippy::too_many_arguments)]
fn emit_patrol(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    fixes: &[Fix],
    app: &'static str,
    pidx: u32,
    route_id: u32,
    rng: &mut ChaCha8Rng,
) {
    let first = fixes[0];
    let last = fixes[fixes.len() - 1];
    let s0 = first.t - rng.random_range(20_000..90_000);
    let sid = session_start(w, d, c, s0, app, "patrol", None);
    let i = push(
        w,
        d,
        c,
        first.t - rng.random_range(500..3000),
        Kind::PatrolStart,
        app,
        "patrol",
    );
    d.evs[i].session = sid;
    d.evs[i].pos = Some((first.lat, first.lon));
    d.evs[i].acc = first.acc;
    d.evs[i].attrs = Attrs::Patrol {
        patrol: pidx,
        route: route_id,
    };
    for f in fixes {
        let i = push(w, d, c, f.t, Kind::TrackPoint, app, "patrol");
        let e = &mut d.evs[i];
        e.session = sid;
        e.pos = Some((f.lat, f.lon));
        e.acc = f.acc;
        e.speed = f.speed;
        e.mock = f.mock;
        e.attrs = Attrs::Track { patrol: pidx };
    }
    let te = last.t + rng.random_range(500..4000);
    let i = push(w, d, c, te, Kind::PatrolEnd, app, "patrol");
    d.evs[i].session = sid;
    d.evs[i].pos = Some((last.lat, last.lon));
    d.evs[i].acc = last.acc;
    d.evs[i].attrs = Attrs::Patrol {
        patrol: pidx,
        route: route_id,
    };
    session_end(
        w,
        d,
        c,
        sid,
        s0,
        te + rng.random_range(5_000..40_000),
        app,
        "patrol",
    );
}

/// Keeps an honest patrol as material for later replays (at most 64, a
/// random one replaced when full).
fn keep_for_replays(
    w: &mut World,
    day: u32,
    o: u32,
    route: u32,
    fixes: Vec<Fix>,
    rng: &mut ChaCha8Rng,
) {
    let st = StoredTrack {
        day,
        official: o,
        route,
        fixes,
    };
    const CAP: usize = 64;
    if w.stored.len() < CAP {
        w.stored.push(st);
    } else {
        let k = rng.random_range(0..CAP);
        w.stored[k] = st;
    }
}

/// Two work sessions (morning, afternoon) of a registry worker; returns them as (start, end, sid).
fn work_sessions(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    app: &'static str,
    module: &'static str,
    rng: &mut ChaCha8Rng,
) -> [(Ms, Ms, u64); 2] {
    let m0 = d.at(9.0 * 3600.0 + rng.random_range(0.0..1800.0));
    let m1 = d.at(11.5 * 3600.0 + rng.random_range(0.0..900.0));
    let a0 = d.at(14.5 * 3600.0 + rng.random_range(0.0..1800.0));
    let a1 = d.at(17.25 * 3600.0 + rng.random_range(0.0..1200.0));
    let s1 = session_start(w, d, c, m0, app, module, None);
    session_end(w, d, c, s1, m0, m1, app, module);
    let s2 = session_start(w, d, c, a0, app, module, None);
    session_end(w, d, c, s2, a0, a1, app, module);
    [(m0, m1, s1), (a0, a1, s2)]
}

fn in_session(ws: &[(Ms, Ms, u64); 2], t: Ms) -> u64 {
    ws.iter()
        .find(|(a, b, _)| t > *a && t < *b)
        .map(|x| x.2)
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn record(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    t: Ms,
    kind: Kind,
    registry: &'static str,
    key: u64,
    changed: Option<u32>,
    sid: u64,
) {
    let i = push(w, d, c, t, kind, "population", "registry");
    d.evs[i].session = sid;
    d.evs[i].attrs = Attrs::Record {
        registry,
        key,
        changed,
    };
}

fn registry_day(
    w: &mut World,
    d: &mut Day<'_>,
    o: u32,
    registry: &'static str,
    rng: &mut ChaCha8Rng,
) {
    let sc = d.sc;
    let census = w.officials[o as usize].census
        && sc.confounders.census_cleanup
        && d.day == sc.confounders.census_day;
    let churn = !w.officials[o as usize].churn_keys.is_empty();
    if !d.weekday && !census {
        return;
    }
    let u = &w.units[w.officials[o as usize].unit as usize];
    let c = Ctx {
        net: u.net,
        ip: u.ip,
        ..official_ctx(w, o)
    };
    let ws = work_sessions(w, d, c, "population", "registry", rng);
    let r = sc.honest.record_ops_per_day;
    let n = rng.random_range(r[0]..=r[1]);
    for _ in 0..n {
        let (a, b, sid) = ws[rng.random_range(0..2)];
        let t = rng.random_range(a + 1000..b - 1000);
        let x: f64 = rng.random();
        let keys = &mut w.officials[o as usize].keys;
        if x < 0.25 || keys.len() < 10 {
            let key: u64 = rng.random();
            keys.push(key);
            record(w, d, c, t, Kind::RecordCreate, registry, key, None, sid);
        } else if x < 0.97 {
            let key = keys[rng.random_range(0..keys.len())];
            let changed = 1 + (rng.random::<f64>().powi(2) * 5.0) as u32;
            record(
                w,
                d,
                c,
                t,
                Kind::RecordUpdate,
                registry,
                key,
                Some(changed),
                sid,
            );
        } else {
            let key = keys.swap_remove(rng.random_range(0..keys.len()));
            record(w, d, c, t, Kind::RecordDelete, registry, key, None, sid);
        }
    }
    if census {
        // One afternoon of real clean-up: distinct records updated or deleted.
        let k = &sc.confounders;
        let keys = &mut w.officials[o as usize].keys;
        while keys.len() < (k.census_updates + k.census_deletes) as usize + 10 {
            keys.push(rng.random());
        }
        keys.shuffle(rng);
        let upd: Vec<u64> = keys[..k.census_updates as usize].to_vec();
        let del: Vec<u64> = keys
            .drain(keys.len() - k.census_deletes as usize..)
            .collect();
        let mut ops: Vec<(u64, bool)> = upd
            .into_iter()
            .map(|x| (x, false))
            .chain(del.into_iter().map(|x| (x, true)))
            .collect();
        ops.shuffle(rng);
        let start = d.at(13.5 * 3600.0 + rng.random_range(0.0..1200.0));
        let c2 = c;
        let sid = session_start(w, d, c2, start, "population", "registry", None);
        let mut t = start;
        for (key, delete) in ops {
            t += rng.random_range(15_000..50_000);
            if delete {
                record(
                    w,
                    d,
                    c2,
                    t,
                    Kind::RecordDelete,
                    "population",
                    key,
                    None,
                    sid,
                );
            } else {
                let changed = rng.random_range(1..=6);
                record(
                    w,
                    d,
                    c2,
                    t,
                    Kind::RecordUpdate,
                    "population",
                    key,
                    Some(changed),
                    sid,
                );
            }
        }
        session_end(w, d, c2, sid, start, t + 30_000, "population", "registry");
    }
    if churn && d.weekday {
        let rc = &sc.fraud.record_churn;
        let day_a = ws[0].0;
        let day_b = ws[1].1;
        for _ in 0..rc.churn_per_day {
            let keys = &w.officials[o as usize].churn_keys;
            let key = keys[rng.random_range(0..keys.len())];
            let t = rng.random_range(day_a..day_b - 100 * 60_000);
            let t2 = t + rng.random_range(2 * 60_000..90 * 60_000);
            record(
                w,
                d,
                c,
                t,
                Kind::RecordDelete,
                registry,
                key,
                None,
                in_session(&ws, t),
            );
            record(
                w,
                d,
                c,
                t2,
                Kind::RecordCreate,
                registry,
                key,
                None,
                in_session(&ws, t2),
            );
        }
        for _ in 0..rc.noop_updates_per_day {
            let ofc = &w.officials[o as usize];
            let key = if rng.random::<bool>() {
                ofc.churn_keys[rng.random_range(0..ofc.churn_keys.len())]
            } else {
                ofc.keys[rng.random_range(0..ofc.keys.len())]
            };
            let (a, b, sid) = ws[rng.random_range(0..2)];
            let t = rng.random_range(a + 1000..b - 1000);
            record(w, d, c, t, Kind::RecordUpdate, registry, key, Some(0), sid);
        }
    }
}

/// A text drawn at random (an honest report's own words).
fn any_text(rng: &mut ChaCha8Rng) -> (u8, u8, u16) {
    (
        rng.random_range(0..TEMPLATES.len()) as u8,
        rng.random_range(0..PLACES.len()) as u8,
        rng.random_range(2..300),
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    w: &mut World,
    d: &mut Day<'_>,
    c: Ctx,
    t: Ms,
    pos: Option<(f64, f64, f32)>,
    category: &'static str,
    text: Option<(u8, u8, u16)>,
    sid: u64,
) {
    let i = push(w, d, c, t, Kind::ReportSubmit, "grid-report", "report");
    d.evs[i].session = sid;
    if let Some(pos) = pos {
        d.evs[i].pos = Some((pos.0, pos.1));
        d.evs[i].acc = pos.2;
    }
    d.evs[i].attrs = Attrs::Report {
        registry: "grid_events",
        category,
        text,
    };
}

fn assessment_day(sc: &Scenario) -> i64 {
    let ri = &sc.fraud.report_inflation;
    match (
        crate::scenario::parse_date(&ri.assessment_date),
        crate::scenario::parse_date(&sc.start_date),
    ) {
        (Some(a), Some(s)) => (a - s).num_days(),
        _ => 4,
    }
}

fn grid_day(w: &mut World, d: &mut Day<'_>, o: u32, rng: &mut ChaCha8Rng) {
    let sc = d.sc;
    let ofc = &w.officials[o as usize];
    let (factor, inflating, help_desk, cell_ip) =
        (ofc.report_factor, ofc.inflating, ofc.help_desk, ofc.cell_ip);
    let u = &w.units[ofc.unit as usize];
    let (office, unet, uip) = (u.office, u.net, u.ip);
    let base = official_ctx(w, o);
    if d.weekday {
        let r = sc.honest.reports_per_day;
        let n = (rng.random_range(r[0]..=r[1]) as f64 * factor).round() as u32;
        for _ in 0..n {
            let sec = rng.random_range(9.0 * 3600.0..17.5 * 3600.0);
            let spot = geo::offset(office.0, office.1, gauss(rng, 1500.0), gauss(rng, 1500.0));
            let c = Ctx {
                ip: cell_ip,
                ..base
            };
            let t = d.at(sec);
            let sid = session_start(w, d, c, t, "grid-report", "report", None);
            let tr = t + rng.random_range(60_000..400_000);
            let cat = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
            let pos = noisy_pos(rng, spot, 8.0);
            let text = sc.honest.report_text.then(|| any_text(rng));
            report(w, d, c, tr, Some(pos), cat, text, sid);
            session_end(
                w,
                d,
                c,
                sid,
                t,
                tr + rng.random_range(3_000..30_000),
                "grid-report",
                "report",
            );
        }
    }
    let ri = &sc.fraud.report_inflation;
    let ad = assessment_day(sc);
    let dd = d.day as i64;
    if inflating && ri.enabled && dd < ad && dd >= ad - ri.days_before as i64 {
        for _ in 0..ri.bursts_per_day {
            let spot = geo::offset(office.0, office.1, gauss(rng, 600.0), gauss(rng, 600.0));
            let cats: Vec<&'static str> = (0..ri.categories.max(1))
                .map(|_| CATEGORIES[rng.random_range(0..CATEGORIES.len())])
                .collect();
            let size = rng.random_range(ri.burst_size[0]..=ri.burst_size[1]);
            let c = Ctx {
                net: unet,
                ip: uip,
                ..base
            };
            let t0 = d.at(rng.random_range(9.0 * 3600.0..17.0 * 3600.0));
            let sid = session_start(w, d, c, t0, "grid-report", "report", None);
            // Filler repeats one text, or cycles a few with their figures
            // redrawn.
            let texts: Vec<(u8, u8, u16)> = if sc.honest.report_text {
                (0..ri.texts.max(1)).map(|_| any_text(rng)).collect()
            } else {
                Vec::new()
            };
            let mut t = t0;
            for k in 0..size as usize {
                t += rng.random_range(20_000..90_000);
                let pos = if ri.spot_spread_m <= 2.0 {
                    noisy_pos(rng, spot, 2.0)
                } else {
                    let sd = ri.spot_spread_m;
                    let p = geo::offset(spot.0, spot.1, gauss(rng, sd), gauss(rng, sd));
                    noisy_pos(rng, p, 8.0)
                };
                let pos =
                    (ri.located_share >= 1.0 || rng.random_bool(ri.located_share)).then_some(pos);
                let cat = match cats.len() {
                    1 => cats[0],
                    n => cats[rng.random_range(0..n)],
                };
                let text = match texts.len() {
                    0 => None,
                    1 => Some(texts[0]),
                    n => {
                        let (tpl, place, _) = texts[k % n];
                        Some((tpl, place, rng.random_range(2..300)))
                    }
                };
                report(w, d, c, t, pos, cat, text, sid);
            }
            session_end(w, d, c, sid, t0, t + 10_000, "grid-report", "report");
        }
    }
    if help_desk && d.weekday {
        let k = &sc.confounders;
        let n = rng.random_range(k.help_desk_per_day[0]..=k.help_desk_per_day[1]);
        let referrer = w.officials[o as usize].referrer;
        let region = base.region;
        let mut t = d.at(9.0 * 3600.0 + rng.random_range(0.0..3600.0));
        for _ in 0..n {
            let r = w.add_resident(
                rng,
                region,
                d.day + 1,
                "honest",
                "help_desk_registration",
                0.35,
            );
            let acct = w.residents[r as usize].account;
            let c = Ctx {
                account: acct,
                net: unet,
                ip: uip,
                ..base
            };
            let sid = session_start(w, d, c, t, "resident-service", "register", None);
            let i = push(
                w,
                d,
                c,
                t + rng.random_range(60_000..300_000),
                Kind::Register,
                "resident-service",
                "register",
            );
            let tr = d.evs[i].ts;
            d.evs[i].session = sid;
            d.evs[i].attrs = Attrs::Register {
                referrer,
                claimed_region: region,
            };
            session_end(
                w,
                d,
                c,
                sid,
                t,
                tr + rng.random_range(10_000..60_000),
                "resident-service",
                "register",
            );
            t += rng.random_range(20 * 60_000..90 * 60_000);
        }
    }
}

fn resident_session(w: &mut World, d: &mut Day<'_>, r: u32, t: Ms, rng: &mut ChaCha8Rng) {
    let res = &w.residents[r as usize];
    let c = Ctx {
        account: res.account,
        region: res.region,
        device: res.device,
        net: res.net,
        ip: res.ip,
        integrity: None,
    };
    let pos = w.devices[res.device as usize]
        .shares_location
        .then(|| noisy_pos(rng, res.home, 20.0));
    let sid = session_start(w, d, c, t, "resident-service", "service", pos);
    let mut te = t + rng.random_range(5_000..30_000);
    for _ in 0..rng.random_range(0..=3) {
        te += rng.random_range(10_000..180_000);
        let i = push(
            w,
            d,
            c,
            te,
            Kind::Interaction,
            "resident-service",
            "service",
        );
        d.evs[i].session = sid;
        let r: f64 = rng.random();
        let action = if r < 0.75 {
            "like"
        } else if r < 0.9 {
            "comment"
        } else {
            "share"
        };
        d.evs[i].attrs = Attrs::Interaction {
            action,
            target: 90_000 + d.day * 50 + rng.random_range(0..50),
        };
    }
    te += rng.random_range(5_000..120_000);
    session_end(w, d, c, sid, t, te, "resident-service", "service");
}

fn residents_day(w: &mut World, d: &mut Day<'_>, rng: &mut ChaCha8Rng) {
    for r in 0..w.residents.len() as u32 {
        let res = &w.residents[r as usize];
        if res.since_day > d.day || rng.random::<f64>() >= res.active_prob {
            continue;
        }
        let sec = if res.evening_only {
            rng.random_range(19.0 * 3600.0..22.0 * 3600.0)
        } else {
            rng.random_range(7.0 * 3600.0..22.5 * 3600.0)
        };
        resident_session(w, d, r, d.at(sec), rng);
    }
}

fn registrations_day(w: &mut World, d: &mut Day<'_>, rng: &mut ChaCha8Rng) {
    let per_day = d.sc.population.registrations_per_day as f64;
    let n = (per_day * rng.random_range(0.5..1.5)).round() as u32;
    let nreg = w.regions.len() as u32;
    for _ in 0..n {
        let region = rng.random_range(0..nreg);
        let r = w.add_resident(
            rng,
            region,
            d.day + 1,
            "honest",
            "new_resident",
            d.sc.population.resident_active_prob * 1.5,
        );
        let res = &w.residents[r as usize];
        let c = Ctx {
            account: res.account,
            region,
            device: res.device,
            net: res.net,
            ip: res.ip,
            integrity: None,
        };
        let referrer = if rng.random::<f64>() < 0.7 {
            0
        } else {
            region + 1
        };
        let t = d.at(rng.random_range(8.0 * 3600.0..22.0 * 3600.0));
        let sid = session_start(w, d, c, t, "resident-service", "register", None);
        let tr = t + rng.random_range(40_000..400_000);
        let i = push(w, d, c, tr, Kind::Register, "resident-service", "register");
        d.evs[i].session = sid;
        d.evs[i].attrs = Attrs::Register {
            referrer,
            claimed_region: region,
        };
        session_end(
            w,
            d,
            c,
            sid,
            t,
            tr + rng.random_range(5_000..300_000),
            "resident-service",
            "register",
        );
    }
}

fn farms_day(w: &mut World, d: &mut Day<'_>, rng: &mut ChaCha8Rng) {
    let pf = &d.sc.fraud.phone_farm;
    if !pf.enabled {
        return;
    }
    let base_sec = parse_hms(&pf.sweep_time).unwrap_or(24_000) as f64;
    for f in 0..w.farms.len() {
        for sweep in 0..pf.sweeps_per_day {
            let sec = base_sec + sweep as f64 * 13.0 * 3600.0 + gauss(rng, 120.0);
            let mut t = d.at(sec);
            let rack = (f as u32) < pf.racks;
            let t0 = t;
            for p in 0..w.farms[f].phones.len() {
                if rng.random::<f64>() < pf.skip_share {
                    continue;
                }
                if rack {
                    // A script starts every phone within 90 s.
                    t = t0 + rng.random_range(0..90_000);
                } else if p > 0 && rng.random::<f64>() < pf.pause_share {
                    t += rng.random_range(180_000..600_000);
                }
                let farm = &w.farms[f];
                let (o, dev, pos) = farm.phones[p];
                let c = Ctx {
                    device: dev,
                    net: farm.net,
                    ip: farm.ip,
                    ..official_ctx(w, o)
                };
                let len = rng.random_range(pf.session_s[0]..=pf.session_s[1]);
                let end = study_session(w, d, c, t, Some((pos.0, pos.1, 20.0)), rng, Some(len));
                t = end + rng.random_range(5_000..20_000);
            }
        }
    }
}

fn bulk_day(w: &mut World, d: &mut Day<'_>, rng: &mut ChaCha8Rng) {
    let b = &d.sc.fraud.bulk_check_in;
    if !b.enabled || !d.weekday {
        return;
    }
    let base = parse_hms(&b.time).unwrap_or(30540) as i64;
    for k in 0..w.bulk.len() {
        let op = w.bulk[k].operator;
        let ofc = &w.officials[op as usize];
        let (dev, unit) = (ofc.device, ofc.unit);
        let (net, ip) = (w.units[unit as usize].net, w.units[unit as usize].ip);
        let (spot, acc) = (w.bulk[k].spot, w.bulk[k].acc);
        for j in 0..w.bulk[k].accounts.len() {
            let a = w.bulk[k].accounts[j];
            let unit_a = w.officials[a as usize].unit as usize;
            let point = w.units[unit_a].duty_point;
            let (spot, acc) = if d.sc.honest.checkin_registered_coords {
                (w.units[unit_a].office, f32::NAN)
            } else {
                (spot, acc)
            };
            let c = Ctx {
                device: dev,
                net,
                ip,
                ..official_ctx(w, a)
            };
            let t = d.d0 + (base + j as i64 * b.step_s as i64) * 1000;
            let sid = session_start(w, d, c, t - 3000, "attendance", "attendance", None);
            let i = push(w, d, c, t, Kind::CheckIn, "attendance", "attendance");
            d.evs[i].session = sid;
            d.evs[i].pos = Some(spot);
            d.evs[i].acc = acc;
            d.evs[i].attrs = Attrs::CheckIn { point };
            session_end(w, d, c, sid, t - 3000, t + 3000, "attendance", "attendance");
        }
    }
    let _ = rng;
}

fn regfarm_day(w: &mut World, d: &mut Day<'_>, rng: &mut ChaCha8Rng) {
    let rf = &d.sc.fraud.registration_farm;
    if !rf.enabled || !rf.days.contains(&d.day) {
        return;
    }
    let start = parse_hms(&rf.start_time).unwrap_or(51_000) as f64;
    let window = rf.window_min as f64 * 60.0;
    for f in 0..w.regfarms.len() {
        let mut times: Vec<f64> = (0..rf.registrations)
            .map(|_| {
                // Bursty: most in a few clumps inside the window.
                let clump = rng.random_range(0..4) as f64 * window / 4.0;
                start + f as f64 * 1800.0 + clump + rng.random_range(0.0..window / 4.0)
            })
            .collect();
        times.sort_by(f64::total_cmp);
        for sec in times {
            let farm = &w.regfarms[f];
            let (dev, ip, referrer, region) = (
                farm.devices[rng.random_range(0..farm.devices.len())],
                farm.ips[rng.random_range(0..farm.ips.len())],
                farm.referrer,
                farm.claimed_region,
            );
            let id = w.new_resident_id(rng);
            let acct = w.new_account(id, region, "registration_farm", "farm_registration");
            let c = Ctx {
                account: acct,
                region,
                device: dev,
                net: NONE,
                ip,
                integrity: None,
            };
            let t = d.at(sec);
            let sid = session_start(w, d, c, t, "resident-service", "register", None);
            let tr = t + rng.random_range(15_000..50_000);
            let i = push(w, d, c, tr, Kind::Register, "resident-service", "register");
            d.evs[i].session = sid;
            d.evs[i].attrs = Attrs::Register {
                referrer,
                claimed_region: region,
            };
            session_end(
                w,
                d,
                c,
                sid,
                t,
                tr + rng.random_range(2_000..10_000),
                "resident-service",
                "register",
            );
        }
    }
}
