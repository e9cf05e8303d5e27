//! Scores that mean something: a finding's `score` is the probability that
//! an inspector would confirm it.
//!
//! Each detector computes a *raw* score, a strength of evidence on its own
//! scale (how many signs fired, how far beyond chance). A [`Calibration`]
//! maps it, per detector, to the share of findings with that raw score
//! that turned out to be real: an isotonic (monotone, pool-adjacent-
//! violators) fit over labelled findings, from worlds whose truth is known
//! and, once there are enough, from inspectors' verdicts (`groundtruth
//! calibrate`). The raw score
//! stays in the finding's evidence (`raw_score`), so a later fit can start
//! from it.
//!
//! [`Reliability`] says whether scores are calibrated: findings binned by
//! score, the mean score of each bin beside the share confirmed, with the
//! Brier score and the expected calibration error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Finding;

/// The evidence key that keeps a calibrated finding's raw score.
pub const RAW_SCORE: &str = "raw_score";

/// Fewer labelled findings than this for a detector: no curve is fitted
/// (its scores stay raw), because a handful of cases says nothing about a
/// probability.
pub const MIN_SAMPLES: usize = 20;

/// No finding is surer than this. The curves are fitted on worlds whose
/// truth is known (our simulator's family) and a world nobody has measured
/// may differ from all of them; until inspectors' verdicts refit a curve
/// (`groundtruth calibrate`), claiming more than 99% would be claiming to
/// know that world.
pub const MAX_PROBABILITY: f64 = 0.99;

/// Prior weight, in findings, of the detector's overall confirmation rate
/// in each isotonic block: a block of one or two findings cannot claim 0 or
/// 1, it is pulled towards what the detector does overall.
const PRIOR_WEIGHT: f64 = 2.0;

/// One labelled finding: its detector, score as emitted, raw score and
/// whether it was real.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub detector: String,
    pub score: f64,
    pub raw: f64,
    pub confirmed: bool,
}

impl Sample {
    /// The sample of `finding`: its score, its raw score (the evidence's
    /// `raw_score` when it was calibrated, else its score) and the verdict.
    pub fn of(finding: &Finding, confirmed: bool) -> Sample {
        Sample {
            detector: finding.detector.clone(),
            score: finding.score,
            raw: raw_score(finding),
            confirmed,
        }
    }
}

/// The raw score of `finding` (see [`RAW_SCORE`]).
pub fn raw_score(finding: &Finding) -> f64 {
    finding
        .evidence
        .get(RAW_SCORE)
        .and_then(Value::as_f64)
        .unwrap_or(finding.score)
}

/// One detector's map from raw score to probability: points `(raw, p)`,
/// raw strictly increasing, p non-decreasing; linear between points,
/// constant beyond the ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub points: Vec<(f64, f64)>,
    /// Labelled findings the curve was fitted on, and how many were real.
    pub samples: usize,
    pub confirmed: usize,
}

impl Curve {
    /// Fits the curve to `samples` (raw score, confirmed); `None` below
    /// [`MIN_SAMPLES`].
    pub fn fit(samples: &[(f64, bool)]) -> Option<Curve> {
        let mut s: Vec<(f64, bool)> = samples
            .iter()
            .copied()
            .filter(|(r, _)| r.is_finite())
            .collect();
        if s.len() < MIN_SAMPLES {
            return None;
        }
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = s.len();
        let pos = s.iter().filter(|x| x.1).count();
        // The detector's overall rate, itself kept off 0 and 1.
        let prior = (pos as f64 + 1.0) / (n as f64 + 2.0);
        // Pool adjacent violators over blocks of equal raw scores.
        struct Block {
            last: f64,
            raw_sum: f64,
            n: f64,
            pos: f64,
        }
        let mut blocks: Vec<Block> = Vec::new();
        for (raw, ok) in s {
            match blocks.last_mut() {
                Some(b) if b.last == raw => {
                    b.raw_sum += raw;
                    b.n += 1.0;
                    b.pos += f64::from(u8::from(ok));
                }
                _ => blocks.push(Block {
                    last: raw,
                    raw_sum: raw,
                    n: 1.0,
                    pos: f64::from(u8::from(ok)),
                }),
            }
            while blocks.len() >= 2 {
                let k = blocks.len();
                let (a, b) = (&blocks[k - 2], &blocks[k - 1]);
                if a.pos / a.n < b.pos / b.n {
                    break;
                }
                let b = blocks.pop().expect("two blocks");
                let a = blocks.last_mut().expect("two blocks");
                a.last = b.last;
                a.raw_sum += b.raw_sum;
                a.n += b.n;
                a.pos += b.pos;
            }
        }
        let mut points: Vec<(f64, f64)> = Vec::with_capacity(blocks.len());
        let mut floor = 0.0f64;
        for b in &blocks {
            let p = ((b.pos + PRIOR_WEIGHT * prior) / (b.n + PRIOR_WEIGHT))
                .min(MAX_PROBABILITY)
                .max(floor);
            floor = p;
            points.push((b.raw_sum / b.n, p));
        }
        Some(Curve {
            points,
            samples: n,
            confirmed: pos,
        })
    }

    /// The probability for raw score `raw`.
    pub fn probability(&self, raw: f64) -> f64 {
        let pts = &self.points;
        let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
            return raw;
        };
        if raw <= first.0 {
            return first.1;
        }
        if raw >= last.0 {
            return last.1;
        }
        let k = pts.partition_point(|p| p.0 <= raw);
        let (a, b) = (pts[k - 1], pts[k]);
        a.1 + (b.1 - a.1) * (raw - a.0) / (b.0 - a.0)
    }
}

/// A calibration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("cannot read calibration file {path}: {cause}; check the path (`detect.calibration`) or leave it unset for the built-in fit")]
    Read {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("calibration file {path} is not a calibration: {cause}; write one with `groundtruth eval worlds --fit-calibration FILE` or `groundtruth calibrate`")]
    Parse {
        path: std::path::PathBuf,
        cause: serde_json::Error,
    },
    #[error(
        "cannot write calibration file {path}: {cause}; check the directory exists and is writable"
    )]
    Write {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("calibration file {path}: detector {detector:?}: {problem}")]
    Invalid {
        path: std::path::PathBuf,
        detector: String,
        problem: String,
    },
}

/// Per detector, the curve that turns raw scores into probabilities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// What the curves were fitted on, in words (worlds and seeds, or the
    /// store's verdicts and when).
    pub fitted_on: String,
    pub detectors: BTreeMap<String, Curve>,
}

/// The fit shipped with the binary (`calibration.json` beside this crate,
/// written by `groundtruth eval worlds --fit-calibration`).
const BUILTIN: &str = include_str!("../calibration.json");

impl Calibration {
    /// No curves: every score stays raw.
    pub fn identity() -> Calibration {
        Calibration::default()
    }

    /// The built-in fit.
    pub fn builtin() -> Calibration {
        // Checked by the test `the_builtin_calibration_is_valid`.
        serde_json::from_str(BUILTIN).unwrap_or_default()
    }

    /// Reads a calibration file and checks every curve.
    pub fn load(path: &Path) -> Result<Calibration, CalibrationError> {
        let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let c: Calibration =
            serde_json::from_str(&text).map_err(|cause| CalibrationError::Parse {
                path: path.to_path_buf(),
                cause,
            })?;
        c.check()
            .map_err(|(detector, problem)| CalibrationError::Invalid {
                path: path.to_path_buf(),
                detector,
                problem,
            })?;
        Ok(c)
    }

    /// Writes the calibration as pretty JSON (what [`Calibration::load`] reads).
    pub fn save(&self, path: &Path) -> Result<(), CalibrationError> {
        let write = |cause| CalibrationError::Write {
            path: path.to_path_buf(),
            cause,
        };
        let mut text = serde_json::to_string_pretty(self)
            .map_err(std::io::Error::other)
            .map_err(write)?;
        text.push('\n');
        std::fs::write(path, text).map_err(write)
    }

    /// The probability for `detector`'s raw score `raw`; `None` when the
    /// detector has no curve (its scores stay raw).
    pub fn probability(&self, detector: &str, raw: f64) -> Option<f64> {
        self.detectors.get(detector).map(|c| c.probability(raw))
    }

    /// Each curve non-empty, raw strictly increasing, p in 0..1 and
    /// non-decreasing, the detector one of the contract's.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (d, c) in &self.detectors {
            let bad = |p: String| Err((d.clone(), p));
            if !crate::DETECTORS.contains(&d.as_str()) {
                return bad(format!(
                    "not a detector; the contract has {:?}",
                    crate::DETECTORS
                ));
            }
            if c.points.is_empty() {
                return bad("no points".into());
            }
            for (i, (r, p)) in c.points.iter().enumerate() {
                if !r.is_finite() || !(0.0..=1.0).contains(p) {
                    return bad(format!("point {i} ({r}, {p}): p must lie in 0..1"));
                }
                if i > 0 {
                    let (r0, p0) = c.points[i - 1];
                    if *r <= r0 || *p < p0 {
                        return bad(format!(
                            "point {i}: raw scores must increase and probabilities must not fall"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Fits a curve per detector to `samples`; detectors with too few
    /// samples get none.
    pub fn fit(samples: &[Sample], fitted_on: impl Into<String>) -> Calibration {
        let mut by: BTreeMap<&str, Vec<(f64, bool)>> = BTreeMap::new();
        for s in samples {
            by.entry(&s.detector)
                .or_default()
                .push((s.raw, s.confirmed));
        }
        Calibration {
            fitted_on: fitted_on.into(),
            detectors: by
                .into_iter()
                .filter_map(|(d, s)| Curve::fit(&s).map(|c| (d.to_string(), c)))
                .collect(),
        }
    }

    /// `self` with `other`'s curves in place of its own where `other` has one.
    pub fn overlaid(mut self, other: Calibration) -> Calibration {
        if !other.detectors.is_empty() {
            self.fitted_on = format!("{}; overlaid with {}", self.fitted_on, other.fitted_on);
        }
        self.detectors.extend(other.detectors);
        self
    }

    /// Calibrates `finding` in place: its score becomes the probability
    /// (three decimals) and the raw score goes to `evidence.raw_score`.
    /// Applying twice is the same as once (it starts from the raw score).
    pub fn apply(&self, finding: &mut Finding) {
        let raw = raw_score(finding);
        let Some(p) = self.probability(&finding.detector, raw) else {
            return;
        };
        finding.score = (p.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
        finding.evidence.insert(RAW_SCORE.into(), raw.into());
    }
}

/// One bin of a reliability curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// The bin covers scores in `[lo, hi)` (the last one includes 1).
    pub lo: f64,
    pub hi: f64,
    pub findings: usize,
    pub mean_score: f64,
    pub confirmed_share: f64,
}

/// How well scores match what was confirmed, per detector and overall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reliability {
    pub detector: String,
    pub findings: usize,
    pub confirmed: usize,
    /// Mean squared difference between score and outcome (0 best).
    pub brier: f64,
    /// Findings-weighted mean gap between a bin's mean score and its
    /// confirmed share (0 best).
    pub ece: f64,
    pub bins: Vec<Bin>,
}

impl Reliability {
    /// Findings `(score, confirmed)` in ten bins of width 0.1.
    pub fn of(detector: &str, scored: &[(f64, bool)]) -> Reliability {
        let mut acc = [(0usize, 0.0f64, 0usize); 10];
        let mut brier = 0.0;
        for &(p, y) in scored {
            let k = ((p * 10.0).floor().max(0.0) as usize).min(9);
            acc[k].0 += 1;
            acc[k].1 += p;
            acc[k].2 += usize::from(y);
            brier += (p - f64::from(u8::from(y))).powi(2);
        }
        let n = scored.len();
        let bins: Vec<Bin> = acc
            .iter()
            .enumerate()
            .filter(|(_, a)| a.0 > 0)
            .map(|(k, a)| Bin {
                lo: k as f64 / 10.0,
                hi: (k + 1) as f64 / 10.0,
                findings: a.0,
                mean_score: a.1 / a.0 as f64,
                confirmed_share: a.2 as f64 / a.0 as f64,
            })
            .collect();
        let ece = bins
            .iter()
            .map(|b| b.findings as f64 * (b.mean_score - b.confirmed_share).abs())
            .sum::<f64>()
            / n.max(1) as f64;
        Reliability {
            detector: detector.into(),
            findings: n,
            confirmed: scored.iter().filter(|s| s.1).count(),
            brier: brier / n.max(1) as f64,
            ece,
            bins,
        }
    }

    /// Per detector (in the contract's order) and `all`, of the samples'
    /// scores as emitted.
    pub fn table_of(samples: &[Sample]) -> Vec<Reliability> {
        let mut out: Vec<Reliability> = crate::DETECTORS
            .iter()
            .filter_map(|d| {
                let mine: Vec<(f64, bool)> = samples
                    .iter()
                    .filter(|s| s.detector == *d)
                    .map(|s| (s.score, s.confirmed))
                    .collect();
                (!mine.is_empty()).then(|| Reliability::of(d, &mine))
            })
            .collect();
        let all: Vec<(f64, bool)> = samples.iter().map(|s| (s.score, s.confirmed)).collect();
        out.push(Reliability::of("all", &all));
        out
    }

    /// A plain-text table of `rows`: per detector its findings, Brier
    /// score, ECE, and each non-empty bin as `score->confirmed (n)`.
    pub fn text(rows: &[Reliability]) -> String {
        let mut s = String::from(
            "detector           findings  confirmed  brier   ece    bins: mean score -> share confirmed (findings)\n",
        );
        for r in rows {
            let bins: Vec<String> = r
                .bins
                .iter()
                .map(|b| {
                    format!(
                        "{:.2}->{:.2} ({})",
                        b.mean_score, b.confirmed_share, b.findings
                    )
                })
                .collect();
            s.push_str(&format!(
                "{:<18} {:>8}  {:>9}  {:.3}   {:.3}  {}\n",
                r.detector,
                r.findings,
                r.confirmed,
                r.brier,
                r.ece,
                bins.join(", ")
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(detector: &str, score: f64) -> Finding {
        Finding {
            finding_id: "f".into(),
            detector: detector.into(),
            accounts: vec!["a".into()],
            devices: vec![],
            patrol_ids: vec![],
            window_start: "2026-11-02T00:00:00.000Z".into(),
            window_end: "2026-11-02T01:00:00.000Z".into(),
            score,
            reason: "r".into(),
            evidence: Default::default(),
        }
    }

    #[test]
    fn isotonic_fit_is_monotone_and_matches_block_rates() {
        // Raw 0.6: 2 of 10 real; 0.8: 9 of 10; 0.9: 5 of 10 (a violation,
        // pooled with 0.8: 14 of 20); 0.95: 20 of 20.
        let mut s = Vec::new();
        for (raw, n, pos) in [(0.6, 10, 2), (0.8, 10, 9), (0.9, 10, 5), (0.95, 20, 20)] {
            for i in 0..n {
                s.push((raw, i < pos));
            }
        }
        let c = Curve::fit(&s).unwrap();
        assert_eq!(c.samples, 50);
        assert_eq!(c.confirmed, 36);
        assert_eq!(c.points.len(), 3, "{:?}", c.points);
        for w in c.points.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{:?}", c.points);
        }
        let prior = 37.0 / 52.0;
        let p = |pos: f64, n: f64| (pos + 2.0 * prior) / (n + 2.0);
        assert!((c.probability(0.6) - p(2.0, 10.0)).abs() < 1e-9);
        assert!((c.probability(0.85) - p(14.0, 20.0)).abs() < 1e-9);
        assert!((c.probability(0.99) - p(20.0, 20.0).min(MAX_PROBABILITY)).abs() < 1e-9);
        // Below the first and between points.
        assert!((c.probability(0.1) - c.probability(0.6)).abs() < 1e-9);
        let mid = c.probability(0.9);
        assert!(mid > p(14.0, 20.0) && mid < p(20.0, 20.0));
        // Never above the cap, however many are confirmed.
        assert!(c.probability(1.0) <= MAX_PROBABILITY);
    }

    #[test]
    fn too_few_samples_fit_no_curve_and_leave_the_score_raw() {
        let s: Vec<(f64, bool)> = (0..MIN_SAMPLES - 1).map(|_| (0.9, true)).collect();
        assert!(Curve::fit(&s).is_none());
        let samples: Vec<Sample> = s
            .iter()
            .map(|&(raw, confirmed)| Sample {
                detector: "phone_farm".into(),
                score: raw,
                raw,
                confirmed,
            })
            .collect();
        let cal = Calibration::fit(&samples, "test");
        assert!(cal.detectors.is_empty());
        let mut f = finding("phone_farm", 0.9);
        cal.apply(&mut f);
        assert_eq!(f.score, 0.9);
        assert!(!f.evidence.contains_key(RAW_SCORE));
    }

    #[test]
    fn applying_keeps_the_raw_score_and_is_idempotent() {
        let samples: Vec<Sample> = (0..40)
            .map(|i| Sample {
                detector: "record_churn".into(),
                score: if i < 20 { 0.8 } else { 0.9 },
                raw: if i < 20 { 0.8 } else { 0.9 },
                confirmed: !(5..20).contains(&i),
            })
            .collect();
        let cal = Calibration::fit(&samples, "test");
        let mut f = finding("record_churn", 0.8);
        cal.apply(&mut f);
        let once = f.clone();
        assert_eq!(raw_score(&f), 0.8);
        assert!(f.score < 0.4, "{}", f.score);
        cal.apply(&mut f);
        assert_eq!(f, once);
        // The refit from calibrated findings starts from the raw scores.
        assert_eq!(Sample::of(&f, true).raw, 0.8);
    }

    #[test]
    fn reliability_bins_brier_and_ece() {
        let scored = [(0.95, true), (0.95, true), (0.95, false), (0.15, false)];
        let r = Reliability::of("x", &scored);
        assert_eq!(r.findings, 4);
        assert_eq!(r.bins.len(), 2);
        assert_eq!(r.bins[1].findings, 3);
        assert!((r.bins[1].confirmed_share - 2.0 / 3.0).abs() < 1e-9);
        let brier = (2.0 * 0.05f64.powi(2) + 0.95f64.powi(2) + 0.15f64.powi(2)) / 4.0;
        assert!((r.brier - brier).abs() < 1e-12);
        let ece = (3.0 * (0.95f64 - 2.0 / 3.0).abs() + 0.15) / 4.0;
        assert!((r.ece - ece).abs() < 1e-12);
        let text = Reliability::text(&[r]);
        assert!(text.contains("0.95->0.67 (3)"), "{text}");
    }

    #[test]
    fn the_builtin_calibration_is_valid() {
        let c: Calibration = serde_json::from_str(BUILTIN).expect("calibration.json parses");
        c.check().expect("calibration.json is valid");
        assert_eq!(Calibration::builtin(), c);
    }

    #[test]
    fn a_bad_file_is_refused_with_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("gt-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.json");
        std::fs::write(
            &p,
            r#"{"fitted_on":"x","detectors":{"phone_farm":{"points":[[0.9,0.8],[0.8,0.9]],"samples":30,"confirmed":20}}}"#,
        )
        .unwrap();
        let e = Calibration::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("phone_farm") && e.contains("must increase"),
            "{e}"
        );
        std::fs::write(&p, "{").unwrap();
        let e = Calibration::load(&p).unwrap_err().to_string();
        assert!(e.contains("is not a calibration"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
