//! `groundtruth-window`: event time for the live pipeline, free of I/O.
//!
//! The design follows Arroyo's: events are folded into *partial aggregates*
//! per (window, key) as they arrive, in any order; a [`Watermark`] (the
//! largest event time seen minus the allowed lateness) says when no more
//! events for a window are expected, and [`Windows::advance`] then emits the
//! window's final aggregates and forgets them, so state holds only open
//! windows and memory does not grow with history. An event older than the
//! watermark is *late*: the caller still stores it (the lake keeps
//! everything) and counts it, and a re-scan over the lake picks it up.
//!
//! [`Windows`] is serialisable: a checkpoint stores it with the source
//! offsets, and a restart from the checkpoint followed by the rest of the
//! input emits exactly what an uninterrupted run would (tested).

mod schedule;
mod spec;
mod state;
mod watermark;

pub use schedule::{Close, DetectorWindow, Group, Progress, Schedule};
pub use spec::{SpecError, WindowKind, WindowSpec};
pub use state::{CheckpointError, Closed, Partial, Windows};
pub use watermark::{Arrival, Watermark};

/// Start of the window of `step_us` that holds `t_us`, windows aligned to
/// local midnight of a zone `off_us` east of UTC.
pub(crate) fn align_us(t_us: i64, step_us: i64, off_us: i64) -> i64 {
    (t_us + off_us).div_euclid(step_us) * step_us - off_us
}

/// A window's span in event time, epoch microseconds, `[start, end)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    pub start_us: i64,
    pub end_us: i64,
}
