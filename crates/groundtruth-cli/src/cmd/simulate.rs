//! `groundtruth simulate`: the labelled simulator to files, Kafka or the lake.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use groundtruth_config::Config;
use groundtruth_kafka::{create_topics, TopicProducer};
use groundtruth_sim::{simulate, NdjsonSink, Scenario, SimSummary};

use crate::cmd::kafka::kafka_properties;
use crate::SimulateArgs;

pub(crate) fn load_scenario(
    path: Option<&Path>,
    seed: Option<u64>,
    days: Option<u32>,
) -> Result<Scenario> {
    let mut scenario = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read scenario file `{}`", p.display()))?;
            Scenario::from_toml_str(&text)
                .with_context(|| format!("scenario file `{}`", p.display()))?
        }
        None => Scenario::default_week(),
    };
    if let Some(s) = seed {
        scenario.seed = s;
    }
    if let Some(d) = days {
        scenario.days = d;
    }
    scenario
        .validate()
        .context("scenario after --seed/--days overrides")?;
    Ok(scenario)
}

pub(crate) fn write_labels(dir: &Path, summary: &SimSummary) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create labels directory `{}`", dir.display()))?;
    let accounts = dir.join("accounts.csv");
    let patrols = dir.join("patrols.csv");
    let open = |p: &Path| -> Result<BufWriter<File>> {
        Ok(BufWriter::new(File::create(p).with_context(|| {
            format!("cannot create `{}`", p.display())
        })?))
    };
    let mut w = open(&accounts)?;
    summary.labels.write_accounts_csv(&mut w)?;
    w.flush()?;
    let mut w = open(&patrols)?;
    summary.labels.write_patrols_csv(&mut w)?;
    w.flush()?;
    Ok(())
}

/// The simulator's events to a topic, keyed by account.
struct KafkaSink(TopicProducer);

impl groundtruth_sim::SimSink for KafkaSink {
    fn event(&mut self, key: &str, json: &[u8]) -> Result<(), groundtruth_sim::SimError> {
        self.0.send_raw(key.as_bytes(), json);
        Ok(())
    }
}

/// The world `eval worlds` names `world-SEED-INDEX` when it draws worlds
/// of `days` days from SEED (world INDEX's draw depends only on the draws
/// before it, not on how many are drawn).
pub(crate) fn drawn_world(name: &str, days: u32, patrols: bool) -> Result<Scenario> {
    let parsed = name
        .strip_prefix("world-")
        .and_then(|r| r.split_once('-'))
        .and_then(|(s, i)| Some((s.parse::<u64>().ok()?, i.parse::<u32>().ok()?)));
    let Some((seed, index)) = parsed else {
        anyhow::bail!(
            "--world {name:?}: expected a name as `eval worlds` reports it, world-SEED-INDEX (e.g. world-2-16)"
        );
    };
    anyhow::ensure!(
        index < 10_000,
        "--world {name:?}: index {index} is beyond any draw (at most 9999)"
    );
    let mut s = groundtruth_eval::behaviour::draw_worlds(index + 1, seed, days)
        .pop()
        .context("no world drawn")?;
    if patrols {
        s = groundtruth_eval::behaviour::with_drawn_patrols(s);
    }
    s.validate()
        .with_context(|| format!("drawn world {name}"))?;
    Ok(s)
}

pub(crate) fn simulate_cmd(cfg: &Config, args: &SimulateArgs) -> Result<()> {
    let scenario = match &args.world {
        Some(name) => drawn_world(name, args.days.unwrap_or(3), args.drawn_patrols)?,
        None => load_scenario(args.scenario.as_deref(), args.seed, args.days)?,
    };
    let started = std::time::Instant::now();
    let summary = if let Some(topic) = &args.kafka_topic {
        create_topics(&cfg.kafka.brokers, &[(topic.clone(), args.partitions)])?;
        let extra = kafka_properties(cfg);
        let mut sink = KafkaSink(TopicProducer::new(&cfg.kafka.brokers, topic, &extra)?);
        let summary = simulate(&scenario, &mut sink)?;
        sink.0.flush(Duration::from_secs(300))?;
        summary
    } else {
        let out = args.output.as_deref().unwrap_or(Path::new("-"));
        let writer: Box<dyn Write> = if out == Path::new("-") {
            Box::new(std::io::stdout().lock())
        } else {
            let f =
                File::create(out).with_context(|| format!("cannot create `{}`", out.display()))?;
            if out.extension().is_some_and(|x| x == "gz") {
                Box::new(flate2::write::GzEncoder::new(
                    f,
                    flate2::Compression::fast(),
                ))
            } else {
                Box::new(f)
            }
        };
        let mut sink = NdjsonSink::new(BufWriter::with_capacity(1 << 20, writer));
        let summary = simulate(&scenario, &mut sink)?;
        let mut w = sink.into_inner();
        w.flush().context("cannot write the simulated events")?;
        drop(w);
        summary
    };
    if let Some(dir) = &args.labels {
        write_labels(dir, &summary)?;
    }
    eprintln!(
        "simulated {} events ({} accounts, {} patrols) in {:.1}s",
        summary.events,
        summary.accounts,
        summary.patrols,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn read_scenario(p: &std::path::Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read scenario {}", p.display()))?;
    Scenario::from_toml_str(&text).with_context(|| format!("scenario {}", p.display()))
}
