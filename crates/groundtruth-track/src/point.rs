//! Fixes, local projection and per-step kinematics.

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
const M_PER_DEG: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// One `track_point` of a patrol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    /// Event time, epoch milliseconds.
    pub t_ms: i64,
    pub lat: f64,
    pub lon: f64,
    /// Reported horizontal accuracy, metres.
    pub accuracy_m: Option<f64>,
    /// The OS said the fix came from a mock-location provider.
    pub mock: bool,
    /// Speed the device reported with the fix (`speed_mps`: from the
    /// satellites' Doppler shift, not from the positions), m/s.
    pub speed_mps: Option<f64>,
}

/// An equirectangular projection around a reference latitude: metres east
/// and north. Accurate to well under 1% over the tens of kilometres a patrol
/// spans, and comparable between tracks that share the reference.
#[derive(Debug, Clone, Copy)]
pub struct Projection {
    kx: f64,
}

impl Projection {
    /// A projection for tracks near `lat`. The reference is rounded to whole
    /// degrees so that tracks of one area share it (replay search compares
    /// coordinates across tracks).
    pub fn near(lat: f64) -> Projection {
        Projection {
            kx: M_PER_DEG * lat.round().to_radians().cos(),
        }
    }

    pub fn xy(&self, lat: f64, lon: f64) -> (f64, f64) {
        (lon * self.kx, lat * M_PER_DEG)
    }

    pub fn latlon(&self, x: f64, y: f64) -> (f64, f64) {
        (y / M_PER_DEG, x / self.kx)
    }
}

/// A fix in local metres with the step that led to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t_ms: i64,
    pub x: f64,
    pub y: f64,
    /// Seconds since the previous point (0 for the first).
    pub dt_s: f64,
    /// Metres from the previous point (0 for the first).
    pub step_m: f64,
    /// Reported accuracy of this fix, metres.
    pub accuracy_m: Option<f64>,
    /// Speed the device reported with this fix, m/s.
    pub reported_mps: Option<f64>,
}

impl Point {
    /// Implied speed of the step into this point, m/s.
    pub fn speed(&self) -> f64 {
        if self.dt_s > 0.0 {
            self.step_m / self.dt_s
        } else {
            0.0
        }
    }
}

pub(crate) fn dist(a: (f64, f64), b: (f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// Projects fixes (sorted by time, distinct times) and fills in the steps.
pub fn to_points(fixes: &[Fix], proj: Projection) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::with_capacity(fixes.len());
    for f in fixes {
        let (x, y) = proj.xy(f.lat, f.lon);
        let (dt_s, step_m) = match out.last() {
            Some(p) => ((f.t_ms - p.t_ms) as f64 / 1000.0, dist((p.x, p.y), (x, y))),
            None => (0.0, 0.0),
        };
        out.push(Point {
            t_ms: f.t_ms,
            x,
            y,
            dt_s,
            step_m,
            accuracy_m: f.accuracy_m,
            reported_mps: f.speed_mps.filter(|v| v.is_finite() && *v >= 0.0),
        });
    }
    out
}

/// Recomputes the step into `pts[i]` from `pts[i-1]`.
pub(crate) fn restep(pts: &mut [Point], i: usize) {
    if i == 0 {
        pts[0].dt_s = 0.0;
        pts[0].step_m = 0.0;
    } else if i < pts.len() {
        let (a, b) = (pts[i - 1], pts[i]);
        pts[i].dt_s = (b.t_ms - a.t_ms) as f64 / 1000.0;
        pts[i].step_m = dist((a.x, a.y), (b.x, b.y));
    }
}

/// Sorts fixes by time and keeps the first of any with the same time.
pub fn normalise(fixes: &mut Vec<Fix>) {
    fixes.sort_by(|a, b| a.t_ms.cmp(&b.t_ms).then(a.lat.total_cmp(&b.lat)));
    fixes.dedup_by_key(|f| f.t_ms);
}

/// Quantile of a slice (linear interpolation); `None` when empty.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

pub(crate) fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundtruth_sim::haversine_m;

    #[test]
    fn projection_agrees_with_haversine_locally() {
        let p = Projection::near(22.8);
        let a = p.xy(22.8167, 108.3211);
        let b = p.xy(22.8267, 108.3311);
        let planar = dist(a, b);
        let h = haversine_m(22.8167, 108.3211, 22.8267, 108.3311);
        assert!((planar - h).abs() / h < 0.005, "{planar} vs {h}");
        let (lat, lon) = p.latlon(a.0, a.1);
        assert!((lat - 22.8167).abs() < 1e-9 && (lon - 108.3211).abs() < 1e-9);
    }

    #[test]
    fn quantiles() {
        let mut v = vec![3.0, 1.0, 2.0, 4.0];
        assert_eq!(quantile(&mut v, 0.5), Some(2.5));
        assert_eq!(quantile(&mut v, 1.0), Some(4.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
