//! `groundtruth detect`: the contract's command, files in, findings out.

use anyhow::{bail, Context, Result};
use groundtruth_config::Config;

use crate::cmd::kafka::publish_findings;
use crate::runtime::query_runtime;
use crate::setup::lake_options;
use crate::DetectArgs;

pub(crate) fn detect(cfg: &Config, args: &DetectArgs) -> Result<()> {
    for p in &args.input {
        if !p.is_file() {
            bail!("input {} is not a readable file", p.display());
        }
    }
    let dead = args.dead_letters.clone().unwrap_or_else(|| {
        let stem = args
            .output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "findings".into());
        args.output
            .with_file_name(format!("{stem}.dead-letters.ndjson"))
    });
    let scratch = tempfile::Builder::new()
        .prefix("groundtruth-detect-")
        .tempdir()
        .context("cannot create a scratch directory for the detection lake")?;
    let rt = query_runtime()?;
    let started = std::time::Instant::now();
    let s = rt.block_on(groundtruth_eval::detect_files(
        &args.input,
        &args.output,
        &dead,
        &scratch.path().join("lake"),
        lake_options(cfg),
        crate::setup::decode_options(cfg),
        &cfg.schedule(),
        &cfg.detect.calibration,
        &crate::setup::close_cache(cfg),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    ))?;
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &s.findings {
        *by.entry(f.detector.as_str()).or_default() += 1;
    }
    eprintln!("{}", s.counts.summary());
    eprintln!(
        "{} findings {:?} from {} windows in {:.1} s; {} bad events written to {}",
        s.findings.len(),
        by,
        s.closes.iter().filter(|c| !c.empty).count(),
        started.elapsed().as_secs_f64(),
        s.dead_letters,
        dead.display()
    );
    if let Some(topic) = &args.findings_topic {
        let n = publish_findings(cfg, topic, &s.findings)?;
        eprintln!("published {n} findings to Kafka topic {topic}");
    }
    Ok(())
}
