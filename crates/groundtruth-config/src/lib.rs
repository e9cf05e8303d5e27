//! Settings, from (later wins) built-in defaults, a TOML file, environment
//! variables `GROUNDTRUTH_<SECTION>__<KEY>` and `--set section.key=value`
//! flags ([`layers`](Sources)), read into typed structs (serde, unknown keys
//! refused) whose fields say how each value is read ([`values`]).
//! Everything is checked before the program starts; all problems are
//! reported together, each naming the key and where its value came from.
//! A setting that can be off is an `Option` (written `""` in TOML).
//!
//! ```toml
//! [lake]
//! dir = "data/lake"            # where Parquet files and dead letters go
//! day_zone = "Asia/Shanghai"   # zone of `event_date` partitions
//! target_file_rows = 1000000   # compaction merges small files up to this
//! row_group_rows = 131072
//! compact_min_files = 8        # small files in a partition before compaction
//! member = ""                  # "" = this process is the lake's only writer; a name
//!                              # (letters, digits, -, _) per `groundtruth run` instance
//!                              # when several instances share the lake (scale-out)
//!
//! [ingest]
//! max_event_bytes = 1048576    # larger messages are dead letters (too_large)
//! flush_interval_ms = 1000     # streaming sources write at least this often
//! flush_max_rows = 500000
//! flush_max_bytes = 268435456
//! allowed_lateness_s = 21600   # events older than the newest minus this are late (counted, still kept)
//!
//! [kafka]
//! brokers = "127.0.0.1:9092"
//! topics = ["app-events"]
//! group_id = "groundtruth-ingest"
//! dlq = true                   # dead letters also to <topic>.dlq
//! session_timeout_ms = 6000
//! [kafka.properties]           # any librdkafka property
//! "socket.keepalive.enable" = "true"
//!
//! [metrics]
//! listen = "127.0.0.1:9898"    # Prometheus /metrics of `groundtruth run`; "" = off
//!
//! [live]                       # `groundtruth run`
//! state_dir = "data/state"     # checkpoint (and the SQLite review store by default)
//! findings_topic = "findings"  # Kafka topic of findings; "" = off
//! window_memory_rows = 2000000 # a window with at most this many events is decoded once
//!                              # into memory (~0.4 KB an event) for all its queries; 0 = never
//!
//! [store]                      # the review store: findings, cases, verdicts, audit, tokens
//! url = ""                     # "" = SQLite file <live.state_dir>/review.db; a file path,
//!                              # sqlite:PATH or postgres://user:password@host:5432/db
//! max_connections = 8
//! four_eyes = []               # detectors whose confirmations need a second
//!                              # inspector's sign-off ("all" for every one)
//!
//! [api]                        # the review API of `groundtruth run` / `serve`
//! listen = "127.0.0.1:8080"    # "" = no API in `groundtruth run`
//! max_body_bytes = 1048576     # larger request bodies get 413
//! request_timeout_ms = 30000   # slower requests get 408
//! metrics_token = false        # true: /metrics needs a bearer token (admin)
//!
//! [query]                      # analysts' SQL (POST /api/v1/sql and the wire protocol)
//! timeout_ms = 20000           # a longer query is stopped (below api.request_timeout_ms)
//! memory_mb = 512              # memory pool of one query
//! server_memory_mb = 1536      # memory all running queries may use (>= memory_mb); their pools count a third of it, the allocator all of it
//! max_concurrent = 8           # queries running at once; more wait their turn
//! max_rows = 10000             # rows an HTTP answer carries; more are cut and flagged
//! max_sql_bytes = 100000       # longer query text is refused
//! catalog = ""                 # app catalog TOML (names, levels, functions); "" = none
//! join_statistics = true       # distinct counts measured in the background for join planning
//!
//! [pgwire]                     # PostgreSQL wire protocol: psql, DBeaver, Grafana
//! listen = "127.0.0.1:5433"    # "" = off; user = anything, password = an API token
//! tls_cert = ""                # PEM certificate chain: clients may sign in over TLS (sslmode=require)
//! tls_key = ""                 # its PEM private key (both or neither)
//!
//! # When each detector judges (see groundtruth-window's Schedule): daily
//! # windows from local midnight, closed when the watermark passes
//! # end + delay_s, seeing lookback_s of context before the window.
//! [windows]
//! non_human_track = { size_s = 86400, lookback_s = 1123200, delay_s = 3600 }
//! phone_farm = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
//! bulk_check_in = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
//! record_churn = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
//! report_inflation = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
//! registration_farm = { size_s = 86400, lookback_s = 518400, delay_s = 90000 }
//!
//! [detect]
//! calibration = ""             # "" = the built-in fit of raw scores to the probability an
//!                              # inspector confirms; or a file written by
//!                              # `groundtruth eval worlds --fit-calibration` / `groundtruth calibrate`
//! close_cache = true           # reuse work between closes: a window's events in memory
//!                              # (live.window_memory_rows) and unchanged patrols' features
//!
//! [log]
//! level = "info"               # or a tracing filter such as "groundtruth_ingest=debug"
//! format = "text"              # or "json"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use groundtruth_event::DayZone;
use groundtruth_finding::calibration::Calibration;
use groundtruth_window::{DetectorWindow, Schedule};
use serde::Deserialize;
use toml::Table;

mod extract;
mod layers;
mod values;

pub use layers::{Sources, OTHER_VARIABLES};

use layers::Layered;

/// All settings, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub lake: LakeConfig,
    pub ingest: IngestConfig,
    pub kafka: KafkaConfig,
    pub metrics: MetricsConfig,
    pub live: LiveConfig,
    pub store: StoreConfig,
    pub api: ApiConfig,
    pub query: QueryConfig,
    pub pgwire: PgwireConfig,
    /// Each detector's windows, by detector name.
    pub windows: BTreeMap<String, DetectorWindow>,
    pub detect: DetectConfig,
    pub log: LogConfig,
}

/// What every detection run shares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// The file the calibration came from (`None`: the built-in fit).
    #[serde(rename = "calibration", deserialize_with = "values::optional_path")]
    pub calibration_file: Option<PathBuf>,
    /// Per detector, raw score to the probability an inspector confirms
    /// (read from `calibration_file` once the settings are read).
    #[serde(skip, default = "Calibration::builtin")]
    pub calibration: Calibration,
    /// Reuse work between closes (a window's events in memory, unchanged
    /// patrols' features); off only to compare timings.
    #[serde(deserialize_with = "values::boolean")]
    pub close_cache: bool,
}

/// `groundtruth run`: where its state lives, where findings go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    #[serde(deserialize_with = "values::path")]
    pub state_dir: PathBuf,
    /// Kafka topic of findings (`None`: not published).
    #[serde(deserialize_with = "values::optional_text")]
    pub findings_topic: Option<String>,
    /// A window whose context holds at most this many events is decoded
    /// once into memory for all its queries (0: never).
    #[serde(deserialize_with = "values::within::<_, usize, 0, 1099511627776>")]
    pub window_memory_rows: usize,
}

/// The review store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `None`: the SQLite file `review.db` in the state directory.
    #[serde(deserialize_with = "values::optional_text")]
    pub url: Option<String>,
    #[serde(deserialize_with = "values::within::<_, u32, 1, 1000>")]
    pub max_connections: u32,
    /// Detectors whose confirmations need a second inspector's sign-off
    /// (four eyes); `all` for every one. Empty: one inspector decides.
    #[serde(deserialize_with = "values::detectors")]
    pub four_eyes: Vec<String>,
}

/// The review API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `None`: `groundtruth run` serves no API.
    #[serde(deserialize_with = "values::listen")]
    pub listen: Option<SocketAddr>,
    #[serde(deserialize_with = "values::within::<_, usize, 1024, 1073741824>")]
    pub max_body_bytes: usize,
    #[serde(deserialize_with = "values::within::<_, u64, 100, 3600000>")]
    pub request_timeout_ms: u64,
    /// `/metrics` needs an admin's bearer token.
    #[serde(deserialize_with = "values::boolean")]
    pub metrics_token: bool,
}

/// The analysts' SQL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    #[serde(deserialize_with = "values::within::<_, u64, 100, 3600000>")]
    pub timeout_ms: u64,
    #[serde(deserialize_with = "values::within::<_, usize, 16, 1048576>")]
    pub memory_mb: usize,
    /// Memory all running queries share.
    #[serde(deserialize_with = "values::within::<_, usize, 16, 16777216>")]
    pub server_memory_mb: usize,
    /// Queries running at once.
    #[serde(deserialize_with = "values::within::<_, usize, 1, 1024>")]
    pub max_concurrent: usize,
    #[serde(deserialize_with = "values::within::<_, usize, 1, 100000000>")]
    pub max_rows: usize,
    #[serde(deserialize_with = "values::within::<_, usize, 1024, 67108864>")]
    pub max_sql_bytes: usize,
    /// The app catalog file (`None`: no catalog; apps are known by id).
    #[serde(deserialize_with = "values::optional_path")]
    pub catalog: Option<PathBuf>,
    /// Distinct counts of the lake's keys, measured in the background,
    /// for join planning; off only to compare timings.
    #[serde(deserialize_with = "values::boolean")]
    pub join_statistics: bool,
}

/// The PostgreSQL wire protocol server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgwireConfig {
    /// `None`: not served.
    #[serde(deserialize_with = "values::listen")]
    pub listen: Option<SocketAddr>,
    /// A PEM certificate chain (`None`: no TLS).
    #[serde(deserialize_with = "values::optional_path")]
    pub tls_cert: Option<PathBuf>,
    /// Its PEM private key (both or neither).
    #[serde(deserialize_with = "values::optional_path")]
    pub tls_key: Option<PathBuf>,
    /// The certificate and key TLS is served with, once both are checked;
    /// `None`: plain TCP only.
    #[serde(skip)]
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Config {
    /// The review store's URL for the state directory `state_dir`.
    pub fn store_url(&self, state_dir: &Path) -> String {
        self.store
            .url
            .clone()
            .unwrap_or_else(|| state_dir.join("review.db").display().to_string())
    }

    /// The detectors' windows, grouped, aligned to local midnight of
    /// `lake.day_zone` (its offset now; the contract's zone has no DST).
    pub fn schedule(&self) -> Schedule {
        Schedule::new(&self.windows, self.lake.day_zone.utc_offset_s())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    #[serde(deserialize_with = "values::path")]
    pub dir: PathBuf,
    #[serde(deserialize_with = "values::zone")]
    pub day_zone: DayZone,
    #[serde(deserialize_with = "values::within::<_, usize, 1, 1073741824>")]
    pub target_file_rows: usize,
    #[serde(deserialize_with = "values::within::<_, usize, 1024, 16777216>")]
    pub row_group_rows: usize,
    #[serde(deserialize_with = "values::within::<_, usize, 2, 10000>")]
    pub compact_min_files: usize,
    /// This instance's writer name in a lake shared by several instances.
    #[serde(deserialize_with = "values::member")]
    pub member: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(deserialize_with = "values::within::<_, usize, 256, 67108864>")]
    pub max_event_bytes: usize,
    #[serde(deserialize_with = "values::within::<_, u64, 10, 3600000>")]
    pub flush_interval_ms: u64,
    #[serde(deserialize_with = "values::within::<_, usize, 1, 100000000>")]
    pub flush_max_rows: usize,
    #[serde(deserialize_with = "values::within::<_, usize, 1024, 1099511627776>")]
    pub flush_max_bytes: usize,
    /// Seconds of event-time disorder accepted before an event counts as late.
    #[serde(deserialize_with = "values::within::<_, i64, 0, 2592000>")]
    pub allowed_lateness_s: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(deserialize_with = "values::text")]
    pub brokers: String,
    #[serde(deserialize_with = "values::topics")]
    pub topics: Vec<String>,
    #[serde(deserialize_with = "values::text")]
    pub group_id: String,
    #[serde(deserialize_with = "values::boolean")]
    pub dlq: bool,
    #[serde(deserialize_with = "values::within::<_, u32, 1000, 3600000>")]
    pub session_timeout_ms: u32,
    #[serde(deserialize_with = "values::properties")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(deserialize_with = "values::listen")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(deserialize_with = "values::text")]
    pub level: String,
    pub format: LogFormat,
}

/// The defaults, as TOML: also the reference of every key (each must be
/// here: the typed settings have no defaults of their own).
pub const DEFAULTS: &str = r#"
[lake]
dir = "data/lake"
day_zone = "Asia/Shanghai"
target_file_rows = 1000000
row_group_rows = 131072
compact_min_files = 8
member = ""

[ingest]
max_event_bytes = 1048576
flush_interval_ms = 1000
flush_max_rows = 500000
flush_max_bytes = 268435456
allowed_lateness_s = 21600

[kafka]
brokers = "127.0.0.1:9092"
topics = ["app-events"]
group_id = "groundtruth-ingest"
dlq = true
session_timeout_ms = 6000
properties = {}

[metrics]
listen = "127.0.0.1:9898"

[live]
state_dir = "data/state"
findings_topic = "findings"
window_memory_rows = 2000000

[store]
url = ""
max_connections = 8
four_eyes = []

[api]
listen = "127.0.0.1:8080"
max_body_bytes = 1048576
request_timeout_ms = 30000
metrics_token = false

[query]
timeout_ms = 20000
memory_mb = 512
server_memory_mb = 1536
max_concurrent = 8
max_rows = 10000
max_sql_bytes = 100000
catalog = ""
join_statistics = true

[pgwire]
listen = "127.0.0.1:5433"
tls_cert = ""
tls_key = ""

[windows]
non_human_track = { size_s = 86400, lookback_s = 1123200, delay_s = 3600 }
phone_farm = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
bulk_check_in = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
record_churn = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
report_inflation = { size_s = 86400, lookback_s = 518400, delay_s = 3600 }
registration_farm = { size_s = 86400, lookback_s = 518400, delay_s = 90000 }

[detect]
calibration = ""
close_cache = true

[log]
level = "info"
format = "text"
"#;

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration has {} problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        write!(f, "fix them in the config file, the GROUNDTRUTH_* environment or the --set flags, and start again")
    }
}

/// The range of a detector's window, its context and its delay, seconds:
/// (key, least, most).
const WINDOW_RANGES_S: [(&str, i64, i64); 3] = [
    ("size_s", 1, 7 * 86_400),
    ("lookback_s", 0, 90 * 86_400),
    ("delay_s", 0, 30 * 86_400),
];

impl Config {
    /// Built-in defaults only.
    pub fn defaults() -> Config {
        Config::load(&Sources::default())
            .unwrap_or_else(|e| panic!("built-in defaults are invalid: {e}"))
    }

    /// Reads and validates the settings; lists every problem on failure.
    pub fn load(src: &Sources<'_>) -> Result<Config, ConfigErrors> {
        let defaults: Table = DEFAULTS
            .parse()
            .map_err(|e| ConfigErrors(vec![format!("built-in defaults: {e}")]))?;
        let mut l = Layered::from_sources(defaults.clone(), src);
        let Some(mut cfg) = extract::extract::<Config>(&mut l, &defaults) else {
            return Err(ConfigErrors(l.errors));
        };
        cfg.check(&mut l);
        if l.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(l.errors))
        }
    }

    /// What no single value says: settings that must agree, files that
    /// must exist, the calibration read, the windows of known detectors.
    fn check(&mut self, l: &mut Layered) {
        let q = &self.query;
        if q.server_memory_mb < q.memory_mb {
            l.problem(
                "query.server_memory_mb",
                format!(
                    "{} MB must be at least query.memory_mb ({} MB): one query draws its memory from the server's",
                    q.server_memory_mb, q.memory_mb
                ),
            );
        }
        if q.timeout_ms >= self.api.request_timeout_ms {
            l.problem(
                "query.timeout_ms",
                format!(
                    "{} ms must be below api.request_timeout_ms ({} ms), so a slow query gets the query's own error",
                    q.timeout_ms, self.api.request_timeout_ms
                ),
            );
        }
        if let Some(c) = &q.catalog {
            if !c.is_file() {
                l.problem(
                    "query.catalog",
                    format!(
                        "`{}` is not a readable file; give the app catalog TOML or \"\"",
                        c.display()
                    ),
                );
            }
        }
        self.pgwire.tls = tls_files(&self.pgwire, l);
        if let Some(p) = &self.detect.calibration_file {
            match Calibration::load(p) {
                Ok(c) => self.detect.calibration = c,
                Err(e) => l.problem("detect.calibration", e),
            }
        }
        check_windows(&self.windows, l);
    }
}

/// `pgwire.tls_cert` and `pgwire.tls_key`: both readable files, or both
/// off.
fn tls_files(p: &PgwireConfig, l: &mut Layered) -> Option<TlsFiles> {
    for (name, file) in [
        ("pgwire.tls_cert", &p.tls_cert),
        ("pgwire.tls_key", &p.tls_key),
    ] {
        if let Some(f) = file {
            if !f.is_file() {
                l.problem(
                    name,
                    format!(
                        "`{}` is not a readable file; give a PEM file or \"\"",
                        f.display()
                    ),
                );
            }
        }
    }
    match (&p.tls_cert, &p.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            l.problem(
                "pgwire.tls_key",
                "is needed with pgwire.tls_cert (the certificate's private key)",
            );
            None
        }
        (None, Some(_)) => {
            l.problem(
                "pgwire.tls_cert",
                "is needed with pgwire.tls_key (the certificate chain it signs)",
            );
            None
        }
    }
}

/// `[windows.<detector>]`: contract detectors only, each with sizes in
/// range that align to local midnight.
fn check_windows(windows: &BTreeMap<String, DetectorWindow>, l: &mut Layered) {
    for (name, w) in windows {
        let path = format!("windows.{name}");
        if !groundtruth_finding::DETECTORS.contains(&name.as_str()) {
            l.problem(
                &path,
                format!(
                    "`{name}` is not a detector; windows are set for {}",
                    groundtruth_finding::DETECTORS.join(", ")
                ),
            );
            continue;
        }
        let mut in_range = true;
        for ((key, min, max), value) in
            WINDOW_RANGES_S
                .into_iter()
                .zip([w.size_s, w.lookback_s, w.delay_s])
        {
            if !(min..=max).contains(&value) {
                l.problem(
                    &format!("{path}.{key}"),
                    format!("{value} is outside {min}..={max}"),
                );
                in_range = false;
            }
        }
        if in_range {
            for e in w.validate(name) {
                l.problem(&path, e.problem);
            }
        }
    }
}

#[cfg(test)]
mod tests;
