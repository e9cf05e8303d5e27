//! The explicit rules that call a patrol non-human, each with a plain-words
//! reason. See [`crate::thresholds`] for where each threshold comes from.

use serde::Serialize;

use crate::features::Features;
use crate::thresholds as th;

/// Why a patrol is not a person moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Teleporting,
    Replayed,
    Synthetic,
    AnimalLike,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Teleporting => "teleporting",
            Class::Replayed => "replayed",
            Class::Synthetic => "synthetic",
            Class::AnimalLike => "animal-like",
        }
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub class: Class,
    pub score: f64,
    pub reason: String,
    /// Which of a class's rules fired, where it has several: `animal-like`
    /// by `dashes` or `meanders`. The pages word their explanation by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign: Option<&'static str>,
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// What raises an animal-like score: returns to one spot beyond a few,
/// and an erratic pace.
fn animal_bonus(f: &Features) -> f64 {
    let returns = f
        .home_returns
        .saturating_sub(th::ANIMAL_MIN_RETURNS - 1)
        .min(3) as f64
        * 0.01;
    let erratic = if f.speed_mad_ratio >= th::ANIMAL_ERRATIC_SPEED_MAD {
        0.02
    } else {
        0.0
    };
    returns + erratic
}

/// An `animal-like` verdict by one of its rules.
fn animal(score: f64, sign: &'static str, reason: String) -> Verdict {
    Verdict {
        class: Class::AnimalLike,
        score,
        sign: Some(sign),
        reason,
    }
}

/// Applies the per-patrol rules (replays are judged by [`crate::replay`]).
pub fn judge(f: &Features, emulator: bool) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(j) = f
        .teleports
        .iter()
        .max_by(|a, b| a.distance_m.total_cmp(&b.distance_m))
    {
        let n = f.teleports.len();
        out.push(Verdict {
            class: Class::Teleporting,
            score: (0.96 + 0.01 * n as f64).min(0.99),
            sign: None,
            reason: format!(
                "Jumped {:.1} km in {:.0} s ({:.0} m/s){} and carried on from the new place; \
                 nothing on the ground moves faster than {:.0} m/s.",
                j.distance_m / 1000.0,
                j.seconds,
                j.speed_mps.min(1e6),
                if n > 1 {
                    format!(", {n} such jumps in all")
                } else {
                    String::new()
                },
                th::MAX_GROUND_MPS
            ),
        });
    }
    if f.mock_share >= th::MOCK_SHARE {
        out.push(Verdict {
            class: Class::Synthetic,
            score: 0.9 + 0.09 * f.mock_share,
            sign: None,
            reason: format!(
                "The phone itself reported a mock-location app for {} of the {} fixes.",
                pct(f.mock_share),
                f.fixes
            ),
        });
    } else if emulator {
        out.push(Verdict {
            class: Class::Synthetic,
            score: 0.95,
            sign: None,
            reason: "The patrol was recorded on an emulator (integrity verdict `virtual`); \
                     an emulator cannot walk."
                .into(),
        });
    }
    if f.moving_steps >= th::SYNTHETIC_MIN_STEPS
        && f.speed_median > 0.3
        && f.speed_mad_ratio < th::SYNTHETIC_SPEED_MAD
        && f.jitter_m < th::SYNTHETIC_JITTER_M
    {
        out.push(Verdict {
            class: Class::Synthetic,
            score: 0.97,
            sign: None,
            reason: format!(
                "Moved at a machine-constant {:.2} m/s (varying {:.1}% fix to fix) on perfectly \
                 straight lines (fixes {:.2} m off the line); a phone carried by a person \
                 varies by 10% or more and scatters by metres.",
                f.speed_median,
                100.0 * f.speed_mad_ratio,
                f.jitter_m
            ),
        });
    }
    let rg_ratio = if f.rediscretised_path_m > 0.0 {
        f.radius_of_gyration_m / f.rediscretised_path_m
    } else {
        1.0
    };
    let measured = f.accuracy_reported_share >= 0.5
        && f.accuracy_median_m
            .is_some_and(|a| a <= th::ANIMAL_MAX_ACCURACY_M);
    // Dashes are the animal's own sign: a person surveying a plot also
    // winds, stops, varies pace and comes back to the same spots, but does
    // not sprint off and back again and again. A dog that never runs gives
    // itself away by meandering: a person on a plot walks straight between
    // sharp turns.
    let confined_winding = measured
        && rg_ratio < th::ANIMAL_MAX_RG_OVER_PATH
        && f.turn_mean_deg >= th::ANIMAL_MIN_TURN_DEG;
    let dashes = f.bursts >= th::ANIMAL_MIN_BURSTS;
    let meanders = f
        .accuracy_median_m
        .is_some_and(|a| a <= th::ANIMAL_MEANDER_MAX_ACCURACY_M)
        && f.course_straightness < th::ANIMAL_MAX_COURSE_STRAIGHTNESS
        && f.turn_median_deg >= th::ANIMAL_MIN_TURN_MEDIAN_DEG
        && f.straight_share < th::ANIMAL_MAX_STRAIGHT_SHARE;
    // (A dog that never runs on a phone worse than 10 m is not accused: the
    // phone's own speed shows it turns all the time, `paced_straightness`,
    // but so does a person visiting points a dozen metres apart; see
    // `th::PACED_WINDOW_M`.)
    if confined_winding && dashes {
        let extra =
            f.bursts.min(5) as f64 * 0.01 + f.home_dashes.min(5) as f64 * 0.01 + animal_bonus(f);
        out.push(animal(
            (0.85 + extra).min(0.97),
            "dashes",
            format!(
                "Covered {:.1} km without leaving a circle of about {:.0} m, came back to the same \
                 spot {} times, turned {:.0}° every {:.0} m and changed pace all the time ({} \
                 dashes of about {:.1} m/s, speed varying {:.0}% fix to fix); a person on patrol \
                 walks a route at a steady 1.2-1.5 m/s. This is how a dog moves.",
                f.rediscretised_path_m / 1000.0,
                2.0 * f.radius_of_gyration_m,
                f.home_returns,
                f.turn_mean_deg,
                f.rediscretise_m,
                f.bursts,
                f.burst_speed_median,
                100.0 * f.speed_mad_ratio
            ),
        ));
    } else if confined_winding && meanders {
        out.push(animal(
            (0.8 + animal_bonus(f)).min(0.9),
            "meanders",
            format!(
                "Covered {:.1} km without leaving a circle of about {:.0} m and meandered all \
                 the way: over {:.0} m stretches it got only {:.0}% as far as it went, turning a \
                 median {:.0}° every {:.0} m, with only {:.0}% of its path on straight runs, and \
                 came back to the same spot {} times; a person heading anywhere, on a route or \
                 across a small site, walks straight lines between sharp turns. This is how a \
                 dog sniffing about moves.",
                f.rediscretised_path_m / 1000.0,
                2.0 * f.radius_of_gyration_m,
                f.course_window_m,
                100.0 * f.course_straightness,
                f.turn_median_deg,
                f.rediscretise_m,
                100.0 * f.straight_share,
                f.home_returns
            ),
        ));
    }
    out
}
