//! Per-patrol kinematic features.
//!
//! The pipeline: drop GPS outliers (spikes of one or two fixes that jump away
//! and straight back), find teleports (jumps that stay), find stops (stay
//! points), then compute speed, acceleration, turning, sinuosity and shape
//! statistics over the moving parts. Every constant is in
//! [`crate::thresholds`] with its source.

use serde::Serialize;

use crate::point::{dist, mean_sd, quantile, restep, Fix, Point};
use crate::thresholds as th;

/// A jump faster than anything on the ground that the track does not come back from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Jump {
    /// Event time of the fix after the jump, epoch ms.
    pub at_ms: i64,
    pub distance_m: f64,
    pub seconds: f64,
    pub speed_mps: f64,
}

/// A stay point: the track stayed within a small radius for a while.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stop {
    pub start_ms: i64,
    pub end_ms: i64,
    pub x: f64,
    pub y: f64,
}

/// The features of one patrol. Speeds in m/s, distances in metres, angles in
/// degrees, times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    pub fixes: usize,
    pub duration_s: f64,
    /// Fixes dropped as GPS outliers (out and straight back within two fixes).
    pub gps_outliers: usize,
    pub teleports: Vec<Jump>,
    pub fix_interval_median_s: f64,
    /// Standard deviation over mean of the fix intervals (gaps excluded).
    pub fix_interval_cv: f64,
    /// Signal gaps longer than [`th::GAP_S`].
    pub gaps: usize,
    pub gap_s: f64,
    pub path_m: f64,
    pub net_m: f64,
    pub straightness: f64,
    pub radius_of_gyration_m: f64,
    pub max_excursion_m: f64,
    /// Distance from the end back to the start over the maximum excursion;
    /// near 0 for an out-and-back or a loop.
    pub return_ratio: f64,
    pub moving_steps: usize,
    pub speed_median: f64,
    pub speed_p95: f64,
    pub speed_max: f64,
    /// Median absolute deviation of moving speeds over their median.
    pub speed_mad_ratio: f64,
    pub accel_p95: f64,
    pub stops: usize,
    pub stop_s: f64,
    pub stop_median_s: f64,
    pub stops_per_hour: f64,
    /// Step length of the rediscretised path used for turning and sinuosity.
    pub rediscretise_m: f64,
    /// Length of the rediscretised path (steps of `rediscretise_m`): the
    /// distance covered, without the zig-zag GPS noise adds to `path_m`.
    pub rediscretised_path_m: f64,
    pub turn_mean_deg: f64,
    /// Length of the stretches `course_straightness` and `straight_share`
    /// are measured over ([`th::course_window_m`]), metres.
    pub course_window_m: f64,
    /// Median straightness (distance over path) of the stretches of
    /// `course_window_m` along the rediscretised moving path: near 1
    /// for anyone heading somewhere, even on a small site; low for a mover
    /// that meanders wherever it goes. 1 when the path is too short to say.
    pub course_straightness: f64,
    /// Median absolute turning angle per rediscretised step, degrees: a
    /// person's turning comes in a few sharp turns between straight steps
    /// (near 0 at the median), a meandering mover turns at every step.
    pub turn_median_deg: f64,
    /// Share of the rediscretised moving path that lies on a straight run:
    /// a stretch of `course_window_m` at least
    /// [`th::STRAIGHT_RUN`] straight. A person walks from place to place
    /// (transects, street legs, point to point); a meandering mover rarely
    /// keeps a line that long. 1 when the path is too short to say.
    pub straight_share: f64,
    /// Straightness at the device's own pace: over stretches of fixes (stops
    /// included) in which the speeds the phone reported add up to
    /// [`th::PACED_WINDOW_M`], the distance between the stretch's ends over
    /// that reported distance; the median over the stretches. The reported speed comes from the
    /// satellites' Doppler shift, not from the positions, so it is the
    /// length of the path actually walked even where positioning error
    /// hides its shape: near 1 for anyone heading somewhere, low for a
    /// mover that keeps a walker's pace and turns all the time (no rule
    /// accuses on it, see [`th::PACED_WINDOW_M`]). `None` when the phone
    /// reports no speed on most steps or too few
    /// stretches ([`th::PACED_MIN_STRETCHES`]).
    pub paced_straightness: Option<f64>,
    /// Stretches `paced_straightness` is the median of.
    pub paced_stretches: usize,
    /// Median of the speeds the phone reported on moving fixes, m/s.
    pub reported_speed_median: Option<f64>,
    /// Distance walked by the phone's own speed over the whole patrol
    /// (steps between fixes that both report one; speeds under
    /// [`th::PACED_MIN_MPS`] count as standing), metres. `None` where
    /// `paced_straightness` is.
    pub walked_m: Option<f64>,
    /// Benhamou (2004) sinuosity `2 / sqrt(p (1 + c) / (1 - c))`, per sqrt(metre).
    pub sinuosity: f64,
    /// Median distance of a moving fix from the chord of its neighbours.
    pub jitter_m: f64,
    pub accuracy_median_m: Option<f64>,
    pub accuracy_sd_m: Option<f64>,
    /// Share of fixes that report an accuracy.
    pub accuracy_reported_share: f64,
    /// Short runs faster than [`th::BURST_MPS`] between slow stretches.
    pub bursts: usize,
    pub burst_speed_median: f64,
    /// Times the track came back to its most visited spot after leaving it.
    pub home_returns: usize,
    /// Bursts that end at that spot, coming from well away: dashes home.
    pub home_dashes: usize,
    pub mock_share: f64,
}

/// Computes the features of a patrol's points (sorted, distinct times).
/// `fixes` carries the per-fix flags and accuracy in the same order.
pub fn compute(fixes: &[Fix], points: &[Point]) -> Features {
    let n_in = points.len();
    let acc: Vec<f64> = fixes.iter().filter_map(|f| f.accuracy_m).collect();
    let (accuracy_median_m, accuracy_sd_m) = if acc.is_empty() {
        (None, None)
    } else {
        let mut a = acc.clone();
        (quantile(&mut a, 0.5), Some(mean_sd(&acc).1))
    };
    let acc_med = accuracy_median_m.unwrap_or(th::DEFAULT_ACCURACY_M);
    let mock_share = if fixes.is_empty() {
        0.0
    } else {
        fixes.iter().filter(|f| f.mock).count() as f64 / fixes.len() as f64
    };

    let mut pts = points.to_vec();
    let gps_outliers = drop_spikes(&mut pts);
    let teleports = find_teleports(&pts);
    let n = pts.len();
    let duration_s = if n > 1 {
        (pts[n - 1].t_ms - pts[0].t_ms) as f64 / 1000.0
    } else {
        0.0
    };

    let (fix_interval_median_s, fix_interval_cv, gaps, gap_s) = fix_intervals(&pts);

    // Stops.
    let stop_r = th::stop_radius(acc_med);
    let stop_t = th::stop_min_s(stop_r);
    let (stops, in_stop) = find_stops(&pts, stop_r, stop_t);
    let stop_durs: Vec<f64> = stops
        .iter()
        .map(|s| (s.end_ms - s.start_ms) as f64 / 1000.0)
        .collect();
    let stop_s: f64 = stop_durs.iter().sum();
    let stop_median_s = quantile(&mut stop_durs.clone(), 0.5).unwrap_or(0.0);

    // Moving steps: not inside one stop, not across a gap, not a teleport.
    let tele_at: Vec<i64> = teleports.iter().map(|j| j.at_ms).collect();
    let moving: Vec<usize> = (1..n)
        .filter(|&i| {
            let same_stop = in_stop[i].is_some() && in_stop[i] == in_stop[i - 1];
            !same_stop
                && pts[i].dt_s > 0.0
                && pts[i].dt_s <= th::GAP_S
                && !tele_at.contains(&pts[i].t_ms)
        })
        .collect();
    let sp = speeds(&pts, &moving);

    // Path over moving steps; shape.
    let path_m: f64 = moving.iter().map(|&i| pts[i].step_m).sum();
    let shape = shape(&pts, path_m);

    // Turning and sinuosity on the rediscretised moving path.
    let poly = moving_polyline(&pts, &stops, &in_stop, &tele_at);
    let q = th::rediscretise_m(acc_med);
    let steps = rediscretise(&poly, q);
    let (turn_mean_deg, sinuosity) = turning(&steps, q);
    let course_window_m = th::course_window_m(q);
    let (course_straightness, straight_share) = courses(&steps, q, course_window_m);
    let turn_median_deg = {
        let mut t: Vec<f64> = steps
            .iter()
            .flat_map(|h| h.windows(2).map(|w| angle_between(w[0], w[1]).abs()))
            .collect();
        quantile(&mut t, 0.5).unwrap_or(0.0).to_degrees()
    };
    let rediscretised_path_m = steps.iter().map(|h| h.len() as f64 * q).sum();

    let (paced_straightness, paced_stretches, walked_m) = paced(&pts, &tele_at, th::PACED_WINDOW_M);
    let reported_speed_median = quantile(
        &mut moving
            .iter()
            .filter_map(|&i| pts[i].reported_mps)
            .collect::<Vec<_>>(),
        0.5,
    );
    let jitter_m = jitter(&pts, &moving);
    let runs = bursts(&pts, &moving, &in_stop, acc_med);
    let burst_speed_median =
        quantile(&mut runs.iter().map(|r| r.2).collect::<Vec<_>>(), 0.5).unwrap_or(0.0);
    let (home_returns, home_dashes) = home_figures(&pts, &runs, acc_med);
    let bursts = runs.len();

    Features {
        fixes: n_in,
        duration_s,
        gps_outliers,
        teleports,
        fix_interval_median_s,
        fix_interval_cv,
        gaps,
        gap_s,
        path_m,
        net_m: shape.net_m,
        straightness: shape.straightness,
        radius_of_gyration_m: shape.radius_of_gyration_m,
        max_excursion_m: shape.max_excursion_m,
        return_ratio: shape.return_ratio,
        moving_steps: moving.len(),
        speed_median: sp.median,
        speed_p95: sp.p95,
        speed_max: sp.max,
        speed_mad_ratio: sp.mad_ratio,
        accel_p95: sp.accel_p95,
        stops: stops.len(),
        stop_s,
        stop_median_s,
        stops_per_hour: if duration_s > 0.0 {
            stops.len() as f64 * 3600.0 / duration_s
        } else {
            0.0
        },
        rediscretise_m: q,
        rediscretised_path_m,
        turn_mean_deg,
        course_window_m,
        course_straightness,
        turn_median_deg,
        straight_share,
        paced_straightness,
        paced_stretches,
        reported_speed_median,
        walked_m,
        sinuosity,
        jitter_m,
        accuracy_median_m,
        accuracy_sd_m,
        accuracy_reported_share: if fixes.is_empty() {
            0.0
        } else {
            acc.len() as f64 / fixes.len() as f64
        },
        bursts,
        burst_speed_median,
        home_returns,
        home_dashes,
        mock_share,
    }
}

/// Fix intervals within the track (gaps excluded): their median and
/// coefficient of variation; and the gaps: how many, how long in all.
fn fix_intervals(pts: &[Point]) -> (f64, f64, usize, f64) {
    let dts: Vec<f64> = pts.iter().skip(1).map(|p| p.dt_s).collect();
    let in_track: Vec<f64> = dts.iter().copied().filter(|&d| d <= th::GAP_S).collect();
    let median = quantile(&mut in_track.clone(), 0.5).unwrap_or(0.0);
    let (m, sd) = mean_sd(&in_track);
    let cv = if m > 0.0 { sd / m } else { 0.0 };
    let gaps = dts.iter().filter(|&&d| d > th::GAP_S).count();
    let gap_s = dts.iter().filter(|&&d| d > th::GAP_S).sum();
    (median, cv, gaps, gap_s)
}

/// Speeds over the moving steps.
struct Speeds {
    median: f64,
    p95: f64,
    max: f64,
    /// Median absolute deviation over the median.
    mad_ratio: f64,
    /// 95th percentile of the change of speed between consecutive moving
    /// steps, per second.
    accel_p95: f64,
}

fn speeds(pts: &[Point], moving: &[usize]) -> Speeds {
    let speeds: Vec<f64> = moving.iter().map(|&i| pts[i].speed()).collect();
    let mut sp = speeds.clone();
    let median = quantile(&mut sp, 0.5).unwrap_or(0.0);
    let p95 = quantile(&mut sp, 0.95).unwrap_or(0.0);
    let max = sp.last().copied().unwrap_or(0.0);
    let mut dev: Vec<f64> = speeds.iter().map(|v| (v - median).abs()).collect();
    let mad_ratio = if median > 0.0 {
        quantile(&mut dev, 0.5).unwrap_or(0.0) / median
    } else {
        0.0
    };
    let mut accel: Vec<f64> = moving
        .windows(2)
        .filter(|w| w[1] == w[0] + 1)
        .map(|w| {
            let (a, b) = (pts[w[0]], pts[w[1]]);
            (b.speed() - a.speed()).abs() / ((a.dt_s + b.dt_s) / 2.0)
        })
        .collect();
    let accel_p95 = quantile(&mut accel, 0.95).unwrap_or(0.0);
    Speeds {
        median,
        p95,
        max,
        mad_ratio,
        accel_p95,
    }
}

/// The track's shape: start to end against the path, spread, reach.
struct Shape {
    net_m: f64,
    straightness: f64,
    radius_of_gyration_m: f64,
    max_excursion_m: f64,
    return_ratio: f64,
}

fn shape(pts: &[Point], path_m: f64) -> Shape {
    let n = pts.len();
    let net_m = if n > 1 {
        dist((pts[0].x, pts[0].y), (pts[n - 1].x, pts[n - 1].y))
    } else {
        0.0
    };
    let straightness = if path_m > 0.0 {
        (net_m / path_m).min(1.0)
    } else {
        0.0
    };
    let (cx, cy) = centroid(pts);
    let radius_of_gyration_m = if n > 0 {
        (pts.iter()
            .map(|p| (p.x - cx).powi(2) + (p.y - cy).powi(2))
            .sum::<f64>()
            / n as f64)
            .sqrt()
    } else {
        0.0
    };
    let max_excursion_m = pts
        .iter()
        .map(|p| dist((pts[0].x, pts[0].y), (p.x, p.y)))
        .fold(0.0, f64::max);
    let return_ratio = if max_excursion_m > 0.0 {
        net_m / max_excursion_m
    } else {
        0.0
    };
    Shape {
        net_m,
        straightness,
        radius_of_gyration_m,
        max_excursion_m,
        return_ratio,
    }
}

/// Returns to the most visited spot, and the bursts (`runs`) that end there
/// coming from well away (dashes home).
fn home_figures(pts: &[Point], runs: &[(usize, usize, f64)], acc_med: f64) -> (usize, usize) {
    let Some(h) = home(pts) else {
        return (0, 0);
    };
    let (r_in, r_out) = th::home_radii(acc_med);
    let dashes = runs
        .iter()
        .filter(|r| {
            let (a, b) = (pts[r.0], pts[r.1]);
            dist(h, (a.x, a.y)) >= r_out - r_in && dist(h, (b.x, b.y)) <= r_in
        })
        .count();
    (home_returns(pts, h, acc_med), dashes)
}

fn centroid(pts: &[Point]) -> (f64, f64) {
    if pts.is_empty() {
        return (0.0, 0.0);
    }
    let n = pts.len() as f64;
    (
        pts.iter().map(|p| p.x).sum::<f64>() / n,
        pts.iter().map(|p| p.y).sum::<f64>() / n,
    )
}

/// Is the step from `a` into `b` a jump?
fn is_jump(a: &Point, b: &Point) -> bool {
    b.dt_s >= 0.0
        && b.step_m > th::jump_min_m(a.accuracy_m, b.accuracy_m)
        && (b.dt_s == 0.0 || b.step_m / b.dt_s > th::MAX_GROUND_MPS)
}

/// Removes runs of one or two fixes that jump away and come straight back
/// (multipath, cold starts), and such runs at either end of the track.
/// Returns how many fixes were dropped.
fn drop_spikes(pts: &mut Vec<Point>) -> usize {
    let mut dropped = 0;
    let mut i = 1;
    while i < pts.len() {
        if !is_jump(&pts[i - 1], &pts[i]) {
            i += 1;
            continue;
        }
        let mut removed = false;
        for k in 1..=2usize {
            let back = i + k;
            if back < pts.len() && is_jump(&pts[back - 1], &pts[back]) {
                let (a, b) = (pts[i - 1], pts[back]);
                let d = dist((a.x, a.y), (b.x, b.y));
                let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
                if d <= th::jump_min_m(a.accuracy_m, b.accuracy_m)
                    || (dt > 0.0 && d / dt <= th::MAX_GROUND_MPS)
                {
                    pts.drain(i..back);
                    restep(pts, i);
                    dropped += k;
                    removed = true;
                    break;
                }
            }
        }
        if !removed {
            // A jump within two fixes of either end: drop the short side.
            if i <= 2 {
                pts.drain(0..i);
                restep(pts, 0);
                dropped += i;
                i = 1;
                continue;
            }
            if pts.len() - i <= 2 {
                let k = pts.len() - i;
                pts.truncate(i);
                dropped += k;
                break;
            }
            i += 1;
        }
    }
    dropped
}

/// Jumps that stay. A jump that lands where the track could have got to at
/// its own pace from a fix shortly before ([`th::GLITCH_MAX_S`]) may be the
/// end of a stretch of wrong fixes, not a teleport: a phone that lost its
/// satellites (an underpass, a tunnel, falling back to cell positions)
/// reported somewhere else for a while and then caught up. The pace is the
/// track's own 95th-percentile step speed, so a walker cannot "catch up"
/// kilometres while a car can. Being within reach is not enough: the fixes
/// in between must show they were wrong (see [`wrong_stretch`]), or any
/// jump of a walker who went out and back would be excused. A spoofer's
/// jump to the patrol site is not explained this way.
fn find_teleports(pts: &[Point]) -> Vec<Jump> {
    // The speed of each ordinary step (not a jump, not across a gap).
    let paced: Vec<Option<f64>> = (0..pts.len())
        .map(|k| {
            let ok = k > 0
                && pts[k].dt_s > 0.0
                && pts[k].dt_s <= th::GAP_S
                && !is_jump(&pts[k - 1], &pts[k]);
            ok.then(|| pts[k].speed())
        })
        .collect();
    let mut speeds: Vec<f64> = paced.iter().flatten().copied().collect();
    let own_mps = quantile(&mut speeds, 0.95).unwrap_or(0.0);
    let mut accs: Vec<f64> = pts.iter().filter_map(|p| p.accuracy_m).collect();
    let acc_med = quantile(&mut accs, 0.5);
    // The pace of the track outside fixes j+1..i (those suspected wrong).
    let pace_outside = |j: usize, i: usize| {
        let mut v: Vec<f64> = paced
            .iter()
            .enumerate()
            .filter(|(k, _)| *k <= j || *k > i)
            .filter_map(|(_, s)| *s)
            .collect();
        quantile(&mut v, 0.95).unwrap_or(0.0)
    };
    let caught_up = |i: usize| {
        let b = &pts[i];
        (0..i.saturating_sub(1))
            .rev()
            .take_while(|&j| (b.t_ms - pts[j].t_ms) as f64 / 1000.0 <= th::GLITCH_MAX_S)
            .any(|j| {
                let a = &pts[j];
                let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
                dist((a.x, a.y), (b.x, b.y))
                    <= th::jump_min_m(a.accuracy_m, b.accuracy_m) + own_mps * dt
                    && wrong_stretch(&pts[j..i], pace_outside(j, i), acc_med)
            })
    };
    (1..pts.len())
        .filter(|&i| is_jump(&pts[i - 1], &pts[i]) && !caught_up(i))
        .map(|i| &pts[i])
        .map(|p| Jump {
            at_ms: p.t_ms,
            distance_m: p.step_m,
            seconds: p.dt_s,
            speed_mps: if p.dt_s > 0.0 {
                p.step_m / p.dt_s
            } else {
                f64::INFINITY
            },
        })
        .collect()
}

/// Do the fixes after `stretch[0]` (the last right fix before a jump back)
/// show that the phone was reporting wrong positions? Any of: a jump into
/// them; a step much faster than the track's own pace elsewhere
/// (`pace_mps`; [`th::DRIFT_PACE_FACTOR`] times, and longer than the
/// fixes' error); a fix whose reported accuracy
/// is beyond satellite positioning ([`th::degraded_accuracy_m`]); a signal
/// gap (the first fixes after a phone regains its satellites can be off by
/// kilometres until it has a full fix). A stretch walked at the track's
/// pace, without a gap and with good fixes, was walked.
fn wrong_stretch(stretch: &[Point], pace_mps: f64, acc_med: Option<f64>) -> bool {
    let degraded = th::degraded_accuracy_m(acc_med);
    stretch.windows(2).any(|w| {
        let p = &w[1];
        let jumped_in = is_jump(&w[0], p);
        let noise = 2.0 * p.accuracy_m.unwrap_or(th::DEFAULT_ACCURACY_M);
        let drifted = p.dt_s > 0.0
            && p.step_m > noise.max(th::DRIFT_MIN_M)
            && p.speed() > th::DRIFT_PACE_FACTOR * pace_mps;
        let bad_fix = p.accuracy_m.is_some_and(|a| a > degraded);
        let regained = p.dt_s > th::GAP_S;
        jumped_in || drifted || bad_fix || regained
    })
}

/// Stay points: maximal runs that stay within `r` metres of their first fix
/// for at least `min_s` seconds. Returns the stops and, per point, the index
/// of its stop.
fn find_stops(pts: &[Point], r: f64, min_s: f64) -> (Vec<Stop>, Vec<Option<usize>>) {
    let mut stops = Vec::new();
    let mut in_stop = vec![None; pts.len()];
    let mut i = 0;
    while i < pts.len() {
        let mut j = i + 1;
        while j < pts.len() && dist((pts[i].x, pts[i].y), (pts[j].x, pts[j].y)) <= r {
            j += 1;
        }
        let span = (pts[j - 1].t_ms - pts[i].t_ms) as f64 / 1000.0;
        if span >= min_s {
            let (cx, cy) = centroid(&pts[i..j]);
            for s in in_stop.iter_mut().take(j).skip(i) {
                *s = Some(stops.len());
            }
            stops.push(Stop {
                start_ms: pts[i].t_ms,
                end_ms: pts[j - 1].t_ms,
                x: cx,
                y: cy,
            });
            i = j;
        } else {
            i += 1;
        }
    }
    (stops, in_stop)
}

/// The track with each stop collapsed to its centre, split at teleports.
fn moving_polyline(
    pts: &[Point],
    stops: &[Stop],
    in_stop: &[Option<usize>],
    tele_at: &[i64],
) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    let mut last_stop = None;
    for (p, s) in pts.iter().zip(in_stop) {
        if tele_at.contains(&p.t_ms) {
            out.push(Vec::new());
        }
        let cur = out.last_mut().expect("non-empty");
        match s {
            Some(k) if last_stop == Some(*k) => {}
            Some(k) => {
                cur.push((stops[*k].x, stops[*k].y));
                last_stop = Some(*k);
            }
            None => {
                cur.push((p.x, p.y));
                last_stop = None;
            }
        }
    }
    out
}

/// Rediscretises each polyline into steps of exactly `q` metres
/// (Bovet & Benhamou 1988), returning the step headings (radians) per part.
fn rediscretise(parts: &[Vec<(f64, f64)>], q: f64) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for poly in parts {
        let mut heads = Vec::new();
        let Some(&first) = poly.first() else {
            continue;
        };
        let mut c = first;
        let mut k = 1;
        while k < poly.len() {
            let v = poly[k];
            if dist(c, v) < q {
                k += 1;
                continue;
            }
            // The point on segment (poly[k-1], v) at distance q from c.
            let a = poly[k - 1];
            let (dx, dy) = (v.0 - a.0, v.1 - a.1);
            let (fx, fy) = (a.0 - c.0, a.1 - c.1);
            let qa = dx * dx + dy * dy;
            let qb = 2.0 * (fx * dx + fy * dy);
            let qc = fx * fx + fy * fy - q * q;
            let disc = (qb * qb - 4.0 * qa * qc).max(0.0);
            let s = if qa > 0.0 {
                ((-qb + disc.sqrt()) / (2.0 * qa)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            let p = (a.0 + s * dx, a.1 + s * dy);
            heads.push((p.1 - c.1).atan2(p.0 - c.0));
            c = p;
        }
        out.push(heads);
    }
    out
}

/// The turn from heading `a` to heading `b`, radians in [-pi, pi].
fn angle_between(a: f64, b: f64) -> f64 {
    let mut d = b - a;
    while d > std::f64::consts::PI {
        d -= std::f64::consts::TAU;
    }
    while d < -std::f64::consts::PI {
        d += std::f64::consts::TAU;
    }
    d
}

/// Mean absolute turning angle (degrees) and Benhamou sinuosity.
fn turning(parts: &[Vec<f64>], q: f64) -> (f64, f64) {
    let mut sum_abs = 0.0;
    let mut sum_cos = 0.0;
    let mut n = 0usize;
    for h in parts {
        for w in h.windows(2) {
            let d = angle_between(w[0], w[1]);
            sum_abs += d.abs();
            sum_cos += d.cos();
            n += 1;
        }
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let c = (sum_cos / n as f64).min(0.999_999);
    let s = 2.0 / (q * (1.0 + c) / (1.0 - c)).sqrt();
    ((sum_abs / n as f64).to_degrees(), s)
}

/// The straightness of the stretches of `window_m` of the path
/// rediscretised at `q` (each stretch's length of the sum of its unit steps
/// over their number: 1 = straight on, near 0 for a stretch that turns
/// back on itself; stretches do not cross a teleport), as their median and
/// as the share of steps lying in a stretch at least [`th::STRAIGHT_RUN`]
/// straight. Both 1 when no whole stretch fits.
fn courses(parts: &[Vec<f64>], q: f64, window_m: f64) -> (f64, f64) {
    let k = (window_m / q).round().max(2.0) as usize;
    let mut all = Vec::new();
    let (mut on_line, mut total) = (0usize, 0usize);
    for h in parts {
        total += h.len();
        let mut covered = vec![false; h.len()];
        for (i, w) in h.windows(k).enumerate() {
            let (x, y) = w
                .iter()
                .fold((0.0, 0.0), |(x, y), a| (x + a.cos(), y + a.sin()));
            let straightness = (x * x + y * y).sqrt() / k as f64;
            if straightness >= th::STRAIGHT_RUN {
                covered[i..i + k].iter_mut().for_each(|c| *c = true);
            }
            all.push(straightness);
        }
        on_line += covered.iter().filter(|&&c| c).count();
    }
    let median = quantile(&mut all, 0.5).unwrap_or(1.0);
    let share = if total < k {
        1.0
    } else {
        on_line as f64 / total as f64
    };
    (median, share)
}

/// See [`Features::paced_straightness`]: `(median, stretches, walked_m)`. A stretch
/// is a run of consecutive steps (no signal gap or teleport inside) whose
/// fixes all carry a reported speed; its walked length is the trapezoid of
/// those speeds over time, a speed under [`th::PACED_MIN_MPS`] counting as
/// standing still (a still phone's Doppler noise is no walk). Stops found
/// from the positions are not left out: a mover that turns all the time
/// stays within a stop's radius for a minute while its phone reports a
/// walking pace, and that is the very thing measured here. Every fix
/// starts one stretch (they overlap; the median is over all of them).
fn paced(pts: &[Point], tele_at: &[i64], window_m: f64) -> (Option<f64>, usize, Option<f64>) {
    let step_ok =
        |i: usize| pts[i].dt_s > 0.0 && pts[i].dt_s <= th::GAP_S && !tele_at.contains(&pts[i].t_ms);
    let reported =
        |i: usize| step_ok(i) && pts[i].reported_mps.is_some() && pts[i - 1].reported_mps.is_some();
    let steps = (1..pts.len()).filter(|&i| step_ok(i)).count();
    let with_speed = (1..pts.len()).filter(|&i| reported(i)).count();
    if steps == 0 || (with_speed as f64) < th::PACED_MIN_REPORTED_SHARE * steps as f64 {
        return (None, 0, None);
    }
    let pace = |p: &Point| p.reported_mps.filter(|&v| v >= th::PACED_MIN_MPS);
    // Metres walked in the step into fix `i`.
    let walk = |i: usize| {
        (pace(&pts[i - 1]).unwrap_or(0.0) + pace(&pts[i]).unwrap_or(0.0)) / 2.0 * pts[i].dt_s
    };
    let walked_m: f64 = (1..pts.len()).filter(|&i| reported(i)).map(walk).sum();
    let mut ratios = Vec::new();
    for a in 0..pts.len() {
        let mut walked = 0.0;
        let mut b = a + 1;
        while b < pts.len() && walked < window_m && reported(b) {
            walked += walk(b);
            b += 1;
        }
        if walked >= window_m {
            let (p, q) = (pts[a], pts[b - 1]);
            ratios.push((dist((p.x, p.y), (q.x, q.y)) / walked).min(1.0));
        }
    }
    let n = ratios.len();
    if n < th::PACED_MIN_STRETCHES {
        return (None, n, None);
    }
    (quantile(&mut ratios, 0.5), n, Some(walked_m))
}

/// Median distance of each moving fix from the chord of its two neighbours.
fn jitter(pts: &[Point], moving: &[usize]) -> f64 {
    let mut d: Vec<f64> = moving
        .windows(2)
        .filter(|w| w[1] == w[0] + 1 && pts[w[0]].step_m > 1.0 && pts[w[1]].step_m > 1.0)
        .map(|w| {
            let (a, b, c) = (pts[w[0] - 1], pts[w[0]], pts[w[1]]);
            let (dx, dy) = (c.x - a.x, c.y - a.y);
            let len = (dx * dx + dy * dy).sqrt();
            if len == 0.0 {
                dist((a.x, a.y), (b.x, b.y))
            } else {
                ((b.x - a.x) * dy - (b.y - a.y) * dx).abs() / len
            }
        })
        .collect();
    quantile(&mut d, 0.5).unwrap_or(0.0)
}

/// Counts short fast runs between slow stretches: steps faster than
/// [`th::BURST_MPS`] lasting at most [`th::BURST_MAX_S`], covering more than
/// the GPS noise floor, with slow or stopped steps on both sides.
fn bursts(
    pts: &[Point],
    moving: &[usize],
    in_stop: &[Option<usize>],
    acc_med: f64,
) -> Vec<(usize, usize, f64)> {
    let is_moving = {
        let mut v = vec![false; pts.len()];
        for &i in moving {
            v[i] = true;
        }
        v
    };
    let slow = |i: usize| -> bool {
        in_stop[i].is_some() || (is_moving[i] && pts[i].speed() < th::SLOW_MPS)
    };
    let mut out = Vec::new();
    let mut i = 1;
    while i < pts.len() {
        if !(is_moving[i] && pts[i].speed() > th::BURST_MPS) {
            i += 1;
            continue;
        }
        let start = i;
        while i < pts.len() && is_moving[i] && pts[i].speed() > th::BURST_MPS {
            i += 1;
        }
        let end = i; // exclusive
        let secs: f64 = pts[start..end].iter().map(|p| p.dt_s).sum();
        let net = dist(
            (pts[start - 1].x, pts[start - 1].y),
            (pts[end - 1].x, pts[end - 1].y),
        );
        let before_slow = start >= 2 && slow(start - 1);
        let after_slow = end < pts.len() && slow(end);
        let speed = net / secs.max(1e-9);
        if secs <= th::BURST_MAX_S
            && net >= th::burst_min_m(acc_med)
            && speed <= th::BURST_MAX_MPS
            && before_slow
            && after_slow
        {
            out.push((start - 1, end - 1, speed));
        }
    }
    out
}

/// The most visited spot (20 m grid, 3x3 neighbourhood), and how often the
/// track came back within reach of it after going well away.
fn home(pts: &[Point]) -> Option<(f64, f64)> {
    if pts.len() < 3 {
        return None;
    }
    use std::collections::HashMap;
    let cell = |p: &Point| ((p.x / 20.0).floor() as i64, (p.y / 20.0).floor() as i64);
    let mut counts: HashMap<(i64, i64), u32> = HashMap::new();
    for p in pts {
        *counts.entry(cell(p)).or_default() += 1;
    }
    let best = counts
        .keys()
        .map(|&(cx, cy)| {
            let mut s = 0;
            for dx in -1..=1 {
                for dy in -1..=1 {
                    s += counts.get(&(cx + dx, cy + dy)).copied().unwrap_or(0);
                }
            }
            (s, (cx, cy))
        })
        .max();
    let (_, (hx, hy)) = best?;
    let near: Vec<&Point> = pts
        .iter()
        .filter(|p| {
            let (cx, cy) = cell(p);
            (cx - hx).abs() <= 1 && (cy - hy).abs() <= 1
        })
        .collect();
    Some((
        near.iter().map(|p| p.x).sum::<f64>() / near.len() as f64,
        near.iter().map(|p| p.y).sum::<f64>() / near.len() as f64,
    ))
}

fn home_returns(pts: &[Point], home: (f64, f64), acc_med: f64) -> usize {
    let (r_in, r_out) = th::home_radii(acc_med);
    let mut away = false;
    let mut returns = 0;
    for p in pts {
        let d = dist(home, (p.x, p.y));
        if away && d < r_in {
            returns += 1;
            away = false;
        } else if !away && d > r_out {
            away = true;
        }
    }
    returns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{to_points, Fix, Projection};

    /// Fixes every `step_s` seconds moving east at `mps`, from (lat, lon);
    /// `wrong` maps a fix index to a displaced position (metres north).
    fn track(mps: f64, step_s: i64, n: usize, wrong: impl Fn(usize) -> f64) -> Vec<Point> {
        let fixes: Vec<Fix> = (0..n)
            .map(|i| {
                let east_m = mps * (i as i64 * step_s) as f64;
                Fix {
                    t_ms: 1_790_000_000_000 + i as i64 * step_s * 1000,
                    lat: 39.99 + wrong(i) / 111_195.0,
                    lon: 116.33 + east_m / (111_195.0 * 39.99f64.to_radians().cos()),
                    accuracy_m: None,
                    mock: false,
                    speed_mps: None,
                }
            })
            .collect();
        to_points(&fixes, Projection::near(39.99))
    }

    #[test]
    fn a_phone_catching_up_is_no_teleport_a_jump_that_stays_is() {
        // A car at 15 m/s; for 3 minutes the phone reported places drifting
        // 6 km north (cell fall-back, 60 m/s at most), then jumped back to
        // where the car really was.
        let car = track(15.0, 10, 60, |i| {
            if (20..38).contains(&i) {
                (600.0 * (i - 19) as f64).min(6_000.0)
            } else {
                0.0
            }
        });
        assert!(
            find_teleports(&car).is_empty(),
            "{:?}",
            find_teleports(&car)
        );
        // A walker at 1.3 m/s who jumps 5 km north and carries on there.
        let walker = track(1.3, 5, 300, |i| if i >= 150 { 5_000.0 } else { 0.0 });
        assert_eq!(find_teleports(&walker).len(), 1);
        // A walker flipping to a place 5 km away for 5 minutes and back: the
        // jump there stays a teleport (nothing before it was near).
        let flip = track(1.3, 5, 300, |i| {
            if (150..210).contains(&i) {
                5_000.0
            } else {
                0.0
            }
        });
        assert_eq!(find_teleports(&flip).len(), 1);
        // A walker who jumps 3.5 km and carries on there. The landing is
        // within reach of where the walker was 15 minutes before at the
        // walker's own pace plus a cell position's error (4.2 km), but the
        // fixes in between were walked, at pace, with no jump: nothing was
        // wrong that the jump could be catching up with.
        let walked = track(1.3, 10, 300, |i| if i >= 150 { 3_500.0 } else { 0.0 });
        assert_eq!(find_teleports(&walked).len(), 1);
    }
}
