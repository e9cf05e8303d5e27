//! Tail probabilities for the significance tests the detectors share, in
//! natural logarithms (the chances they deal in are far below what an `f64`
//! holds as a plain number).

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error < 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln of a sum of exponentials, without overflow.
fn ln_sum_exp(terms: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = terms.into_iter().collect();
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// ln P(X >= k) for X ~ Binomial(n, p).
pub fn binomial_ln_sf(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if k > n || p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let ln_choose = |i: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(i as f64 + 1.0) - ln_gamma((n - i) as f64 + 1.0)
    };
    ln_sum_exp((k..=n).map(|i| ln_choose(i) + i as f64 * lp + (n - i) as f64 * lq)).min(0.0)
}

/// ln P(X >= k) for X ~ Poisson(mu).
pub fn poisson_ln_sf(k: u64, mu: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if mu <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let term = |i: u64| i as f64 * mu.ln() - mu - ln_gamma(i as f64 + 1.0);
    if (k as f64) <= mu {
        // The tail is most of the mass: 1 - P(X < k).
        let below = ln_sum_exp((0..k).map(term)).exp();
        return (1.0 - below).max(f64::MIN_POSITIVE).ln();
    }
    // Terms fall off past the mode; stop once they no longer count.
    let mut terms = Vec::new();
    let mut i = k;
    loop {
        let t = term(i);
        terms.push(t);
        if t < terms[0] - 40.0 || i > k + 10_000 {
            break;
        }
        i += 1;
    }
    ln_sum_exp(terms).min(0.0)
}

/// ln C(n, k).
pub fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn known_values() {
        assert!(close(ln_gamma(1.0), 0.0));
        assert!(close(ln_gamma(5.0), 24f64.ln()));
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln()));
        // P(Bin(10, 0.5) >= 8) = 56/1024.
        assert!(close(binomial_ln_sf(8, 10, 0.5).exp(), 56.0 / 1024.0));
        assert_eq!(binomial_ln_sf(0, 10, 0.3), 0.0);
        assert_eq!(binomial_ln_sf(11, 10, 0.3), f64::NEG_INFINITY);
        // P(Poisson(2) >= 3) = 1 - e^-2 (1 + 2 + 2).
        let want = 1.0 - (-2f64).exp() * 5.0;
        assert!(close(poisson_ln_sf(3, 2.0).exp(), want));
        // Far in the tail: P(Poisson(1) >= 30) ~ e^-1 / 30!.
        let far = poisson_ln_sf(30, 1.0);
        assert!((far - (-1.0 - ln_gamma(31.0))).abs() < 0.05, "{far}");
        assert!(close(ln_choose(5, 2), 10f64.ln()));
    }

    proptest! {
        #[test]
        fn tails_are_monotone_probabilities(n in 1u64..200, p in 0.001f64..0.999, k in 0u64..200, mu in 0.01f64..50.0) {
            let b = binomial_ln_sf(k, n, p);
            prop_assert!(b <= 0.0);
            prop_assert!(binomial_ln_sf(k + 1, n, p) <= b + 1e-12);
            let q = poisson_ln_sf(k, mu);
            prop_assert!(q <= 0.0);
            prop_assert!(poisson_ln_sf(k + 1, mu) <= q + 1e-12);
            prop_assert!(poisson_ln_sf(k, mu * 1.5) >= q - 1e-12);
        }
    }
}
