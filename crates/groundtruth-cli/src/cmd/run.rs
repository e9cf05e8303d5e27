//! `groundtruth run`: the live service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use groundtruth_config::Config;

use crate::cmd::kafka::kafka_options;
use crate::cmd::review;
use crate::runtime::{query_runtime, shutdown_flag};
use crate::setup::ingestor;
use crate::RunArgs;

pub(crate) fn run_service(cfg: &Config, args: &RunArgs) -> Result<()> {
    let rt = query_runtime()?;
    let state_dir = review::state_dir(cfg, args.state.as_deref());
    let stop = shutdown_flag();
    // The API stops when the service stops (signal, or a drained bounded run).
    let api_stop = Arc::new(AtomicBool::new(false));
    let (store, api) = rt.block_on(async {
        let metrics = review::install_metrics(cfg)?;
        let store = review::open_store(cfg, &state_dir).await?;
        let api = match cfg.api.listen {
            Some(addr) => Some(
                review::start_servers(
                    cfg,
                    addr,
                    cfg.pgwire.listen,
                    store.clone(),
                    Some(metrics),
                    api_stop.clone(),
                )
                .await?,
            ),
            None => None,
        };
        anyhow::Ok((store, api))
    })?;
    let mut ing = ingestor(cfg, "kafka")?.without_late_count();
    let drain = match args.drain_when_idle {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--drain-when-idle {s}: expected seconds >= 0"),
        None => None,
    };
    let opts = groundtruth_live::LiveOptions {
        kafka: kafka_options(cfg, drain),
        state_dir,
        lake_dir: cfg.lake.dir.clone(),
        zone: cfg.lake.day_zone,
        schedule: cfg.schedule(),
        calibration: cfg.detect.calibration.clone(),
        findings_topic: cfg.live.findings_topic.clone(),
        store,
        runtime: rt.handle().clone(),
        window_memory_rows: cfg.live.window_memory_rows,
        close_cache: cfg.detect.close_cache,
    };
    tracing::info!(brokers = %opts.kafka.brokers, topics = ?opts.kafka.topics, lake = %cfg.lake.dir.display(), state = %opts.state_dir.display(), store = %opts.store.url(), "consuming");
    let result = groundtruth_live::run_live(&mut ing, &opts, &stop);
    api_stop.store(true, Ordering::Relaxed);
    if let Some(servers) = api {
        rt.block_on(servers.wait());
    }
    let s = result?;
    let mut lat = s.latencies_s.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    eprintln!(
        "{} messages in {:.1} s: {}; {} windows closed, {} re-scanned, {} findings stored ({} published), {} events late for a closed window; detection latency p50 {:.3} s, p99 {:.3} s",
        s.messages,
        s.seconds,
        s.counts.summary(),
        s.windows_closed,
        s.rescans,
        s.findings_stored,
        s.findings_published,
        s.late_for_closed,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}
