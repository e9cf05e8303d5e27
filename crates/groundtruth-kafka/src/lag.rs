//! The consumer-lag gauges, refreshed off the consuming thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use groundtruth_telemetry::metric;
use rdkafka::consumer::Consumer;

use crate::options::{client_config, KafkaOptions};

/// Sets `groundtruth_consumer_lag_messages{partition}` every few seconds
/// from a thread of its own: asking the broker for a partition's high
/// watermark is a round trip the consuming loop must not wait for.
pub struct LagReporter {
    positions: Positions,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Per `topic/partition`: (topic, partition, next offset to read).
type Positions = Arc<Mutex<BTreeMap<String, (String, i32, i64)>>>;

/// How often the lag gauges are refreshed.
const LAG_EVERY: Duration = Duration::from_secs(5);

impl LagReporter {
    /// Starts the reporter's thread (none when no client can be made: the
    /// gauges are then not set).
    pub fn start(kafka: &KafkaOptions) -> LagReporter {
        let positions: Positions = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let client: Option<rdkafka::consumer::BaseConsumer> =
            client_config(&kafka.brokers, &kafka.extra).create().ok();
        let thread = client.map(|client| {
            let (positions, stop) = (positions.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now() - LAG_EVERY;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() < LAG_EVERY {
                        continue;
                    }
                    last = Instant::now();
                    let now: Vec<(String, (String, i32, i64))> = positions
                        .lock()
                        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    for (tp, (topic, partition, next)) in now {
                        if let Ok((_, high)) =
                            client.fetch_watermarks(&topic, partition, Duration::from_secs(2))
                        {
                            metrics::gauge!(metric::CONSUMER_LAG.name, "partition" => tp)
                                .set((high - next).max(0) as f64);
                        }
                    }
                }
            })
        });
        LagReporter {
            positions,
            stop,
            thread,
        }
    }

    /// The assigned partitions and the next offset to read of each:
    /// (topic, partition, next offset).
    pub fn positions(&self, assigned: impl IntoIterator<Item = (String, i32, i64)>) {
        if let Ok(mut p) = self.positions.lock() {
            p.clear();
            for (topic, partition, next) in assigned {
                p.insert(format!("{topic}/{partition}"), (topic, partition, next));
            }
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
