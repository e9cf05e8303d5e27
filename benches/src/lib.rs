//! Helpers shared by the benchmarks: the simulated input, the plain
//! consumer baseline, memory readings.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use groundtruth_sim::{simulate, NdjsonSink, Scenario};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// A whole number from the environment variable `name`, or `default` when
/// it is unset; a value that is not a number is an error naming it.
pub fn env_num(name: &str, default: u64) -> Result<u64> {
    use anyhow::Context;
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v}: a number")),
        Err(_) => Ok(default),
    }
}

/// Writes a bench's report as pretty JSON to `target/bench-NAME.json` at
/// the top of the checkout (creating `target/`, which is absent when the
/// build goes to another `CARGO_TARGET_DIR`) and returns its path.
pub fn write_report(name: &str, report: &serde_json::Value) -> Result<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("bench-{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(report)?)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// One measured run.
pub struct Figure {
    pub name: &'static str,
    pub events: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Figure {
    pub fn eps(&self) -> f64 {
        self.events as f64 / self.seconds
    }
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

/// Writes about `n` simulated events (the default week, as many days as it
/// takes: ~71k events a day, the first `n` of at least a week, whose fraud
/// scenarios are set on given days) to `path` as NDJSON.
pub fn simulate_ndjson(n: usize, path: &Path) -> Result<()> {
    let mut scenario = Scenario::default_week();
    scenario.days = ((n as f64 / 71_000.0).ceil() as u32).max(scenario.days);
    let f = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    struct Cap<W: Write> {
        inner: NdjsonSink<W>,
        left: usize,
    }
    impl<W: Write> groundtruth_sim::SimSink for Cap<W> {
        fn event(&mut self, key: &str, json: &[u8]) -> Result<(), groundtruth_sim::SimError> {
            if self.left == 0 {
                return Ok(());
            }
            self.left -= 1;
            self.inner.event(key, json)
        }
    }
    let mut sink = Cap {
        inner: NdjsonSink::new(f),
        left: n,
    };
    simulate(&scenario, &mut sink)?;
    sink.inner.into_inner().flush()?;
    Ok(())
}

/// A plain rdkafka consumer draining `topic` (`expected` messages): the
/// baseline of every Kafka figure. Timed from the first message, so the
/// group join is not counted.
pub fn plain_consumer(bootstrap: &str, topic: &str, expected: u64) -> Result<Figure> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-plain-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[topic])?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while n < expected && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            first.get_or_insert_with(Instant::now);
            n += 1;
            bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len) as u64;
        }
    }
    let seconds = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
    Ok(Figure {
        name: "Kafka: plain rdkafka consumer",
        events: n,
        bytes,
        seconds,
    })
}

/// A week for about `events` events: the default week scaled in people,
/// units and fraud (about 390 events per official per week in its mix).
pub fn scenario_for(events: u64) -> groundtruth_sim::Scenario {
    let mut s = groundtruth_sim::Scenario::default_week();
    let officials = (events / 390).max(1200) as u32;
    let scale = officials as f64 / 1200.0;
    s.name = format!("bench-{events}");
    s.population.officials = officials;
    s.population.residents = (500.0 * scale) as u32;
    s.population.units_per_region = (4.0 * scale).round().max(4.0) as u32;
    s.population.registrations_per_day = (15.0 * scale) as u32;
    let f = &mut s.fraud;
    f.phone_farm.farms = scale.round().max(1.0) as u32;
    f.bulk_check_in.operators = scale.round().max(1.0) as u32;
    f.registration_farm.farms = scale.round().max(1.0) as u32;
    f.record_churn.workers = scale.round().max(1.0) as u32;
    f.report_inflation.units = scale.round().max(1.0) as u32;
    s
}
