//! `groundtruth ingest`: files or Kafka into the lake.

use std::time::Duration;

use anyhow::{bail, Result};
use groundtruth_config::Config;
use groundtruth_ingest::{ingest_files, ingest_simulation};
use groundtruth_kafka::ingest_kafka;

use crate::cmd::kafka::kafka_options;
use crate::cmd::simulate::load_scenario;
use crate::runtime::shutdown_flag;
use crate::setup::ingestor;
use crate::IngestArgs;

pub(crate) fn ingest(cfg: &Config, args: &IngestArgs) -> Result<()> {
    if args.kafka {
        let mut ing = ingestor(cfg, "kafka")?;
        let idle = args.exit_when_idle.map(Duration::from_secs_f64);
        let opts = kafka_options(cfg, idle);
        let stop = shutdown_flag();
        let s = ingest_kafka(&mut ing, &opts, &stop)?;
        eprintln!(
            "ingested {} Kafka messages in {:.1}s ({:.0}/s): {}; {} to the DLQ",
            s.messages,
            s.seconds,
            s.messages as f64 / s.seconds.max(1e-9),
            s.counts.summary(),
            s.dlq_produced
        );
        return Ok(());
    }
    if let Some(path) = &args.simulate {
        let scenario = load_scenario(Some(path), None, None)?;
        let mut ing = ingestor(cfg, "simulator")?;
        let summary = ingest_simulation(&mut ing, &scenario)?;
        eprintln!(
            "simulated {} events for {} accounts: {}",
            summary.events,
            summary.accounts,
            ing.totals().summary()
        );
        return Ok(());
    }
    if args.files.is_empty() {
        bail!("nothing to ingest: give NDJSON files, --kafka or --simulate SCENARIO (see groundtruth ingest --help)");
    }
    for f in &args.files {
        if !f.is_file() {
            bail!(
                "input file `{}` does not exist or is not a file",
                f.display()
            );
        }
    }
    let mut ing = ingestor(cfg, "file")?;
    let s = ingest_files(&mut ing, &args.files, !args.quiet)?;
    let mb = s.counts.bytes as f64 / 1e6;
    eprintln!(
        "ingested {} lines from {} file(s) in {:.2}s ({:.0} events/s, {:.1} MB/s): {}",
        s.lines,
        s.files,
        s.seconds,
        s.lines as f64 / s.seconds.max(1e-9),
        mb / s.seconds.max(1e-9),
        s.counts.summary()
    );
    Ok(())
}
