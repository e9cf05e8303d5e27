//! Travel modes of the honest population, by a Gaussian mixture (linfa)
//! fitted on the patrols' speed features.
//!
//! The mixture finds the groups the population actually falls into; each
//! group is then named by where its centre lies against published speed
//! bands: walking 1.2-1.5 m/s (up to ~2.2 brisk), cycling 3-7 m/s, motor
//! vehicles above 7 m/s. Boats move at cycling speeds but without stops and
//! with smooth speed; that is told per patrol.

use linfa::prelude::*;
use linfa_clustering::GaussianMixtureModel;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::Serialize;

use crate::features::Features;

/// A human way of moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Walk,
    Bike,
    Vehicle,
    Boat,
    /// Too few moving fixes to say.
    Unknown,
}

/// Upper bound of walking speed (m/s): brisk walking tops out near 2.2.
pub const WALK_MAX_MPS: f64 = 2.2;
/// Upper bound of cycling speed (m/s): 25 km/h.
pub const BIKE_MAX_MPS: f64 = 7.0;

fn band(speed: f64) -> Mode {
    if speed < WALK_MAX_MPS {
        Mode::Walk
    } else if speed < BIKE_MAX_MPS {
        Mode::Bike
    } else {
        Mode::Vehicle
    }
}

fn vector(f: &Features) -> [f64; 2] {
    [(f.speed_median + 0.1).ln(), (f.speed_p95 + 0.1).ln()]
}

/// The fitted groups: each group's centre median speed and mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeModel {
    pub groups: Vec<(f64, Mode)>,
    /// `true` when the mixture was fitted; `false` when the population was
    /// too small and the bands were applied per patrol.
    pub fitted: bool,
}

/// Minimum moving steps for a patrol to join the fit.
const MIN_STEPS: usize = 20;

/// Fits the mixture on `population` and assigns a mode to every patrol.
pub fn assign_modes(population: &[&Features]) -> (Vec<Mode>, ModeModel) {
    let usable: Vec<usize> = (0..population.len())
        .filter(|&i| population[i].moving_steps >= MIN_STEPS)
        .collect();
    let per_patrol = |f: &Features| -> Mode {
        if f.moving_steps < MIN_STEPS {
            return Mode::Unknown;
        }
        refine(band(f.speed_median), f)
    };
    let k = (usable.len() / 20).clamp(1, 4);
    if usable.len() < 20 {
        return (
            population.iter().map(|f| per_patrol(f)).collect(),
            ModeModel {
                groups: Vec::new(),
                fitted: false,
            },
        );
    }
    let mut data = Array2::<f64>::zeros((usable.len(), 2));
    for (r, &i) in usable.iter().enumerate() {
        let v = vector(population[i]);
        data[[r, 0]] = v[0];
        data[[r, 1]] = v[1];
    }
    let ds = DatasetBase::from(data.clone());
    let fit = GaussianMixtureModel::params(k)
        .with_rng(Xoshiro256Plus::seed_from_u64(20_261_125))
        .tolerance(1e-4)
        .max_n_iterations(200)
        .fit(&ds);
    let Ok(gmm) = fit else {
        return (
            population.iter().map(|f| per_patrol(f)).collect(),
            ModeModel {
                groups: Vec::new(),
                fitted: false,
            },
        );
    };
    let groups: Vec<(f64, Mode)> = gmm
        .means()
        .rows()
        .into_iter()
        .map(|m| {
            let speed = m[0].exp() - 0.1;
            (speed, band(speed))
        })
        .collect();
    let labels = gmm.predict(&data);
    let mut modes: Vec<Mode> = population.iter().map(|f| per_patrol(f)).collect();
    for (r, &i) in usable.iter().enumerate() {
        let g = labels[r];
        if let Some(&(_, m)) = groups.get(g) {
            modes[i] = refine(m, population[i]);
        }
    }
    (
        modes,
        ModeModel {
            groups,
            fitted: true,
        },
    )
}

/// Boats: cycling speeds, no stops, smooth speed.
fn refine(m: Mode, f: &Features) -> Mode {
    if m == Mode::Bike && f.stops == 0 && f.speed_mad_ratio < 0.2 {
        Mode::Boat
    } else {
        m
    }
}
