//! Settings and logging, shared by the commands.

use std::time::Duration;

use anyhow::Result;
use groundtruth_config::{Config, LogFormat, Sources};
use groundtruth_event::DecodeOptions;
use groundtruth_ingest::{FlushPolicy, Ingestor};
use groundtruth_lake::{LakeOptions, LakeWriter};
use tracing_subscriber::EnvFilter;

use crate::GlobalArgs;

/// Loads and validates the settings: defaults, file, env, flags.
pub(crate) fn load_config(g: &GlobalArgs, extra: Vec<String>) -> Result<Config> {
    let mut overrides = g.set.clone();
    if let Some(dir) = &g.lake {
        overrides.push(format!(
            "lake.dir={}",
            toml_string(&dir.display().to_string())
        ));
    }
    if let Some(b) = &g.brokers {
        overrides.push(format!("kafka.brokers={}", toml_string(b)));
    }
    overrides.extend(extra);
    let src = Sources {
        file: g.config.as_deref(),
        env: std::env::vars().collect(),
        overrides,
    };
    Ok(Config::load(&src)?)
}

/// The detection's cache between closes as the settings say
/// (`live.window_memory_rows`, `detect.close_cache`).
pub(crate) fn close_cache(cfg: &Config) -> groundtruth_detect::CloseCache {
    groundtruth_detect::CloseCache::new(cfg.live.window_memory_rows, cfg.detect.close_cache)
}

/// Quotes a value for a `--set` override.
pub(crate) fn toml_string(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

pub(crate) fn init_logging(cfg: &Config) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: log files stay plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub(crate) fn lake_options(cfg: &Config) -> LakeOptions {
    LakeOptions {
        zone: cfg.lake.day_zone,
        target_file_rows: cfg.lake.target_file_rows,
        row_group_rows: cfg.lake.row_group_rows,
        compact_min_files: cfg.lake.compact_min_files,
        member: cfg.lake.member.clone(),
        ..LakeOptions::default()
    }
}

pub(crate) fn decode_options(cfg: &Config) -> DecodeOptions {
    DecodeOptions {
        max_event_bytes: cfg.ingest.max_event_bytes,
    }
}

pub(crate) fn ingestor(cfg: &Config, source: &'static str) -> Result<Ingestor> {
    let lake = LakeWriter::open(&cfg.lake.dir, lake_options(cfg))?;
    Ok(Ingestor::new(
        lake,
        decode_options(cfg),
        FlushPolicy {
            max_rows: cfg.ingest.flush_max_rows,
            max_bytes: cfg.ingest.flush_max_bytes,
            interval: Duration::from_millis(cfg.ingest.flush_interval_ms),
        },
        source,
    )
    .with_lateness_s(cfg.ingest.allowed_lateness_s))
}
