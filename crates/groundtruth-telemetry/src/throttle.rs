//! Logging a failure that repeats on every try without flooding the log.

use std::time::{Duration, Instant};

/// How often a failure that goes on is logged again.
pub const REPEAT_LOG_EVERY: Duration = Duration::from_secs(30);

/// Logs of a failure that repeats on every try: the first at once, then at
/// most one per [`REPEAT_LOG_EVERY`] until the failure is over.
#[derive(Debug, Default)]
pub struct LogThrottle {
    last: Option<Instant>,
}

impl LogThrottle {
    /// Whether to log this failure now (and, if so, counts it as logged).
    pub fn due(&mut self) -> bool {
        let due = self.last.is_none_or(|t| t.elapsed() >= REPEAT_LOG_EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }

    /// The failure is over: the next one is logged at once.
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_failure_is_logged_at_once_then_not_until_the_period_is_over() {
        let mut log = LogThrottle::default();
        assert!(log.due(), "the first failure is logged at once");
        assert!(!log.due(), "the next try, right after, is not");
        assert!(!log.due());
        log.clear();
        assert!(
            log.due(),
            "after the failure is over, a new one is logged at once"
        );
        log.last = Some(Instant::now() - REPEAT_LOG_EVERY);
        assert!(log.due(), "once the period is over it is logged again");
        assert!(!log.due());
    }
}
