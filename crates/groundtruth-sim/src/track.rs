//! Patrol kinematics: honest tracks (walk, bike, car, boat, poor GPS) and the
//! non-human ones (dog, mock straight lines, teleports, replays).
//!
//! Movement is simulated second by second in local metres; fixes are sampled
//! from it at the phone's fix interval with correlated GPS error.

use rand::Rng;

use crate::event::Ms;
use crate::geo::{gauss, Route};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Walk,
    Bike,
    Car,
    Boat,
    /// Surveying a small site on foot (see [`site`]).
    Site,
    /// Walk, train ride, walk (see [`train`]).
    Train,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Walk => "walk",
            Mode::Bike => "bike",
            Mode::Car => "car",
            Mode::Boat => "boat",
            Mode::Site => "site",
            Mode::Train => "train",
        }
    }
}

/// One GPS fix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fix {
    pub t: Ms,
    pub lat: f64,
    pub lon: f64,
    pub acc: f32,
    pub speed: f32,
    pub mock: bool,
}

/// Phone properties that shape the fixes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phone {
    pub fix_interval_s: f64,
    pub reports_speed: bool,
    pub acc_base: f64,
    pub poor_gps: bool,
}

/// True positions, one per second, in local metres, plus true speed.
struct Path {
    xy: Vec<(f64, f64)>,
    v: Vec<f64>,
}

fn simulate_mode<R: Rng + ?Sized>(rng: &mut R, route: &Route, mode: Mode, dur_s: usize) -> Path {
    let (cruise, dev_sd, dev_ar, stop_rate, stop_rng, lat_sd, lat_ar): (
        f64,
        f64,
        f64,
        f64,
        (f64, f64),
        f64,
        f64,
    ) = match mode {
        Mode::Walk | Mode::Site | Mode::Train => (
            (1.35 + gauss(rng, 0.12)).clamp(1.05, 1.65),
            0.15,
            0.95,
            1.0 / 240.0,
            (10.0, 90.0),
            4.0,
            0.98,
        ),
        Mode::Bike => (
            (4.0 + gauss(rng, 0.5)).clamp(3.0, 5.0),
            0.4,
            0.95,
            1.0 / 420.0,
            (5.0, 40.0),
            1.5,
            0.98,
        ),
        Mode::Car => (
            (11.5 + gauss(rng, 1.5)).clamp(8.0, 15.0),
            1.0,
            0.97,
            0.0,
            (10.0, 60.0),
            0.8,
            0.99,
        ),
        Mode::Boat => (
            (3.2 + gauss(rng, 0.6)).clamp(2.0, 5.0),
            0.15,
            0.995,
            0.0,
            (0.0, 0.0),
            8.0,
            0.997,
        ),
    };
    let len = route.length();
    let mut s = rng.random_range(0.0..len.max(1.0));
    let mut dir = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let turn_at = if rng.random::<f64>() < 0.6 {
        dur_s / 2
    } else {
        usize::MAX
    };
    let mut dev = 0.0;
    let mut lat = gauss(rng, lat_sd * 0.5);
    let mut stop_left = 0.0f64;
    let mut v = 0.0f64;
    let mut last_vertex_stop = -1.0e9;
    let mut path = Path {
        xy: Vec::with_capacity(dur_s + 1),
        v: Vec::with_capacity(dur_s + 1),
    };
    for sec in 0..=dur_s {
        if sec == turn_at {
            dir = -dir;
            stop_left = stop_left.max(rng.random_range(5.0..40.0));
        }
        dev = dev_ar * dev + gauss(rng, dev_sd * (1.0 - dev_ar * dev_ar).sqrt());
        let mut target = (cruise + dev).max(0.0);
        if mode == Mode::Car {
            let dv = route.vertex_distance(s);
            if dv < 40.0 {
                target = target.min(4.0 + dv * 0.2);
                if dv < 8.0 && (s - last_vertex_stop).abs() > 50.0 {
                    last_vertex_stop = s;
                    if rng.random::<f64>() < 0.5 {
                        stop_left = rng.random_range(stop_rng.0..stop_rng.1);
                    }
                }
            }
        } else if stop_rate > 0.0 && stop_left <= 0.0 && rng.random::<f64>() < stop_rate {
            stop_left = rng.random_range(stop_rng.0..stop_rng.1);
        }
        if stop_left > 0.0 {
            stop_left -= 1.0;
            target = 0.0;
        }
        let max_acc = match mode {
            Mode::Walk | Mode::Site | Mode::Train => 1.0,
            Mode::Bike => 1.0,
            Mode::Car => 2.5,
            Mode::Boat => 0.3,
        };
        v += (target - v).clamp(-max_acc * 1.5, max_acc);
        v = v.max(0.0);
        s += dir * v;
        if s >= len {
            s = len - (s - len);
            dir = -1.0;
        } else if s <= 0.0 {
            s = -s;
            dir = 1.0;
        }
        if v > 0.05 {
            lat = lat_ar * lat + gauss(rng, lat_sd * (1.0 - lat_ar * lat_ar).sqrt());
        }
        let (p, n) = route.at(s);
        path.xy.push((p.0 + n.0 * lat, p.1 + n.1 * lat));
        path.v.push(v);
    }
    path
}

/// Samples fixes from a per-second path with GPS error.
fn sample<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    path: &Path,
    start: Ms,
    phone: Phone,
    gap_prob: f64,
) -> Vec<Fix> {
    let dur_ms = (path.xy.len() as i64 - 1) * 1000;
    let mut gaps: Vec<(Ms, Ms)> = Vec::new();
    if rng.random::<f64>() < gap_prob {
        for _ in 0..rng.random_range(1..=2) {
            let a = rng.random_range(0..dur_ms.max(1));
            gaps.push((a, a + rng.random_range(30_000..180_000)));
        }
    }
    let (err_ar, err_scale): (f64, f64) = if phone.poor_gps {
        (0.97, 0.35)
    } else {
        (0.9, 0.4)
    };
    let mut acc_dev = 0.0f64;
    let mut ex = 0.0f64;
    let mut ey = 0.0f64;
    let mut t: Ms = 0;
    let mut out = Vec::with_capacity((dur_ms / 5000) as usize + 2);
    let mut first = true;
    while t <= dur_ms {
        acc_dev = 0.85 * acc_dev + gauss(rng, 0.15);
        let acc = if phone.poor_gps {
            (phone.acc_base * acc_dev.exp()).clamp(50.0, 100.0)
        } else {
            (phone.acc_base * acc_dev.exp()).clamp(3.0, 30.0)
        };
        let sd = acc * err_scale * (1.0 - err_ar * err_ar).sqrt();
        if first {
            ex = gauss(rng, acc * err_scale);
            ey = gauss(rng, acc * err_scale);
            first = false;
        } else {
            ex = err_ar * ex + gauss(rng, sd);
            ey = err_ar * ey + gauss(rng, sd);
        }
        let in_gap = gaps.iter().any(|&(a, b)| t >= a && t < b);
        if !in_gap {
            let sec = (t / 1000) as usize;
            let f = (t % 1000) as f64 / 1000.0;
            let (a, b) = (path.xy[sec], path.xy[(sec + 1).min(path.xy.len() - 1)]);
            let x = a.0 + f * (b.0 - a.0) + ex;
            let y = a.1 + f * (b.1 - a.1) + ey;
            let (lat, lon) = route.to_latlon(x, y);
            let v = path.v[sec];
            let speed = if phone.reports_speed {
                (v + gauss(rng, 0.1 * v + 0.1)).max(0.0) as f32
            } else {
                f32::NAN
            };
            out.push(Fix {
                t: start + t,
                lat,
                lon,
                acc: ((acc * 10.0).round() / 10.0) as f32,
                speed,
                mock: false,
            });
        }
        let step = phone.fix_interval_s + gauss(rng, 0.25).clamp(-0.8, 0.8);
        t += (step * 1000.0).round().max(1000.0) as i64;
    }
    out
}

pub(crate) fn human<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    mode: Mode,
    start: Ms,
    phone: Phone,
    gap_prob: f64,
) -> Vec<Fix> {
    let minutes = match mode {
        Mode::Site => return site(rng, route, start, phone, gap_prob),
        Mode::Train => return train(rng, route, start, phone, gap_prob),
        Mode::Walk => rng.random_range(30..70),
        Mode::Bike => rng.random_range(30..60),
        Mode::Car => rng.random_range(20..45),
        Mode::Boat => rng.random_range(40..90),
    };
    let dur = minutes * 60 + rng.random_range(0..60);
    let path = simulate_mode(rng, route, mode, dur);
    sample(rng, route, &path, start, phone, gap_prob)
}

/// A phone on a dog: slow winding excursions from a home point, fast direct
/// returns, sprints, sniff stops. A `slow` dog never runs: it walks out and
/// back at a person's pace.
pub(crate) fn dog<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    start: Ms,
    phone: Phone,
    slow: bool,
) -> Vec<Fix> {
    let dur = rng.random_range(30..60) * 60usize;
    let (home, n) = route.at(rng.random_range(0.0..route.length().max(1.0)));
    let home = (home.0 + n.0 * 20.0, home.1 + n.1 * 20.0);
    #[derive(Clone, Copy)]
    enum St {
        Home(f64),
        Out { target: f64, left: f64 },
        Back(f64),
    }
    let mut st = St::Home(rng.random_range(5.0..40.0));
    let (mut x, mut y) = home;
    let mut h: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let mut v: f64;
    let mut gait_left = 0.0f64;
    let mut gait_v = 1.2f64;
    let mut path = Path {
        xy: Vec::with_capacity(dur + 1),
        v: Vec::with_capacity(dur + 1),
    };
    for _ in 0..=dur {
        let dist = ((x - home.0).powi(2) + (y - home.1).powi(2)).sqrt();
        st = match st {
            St::Home(left) => {
                v = if rng.random::<f64>() < 0.3 {
                    rng.random_range(0.1..0.5)
                } else {
                    0.0
                };
                h += gauss(rng, 1.0);
                if left <= 0.0 {
                    let target = if rng.random::<f64>() < 0.85 {
                        rng.random_range(40.0..150.0)
                    } else {
                        rng.random_range(150.0..260.0)
                    };
                    h = rng.random_range(0.0..std::f64::consts::TAU);
                    St::Out {
                        target,
                        left: rng.random_range(120.0..420.0),
                    }
                } else {
                    St::Home(left - 1.0)
                }
            }
            St::Out { target, left } => {
                h += gauss(rng, 0.55);
                if gait_left <= 0.0 {
                    let r: f64 = rng.random();
                    (gait_v, gait_left) = if r < 0.18 {
                        (0.0, rng.random_range(3.0..20.0)) // sniffing
                    } else if r < 0.25 {
                        (rng.random_range(4.0..10.0), rng.random_range(3.0..8.0))
                    // sprint
                    } else if r < 0.45 {
                        (2.4 + gauss(rng, 0.2), rng.random_range(5.0..20.0)) // trot
                    } else {
                        (rng.random_range(0.8..1.9), rng.random_range(5.0..25.0))
                        // walk
                    };
                }
                gait_left -= 1.0;
                v = if slow { gait_v.min(1.6) } else { gait_v };
                if dist >= target || left <= 0.0 {
                    St::Back(if slow {
                        rng.random_range(0.9..1.6)
                    } else if rng.random::<bool>() {
                        2.4 + gauss(rng, 0.2)
                    } else {
                        rng.random_range(4.0..8.0)
                    })
                } else {
                    St::Out {
                        target,
                        left: left - 1.0,
                    }
                }
            }
            St::Back(speed) => {
                h = (home.1 - y).atan2(home.0 - x) + gauss(rng, 0.08);
                v = speed.min(dist);
                if dist < 4.0 {
                    gait_left = 0.0;
                    St::Home(rng.random_range(10.0..90.0))
                } else {
                    St::Back(speed)
                }
            }
        };
        x += v * h.cos();
        y += v * h.sin();
        path.xy.push((x, y));
        path.v.push(v);
    }
    sample(rng, route, &path, start, phone, 0.1)
}

/// A mock-location app: straight segments between a few waypoints, constant
/// speed, constant accuracy, exact fix interval.
pub(crate) fn straight<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    start: Ms,
    mock: bool,
) -> Vec<Fix> {
    let len = route.length();
    let n_way = rng.random_range(3..7);
    let span = len * rng.random_range(0.3..0.6);
    let s0 = rng.random_range(0.0..(len - span).max(1.0));
    let mut way: Vec<(f64, f64)> = (0..n_way)
        .map(|i| route.at(s0 + span * i as f64 / (n_way - 1) as f64).0)
        .collect();
    let back: Vec<(f64, f64)> = way.iter().rev().skip(1).copied().collect();
    way.extend(back);
    let speed = [1.2, 1.3, 1.4, 1.5][rng.random_range(0..4)];
    let interval: Ms = [3000, 5000, 5000, 10000][rng.random_range(0..4)];
    let acc = [3.0f32, 5.0, 10.0, 12.0][rng.random_range(0..4)];
    let start = start - start.rem_euclid(1000);
    let mut out = Vec::new();
    let mut t = 0.0f64; // seconds since start
    let step = interval as f64 / 1000.0;
    let mut next_fix = 0.0f64;
    for w in way.windows(2) {
        let (a, b) = (w[0], w[1]);
        let d = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let seg_t = d / speed;
        while next_fix <= t + seg_t {
            let f = if seg_t > 0.0 {
                (next_fix - t) / seg_t
            } else {
                0.0
            };
            let (lat, lon) = route.to_latlon(a.0 + f * (b.0 - a.0), a.1 + f * (b.1 - a.1));
            out.push(Fix {
                t: start + (next_fix * 1000.0).round() as Ms,
                lat,
                lon,
                acc,
                speed: speed as f32,
                mock,
            });
            next_fix += step;
        }
        t += seg_t;
    }
    out
}

/// An otherwise human track with jumps of kilometres between consecutive fixes.
pub(crate) fn teleport<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    start: Ms,
    phone: Phone,
) -> Vec<Fix> {
    let mut fixes = human(rng, route, Mode::Walk, start, phone, 0.0);
    let n = fixes.len();
    if n < 8 {
        return fixes;
    }
    let jumps = rng.random_range(1..=3);
    let mut cuts: Vec<usize> = (0..jumps).map(|_| rng.random_range(2..n - 2)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut off = (0.0, 0.0);
    let mut ci = 0;
    for (i, f) in fixes.iter_mut().enumerate() {
        while ci < cuts.len() && i >= cuts[ci] {
            let d = rng.random_range(2000.0..10000.0);
            let a: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            off = if off != (0.0, 0.0) && rng.random::<bool>() {
                (0.0, 0.0)
            } else {
                (d * a.cos(), d * a.sin())
            };
            ci += 1;
        }
        if off != (0.0, 0.0) {
            let (lat, lon) = crate::geo::offset(f.lat, f.lon, off.0, off.1);
            f.lat = lat;
            f.lon = lon;
        }
    }
    fixes
}

/// Replays `src` (an earlier honest patrol) starting at `start`: shifted a few
/// metres and possibly resampled. With `variants`, see [`replay_varied`].
pub(crate) fn replay<R: Rng + ?Sized>(
    rng: &mut R,
    src: &[Fix],
    start: Ms,
    variants: bool,
) -> Vec<Fix> {
    if variants {
        return replay_varied(rng, src, start);
    }
    let Some(first) = src.first() else {
        return Vec::new();
    };
    let d = rng.random_range(1.0..6.0);
    let a: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let keep_every = [1usize, 1, 2, 3][rng.random_range(0..4)];
    let mut out = Vec::with_capacity(src.len());
    for (i, f) in src.iter().enumerate() {
        if keep_every > 1 && i % keep_every == keep_every - 1 {
            continue;
        }
        let (lat, lon) = crate::geo::offset(f.lat, f.lon, d * a.cos(), d * a.sin());
        out.push(Fix {
            t: start + (f.t - first.t),
            lat,
            lon,
            ..*f
        });
    }
    out
}

/// A careful replay of `src`: shifted 1-10 m; half the time resampled at
/// another fix interval (2-15 s) by interpolating between the source's
/// fixes, half the time played 15% faster or slower.
fn replay_varied<R: Rng + ?Sized>(rng: &mut R, src: &[Fix], start: Ms) -> Vec<Fix> {
    let (Some(first), Some(last)) = (src.first(), src.last()) else {
        return Vec::new();
    };
    let d = rng.random_range(1.0..10.0);
    let a: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let scale = if rng.random::<bool>() {
        rng.random_range(0.85..1.15)
    } else {
        1.0
    };
    let resample = rng.random::<bool>().then(|| rng.random_range(2.0..15.0f64));
    let shifted = |lat: f64, lon: f64| crate::geo::offset(lat, lon, d * a.cos(), d * a.sin());
    let at = |rel_ms: f64| start + (rel_ms * scale).round() as Ms;
    let mut out = Vec::with_capacity(src.len());
    match resample {
        None => {
            for f in src {
                let (lat, lon) = shifted(f.lat, f.lon);
                out.push(Fix {
                    t: at((f.t - first.t) as f64),
                    lat,
                    lon,
                    ..*f
                });
            }
        }
        Some(step_s) => {
            let span = (last.t - first.t) as f64;
            let mut k = 0;
            let mut rel = 0.0f64;
            while rel <= span {
                let t = first.t as f64 + rel;
                while k + 1 < src.len() && (src[k + 1].t as f64) < t {
                    k += 1;
                }
                let (p, q) = (src[k], src[(k + 1).min(src.len() - 1)]);
                // Signal gaps of the source stay gaps.
                if q.t - p.t <= 60_000 {
                    let f = if q.t > p.t {
                        ((t - p.t as f64) / (q.t - p.t) as f64).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let (lat, lon) =
                        shifted(p.lat + f * (q.lat - p.lat), p.lon + f * (q.lon - p.lon));
                    out.push(Fix {
                        t: at(rel),
                        lat,
                        lon,
                        ..p
                    });
                }
                rel += (step_s + gauss(rng, 0.25).clamp(-0.8, 0.8)) * 1000.0;
            }
        }
    }
    out.dedup_by_key(|f| f.t);
    out
}

/// An honest worker surveying a small site (a plot, a plantation, a
/// building site) for 40-100 minutes: either transects back and forth
/// across it 10-30 m apart or visits to points scattered over it, at
/// 0.8-1.4 m/s, stopping to inspect (20 s to 4 min) at many of them.
fn site<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    start: Ms,
    phone: Phone,
    gap_prob: f64,
) -> Vec<Fix> {
    let dur = rng.random_range(40..100) * 60usize;
    let (c, _) = route.at(rng.random_range(0.0..route.length().max(1.0)));
    let (w, h) = (rng.random_range(80.0..250.0), rng.random_range(60.0..200.0));
    let theta: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let spacing = rng.random_range(10.0..30.0);
    let transects = rng.random::<bool>();
    let stop_prob = rng.random_range(0.2..0.6);
    let to_xy = |u: f64, v: f64| {
        let (u, v) = (u - w / 2.0, v - h / 2.0);
        (
            c.0 + u * theta.cos() - v * theta.sin(),
            c.1 + u * theta.sin() + v * theta.cos(),
        )
    };
    let mut line = 0usize;
    let mut side = false;
    let mut next = |rng: &mut R| -> (f64, f64) {
        if transects {
            let lines = (h / spacing).floor() as usize + 1;
            let v = (line % lines) as f64 * spacing;
            let u = if side { w } else { 0.0 };
            // Along the line, then step over to the next one.
            if side == line.is_multiple_of(2) {
                line += 1;
            } else {
                side = !side;
            }
            to_xy(u + gauss(rng, 2.0), v + gauss(rng, 2.0))
        } else {
            to_xy(rng.random_range(0.0..w), rng.random_range(0.0..h))
        }
    };
    let cruise: f64 = rng.random_range(0.8..1.4);
    let mut target = next(rng);
    let (mut x, mut y) = to_xy(0.0, 0.0);
    let mut v = 0.0f64;
    let mut dev = 0.0f64;
    let mut stop_left = 0.0f64;
    let mut path = Path {
        xy: Vec::with_capacity(dur + 1),
        v: Vec::with_capacity(dur + 1),
    };
    for _ in 0..=dur {
        let (dx, dy) = (target.0 - x, target.1 - y);
        let d = (dx * dx + dy * dy).sqrt();
        if stop_left > 0.0 {
            stop_left -= 1.0;
            v = 0.0;
        } else if d < 1.5 {
            if rng.random::<f64>() < stop_prob {
                stop_left = rng.random_range(20.0..240.0);
            }
            target = next(rng);
        } else {
            dev = 0.95 * dev + gauss(rng, 0.05);
            v = (v + 0.5).min((cruise + dev).clamp(0.5, 1.8)).min(d);
            x += v * dx / d;
            y += v * dy / d;
        }
        path.xy.push((x, y));
        path.v.push(v);
    }
    sample(rng, route, &path, start, phone, gap_prob)
}

/// An honest official whose patrol includes a train ride: 3-10 minutes'
/// walk to the station, 8-25 minutes on a train at 40-83 m/s (up to 300
/// km/h) on a gently curving line with one stop, the signal lost in
/// tunnels, then 5-15 minutes' walk.
fn train<R: Rng + ?Sized>(
    rng: &mut R,
    route: &Route,
    start: Ms,
    phone: Phone,
    gap_prob: f64,
) -> Vec<Fix> {
    let (p0, _) = route.at(rng.random_range(0.0..route.length().max(1.0)));
    let (mut x, mut y) = p0;
    let mut h: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let walk_a = rng.random_range(180..600usize);
    let ride = rng.random_range(480..1500usize);
    let walk_b = rng.random_range(300..900usize);
    let cruise: f64 = rng.random_range(40.0..83.0);
    let stop_at = walk_a + ride / 2;
    let mut path = Path {
        xy: Vec::with_capacity(walk_a + ride + walk_b + 1),
        v: Vec::with_capacity(walk_a + ride + walk_b + 1),
    };
    let mut v = 0.0f64;
    let mut turn = 0.0f64;
    for sec in 0..=(walk_a + ride + walk_b) {
        let on_train = sec >= walk_a && sec < walk_a + ride;
        let target = if on_train {
            // Brake for the stop and the end, a minute either side.
            let to_stop = (stop_at as f64 - sec as f64).abs();
            let to_end = (walk_a + ride - sec) as f64;
            let from_start = (sec - walk_a) as f64;
            if to_stop < 60.0 {
                0.0
            } else {
                cruise.min(0.6 * from_start.min(to_end).min(to_stop - 60.0).max(0.0))
            }
        } else {
            1.3 + gauss(rng, 0.1)
        };
        v += (target - v).clamp(-1.0, if on_train { 0.6 } else { 1.0 });
        v = v.max(0.0);
        if on_train {
            turn = 0.999 * turn + gauss(rng, 0.00003);
            h += turn;
        } else {
            h += gauss(rng, 0.05);
        }
        x += v * h.cos();
        y += v * h.sin();
        path.xy.push((x, y));
        path.v.push(v);
    }
    sample(rng, route, &path, start, phone, gap_prob.max(0.7))
}
