//! Offline runs over finished inputs, apart from the runtime:
//!
//! - [`batch`]: the `groundtruth detect` command: NDJSON files into a
//!   scratch lake, every window judged in event time as the live service
//!   judges it, findings and dead letters out;
//! - [`tracks`] and [`behaviour`]: the detectors scored on the simulator's
//!   labelled worlds (one world, or a family drawn from seeds, worst case
//!   reported) and on GeoLife's real people;
//! - [`calibrate`]: labels of a world (the simulator's, or a labels file) for
//!   fitting scores to the chance an inspector confirms;
//! - [`geolife`]: the GeoLife trajectories as patrol events.
//!
//! The runtime crates (`groundtruth-detect`, `-live`, `-query`) build none
//! of this.

pub mod batch;
pub mod behaviour;
pub mod calibrate;
mod error;
pub mod geolife;
pub mod tracks;

pub use batch::{detect_files, write_findings, DetectFilesSummary};
pub use error::EvalError;
