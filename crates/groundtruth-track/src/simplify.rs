//! The track's simplified geometry for the evidence (what the case page draws).

use serde_json::{json, Value};

use crate::point::{Point, Projection};

/// At most this many points go into the evidence.
const MAX_POINTS: usize = 300;

/// Douglas-Peucker keep-mask at tolerance `tol` metres.
fn keep(pts: &[Point], tol: f64) -> Vec<bool> {
    let n = pts.len();
    let mut k = vec![false; n];
    if n == 0 {
        return k;
    }
    k[0] = true;
    k[n - 1] = true;
    let mut stack = vec![(0usize, n - 1)];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (p, q) = (pts[a], pts[b]);
        let (dx, dy) = (q.x - p.x, q.y - p.y);
        let len = (dx * dx + dy * dy).sqrt();
        let mut best = (0.0, a);
        for (i, r) in pts.iter().enumerate().take(b).skip(a + 1) {
            let d = if len == 0.0 {
                ((r.x - p.x).powi(2) + (r.y - p.y).powi(2)).sqrt()
            } else {
                ((r.x - p.x) * dy - (r.y - p.y) * dx).abs() / len
            };
            if d > best.0 {
                best = (d, i);
            }
        }
        if best.0 > tol {
            k[best.1] = true;
            stack.push((a, best.1));
            stack.push((best.1, b));
        }
    }
    k
}

/// `{"points": [[lat, lon, seconds_from_start, speed_mps], ...], "tolerance_m": t}`
/// with at most [`MAX_POINTS`] points, simplified by Douglas-Peucker.
pub(crate) fn geometry(pts: &[Point], proj: Projection) -> Value {
    let mut tol = 5.0;
    let mut mask = keep(pts, tol);
    while mask.iter().filter(|&&b| b).count() > MAX_POINTS {
        tol *= 1.5;
        mask = keep(pts, tol);
    }
    let t0 = pts.first().map_or(0, |p| p.t_ms);
    let points: Vec<Value> = pts
        .iter()
        .zip(&mask)
        .filter(|(_, &k)| k)
        .map(|(p, _)| {
            let (lat, lon) = proj.latlon(p.x, p.y);
            json!([
                (lat * 1e6).round() / 1e6,
                (lon * 1e6).round() / 1e6,
                (p.t_ms - t0) / 1000,
                (p.speed() * 100.0).round() / 100.0
            ])
        })
        .collect();
    json!({"points": points, "tolerance_m": tol})
}
