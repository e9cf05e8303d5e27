//! Local planar geometry (metres around an origin) and route polylines.

use rand::Rng;
use rand_distr::{Distribution, Normal};

pub(crate) const M_PER_DEG: f64 = 111_320.0;

/// Moves `(lat, lon)` by `dx` metres east and `dy` metres north.
pub(crate) fn offset(lat: f64, lon: f64, dx: f64, dy: f64) -> (f64, f64) {
    (
        lat + dy / M_PER_DEG,
        lon + dx / (M_PER_DEG * lat.to_radians().cos()),
    )
}

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * a.sqrt().asin()
}

pub(crate) fn gauss<R: Rng + ?Sized>(rng: &mut R, sd: f64) -> f64 {
    if sd <= 0.0 {
        return 0.0;
    }
    Normal::new(0.0, sd).map(|n| n.sample(rng)).unwrap_or(0.0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    River,
    Forest,
    Road,
}

/// A patrol route: a polyline in local metres around `origin`.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub id: String,
    #[allow(dead_code)]
    pub kind: RouteKind,
    pub origin: (f64, f64),
    pub pts: Vec<(f64, f64)>,
    pub cum: Vec<f64>,
    pub cell_net: u32,
}

impl Route {
    pub(crate) fn generate<R: Rng + ?Sized>(
        rng: &mut R,
        id: String,
        kind: RouteKind,
        origin: (f64, f64),
        cell_net: u32,
    ) -> Route {
        let mut pts = vec![(0.0, 0.0)];
        let mut h: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let h0 = h;
        let (mut x, mut y) = (0.0f64, 0.0f64);
        match kind {
            RouteKind::River => {
                let len = rng.random_range(4000.0..8000.0);
                let n = (len / 50.0) as usize;
                let mut turn = 0.0;
                for _ in 0..n {
                    turn = 0.85 * turn + gauss(rng, 0.06);
                    h += turn + 0.05 * (h0 - h);
                    x += 50.0 * h.cos();
                    y += 50.0 * h.sin();
                    pts.push((x, y));
                }
            }
            RouteKind::Forest => {
                let len = rng.random_range(3000.0..6000.0);
                let n = (len / 20.0) as usize;
                for _ in 0..n {
                    h += gauss(rng, 0.25) + 0.08 * (h0 - h);
                    x += 20.0 * h.cos();
                    y += 20.0 * h.sin();
                    pts.push((x, y));
                }
            }
            RouteKind::Road => {
                let mut len = rng.random_range(8000.0..14000.0);
                while len > 0.0 {
                    let seg: f64 = rng.random_range(200.0..800.0);
                    x += seg * h.cos();
                    y += seg * h.sin();
                    pts.push((x, y));
                    len -= seg;
                    let r: f64 = rng.random();
                    // Prefer turning back toward the original heading so the road does not coil.
                    let back = if (h - h0).sin() > 0.0 { -1.0 } else { 1.0 };
                    if r < 0.35 {
                        h += back * std::f64::consts::FRAC_PI_2;
                    } else if r < 0.45 {
                        h -= back * std::f64::consts::FRAC_PI_2;
                    } else {
                        h += gauss(rng, 0.05);
                    }
                }
            }
        }
        let mut cum = Vec::with_capacity(pts.len());
        let mut acc = 0.0;
        cum.push(0.0);
        for w in pts.windows(2) {
            acc += ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt();
            cum.push(acc);
        }
        Route {
            id,
            kind,
            origin,
            pts,
            cum,
            cell_net,
        }
    }

    pub(crate) fn length(&self) -> f64 {
        *self.cum.last().unwrap_or(&0.0)
    }

    /// Point at arc length `s` (clamped) and the unit normal there.
    pub(crate) fn at(&self, s: f64) -> ((f64, f64), (f64, f64)) {
        let s = s.clamp(0.0, self.length());
        let i = match self.cum.binary_search_by(|c| c.total_cmp(&s)) {
            Ok(i) => i.min(self.pts.len().saturating_sub(2)),
            Err(i) => i.saturating_sub(1).min(self.pts.len().saturating_sub(2)),
        };
        let (a, b) = (self.pts[i], self.pts[i + 1]);
        let seg = (self.cum[i + 1] - self.cum[i]).max(1e-9);
        let f = (s - self.cum[i]) / seg;
        let (dx, dy) = ((b.0 - a.0) / seg, (b.1 - a.1) / seg);
        ((a.0 + f * (b.0 - a.0), a.1 + f * (b.1 - a.1)), (-dy, dx))
    }

    /// Index of the vertex closest to arc length `s`, and its distance along.
    pub(crate) fn vertex_distance(&self, s: f64) -> f64 {
        let i = match self.cum.binary_search_by(|c| c.total_cmp(&s)) {
            Ok(i) | Err(i) => i,
        };
        let mut d = f64::INFINITY;
        for j in [i.saturating_sub(1), i.min(self.cum.len() - 1)] {
            d = d.min((self.cum[j] - s).abs());
        }
        d
    }

    pub(crate) fn to_latlon(&self, x: f64, y: f64) -> (f64, f64) {
        offset(self.origin.0, self.origin.1, x, y)
    }
}
