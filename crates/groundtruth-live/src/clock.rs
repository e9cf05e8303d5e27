//! The watermark over several Kafka partitions.
//!
//! Each partition is in event-time order only up to the allowed lateness,
//! and partitions are read at different speeds, so the service's watermark
//! is the *slowest* partition's: the minimum over the partitions that still
//! have data to deliver of (latest event time there − lateness). A partition
//! that is caught up (nothing more to read now) does not hold event time
//! back; when nothing has data pending, the watermark is the latest
//! partition's. This is Flink's and Arroyo's rule, idle sources included.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Latest event time per partition (`topic/partition`), epoch µs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionClock {
    pub lateness_us: i64,
    pub latest: BTreeMap<String, i64>,
}

impl PartitionClock {
    pub fn new(lateness_us: i64) -> Self {
        PartitionClock {
            lateness_us: lateness_us.max(0),
            latest: BTreeMap::new(),
        }
    }

    /// Records an event time read from `partition`.
    pub fn observe(&mut self, partition: &str, t_us: i64) {
        let e = self.latest.entry(partition.to_string()).or_insert(t_us);
        *e = (*e).max(t_us);
    }

    /// The watermark given which partitions still have data to deliver
    /// (`pending`); `None` while a pending partition has delivered nothing
    /// (its events could be older than everything seen).
    pub fn watermark<'a>(&self, pending: impl IntoIterator<Item = &'a str>) -> Option<i64> {
        let mut min: Option<i64> = None;
        let mut any = false;
        for p in pending {
            any = true;
            let t = *self.latest.get(p)?;
            min = Some(min.map_or(t, |m| m.min(t)));
        }
        let base = if any {
            min
        } else {
            self.latest.values().copied().max()
        };
        base.map(|t| t.saturating_sub(self.lateness_us))
    }

    /// Latest event time over all partitions.
    pub fn latest_event(&self) -> Option<i64> {
        self.latest.values().copied().max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_slowest_pending_partition_sets_the_watermark() {
        let mut c = PartitionClock::new(10);
        c.observe("t/0", 100);
        c.observe("t/1", 50);
        c.observe("t/0", 90);
        assert_eq!(c.watermark(["t/0", "t/1"]), Some(40));
        // t/1 caught up: it no longer holds event time back.
        assert_eq!(c.watermark(["t/0"]), Some(90));
        // Nothing pending: the latest partition's.
        assert_eq!(c.watermark([]), Some(90));
        // A pending partition that has delivered nothing: unknown.
        assert_eq!(c.watermark(["t/0", "t/2"]), None);
    }

    proptest! {
        /// However the partitions interleave, an event within the lateness
        /// of its own partition's order is never behind the watermark.
        #[test]
        fn in_order_partitions_within_lateness_are_never_late(
            steps in proptest::collection::vec(
                proptest::collection::vec((0i64..100, 0i64..=50), 1..40), 1..4),
            picks in proptest::collection::vec(0usize..4, 0..200),
        ) {
            // Each partition: a rising clock with up to `lateness` of jitter.
            let lateness = 50;
            let parts: Vec<Vec<i64>> = steps
                .iter()
                .map(|p| {
                    let mut base = 0;
                    p.iter().map(|(step, jitter)| { base += step; base + jitter }).collect()
                })
                .collect();
            let mut c = PartitionClock::new(lateness);
            let mut pos = vec![0usize; parts.len()];
            let names: Vec<String> = (0..parts.len()).map(|i| format!("t/{i}")).collect();
            let mut order: Vec<usize> = picks.into_iter().map(|p| p % parts.len()).collect();
            for (i, p) in parts.iter().enumerate() {
                order.extend(std::iter::repeat_n(i, p.len()));
            }
            for i in order {
                if pos[i] >= parts[i].len() { continue; }
                let pending: Vec<&str> = (0..parts.len())
                    .filter(|&j| pos[j] < parts[j].len())
                    .map(|j| names[j].as_str())
                    .collect();
                let t = parts[i][pos[i]];
                if let Some(w) = c.watermark(pending.iter().copied()) {
                    prop_assert!(t >= w, "event {t} behind watermark {w}");
                }
                c.observe(&names[i], t);
                pos[i] += 1;
            }
        }
    }
}
