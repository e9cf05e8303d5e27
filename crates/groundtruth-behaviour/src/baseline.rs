//! Robust baselines: what a group of peers (an app's accounts on weekdays,
//! say) normally does, so a detector asks "far above its peers?" instead of
//! comparing with a constant fitted to one data set.

/// Median and scaled median absolute deviation of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Robust {
    pub median: f64,
    /// MAD x 1.4826: the standard deviation for normal data, robust to the
    /// outliers a detector looks for.
    pub sigma: f64,
    pub n: usize,
}

impl Robust {
    /// The baseline of `xs` (non-finite values ignored). `None` when empty.
    pub fn of(xs: impl IntoIterator<Item = f64>) -> Option<Robust> {
        let mut v: Vec<f64> = xs.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let median = median_in_place(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        let mad = median_in_place(&mut dev);
        Some(Robust {
            median,
            sigma: 1.4826 * mad,
            n: v.len(),
        })
    }

    /// The value `k` robust standard deviations above the median, but never
    /// below `floor` (a sample with no spread would otherwise flag any
    /// value one above its median).
    pub fn upper(&self, k: f64, floor: f64) -> f64 {
        (self.median + k * self.sigma).max(floor)
    }
}

/// Days of peers a day's baseline looks back over (that day included).
pub const LOOKBACK_DAYS: i32 = 7;

/// For each day in `values` (day, value), the baseline of the values of
/// that day and the [`LOOKBACK_DAYS`] - 1 before it. Only the past and the
/// day itself count, so a day's verdict does not change when later days
/// arrive: a live pipeline can give it when the day closes and a batch run
/// gives the same.
pub fn trailing(values: &[(i32, f64)]) -> std::collections::BTreeMap<i32, Robust> {
    let days: std::collections::BTreeSet<i32> = values.iter().map(|v| v.0).collect();
    days.into_iter()
        .filter_map(|d| {
            Robust::of(
                values
                    .iter()
                    .filter(|v| v.0 <= d && v.0 > d - LOOKBACK_DAYS)
                    .map(|v| v.1),
            )
            .map(|r| (d, r))
        })
        .collect()
}

fn median_in_place(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn median_and_mad() {
        let r = Robust::of([1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(r.median, 3.0);
        assert!((r.sigma - 1.4826).abs() < 1e-9);
        assert_eq!(r.upper(5.0, 0.0), 3.0 + 5.0 * 1.4826);
        assert_eq!(r.upper(5.0, 50.0), 50.0);
        assert!(Robust::of([f64::NAN]).is_none());
    }

    #[test]
    fn trailing_baselines_ignore_later_days() {
        let mut v: Vec<(i32, f64)> = (0..10).map(|d| (d, 1.0)).collect();
        v.push((9, 1000.0));
        let t = trailing(&v);
        assert_eq!(t[&0].n, 1);
        assert_eq!(t[&6].n, 7);
        assert_eq!(t[&8].n, 7);
        // Day 9's outlier does not reach day 8.
        assert_eq!(t[&8].median, 1.0);
        assert_eq!(t[&9].n, 8);
    }

    proptest! {
        #[test]
        fn baseline_is_shift_equivariant_and_outlier_proof(
            xs in proptest::collection::vec(-1e6f64..1e6, 3..60),
            shift in -1e3f64..1e3,
        ) {
            let a = Robust::of(xs.iter().copied()).unwrap();
            let b = Robust::of(xs.iter().map(|x| x + shift)).unwrap();
            prop_assert!((a.median + shift - b.median).abs() < 1e-6);
            prop_assert!((a.sigma - b.sigma).abs() < 1e-6);
            // One wild value moves the median by at most one order statistic.
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut ys = xs.clone();
            ys.push(1e12);
            let c = Robust::of(ys).unwrap();
            prop_assert!(c.median >= lo && c.median <= hi);
        }
    }
}
