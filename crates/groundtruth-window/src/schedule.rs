//! When each detector judges, in event time.
//!
//! A detector judges *windows*: tumbling spans of `size_s` aligned to local
//! midnight. A window `[start, end)` closes when the watermark reaches its
//! *horizon*, `end + delay_s` (the time a piece of evidence needs to be
//! complete: a patrol still running at midnight, a farm's last session).
//! The detector then sees the events of `[start - lookback_s, horizon)`
//! (its trailing context: yesterday's patrols for replays, a week of
//! baselines) and keeps the findings whose evidence ends inside
//! `[start, end)`. Everything a close sees is fixed once the watermark has
//! passed its horizon, so a close gives the same findings in a batch run
//! over a file and in the live service over the same events in any order
//! within the allowed lateness.
//!
//! Detectors with identical windows form one *group* and are judged
//! together (one pass of SQL over their context).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Span, SpecError};

const US: i64 = 1_000_000;
const DAY_S: i64 = 86_400;

/// One detector's windows (`[windows.<detector>]` in a pipeline file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorWindow {
    /// Window length, seconds; divides a day or is whole days.
    pub size_s: i64,
    /// Context before the window the detector also sees, seconds.
    #[serde(default)]
    pub lookback_s: i64,
    /// How long after the window's end its evidence may still grow,
    /// seconds: the window closes when the watermark passes `end + delay_s`.
    #[serde(default)]
    pub delay_s: i64,
}

impl DetectorWindow {
    /// Every problem with the sizes.
    pub fn validate(&self, name: &str) -> Vec<SpecError> {
        let mut out = Vec::new();
        let mut bad = |problem: String| {
            out.push(SpecError {
                name: name.to_string(),
                problem,
            })
        };
        if self.size_s <= 0 {
            bad(format!("size_s must be > 0, got {}", self.size_s));
        } else if DAY_S % self.size_s != 0 && self.size_s % DAY_S != 0 {
            bad(format!(
                "size_s ({}) must divide a day (86400) or be whole days, so windows align to local midnight",
                self.size_s
            ));
        }
        if self.lookback_s < 0 {
            bad(format!("lookback_s must be >= 0, got {}", self.lookback_s));
        }
        if self.delay_s < 0 {
            bad(format!("delay_s must be >= 0, got {}", self.delay_s));
        }
        out
    }
}

/// Detectors judged together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The detectors' names joined by `+` (checkpoints key progress by it).
    pub name: String,
    pub detectors: Vec<String>,
    pub window: DetectorWindow,
}

/// One window to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Index into [`Schedule::groups`].
    pub group: usize,
    /// The window: findings whose evidence ends in it are kept.
    pub span: Span,
    /// Start of the events the detectors see (`span.start - lookback`).
    pub from_us: i64,
    /// End (exclusive) of the events they see (`span.end + delay`).
    pub horizon_us: i64,
}

/// Every detector's windows, grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub groups: Vec<Group>,
    /// Seconds east of UTC of local midnight (28800 for Asia/Shanghai).
    pub utc_offset_s: i64,
}

/// How far each group has judged: the end of its last closed window.
pub type Progress = BTreeMap<String, i64>;

impl Schedule {
    /// Groups detectors with identical windows (in name order).
    pub fn new(windows: &BTreeMap<String, DetectorWindow>, utc_offset_s: i64) -> Self {
        let mut by_window: BTreeMap<DetectorWindow, Vec<String>> = BTreeMap::new();
        for (name, w) in windows {
            by_window.entry(*w).or_default().push(name.clone());
        }
        let mut groups: Vec<Group> = by_window
            .into_iter()
            .map(|(window, detectors)| Group {
                name: detectors.join("+"),
                detectors,
                window,
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Schedule {
            groups,
            utc_offset_s,
        }
    }

    /// Start of the window of group `g` that holds `t_us`.
    pub fn window_start(&self, g: usize, t_us: i64) -> i64 {
        crate::align_us(
            t_us,
            self.groups[g].window.size_s * US,
            self.utc_offset_s * US,
        )
    }

    /// The close of group `g`'s window starting at `start_us`.
    pub fn close(&self, g: usize, start_us: i64) -> Close {
        let w = self.groups[g].window;
        let end_us = start_us + w.size_s * US;
        Close {
            group: g,
            span: Span { start_us, end_us },
            from_us: start_us - w.lookback_s * US,
            horizon_us: end_us + w.delay_s * US,
        }
    }

    /// The windows that are due, in horizon order: for each group, from
    /// the window after its progress (or the window of `first_us`, the
    /// earliest event) while the window starts at or before `last_us` (the
    /// latest event) and the watermark `wm_us` has reached its horizon.
    /// `wm_us = i64::MAX` closes everything (the end of a file).
    pub fn due(&self, progress: &Progress, first_us: i64, last_us: i64, wm_us: i64) -> Vec<Close> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let mut start = match progress.get(&group.name) {
                Some(&end) => end.max(self.window_start(g, first_us)),
                None => self.window_start(g, first_us),
            };
            while start <= last_us {
                let c = self.close(g, start);
                if c.horizon_us > wm_us {
                    break;
                }
                start = c.span.end_us;
                out.push(c);
            }
        }
        out.sort_by_key(|c| (c.horizon_us, c.group));
        out
    }

    /// The closed windows (per `progress`) of every group whose context
    /// holds `t_us`: a late event there makes them worth judging again.
    pub fn closed_windows_seeing(&self, progress: &Progress, t_us: i64) -> Vec<Close> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let Some(&closed_end) = progress.get(&group.name) else {
                continue;
            };
            let w = group.window;
            // Windows whose [from, horizon) holds t: start in
            // (t - size - delay, t + lookback].
            let mut start = self.window_start(g, t_us - (w.delay_s) * US);
            let last = t_us + w.lookback_s * US;
            // Step back to the first window whose horizon is past t.
            while self.close(g, start).horizon_us > t_us {
                start -= w.size_s * US;
            }
            start += w.size_s * US;
            while start <= last && start < closed_end {
                let c = self.close(g, start);
                if c.from_us <= t_us && t_us < c.horizon_us {
                    out.push(c);
                }
                start += w.size_s * US;
            }
        }
        out
    }

    /// The closed windows (per `progress`) of every group whose context
    /// overlaps `[lo_us, hi_us]`: late events somewhere in that span make
    /// them worth judging again.
    pub fn closed_windows_touching(
        &self,
        progress: &Progress,
        lo_us: i64,
        hi_us: i64,
    ) -> Vec<Close> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let Some(&closed_end) = progress.get(&group.name) else {
                continue;
            };
            let w = group.window;
            // Windows whose [from, horizon) meets [lo, hi]: start in
            // (lo - size - delay, hi + lookback].
            let mut start = self.window_start(g, lo_us - (w.size_s + w.delay_s) * US);
            while start <= hi_us + w.lookback_s * US && start < closed_end {
                let c = self.close(g, start);
                if c.from_us <= hi_us && lo_us < c.horizon_us {
                    out.push(c);
                }
                start += w.size_s * US;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * US;
    const D: i64 = 24 * H;

    fn windows() -> BTreeMap<String, DetectorWindow> {
        let day = DetectorWindow {
            size_s: DAY_S,
            lookback_s: 6 * DAY_S,
            delay_s: 3600,
        };
        BTreeMap::from([
            ("phone_farm".to_string(), day),
            ("record_churn".to_string(), day),
            (
                "non_human_track".to_string(),
                DetectorWindow {
                    size_s: 3600,
                    lookback_s: DAY_S,
                    delay_s: 1800,
                },
            ),
        ])
    }

    #[test]
    fn windows_touching_a_span_are_those_seeing_any_instant_of_it() {
        let s = Schedule::new(&windows(), 8 * 3600);
        let progress: Progress = s.groups.iter().map(|g| (g.name.clone(), 20 * D)).collect();
        let key = |c: &Close| (c.group, c.span.start_us);
        for (lo, hi) in [
            (3 * D + 5, 3 * D + 5),
            (2 * D + 7 * H, 2 * D + 9 * H),
            (10 * D - 1, 11 * D + 1),
        ] {
            let mut want: Vec<_> = (lo..=hi)
                .step_by((H / 4) as usize)
                .chain([hi])
                .flat_map(|t| s.closed_windows_seeing(&progress, t))
                .map(|c| key(&c))
                .collect();
            want.sort();
            want.dedup();
            let mut got: Vec<_> = s
                .closed_windows_touching(&progress, lo, hi)
                .iter()
                .map(key)
                .collect();
            got.sort();
            assert_eq!(got, want, "span {lo}..={hi}");
            assert!(!got.is_empty());
        }
    }

    #[test]
    fn identical_windows_are_one_group() {
        let s = Schedule::new(&windows(), 8 * 3600);
        let names: Vec<&str> = s.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["non_human_track", "phone_farm+record_churn"]);
    }

    #[test]
    fn days_start_at_local_midnight() {
        let s = Schedule::new(&windows(), 8 * 3600);
        // 2026-11-02T00:30:00+08:00 is 2026-11-01T16:30Z.
        let t = 1_793_550_600 * US;
        let start = s.window_start(1, t);
        assert_eq!(start, t - 30 * 60 * US);
        let c = s.close(1, start);
        assert_eq!(c.span.end_us - c.span.start_us, D);
        assert_eq!(c.horizon_us, c.span.end_us + H);
        assert_eq!(c.from_us, start - 6 * D);
    }

    #[test]
    fn due_waits_for_the_horizon_and_resumes_after_progress() {
        let s = Schedule::new(&windows(), 0);
        let first = 10 * D + 5 * H;
        let last = 12 * D + 3 * H;
        // Watermark at day 11 00:59: day 10 not yet (horizon 11 01:00).
        let due = s.due(&Progress::new(), first, last, 11 * D + H - 1);
        assert!(due.iter().all(|c| c.group == 0));
        assert_eq!(due.len(), 19); // hours 05..=23 of day 10 (horizon +30 min)
        let due = s.due(&Progress::new(), first, last, 11 * D + H);
        assert_eq!(due.iter().filter(|c| c.group == 1).count(), 1);
        // Progress says day 10 is done: the next day group close is day 11.
        let progress = Progress::from([("phone_farm+record_churn".to_string(), 11 * D)]);
        let due = s.due(&progress, first, last, i64::MAX);
        let days: Vec<i64> = due
            .iter()
            .filter(|c| c.group == 1)
            .map(|c| c.span.start_us / D)
            .collect();
        assert_eq!(days, [11, 12]);
        // Horizon order across groups.
        assert!(due.windows(2).all(|w| w[0].horizon_us <= w[1].horizon_us));
    }

    #[test]
    fn late_events_name_the_closed_windows_that_saw_their_time() {
        let s = Schedule::new(&windows(), 0);
        let progress = Progress::from([
            ("phone_farm+record_churn".to_string(), 20 * D),
            ("non_human_track".to_string(), 20 * D),
        ]);
        // An event on day 15 at 12:10 is seen by the day windows 15..=19
        // (lookback 6 days; day 20 is not closed) and by the hour windows
        // whose context [start - 1 day, end + 30 min) holds it.
        let t = 15 * D + 12 * H + 10 * 60 * US;
        let seen = s.closed_windows_seeing(&progress, t);
        let days: Vec<i64> = seen
            .iter()
            .filter(|c| c.group == 1)
            .map(|c| c.span.start_us / D)
            .collect();
        assert_eq!(days, [15, 16, 17, 18, 19]);
        let hours = seen.iter().filter(|c| c.group == 0).count();
        assert_eq!(hours, 26); // 11:00 on day 15 (horizon 12:30) .. 12:00 on day 16
        for c in &seen {
            assert!(c.from_us <= t && t < c.horizon_us);
        }
    }

    #[test]
    fn bad_sizes_are_all_named() {
        let w = DetectorWindow {
            size_s: 7000,
            lookback_s: -1,
            delay_s: -2,
        };
        assert_eq!(w.validate("phone_farm").len(), 3);
    }
}
