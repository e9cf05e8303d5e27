//! The `non_human_track` detector: patrol tracks that do not move like a
//! person (a phone on a dog, a mock-location app, teleports, a replayed
//! track).
//!
//! Pure logic, no I/O: callers hand in patrols (fixes, and optionally the
//! per-step figures as `sql/track_steps.sql` defines them) and get back an
//! [`Assessment`] per patrol and a contract [`Finding`] per flagged one.
//!
//! Flow per batch of patrols:
//! 1. [`features::compute`]: outliers, teleports, stops, speeds, turning,
//!    sinuosity, jitter, bursts, returns home.
//! 2. [`classify::judge`]: explicit rules from physics and published figures
//!    ([`thresholds`]).
//! 3. [`replay::find_replays`]: grid-cell index, then alignment on candidates.
//! 4. [`modes::assign_modes`]: linfa Gaussian mixture over the population for
//!    walk / bike / vehicle / boat.

pub mod classify;
pub mod features;
pub mod modes;
pub mod point;
pub mod replay;
mod simplify;
pub mod thresholds;

use groundtruth_finding::{finding_id, rfc3339_ms, Finding};
use serde_json::{json, Map, Value};

pub use classify::{Class, Verdict};
pub use features::Features;
pub use modes::{Mode, ModeModel};
pub use point::{Fix, Point, Projection};
pub use replay::{ReplayMatch, ReplayStats};

/// The detector's name in findings.
pub const DETECTOR: &str = "non_human_track";

/// One patrol: its identity and its `track_point` fixes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patrol {
    pub app_id: String,
    pub account_id: String,
    pub patrol_id: String,
    pub devices: Vec<String>,
    /// Some event of the patrol carried the integrity verdict `virtual`.
    pub emulator: bool,
    /// Fixes in time order with distinct times (see [`point::normalise`]).
    pub fixes: Vec<Fix>,
    /// Per fix, the `(seconds, metres)` step from the previous fix, when
    /// already computed (as `sql/track_steps.sql` does: haversine
    /// metres, microsecond times); `None` to compute here (planar).
    pub steps: Option<Vec<(f64, f64)>>,
}

/// What the detector concluded about one patrol.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub features: Features,
    pub mode: Mode,
    /// The rules that fired, strongest first; empty for a human patrol.
    pub verdicts: Vec<Verdict>,
    pub replay: Option<ReplayMatch>,
}

impl Assessment {
    pub fn flagged(&self) -> bool {
        !self.verdicts.is_empty()
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub assessments: Vec<Assessment>,
    pub findings: Vec<Finding>,
    pub modes: ModeModel,
    pub replay_stats: ReplayStats,
}

/// Runs the detector over a batch of patrols. Replays are searched among the
/// patrols of the batch (each against those that started earlier).
pub fn detect(patrols: &[Patrol]) -> Report {
    detect_of(patrols, |_| true)
}

/// Runs the detector over a batch of patrols, judging only those with
/// `is_target(i)`: the others are context (earlier patrols a target may
/// replay, and the population the travel modes are fitted to). A target's
/// assessment and finding are exactly what [`detect`] gives it; the
/// others' assessments carry no replay and they get no finding. A window
/// judges the patrols ending in it against the whole week's this way: the
/// replay search, the costliest step, then runs for a day's patrols
/// instead of the week's.
pub fn detect_of(patrols: &[Patrol], is_target: impl Fn(usize) -> bool) -> Report {
    let prepared: Vec<Prepared> = patrols.iter().map(prepare).collect();
    let refs: Vec<&Prepared> = prepared.iter().collect();
    detect_prepared(patrols, &refs, is_target)
}

/// What the detector works out for one patrol on its own, before it is
/// compared with the others (replays, travel modes): its points, features
/// and the rules' verdicts. It depends only on the patrol, so a caller
/// that judges overlapping sets of patrols (a week's context, window after
/// window) can keep it and hand it back to [`detect_prepared`].
#[derive(Debug, Clone)]
pub struct Prepared {
    proj: Projection,
    points: Vec<Point>,
    xy: Vec<(f64, f64)>,
    features: Features,
    verdicts: Vec<Verdict>,
}

/// Prepares one patrol (see [`Prepared`]).
pub fn prepare(p: &Patrol) -> Prepared {
    let proj = Projection::near(p.fixes.first().map_or(0.0, |f| f.lat));
    let mut points = point::to_points(&p.fixes, proj);
    if let Some(steps) = &p.steps {
        for (pt, &(dt, d)) in points.iter_mut().zip(steps).skip(1) {
            pt.dt_s = dt;
            pt.step_m = d;
        }
    }
    let features = features::compute(&p.fixes, &points);
    let verdicts = classify::judge(&features, p.emulator);
    // Replays. Points go into one projection per whole degree of latitude,
    // so tracks of one area are comparable.
    let xy = points.iter().map(|p| (p.x, p.y)).collect();
    Prepared {
        proj,
        points,
        xy,
        features,
        verdicts,
    }
}

/// [`detect_of`] over patrols already prepared: `prepared[i]` must be
/// [`prepare`]`(&patrols[i])` (the result is then exactly `detect_of`'s).
pub fn detect_prepared(
    patrols: &[Patrol],
    prepared: &[&Prepared],
    is_target: impl Fn(usize) -> bool,
) -> Report {
    assert_eq!(
        patrols.len(),
        prepared.len(),
        "one prepared patrol per patrol"
    );
    let mut verdicts: Vec<Vec<Verdict>> = prepared.iter().map(|p| p.verdicts.clone()).collect();
    let rtracks: Vec<replay::ReplayTrack<'_>> = patrols
        .iter()
        .zip(prepared)
        .map(|(p, pr)| replay::ReplayTrack {
            start_ms: p.fixes.first().map_or(0, |f| f.t_ms),
            // Teleporting tracks are judged already; a replay must be
            // compared to a real track.
            xy: if pr.features.teleports.is_empty() {
                &pr.xy
            } else {
                &[]
            },
            path_m: pr.features.path_m,
            accuracy_m: pr.features.accuracy_median_m,
        })
        .collect();
    let (matches, replay_stats) = replay::find_replays_of(&rtracks, &is_target);
    let mut replay_of: Vec<Option<ReplayMatch>> = vec![None; patrols.len()];
    for m in matches {
        let src = &patrols[m.source];
        let when = rfc3339_ms(src.fixes.first().map_or(0, |f| f.t_ms));
        verdicts[m.track].push(Verdict {
            class: Class::Replayed,
            score: (0.99 - 0.05 * m.residual_m / thresholds::REPLAY_RESIDUAL_M).clamp(0.9, 0.99),
            sign: None,
            reason: format!(
                "Repeats patrol {} of account {} (started {}) fix for fix: shifted by {:.1} m, \
                 its fixes lie {:.2} m from the earlier ones on average; two real walks of one \
                 route differ by metres because GPS error is never the same twice.",
                src.patrol_id, src.account_id, when, m.offset_m, m.residual_m
            ),
        });
        replay_of[m.track] = Some(m);
    }
    for v in &mut verdicts {
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.class.cmp(&b.class)));
    }

    let (modes, mode_model) = {
        let population: Vec<&Features> = prepared.iter().map(|p| &p.features).collect();
        modes::assign_modes(&population)
    };

    let mut findings = Vec::new();
    let mut assessments = Vec::with_capacity(patrols.len());
    for (i, pr) in prepared.iter().enumerate() {
        let a = Assessment {
            features: pr.features.clone(),
            mode: modes[i],
            verdicts: std::mem::take(&mut verdicts[i]),
            replay: replay_of[i],
        };
        if a.flagged() && is_target(i) {
            findings.push(finding(i, patrols, prepared, &a));
        }
        assessments.push(a);
    }
    Report {
        assessments,
        findings,
        modes: mode_model,
        replay_stats,
    }
}

/// The finding for patrol `i`; `prepared` holds every patrol's points, so
/// a replay's source geometry comes from what was already computed.
fn finding(i: usize, all: &[Patrol], prepared: &[&Prepared], a: &Assessment) -> Finding {
    let p = &all[i];
    let top = &a.verdicts[0];
    let mut reason = top.reason.clone();
    if a.verdicts.len() > 1 {
        let others: Vec<&str> = a.verdicts[1..].iter().map(|v| v.class.name()).collect();
        reason.push_str(&format!(" Also: {}.", others.join(", ")));
    }
    let mut ev = Map::new();
    ev.insert("classification".into(), json!(top.class.name()));
    ev.insert(
        "classes".into(),
        Value::Array(
            a.verdicts
                .iter()
                .map(|v| {
                    let mut c =
                        json!({"class": v.class.name(), "score": v.score, "reason": v.reason});
                    if let Some(sign) = v.sign {
                        c["sign"] = json!(sign);
                    }
                    c
                })
                .collect(),
        ),
    );
    ev.insert("mode".into(), json!(a.mode));
    ev.insert("app_id".into(), json!(p.app_id));
    ev.insert(
        "features".into(),
        serde_json::to_value(&a.features).unwrap_or(Value::Null),
    );
    if let Some(m) = &a.replay {
        let src = &all[m.source];
        ev.insert(
            "replay".into(),
            json!({
                "source_patrol_id": src.patrol_id,
                "source_account_id": src.account_id,
                "source_start": rfc3339_ms(src.fixes.first().map_or(0, |f| f.t_ms)),
                "residual_m": m.residual_m,
                "offset_m": m.offset_m,
                "cover": m.cover,
                "shared_cells": m.shared_cells,
                "source_geometry": simplify::geometry(&prepared[m.source].points, prepared[m.source].proj),
            }),
        );
    }
    ev.insert(
        "geometry".into(),
        simplify::geometry(&prepared[i].points, prepared[i].proj),
    );
    let start = p.fixes.first().map_or(0, |f| f.t_ms);
    let end = p.fixes.last().map_or(0, |f| f.t_ms);
    let mut devices = p.devices.clone();
    devices.sort();
    devices.dedup();
    Finding {
        finding_id: finding_id(DETECTOR, &[&p.app_id, &p.account_id, &p.patrol_id]),
        detector: DETECTOR.into(),
        accounts: vec![p.account_id.clone()],
        devices,
        patrol_ids: vec![p.patrol_id.clone()],
        window_start: rfc3339_ms(start),
        window_end: rfc3339_ms(end),
        score: (top.score * 1000.0).round() / 1000.0,
        reason,
        evidence: ev,
    }
}
