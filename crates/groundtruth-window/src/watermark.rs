//! The watermark: how far event time has surely progressed.

use serde::{Deserialize, Serialize};

/// Largest event time seen minus the allowed lateness. Phones upload hours
/// late, so the lateness is configurable; an event older than the watermark
/// when it arrives is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    lateness_us: i64,
    max_event_us: Option<i64>,
}

/// How an event arrived relative to the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    OnTime,
    /// Older than the watermark by this many microseconds.
    Late {
        by_us: i64,
    },
}

impl Watermark {
    /// A watermark that allows `lateness_us` of disorder (>= 0).
    pub fn new(lateness_us: i64) -> Self {
        Watermark {
            lateness_us: lateness_us.max(0),
            max_event_us: None,
        }
    }

    /// Records an event time; says whether it was late. A late event does
    /// not move the watermark.
    pub fn observe(&mut self, t_us: i64) -> Arrival {
        if let Some(w) = self.current() {
            if t_us < w {
                return Arrival::Late { by_us: w - t_us };
            }
        }
        self.max_event_us = Some(self.max_event_us.map_or(t_us, |m| m.max(t_us)));
        Arrival::OnTime
    }

    /// The watermark (`None` before the first event).
    pub fn current(&self) -> Option<i64> {
        self.max_event_us
            .map(|m| m.saturating_sub(self.lateness_us))
    }

    /// Largest event time seen.
    pub fn max_event(&self) -> Option<i64> {
        self.max_event_us
    }

    pub fn lateness_us(&self) -> i64 {
        self.lateness_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_events_are_named_and_do_not_move_it() {
        let mut w = Watermark::new(10);
        assert_eq!(w.current(), None);
        assert_eq!(w.observe(100), Arrival::OnTime);
        assert_eq!(w.current(), Some(90));
        assert_eq!(w.observe(95), Arrival::OnTime); // out of order, within lateness
        assert_eq!(w.observe(80), Arrival::Late { by_us: 10 });
        assert_eq!(w.current(), Some(90));
        assert_eq!(w.observe(130), Arrival::OnTime);
        assert_eq!(w.current(), Some(120));
    }
}
