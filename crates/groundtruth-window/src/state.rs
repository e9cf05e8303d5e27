//! Open windows with their partial aggregates.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::spec::{WindowKind, WindowSpec};
use crate::watermark::{Arrival, Watermark};
use crate::Span;

/// A partial aggregate: what a detector keeps of a window's events until
/// the window closes. `merge` joins two (session windows bridged by a late
/// event).
pub trait Partial: Default + Clone {
    type Input;
    fn add(&mut self, t_us: i64, input: &Self::Input);
    fn merge(&mut self, other: Self);
}

/// A window that closed, with its final aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed<K, P> {
    pub span: Span,
    pub key: K,
    pub partial: P,
}

/// One open session of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session<P> {
    first_us: i64,
    last_us: i64,
    partial: P,
}

/// The open windows of one detector, keyed by `K` (e.g. a network, an
/// account, a region).
#[derive(Debug, Clone)]
pub struct Windows<K, P> {
    spec: WindowSpec,
    watermark: Watermark,
    /// Fixed windows by (end, start, key): the first entries close first.
    fixed: BTreeMap<(i64, i64, K), P>,
    sessions: BTreeMap<K, Vec<Session<P>>>,
    /// No open session closes before this (a lower bound of every open
    /// session's `last_us + gap`): advancing the watermark below it skips
    /// the walk over every key's sessions.
    sessions_close_from: i64,
    late: u64,
}

/// The serialised form (JSON object keys must be strings, so maps become lists).
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, P: Serialize",
    deserialize = "K: DeserializeOwned, P: DeserializeOwned"
))]
struct Snapshot<K, P> {
    spec: WindowSpec,
    watermark: Watermark,
    fixed: Vec<((i64, i64, K), P)>,
    sessions: Vec<(K, Vec<Session<P>>)>,
    late: u64,
}

/// A checkpoint that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("window checkpoint cannot be written or read: {0}; delete it to rebuild the windows from the lake")]
pub struct CheckpointError(#[from] serde_json::Error);

const US: i64 = 1_000_000;

impl<K: Ord + Clone, P: Partial> Windows<K, P> {
    pub fn new(spec: WindowSpec, lateness_us: i64) -> Self {
        Windows {
            spec,
            watermark: Watermark::new(lateness_us),
            fixed: BTreeMap::new(),
            sessions: BTreeMap::new(),
            sessions_close_from: i64::MAX,
            late: 0,
        }
    }

    /// Folds one event into its windows. A late event (older than the
    /// watermark) is counted and not folded: its windows may have closed.
    pub fn push(&mut self, key: K, t_us: i64, input: &P::Input) -> Arrival {
        let arrival = self.watermark.observe(t_us);
        if let Arrival::Late { .. } = arrival {
            self.late += 1;
            return arrival;
        }
        match self.spec.kind {
            WindowKind::Session { gap_s } => self.push_session(key, t_us, input, gap_s * US),
            _ => {
                for span in self.spec.fixed_windows(t_us) {
                    self.fixed
                        .entry((span.end_us, span.start_us, key.clone()))
                        .or_default()
                        .add(t_us, input);
                }
            }
        }
        arrival
    }

    fn push_session(&mut self, key: K, t_us: i64, input: &P::Input, gap: i64) {
        let open = self.sessions.entry(key).or_default();
        // Sessions this event is within `gap` of (it may bridge several).
        let (mut near, far): (Vec<Session<P>>, Vec<Session<P>>) = std::mem::take(open)
            .into_iter()
            .partition(|s| t_us > s.first_us - gap && t_us < s.last_us + gap);
        let mut joined = Session {
            first_us: t_us,
            last_us: t_us,
            partial: P::default(),
        };
        near.sort_by_key(|s| s.first_us);
        for s in near {
            joined.first_us = joined.first_us.min(s.first_us);
            joined.last_us = joined.last_us.max(s.last_us);
            joined.partial.merge(s.partial);
        }
        joined.partial.add(t_us, input);
        self.sessions_close_from = self
            .sessions_close_from
            .min(joined.last_us.saturating_add(gap));
        *open = far;
        open.push(joined);
        open.sort_by_key(|s| s.first_us);
    }

    /// Closes every window the watermark has passed, in end order, and
    /// forgets it.
    pub fn advance(&mut self) -> Vec<Closed<K, P>> {
        match self.watermark.current() {
            Some(w) => self.close_through(w),
            None => Vec::new(),
        }
    }

    /// End of input (a batch run): closes everything.
    pub fn finish(&mut self) -> Vec<Closed<K, P>> {
        self.close_through(i64::MAX)
    }

    fn close_through(&mut self, w: i64) -> Vec<Closed<K, P>> {
        let mut out = Vec::new();
        while let Some(entry) = self.fixed.first_entry() {
            if entry.key().0 > w {
                break;
            }
            let ((end_us, start_us, key), partial) = entry.remove_entry();
            out.push(Closed {
                span: Span { start_us, end_us },
                key,
                partial,
            });
        }
        // Sessions: only once the watermark reaches the earliest close.
        if let (WindowKind::Session { gap_s }, true) =
            (&self.spec.kind, w >= self.sessions_close_from)
        {
            let gap = gap_s * US;
            let mut next = i64::MAX;
            self.sessions.retain(|key, open| {
                let (done, still): (Vec<_>, Vec<_>) = std::mem::take(open)
                    .into_iter()
                    .partition(|s| s.last_us.saturating_add(gap) <= w);
                for s in done {
                    out.push(Closed {
                        span: Span {
                            start_us: s.first_us,
                            end_us: s.last_us + gap,
                        },
                        key: key.clone(),
                        partial: s.partial,
                    });
                }
                for s in &still {
                    next = next.min(s.last_us.saturating_add(gap));
                }
                *open = still;
                !open.is_empty()
            });
            self.sessions_close_from = next;
        }
        out.sort_by(|a, b| {
            (a.span.end_us, a.span.start_us)
                .cmp(&(b.span.end_us, b.span.start_us))
                .then_with(|| a.key.cmp(&b.key))
        });
        out
    }

    /// Open windows (fixed) plus open sessions: the state size.
    pub fn open_windows(&self) -> usize {
        self.fixed.len() + self.sessions.values().map(Vec::len).sum::<usize>()
    }

    /// Events that arrived behind the watermark.
    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }
}

impl<K, P> Windows<K, P>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    P: Partial + Serialize + DeserializeOwned,
{
    /// The whole state as JSON (stored beside the source offsets).
    pub fn checkpoint(&self) -> Result<Vec<u8>, CheckpointError> {
        let snap = Snapshot {
            spec: self.spec.clone(),
            watermark: self.watermark,
            fixed: self
                .fixed
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            late: self.late,
        };
        Ok(serde_json::to_vec(&snap)?)
    }

    /// The state a [`Windows::checkpoint`] stored.
    pub fn restore(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let snap: Snapshot<K, P> = serde_json::from_slice(bytes)?;
        Ok(Windows {
            spec: snap.spec,
            watermark: snap.watermark,
            fixed: snap.fixed.into_iter().collect(),
            sessions: snap.sessions.into_iter().collect(),
            // Walk the sessions at the first advance.
            sessions_close_from: i64::MIN,
            late: snap.late,
        })
    }
}
