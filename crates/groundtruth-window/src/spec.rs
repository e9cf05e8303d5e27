//! Window specifications (read from `pipelines/*.toml`).

use serde::{Deserialize, Serialize};

use crate::Span;

/// The shape of a detector's windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowKind {
    /// Back-to-back windows of `size_s` seconds.
    Tumbling { size_s: i64 },
    /// Windows of `size_s` seconds starting every `slide_s` seconds (an
    /// event belongs to `size_s / slide_s` of them).
    Sliding { size_s: i64, slide_s: i64 },
    /// Per key: events closer than `gap_s` apart belong to one window,
    /// which ends `gap_s` after its last event.
    Session { gap_s: i64 },
}

/// A detector's windows: shape and alignment. (Unknown keys are refused by
/// [`WindowKind`], which receives every key but `utc_offset_s`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    #[serde(flatten)]
    pub kind: WindowKind,
    /// Seconds east of UTC that fixed windows align to (28800 for
    /// Asia/Shanghai: daily windows run from local midnight). Default 0.
    #[serde(default)]
    pub utc_offset_s: i64,
}

/// A window specification that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("window `{name}`: {problem}")]
pub struct SpecError {
    pub name: String,
    pub problem: String,
}

const US: i64 = 1_000_000;

impl WindowSpec {
    /// Checks sizes: every problem is returned.
    pub fn validate(&self, name: &str) -> Vec<SpecError> {
        let mut out = Vec::new();
        let mut bad = |problem: String| {
            out.push(SpecError {
                name: name.to_string(),
                problem,
            })
        };
        match self.kind {
            WindowKind::Tumbling { size_s } if size_s <= 0 => {
                bad(format!("size_s must be > 0, got {size_s}"))
            }
            WindowKind::Sliding { size_s, slide_s } => {
                if size_s <= 0 || slide_s <= 0 {
                    bad(format!(
                        "size_s and slide_s must be > 0, got {size_s} and {slide_s}"
                    ));
                } else if size_s % slide_s != 0 {
                    bad(format!(
                        "size_s ({size_s}) must be a multiple of slide_s ({slide_s})"
                    ));
                }
            }
            WindowKind::Session { gap_s } if gap_s <= 0 => {
                bad(format!("gap_s must be > 0, got {gap_s}"))
            }
            _ => {}
        }
        if self.utc_offset_s.abs() > 14 * 3600 {
            bad(format!(
                "utc_offset_s must be within ±14 h, got {}",
                self.utc_offset_s
            ));
        }
        out
    }

    /// The fixed windows (tumbling, sliding) an event at `t_us` belongs to;
    /// empty for session windows (they depend on the other events).
    pub fn fixed_windows(&self, t_us: i64) -> Vec<Span> {
        let off = self.utc_offset_s * US;
        let align = |t: i64, step: i64| crate::align_us(t, step, off);
        match self.kind {
            WindowKind::Tumbling { size_s } => {
                let size = size_s * US;
                let start = align(t_us, size);
                vec![Span {
                    start_us: start,
                    end_us: start + size,
                }]
            }
            WindowKind::Sliding { size_s, slide_s } => {
                let (size, slide) = (size_s * US, slide_s * US);
                let last = align(t_us, slide);
                (0..size / slide)
                    .map(|k| {
                        let start = last - k * slide;
                        Span {
                            start_us: start,
                            end_us: start + size,
                        }
                    })
                    .filter(|s| s.start_us <= t_us && t_us < s.end_us)
                    .collect()
            }
            WindowKind::Session { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_windows_align_to_local_midnight() {
        let day = WindowSpec {
            kind: WindowKind::Tumbling { size_s: 86_400 },
            utc_offset_s: 8 * 3600,
        };
        // 2026-11-02T23:30:00+08:00 = 2026-11-02T15:30:00Z
        let t = 1_793_633_400 * US;
        let w = day.fixed_windows(t);
        assert_eq!(w.len(), 1);
        // Local midnight 2026-11-02T00:00+08:00 = 2026-11-01T16:00:00Z
        assert_eq!(w[0].start_us, 1_793_548_800 * US);
        assert_eq!(w[0].end_us - w[0].start_us, 86_400 * US);
    }

    #[test]
    fn sliding_windows_cover_the_event() {
        let s = WindowSpec {
            kind: WindowKind::Sliding {
                size_s: 300,
                slide_s: 60,
            },
            utc_offset_s: 0,
        };
        let w = s.fixed_windows(1_000 * US);
        assert_eq!(w.len(), 5);
        assert!(w
            .iter()
            .all(|x| x.start_us <= 1_000 * US && 1_000 * US < x.end_us));
    }

    #[test]
    fn every_problem_listed() {
        let s = WindowSpec {
            kind: WindowKind::Sliding {
                size_s: 100,
                slide_s: 30,
            },
            utc_offset_s: 20 * 3600,
        };
        assert_eq!(s.validate("x").len(), 2);
        let toml_like: WindowSpec =
            serde_json::from_str(r#"{"kind": "session", "gap_s": 120}"#).unwrap();
        assert_eq!(toml_like.kind, WindowKind::Session { gap_s: 120 });
        assert!(toml_like.validate("farm").is_empty());
        let typo = serde_json::from_str::<WindowSpec>(r#"{"kind": "session", "gap": 120}"#);
        assert!(typo.is_err());
        let aligned: WindowSpec =
            serde_json::from_str(r#"{"kind": "tumbling", "size_s": 86400, "utc_offset_s": 28800}"#)
                .unwrap();
        assert_eq!(aligned.utc_offset_s, 28_800);
    }
}
