//! The detector on hand-built tracks: each rule fires on what it is for and
//! not on honest look-alikes; findings follow the contract.

use groundtruth_track::{detect, detect_of, Class, Fix, Patrol, Projection};
use proptest::prelude::*;

const T0: i64 = 1_762_045_200_000; // 2025-11-02T01:00:00Z
const LAT0: f64 = 22.8;
const LON0: f64 = 108.3;

/// A tiny deterministic PRNG (tests must not depend on rand's streams).
struct Lcg(u64);
impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn fix(proj: Projection, t_ms: i64, x: f64, y: f64, acc: f64) -> Fix {
    let (x0, y0) = proj.xy(LAT0, LON0);
    let (lat, lon) = proj.latlon(x0 + x, y0 + y);
    Fix {
        t_ms,
        lat,
        lon,
        accuracy_m: Some(acc),
        mock: false,
        speed_mps: None,
    }
}

/// A person walking a winding 2 km route out and back at ~1.35 m/s with
/// phone GPS noise (AR(1), ~5 m) and a few stops, fixes every ~5 s.
fn walker(seed: u64) -> Vec<Fix> {
    let proj = Projection::near(LAT0);
    let mut r = Lcg(seed);
    let route = |s: f64| (s, 150.0 * (s / 400.0).sin());
    let (mut s, mut dir, mut t) = (0.0f64, 1.0f64, 0i64);
    let (mut ex, mut ey) = (0.0, 0.0);
    let mut out = Vec::new();
    let mut stop_left = 0;
    while t < 50 * 60 * 1000 {
        let dt = 5000 + (r.gauss() * 300.0) as i64;
        t += dt;
        if stop_left > 0 {
            stop_left -= 1;
        } else {
            if r.unit() < 0.02 {
                stop_left = 6;
            }
            s += dir * (1.35 + 0.15 * r.gauss()) * dt as f64 / 1000.0;
            if s > 2000.0 {
                dir = -1.0;
            }
        }
        ex = 0.9 * ex + 2.0 * r.gauss();
        ey = 0.9 * ey + 2.0 * r.gauss();
        let (x, y) = route(s);
        out.push(fix(proj, T0 + t, x + ex, y + ey, 8.0 + r.unit() * 4.0));
    }
    out
}

fn patrol(id: &str, fixes: Vec<Fix>) -> Patrol {
    Patrol {
        app_id: "river-chief".into(),
        account_id: format!("acc-{id}"),
        patrol_id: id.into(),
        devices: vec![format!("dev-{id}")],
        fixes,
        ..Patrol::default()
    }
}

fn classes(p: &[Patrol]) -> Vec<Vec<Class>> {
    detect(p)
        .assessments
        .iter()
        .map(|a| a.verdicts.iter().map(|v| v.class).collect())
        .collect()
}

#[test]
fn honest_walkers_are_not_flagged() {
    let ps: Vec<Patrol> = (0..5)
        .map(|i| patrol(&format!("w{i}"), walker(i + 1)))
        .collect();
    let r = detect(&ps);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    for a in &r.assessments {
        assert!(a.features.speed_median > 1.0 && a.features.speed_median < 1.8);
        assert!(a.features.jitter_m > 0.5);
    }
}

#[test]
fn mock_app_straight_lines_are_synthetic() {
    let proj = Projection::near(LAT0);
    let mut fixes = Vec::new();
    // Out 1.2 km east and back at exactly 1.4 m/s, a fix every 5 s.
    for i in 0..=340 {
        let s = 7.0 * i as f64;
        let x = if s <= 1200.0 { s } else { 2400.0 - s };
        fixes.push(fix(proj, T0 + i * 5000, x, 0.5 * x, 5.0));
    }
    let c = classes(&[patrol("s", fixes)]);
    assert_eq!(c[0], vec![Class::Synthetic]);
}

#[test]
fn mock_location_flag_is_enough() {
    let mut fixes = walker(9);
    for f in fixes.iter_mut().step_by(2) {
        f.mock = true;
    }
    let r = detect(&[patrol("m", fixes)]);
    assert_eq!(r.assessments[0].verdicts[0].class, Class::Synthetic);
    assert!(r.findings[0].reason.contains("mock-location"));
}

#[test]
fn teleports_are_found_and_gps_spikes_are_not() {
    let mut tele = walker(3);
    let n = tele.len();
    for f in tele.iter_mut().skip(n / 3) {
        f.lat += 0.05; // 5.6 km north, and it stays there
    }
    let mut spike = walker(4);
    spike[100].lat += 0.05; // one fix out and straight back
    let r = detect(&[patrol("t", tele), patrol("g", spike)]);
    assert_eq!(r.assessments[0].verdicts[0].class, Class::Teleporting);
    assert_eq!(r.assessments[0].features.teleports.len(), 1);
    assert!(r.assessments[1].verdicts.is_empty());
    assert_eq!(r.assessments[1].features.gps_outliers, 1);
}

#[test]
fn jumps_without_reported_accuracy_need_kilometres() {
    // A network-location fallback 1.5 km off is possible when accuracy is unknown.
    let mut fixes = walker(5);
    for f in fixes.iter_mut() {
        f.accuracy_m = None;
    }
    let n = fixes.len();
    for f in fixes.iter_mut().skip(n / 2) {
        f.lat += 0.0135; // 1.5 km
    }
    assert!(classes(&[patrol("n", fixes)])[0].is_empty());
}

#[test]
fn replayed_track_is_found_and_the_same_route_walked_again_is_not() {
    let orig = walker(11);
    let again = walker(12); // same route, independent GPS error
    let day = 86_400_000;
    let copy: Vec<Fix> = orig
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, f)| Fix {
            t_ms: f.t_ms + 2 * day,
            lat: f.lat + 0.00002,
            lon: f.lon - 0.00003,
            ..*f
        })
        .collect();
    let again: Vec<Fix> = again
        .into_iter()
        .map(|f| Fix {
            t_ms: f.t_ms + day,
            ..f
        })
        .collect();
    let ps = vec![patrol("o", orig), patrol("a", again), patrol("c", copy)];
    let r = detect(&ps);
    let c: Vec<Vec<Class>> = r
        .assessments
        .iter()
        .map(|a| a.verdicts.iter().map(|v| v.class).collect())
        .collect();
    assert_eq!(c, vec![vec![], vec![], vec![Class::Replayed]]);
    let f = &r.findings[0];
    assert_eq!(f.patrol_ids, vec!["c".to_string()]);
    assert_eq!(f.evidence["replay"]["source_patrol_id"], "o");
    assert!(r.replay_stats.candidates >= 2, "{:?}", r.replay_stats);
}

#[test]
fn judging_some_patrols_gives_them_what_judging_all_gives() {
    let day = 86_400_000;
    let shift = |fixes: Vec<Fix>, dt: i64, dlat: f64| -> Vec<Fix> {
        fixes
            .into_iter()
            .map(|f| Fix {
                t_ms: f.t_ms + dt,
                lat: f.lat + dlat,
                ..f
            })
            .collect()
    };
    let orig = walker(31);
    let mut mocked = shift(walker(32), day, 0.0);
    for f in &mut mocked {
        f.mock = true;
    }
    let ps = vec![
        patrol("o", orig.clone()),
        patrol("m", mocked),
        patrol("c", shift(orig.clone(), 2 * day, 0.00002)),
        patrol("w", shift(walker(33), 2 * day, 0.0)),
        patrol("c2", shift(orig, 3 * day, -0.00001)),
    ];
    let all = detect(&ps);
    assert!(all.findings.len() >= 3, "{:?}", all.findings.len());
    for targets in [vec![2, 3], vec![1], vec![4], vec![0, 2, 4], vec![]] {
        let some = detect_of(&ps, |i| targets.contains(&i));
        for &i in &targets {
            assert_eq!(some.assessments[i], all.assessments[i], "patrol {i}");
        }
        let expected: Vec<_> = all
            .findings
            .iter()
            .filter(|f| {
                targets
                    .iter()
                    .any(|&i| f.patrol_ids == vec![ps[i].patrol_id.clone()])
            })
            .cloned()
            .collect();
        assert_eq!(some.findings, expected, "targets {targets:?}");
        for (i, a) in some.assessments.iter().enumerate() {
            assert!(targets.contains(&i) || a.replay.is_none());
        }
    }
}

#[test]
fn findings_follow_the_contract_and_ids_are_stable() {
    let mut fixes = walker(21);
    for f in &mut fixes {
        f.mock = true;
    }
    let ps = vec![patrol("x", fixes)];
    let a = detect(&ps).findings;
    let b = detect(&ps).findings;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].finding_id, b[0].finding_id);
    a[0].validate().unwrap();
    assert_eq!(a[0].detector, "non_human_track");
    assert_eq!(a[0].accounts, vec!["acc-x".to_string()]);
    let geo = a[0].evidence["geometry"]["points"].as_array().unwrap();
    assert!(geo.len() >= 2 && geo.len() <= 300);
    assert!(a[0].evidence["features"]["speed_median"].as_f64().is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Arbitrary fixes (duplicates, huge jumps, zero intervals) never panic
    /// and always give finite, bounded features.
    #[test]
    fn features_are_total(raw in prop::collection::vec((0i64..100_000, -1.0f64..1.0, -1.0f64..1.0, prop::option::of(0.0f64..200.0), any::<bool>()), 0..200)) {
        let mut fixes: Vec<Fix> = raw.iter().map(|&(t, la, lo, acc, mock)| Fix {
            t_ms: T0 + t * 100,
            lat: LAT0 + la * 0.05,
            lon: LON0 + lo * 0.05,
            accuracy_m: acc,
            mock,
            speed_mps: None,
        }).collect();
        groundtruth_track::point::normalise(&mut fixes);
        let r = detect(&[patrol("p", fixes)]);
        let f = &r.assessments[0].features;
        prop_assert!(f.straightness >= 0.0 && f.straightness <= 1.0);
        prop_assert!(f.speed_median.is_finite() && f.path_m.is_finite());
        prop_assert!(f.turn_mean_deg >= 0.0 && f.turn_mean_deg <= 180.0);
        for finding in &r.findings {
            prop_assert!(finding.validate().is_ok());
        }
    }
}

/// A dog that never runs: it sniffs about at a walker's pace (0.8-1.5 m/s,
/// heading drifting every second), pauses a few seconds at smells, and
/// wanders back to its yard now and then. The phone's error wanders about
/// `acc` metres; with `speeds` it reports its Doppler speed (the true
/// speed, off by a tenth of a metre a second).
fn slow_dog(seed: u64, acc: f64, speeds: bool) -> Vec<Fix> {
    let proj = Projection::near(LAT0);
    let mut r = Lcg(seed);
    let (mut x, mut y, mut h) = (0.0f64, 0.0f64, 0.0f64);
    let (mut ex, mut ey) = (0.0, 0.0);
    let (mut pause, mut homing) = (0, 0);
    let mut out = Vec::new();
    for sec in 0..45 * 60 {
        if homing > 0 {
            homing -= 1;
            h = (-y).atan2(-x) + 0.3 * r.gauss();
        } else {
            h += 0.5 * r.gauss();
            if (x * x + y * y).sqrt() > 70.0 || r.unit() < 0.002 {
                homing = 40;
            }
        }
        let v = if pause > 0 {
            pause -= 1;
            0.0
        } else {
            if r.unit() < 0.02 {
                pause = 3 + (r.unit() * 12.0) as i32;
            }
            0.8 + 0.7 * r.unit()
        };
        x += v * h.cos();
        y += v * h.sin();
        if sec % 5 == 0 {
            ex = 0.9 * ex + 0.2 * acc * r.gauss();
            ey = 0.9 * ey + 0.2 * acc * r.gauss();
            let mut f = fix(
                proj,
                T0 + sec * 1000,
                x + ex,
                y + ey,
                acc * (0.8 + 0.4 * r.unit()),
            );
            f.speed_mps = speeds.then(|| (v + 0.1 * r.gauss()).max(0.0));
            out.push(f);
        }
    }
    out
}

/// An honest survey of a small plot: walking transects 80 m long, 12 m
/// apart, back and forth at 1.1 m/s, stopping a minute to inspect every
/// few transects; or visiting points spread over the plot in turn (120 m
/// by 90 m times `spread`). The phone's error wanders about `acc` metres.
///
/// The phone reports its Doppler speed (0 when standing, the walking
/// speed off by a tenth of a metre a second otherwise).
fn surveyor(seed: u64, transects: bool, acc: f64, spread: f64) -> Vec<Fix> {
    let proj = Projection::near(LAT0);
    let mut r = Lcg(seed);
    let mut legs: Vec<(f64, f64)> = Vec::new();
    if transects {
        for i in 0..12 {
            let y = 12.0 * (i % 6) as f64;
            let (a, b) = if i % 2 == 0 { (0.0, 80.0) } else { (80.0, 0.0) };
            legs.push((a, y));
            legs.push((b, y));
        }
    } else {
        for _ in 0..25 {
            legs.push((r.unit() * 120.0 * spread, r.unit() * 90.0 * spread));
        }
    }
    let (mut ex, mut ey) = (0.0, 0.0);
    let (mut t, mut out) = (0i64, Vec::new());
    let mut push = |t: i64, x: f64, y: f64, v: f64, r: &mut Lcg| {
        ex = 0.9 * ex + 0.2 * acc * r.gauss();
        ey = 0.9 * ey + 0.2 * acc * r.gauss();
        let mut f = fix(proj, T0 + t, x + ex, y + ey, acc * (0.8 + 0.4 * r.unit()));
        f.speed_mps = Some((v + 0.1 * r.gauss()).max(0.0));
        out.push(f);
    };
    for (k, w) in legs.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        let d = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let mut s = 0.0;
        while s < d {
            let f = s / d;
            let v = 1.1 + 0.1 * r.gauss();
            push(t, a.0 + f * (b.0 - a.0), a.1 + f * (b.1 - a.1), v, &mut r);
            s += v * 5.0;
            t += 5000;
        }
        if !transects || k % 6 == 5 {
            for _ in 0..12 {
                push(t, b.0, b.1, 0.0, &mut r);
                t += 5000;
            }
        }
    }
    out
}

#[test]
fn a_dog_that_never_runs_is_animal_like_a_surveyor_on_a_small_plot_is_not() {
    for seed in 1..=4 {
        let f = slow_dog(seed, 8.0, false);
        let r = detect(&[patrol("d", f)]);
        let a = &r.assessments[0];
        assert_eq!(a.features.bursts, 0, "this dog never dashes");
        assert_eq!(
            a.verdicts.iter().map(|v| v.class).collect::<Vec<_>>(),
            vec![Class::AnimalLike],
            "seed {seed}: {:?}",
            a.features
        );
        assert!(a.verdicts[0].reason.contains("meandered"));
        assert_eq!(r.findings[0].evidence["classes"][0]["sign"], "meanders");
    }
    // Phones as good as the dog's, and worse: with 12-15 m error a slow
    // walker's zig-zag between nearby points drifts and turns like a dog.
    for seed in 1..=4 {
        for (transects, acc) in [(true, 8.0), (false, 8.0), (true, 14.0), (false, 14.0)] {
            let r = detect(&[patrol("s", surveyor(seed, transects, acc, 1.0))]);
            assert!(
                r.findings.is_empty(),
                "seed {seed}, transects {transects}, accuracy {acc}: {:?}\n{:?}",
                r.findings,
                r.assessments[0].features
            );
        }
    }
}

#[test]
fn a_dog_that_never_runs_on_a_coarse_phone_is_not_told_from_a_close_point_survey() {
    for seed in 1..=4 {
        // The phone's own speed says the dog walked 50 m at a time and got
        // about half as far, again and again...
        for speeds in [false, true] {
            let r = detect(&[patrol("d", slow_dog(seed, 13.0, speeds))]);
            let f = &r.assessments[0].features;
            assert!(r.findings.is_empty(), "seed {seed}: {f:?}");
            match f.paced_straightness {
                Some(p) => assert!(speeds && p < 0.65, "seed {seed}: {p}"),
                None => assert!(!speeds),
            }
        }
        // ...and so does a person visiting points a dozen metres apart on
        // a small plot (straight legs, sharp turns, which 13 m of error
        // hides): no rule may accuse either.
        let f = &detect(&[patrol("s", surveyor(seed, false, 13.0, 0.3))]).assessments[0].features;
        assert!(f.paced_straightness.unwrap() < 0.75, "{f:?}");
    }
    // People on the same coarse phones with room between their points get
    // nearly as far as they walk.
    for seed in 1..=4 {
        for (transects, acc) in [(true, 14.0), (false, 14.0), (true, 19.0), (false, 19.0)] {
            let r = detect(&[patrol("s", surveyor(seed, transects, acc, 1.0))]);
            let f = &r.assessments[0].features;
            assert!(
                r.findings.is_empty(),
                "seed {seed}, transects {transects}, accuracy {acc}: {:?}\n{f:?}",
                r.findings
            );
            assert!(f.paced_straightness.unwrap() > 0.75, "{f:?}");
        }
        let f = &detect(&[patrol("w", walker(seed))]).assessments[0].features;
        assert_eq!(f.paced_straightness, None, "the walker reports no speed");
    }
}
