//! Replay search: is a patrol a copy of an earlier one?
//!
//! Tracks are indexed by the 50 m grid cells they pass through. A later
//! patrol sharing most of its cells with an earlier one is a *candidate*;
//! only candidates are compared point by point: first the constant offset
//! between them is estimated (median of the differences to the nearest
//! point of the earlier track's path), then a monotone alignment (dynamic
//! time warping onto the earlier path's segments, which may skip some)
//! measures how far the offset-corrected fixes lie from the earlier path.
//! Measuring to the path, not to its fixes, makes resampling irrelevant: a
//! copy resampled at another fix interval (points interpolated along the
//! copied path) lies within centimetres of it; two honest walks of one
//! route lie metres apart because their GPS errors are independent.

use foldhash::{HashMap, HashMapExt};

use serde::Serialize;

use crate::point::{dist, quantile};
use crate::thresholds as th;

/// One track as the replay search sees it (points in a shared projection).
#[derive(Debug, Clone, Copy)]
pub struct ReplayTrack<'a> {
    pub start_ms: i64,
    pub xy: &'a [(f64, f64)],
    pub path_m: f64,
    /// The track's median reported accuracy, metres (see
    /// [`th::replay_residual_m`]).
    pub accuracy_m: Option<f64>,
}

/// A patrol found to replay an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReplayMatch {
    /// Index of the replaying track.
    pub track: usize,
    /// Index of the earlier track it copies.
    pub source: usize,
    /// Mean distance of the aligned fixes after removing the offset, metres.
    pub residual_m: f64,
    /// Share of the track's fixes within [`th::REPLAY_RESIDUAL_M`] of the source.
    pub cover: f64,
    /// The constant offset between the two, metres.
    pub offset_m: f64,
    /// Share of the track's grid cells the source also visits.
    pub shared_cells: f64,
}

/// Statistics of one search, for telemetry and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ReplayStats {
    pub indexed: usize,
    pub candidates: usize,
    pub matches: usize,
}

fn cells(xy: &[(f64, f64)], size: f64) -> Vec<(i64, i64)> {
    let mut c: Vec<(i64, i64)> = xy
        .iter()
        .map(|&(x, y)| ((x / size).floor() as i64, (y / size).floor() as i64))
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// Finds, for every track, the earlier track it replays, if any.
pub fn find_replays(tracks: &[ReplayTrack<'_>]) -> (Vec<ReplayMatch>, ReplayStats) {
    find_replays_of(tracks, |_| true)
}

/// Finds, for every track `i` with `is_target(i)`, the earlier track (any
/// of `tracks`) it replays, if any. A target's match depends only on the
/// target and the tracks before it, so it is the one [`find_replays`]
/// gives; the others are only sources (a window judges the patrols ending
/// in it against the whole week's).
pub fn find_replays_of(
    tracks: &[ReplayTrack<'_>],
    is_target: impl Fn(usize) -> bool,
) -> (Vec<ReplayMatch>, ReplayStats) {
    let mut stats = ReplayStats::default();
    let eligible = |t: &ReplayTrack<'_>| t.path_m >= th::REPLAY_MIN_PATH_M && t.xy.len() >= 10;
    let track_cells: Vec<Vec<(i64, i64)>> = tracks
        .iter()
        .map(|t| {
            if eligible(t) {
                cells(t.xy, th::REPLAY_CELL_M)
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut index: HashMap<(i64, i64), Vec<u32>> = HashMap::new();
    for (i, cs) in track_cells.iter().enumerate() {
        if !cs.is_empty() {
            stats.indexed += 1;
        }
        for c in cs {
            index.entry(*c).or_default().push(i as u32);
        }
    }
    let mut out = Vec::new();
    let mut shared: HashMap<u32, u32> = HashMap::new();
    for (i, cs) in track_cells.iter().enumerate() {
        if cs.is_empty() || !is_target(i) {
            continue;
        }
        shared.clear();
        for c in cs {
            for &j in &index[c] {
                if j as usize != i && tracks[j as usize].start_ms < tracks[i].start_ms {
                    *shared.entry(j).or_default() += 1;
                }
            }
        }
        let mut cands: Vec<(u32, u32)> = shared
            .iter()
            .filter(|(_, &s)| s as f64 >= th::REPLAY_MIN_SHARED * cs.len() as f64)
            .map(|(&j, &s)| (j, s))
            .collect();
        cands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut best: Option<ReplayMatch> = None;
        for (j, s) in cands {
            stats.candidates += 1;
            if let Some(m) = compare(tracks[i].xy, tracks[j as usize].xy) {
                if m.0 <= th::replay_residual_m(tracks[i].accuracy_m)
                    && m.1 >= th::REPLAY_MIN_COVER
                    && best.is_none_or(|b| m.0 < b.residual_m)
                {
                    best = Some(ReplayMatch {
                        track: i,
                        source: j as usize,
                        residual_m: m.0,
                        cover: m.1,
                        offset_m: m.2,
                        shared_cells: s as f64 / cs.len() as f64,
                    });
                }
            }
        }
        if let Some(b) = best {
            stats.matches += 1;
            out.push(b);
        }
    }
    (out, stats)
}

/// The point of segment `a`-`b` nearest to `p`, and its distance.
fn on_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> (f64, (f64, f64)) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let s = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let q = (a.0 + s * dx, a.1 + s * dy);
    (dist(p, q), q)
}

/// The earlier track's fixes, or its path as a polyline, indexed by the
/// grid cells each fix (or each segment's bounding box) touches, for
/// nearest-point lookups within one cell's reach. A replay resampled at
/// another fix interval (points interpolated along the copied path) lies on
/// the path, not on its fixes: two honest walks are metres apart either way.
struct Near<'a> {
    size: f64,
    cells: HashMap<(i64, i64), Vec<u32>>,
    xy: &'a [(f64, f64)],
    /// Pieces are segments `xy[i]`-`xy[i + 1]`, not single fixes.
    segments: bool,
}

impl<'a> Near<'a> {
    /// The fixes of `xy`.
    fn fixes(xy: &'a [(f64, f64)], size: f64) -> Self {
        Near::new(xy, size, false)
    }

    /// The path through `xy`.
    fn path(xy: &'a [(f64, f64)], size: f64) -> Self {
        Near::new(xy, size, true)
    }

    fn new(xy: &'a [(f64, f64)], size: f64, segments: bool) -> Self {
        let mut near = Near {
            size,
            cells: HashMap::new(),
            xy,
            segments,
        };
        let cell = |v: f64| (v / size).floor() as i64;
        for i in 0..xy.len() {
            let (a, b) = near.piece(i);
            for cx in cell(a.0.min(b.0))..=cell(a.0.max(b.0)) {
                for cy in cell(a.1.min(b.1))..=cell(a.1.max(b.1)) {
                    near.cells.entry((cx, cy)).or_default().push(i as u32);
                }
            }
        }
        near
    }

    /// Piece `i`: a fix (both ends the same), or the segment from fix `i`
    /// to the next (a single point for the last fix).
    fn piece(&self, i: usize) -> ((f64, f64), (f64, f64)) {
        let j = if self.segments {
            (i + 1).min(self.xy.len() - 1)
        } else {
            i
        };
        (self.xy[i], self.xy[j])
    }

    /// The nearest point within about one cell, if any.
    fn nearest(&self, p: (f64, f64)) -> Option<(f64, f64)> {
        let (cx, cy) = (
            (p.0 / self.size).floor() as i64,
            (p.1 / self.size).floor() as i64,
        );
        let mut best: Option<(f64, (f64, f64))> = None;
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(v) = self.cells.get(&(cx + dx, cy + dy)) {
                    for &k in v {
                        let (a, b) = self.piece(k as usize);
                        let (d, q) = on_segment(p, a, b);
                        if best.is_none_or(|b| d < b.0) {
                            best = Some((d, q));
                        }
                    }
                }
            }
        }
        best.map(|b| b.1)
    }
}

/// Compares track `a` (later) with `b` (earlier): returns the mean aligned
/// residual after offset removal, the share of `a`'s fixes matching within
/// [`th::REPLAY_RESIDUAL_M`], and the offset length. Distances are to `b`'s
/// path (its segments), so resampling does not matter.
pub fn compare(a: &[(f64, f64)], b: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    const MAX_A: usize = 300;
    // A starting shift further than this is no copy "shifted by metres".
    const MAX_START_M: f64 = 50.0;
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let stride = a.len().div_ceil(MAX_A).max(1);
    let a_s: Vec<(f64, f64)> = a.iter().step_by(stride).copied().collect();
    let path = Near::path(b, 30.0);
    // Offset: median of the differences to the nearest point, refined a few
    // times (iterative closest point), once against `b`'s fixes (exact for a
    // copy that kept some of the fixes) and once against its path (for a
    // copy interpolated between them; a shift along the path is ambiguous
    // there); the one that brings `a` closer to the path is kept.
    let icp = |nearest: &dyn Fn((f64, f64)) -> Option<(f64, f64)>,
               start: (f64, f64)|
     -> Option<(f64, f64)> {
        let mut off = start;
        for _ in 0..20 {
            let mut dx = Vec::with_capacity(a_s.len());
            let mut dy = Vec::with_capacity(a_s.len());
            for &p in &a_s {
                let p = (p.0 - off.0, p.1 - off.1);
                if let Some(q) = nearest(p) {
                    dx.push(p.0 - q.0);
                    dy.push(p.1 - q.1);
                }
            }
            if dx.len() < a_s.len() / 2 {
                return None;
            }
            let step = (quantile(&mut dx, 0.5)?, quantile(&mut dy, 0.5)?);
            off = (off.0 + step.0, off.1 + step.1);
            if step.0.abs() + step.1.abs() < 0.01 {
                break;
            }
        }
        Some(off)
    };
    let fixes = Near::fixes(b, 30.0);
    let spread = |off: (f64, f64)| -> f64 {
        a_s.iter()
            .map(|p| {
                let p = (p.0 - off.0, p.1 - off.1);
                path.nearest(p).map_or(f64::INFINITY, |q| dist(p, q))
            })
            .sum()
    };
    // Nearest points mislead when the shift is as large as the gap between
    // two legs of the route (an out-and-back walked on one path): ICP from
    // no shift then locks onto the other leg. So it also starts from the
    // shift of the first fixes and of the centroids, which a copy of the
    // whole patrol keeps whatever its fix interval or clock.
    let centroid = |v: &[(f64, f64)]| {
        let n = v.len().max(1) as f64;
        (
            v.iter().map(|p| p.0).sum::<f64>() / n,
            v.iter().map(|p| p.1).sum::<f64>() / n,
        )
    };
    let (ca, cb) = (centroid(a), centroid(b));
    let starts = [
        (0.0, 0.0),
        (a[0].0 - b[0].0, a[0].1 - b[0].1),
        (ca.0 - cb.0, ca.1 - cb.1),
    ];
    let off = starts
        .iter()
        .filter(|s| s.0.hypot(s.1) <= MAX_START_M)
        .flat_map(|&s| [icp(&|p| fixes.nearest(p), s), icp(&|p| path.nearest(p), s)])
        .flatten()
        .min_by(|x, y| spread(*x).total_cmp(&spread(*y)))?;
    let shifted: Vec<(f64, f64)> = a_s.iter().map(|p| (p.0 - off.0, p.1 - off.1)).collect();
    let close = shifted
        .iter()
        .filter(|&&p| {
            path.nearest(p)
                .is_some_and(|q| dist(p, q) <= th::REPLAY_RESIDUAL_M)
        })
        .count();
    let cover = close as f64 / shifted.len() as f64;
    if cover < th::REPLAY_MIN_COVER {
        return Some((f64::INFINITY, cover, dist(off, (0.0, 0.0))));
    }
    Some((
        monotone_alignment(&shifted, b),
        cover,
        dist(off, (0.0, 0.0)),
    ))
}

/// Mean distance of the best monotone alignment of every point of `a` to a
/// segment of `b`'s path (each `a` point to a segment at or after the
/// previous one's).
pub fn monotone_alignment(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::INFINITY;
    }
    let segs: Vec<((f64, f64), (f64, f64))> = if b.len() == 1 {
        vec![(b[0], b[0])]
    } else {
        b.windows(2).map(|w| (w[0], w[1])).collect()
    };
    let cost = |p: (f64, f64), s: &((f64, f64), (f64, f64))| on_segment(p, s.0, s.1).0;
    let mut prev: Vec<f64> = segs.iter().map(|s| cost(a[0], s)).collect();
    let mut cur = vec![0.0; segs.len()];
    for &p in &a[1..] {
        let mut run_min = f64::INFINITY;
        for (j, s) in segs.iter().enumerate() {
            run_min = run_min.min(prev[j]);
            cur[j] = run_min + cost(p, s);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.iter().copied().fold(f64::INFINITY, f64::min) / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(seed: u64, n: usize, noise: f64) -> Vec<(f64, f64)> {
        // A deterministic wiggly path with pseudo-random noise.
        let mut s = seed;
        let mut r = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        (0..n)
            .map(|i| {
                let t = i as f64 * 7.0;
                (t + noise * r(), 40.0 * (t / 200.0).sin() + noise * r())
            })
            .collect()
    }

    #[test]
    fn copy_with_offset_and_resampling_is_found() {
        let orig = walk(1, 400, 8.0);
        let copy: Vec<(f64, f64)> = orig
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 2)
            .map(|(_, p)| (p.0 + 3.0, p.1 - 2.0))
            .collect();
        let tracks = [
            ReplayTrack {
                start_ms: 0,
                xy: &orig,
                path_m: 2800.0,
                accuracy_m: None,
            },
            ReplayTrack {
                start_ms: 86_400_000,
                xy: &copy,
                path_m: 2800.0,
                accuracy_m: None,
            },
        ];
        let (m, stats) = find_replays(&tracks);
        assert_eq!(m.len(), 1, "{stats:?}");
        assert_eq!((m[0].track, m[0].source), (1, 0));
        // Measured to the path, a shift along the path is not told from
        // the copy starting a little later: the offset is found up to that.
        assert!(m[0].residual_m < 0.1, "{:?}", m[0]);
        assert!(m[0].offset_m <= 13f64.sqrt() + 0.1, "{:?}", m[0]);
    }

    /// A copy re-sampled along the path at another interval (every 11 m
    /// instead of every ~7 m: no copied point is on a source fix), shifted.
    #[test]
    fn copy_interpolated_at_another_interval_is_found() {
        let orig = walk(3, 400, 8.0);
        let mut copy = Vec::new();
        let (mut carry, mut k) = (0.0, 1);
        let mut c = orig[0];
        while k < orig.len() {
            let seg = dist(c, orig[k]);
            if carry + seg < 11.0 {
                carry += seg;
                c = orig[k];
                k += 1;
                continue;
            }
            let s = (11.0 - carry) / seg;
            c = (c.0 + s * (orig[k].0 - c.0), c.1 + s * (orig[k].1 - c.1));
            copy.push((c.0 - 4.0, c.1 + 1.5));
            carry = 0.0;
        }
        let tracks = [
            ReplayTrack {
                start_ms: 0,
                xy: &orig,
                path_m: 2800.0,
                accuracy_m: None,
            },
            ReplayTrack {
                start_ms: 86_400_000,
                xy: &copy,
                path_m: 2800.0,
                accuracy_m: None,
            },
        ];
        let (m, stats) = find_replays(&tracks);
        assert_eq!(m.len(), 1, "{stats:?}");
        assert!(m[0].residual_m < 0.1, "{:?}", m[0]);
    }

    /// A simulated honest walk out and back along one path (the two legs
    /// 2-6 m apart), copied 7.4 m off: from no shift, nearest points pair
    /// much of the copy with the wrong leg and the shift stops at about 5 m
    /// in the wrong direction. Starting from the first fixes' shift finds it.
    #[test]
    fn copy_shifted_across_an_out_and_back_is_found() {
        let orig: Vec<(f64, f64)> =
            serde_json::from_str(include_str!("testdata/walk-out-and-back.json")).unwrap();
        let copy: Vec<(f64, f64)> = orig.iter().map(|p| (p.0 - 7.05, p.1 + 2.22)).collect();
        let tracks = [
            ReplayTrack {
                start_ms: 0,
                xy: &orig,
                path_m: 2100.0,
                accuracy_m: None,
            },
            ReplayTrack {
                start_ms: 86_400_000,
                xy: &copy,
                path_m: 2100.0,
                accuracy_m: None,
            },
        ];
        let (m, stats) = find_replays(&tracks);
        assert_eq!(m.len(), 1, "{stats:?}");
        assert!(m[0].residual_m < 0.1, "{:?}", m[0]);
        assert!((m[0].offset_m - 7.39).abs() < 0.2, "{:?}", m[0]);
    }

    #[test]
    fn independent_walks_of_one_route_are_not_replays() {
        let a = walk(1, 400, 8.0);
        let b = walk(2, 400, 8.0);
        let tracks = [
            ReplayTrack {
                start_ms: 0,
                xy: &a,
                path_m: 2800.0,
                accuracy_m: None,
            },
            ReplayTrack {
                start_ms: 86_400_000,
                xy: &b,
                path_m: 2800.0,
                accuracy_m: None,
            },
        ];
        let (m, stats) = find_replays(&tracks);
        assert!(m.is_empty());
        assert_eq!(
            stats.candidates, 1,
            "same route: a candidate, rejected on comparison"
        );
    }

    #[test]
    fn two_drives_of_one_road_with_5_m_phones_are_not_replays() {
        // Two independent recordings held to one line (a road), each fix a
        // metre or two off: closer than 2 m to each other on average, as
        // two honest cars of drawn worlds were. With the phones saying
        // 5 m, that is GPS error, not a copy (a copy is centimetres off).
        let a = walk(1, 400, 3.6);
        let b = walk(2, 400, 3.6);
        let track = |xy, start_ms, accuracy_m| ReplayTrack {
            start_ms,
            xy,
            path_m: 2800.0,
            accuracy_m,
        };
        let (m, _) = find_replays(&[track(&a, 0, None), track(&b, 86_400_000, None)]);
        assert_eq!(
            m.len(),
            1,
            "without a reported accuracy the 2 m bound holds"
        );
        let r = m[0].residual_m;
        assert!(r > th::replay_residual_m(Some(5.0)) && r < 2.0, "{r}");
        let (m, _) = find_replays(&[track(&a, 0, Some(5.0)), track(&b, 86_400_000, Some(5.0))]);
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(th::replay_residual_m(Some(1.0)), th::REPLAY_RESIDUAL_MIN_M);
        assert_eq!(th::replay_residual_m(Some(30.0)), th::REPLAY_RESIDUAL_M);
    }

    #[test]
    fn alignment_is_monotone() {
        // A path walked backwards cannot align onto it in order: the best
        // it can do is pile every point onto the middle (about 5 m away on
        // average over 20 m).
        let b: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 0.0)).collect();
        let fwd: Vec<(f64, f64)> = b.clone();
        let rev: Vec<(f64, f64)> = b.iter().rev().copied().collect();
        assert_eq!(monotone_alignment(&fwd, &b), 0.0);
        assert!(monotone_alignment(&rev, &b) > 4.0);
    }
}
