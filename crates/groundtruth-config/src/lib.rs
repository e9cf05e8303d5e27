//! Settings, from (later wins) built-in defaults, a TOML file, environment
//! variables `GROUNDTRUTH_<SECTION>__<KEY>` and `--set section.key=value`
//! flags. Everything is checked before the program starts; all problems
//! are reported together, each naming the key and where its value came
//! from.
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
use toml::{Table, Value};

/// All settings, validated.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// The file the calibration came from (`None`: the built-in fit).
    pub calibration_file: Option<PathBuf>,
    /// Per detector, raw score to the probability an inspector confirms.
    pub calibration: Calibration,
}

/// `groundtruth run`: where its state lives, where findings go.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    pub state_dir: PathBuf,
    /// Kafka topic of findings (`None`: not published).
    pub findings_topic: Option<String>,
    /// A window whose context holds at most this many events is decoded
    /// once into memory for all its queries (0: never).
    pub window_memory_rows: usize,
}

/// The review store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// `None`: the SQLite file `review.db` in the state directory.
    pub url: Option<String>,
    pub max_connections: u32,
    /// Detectors whose confirmations need a second inspector's sign-off
    /// (four eyes); `all` for every one. Empty: one inspector decides.
    pub four_eyes: Vec<String>,
}

/// The review API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// `None`: `groundtruth run` serves no API.
    pub listen: Option<SocketAddr>,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    /// `/metrics` needs an admin's bearer token.
    pub metrics_token: bool,
}

/// The analysts' SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    pub timeout_ms: u64,
    pub memory_mb: usize,
    /// Memory all running queries share.
    pub server_memory_mb: usize,
    /// Queries running at once.
    pub max_concurrent: usize,
    pub max_rows: usize,
    pub max_sql_bytes: usize,
    /// The app catalog file (`None`: no catalog; apps are known by id).
    pub catalog: Option<PathBuf>,
}

/// The PostgreSQL wire protocol server.
#[derive(Debug, Clone, PartialEq)]
pub struct PgwireConfig {
    /// `None`: not served.
    pub listen: Option<SocketAddr>,
    /// The certificate and key TLS is served with; `None`: plain TCP only.
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

#[derive(Debug, Clone, PartialEq)]
pub struct LakeConfig {
    pub dir: PathBuf,
    pub day_zone: DayZone,
    pub target_file_rows: usize,
    pub row_group_rows: usize,
    pub compact_min_files: usize,
    /// This instance's writer name in a lake shared by several instances.
    pub member: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    pub max_event_bytes: usize,
    pub flush_interval_ms: u64,
    pub flush_max_rows: usize,
    pub flush_max_bytes: usize,
    /// Seconds of event-time disorder accepted before an event counts as late.
    pub allowed_lateness_s: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    pub dlq: bool,
    pub session_timeout_ms: u32,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

/// The defaults, as TOML: also the reference of every key.
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

/// Where the settings come from.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// `(name, value)` pairs; only `GROUNDTRUTH_*` names are read.
    pub env: Vec<(String, String)>,
    /// `section.key=value` overrides from flags.
    pub overrides: Vec<String>,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Default,
    File(String),
    Env(String),
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(p) => write!(f, "file {p}"),
            Origin::Env(n) => write!(f, "env {n}"),
            Origin::Flag => write!(f, "--set"),
        }
    }
}

struct Layered {
    table: Table,
    origins: BTreeMap<String, Origin>,
    errors: Vec<String>,
}

impl Layered {
    fn merge(&mut self, prefix: &str, src: Table, origin: &Origin) {
        if prefix == "kafka.properties" {
            // Property names contain dots: keep them whole.
            for (k, v) in src {
                self.origins.insert(format!("{prefix}.{k}"), origin.clone());
                let props = self.kafka_properties();
                props.insert(k, v);
            }
            return;
        }
        for (k, v) in src {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                // `properties` is a free-form map: merge it, but don't look inside.
                Value::Table(t) => self.merge(&path, t, origin),
                v => {
                    self.origins.insert(path.clone(), origin.clone());
                    self.set(&path, v);
                }
            }
        }
    }

    fn kafka_properties(&mut self) -> &mut Table {
        let kafka = self
            .table
            .entry("kafka".to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !kafka.is_table() {
            *kafka = Value::Table(Table::new());
        }
        let Value::Table(kafka) = kafka else {
            unreachable!("made a table above")
        };
        let props = kafka
            .entry("properties".to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !props.is_table() {
            *props = Value::Table(Table::new());
        }
        let Value::Table(props) = props else {
            unreachable!("made a table above")
        };
        props
    }

    fn set(&mut self, path: &str, v: Value) {
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut t = &mut self.table;
        for p in parts {
            let entry = t
                .entry(p.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            match entry {
                Value::Table(inner) => t = inner,
                _ => return,
            }
        }
        t.insert(last.to_string(), v);
    }

    fn get(&self, path: &str) -> Option<&Value> {
        let mut cur: Option<&Value> = None;
        let mut t = &self.table;
        for p in path.split('.') {
            cur = t.get(p);
            if let Some(Value::Table(inner)) = cur {
                t = inner;
            }
        }
        cur
    }

    fn origin(&self, path: &str) -> Origin {
        self.origins.get(path).cloned().unwrap_or(Origin::Default)
    }

    fn problem(&mut self, path: &str, what: impl fmt::Display) {
        let origin = self.origin(path);
        self.errors.push(format!("`{path}` ({origin}): {what}"));
    }
}

/// Parses a string from env/flags as a TOML value; bare words are strings.
fn scalar(text: &str) -> Value {
    let doc = format!("v = {text}");
    match doc.parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(text.to_string())),
        Err(_) => Value::String(text.to_string()),
    }
}

fn known_keys() -> Vec<String> {
    let defaults: Table = DEFAULTS.parse().unwrap_or_default();
    let mut out = Vec::new();
    for (section, v) in defaults {
        if let Value::Table(t) = v {
            for k in t.keys() {
                out.push(format!("{section}.{k}"));
            }
        }
    }
    out
}

impl Config {
    /// Built-in defaults only.
    pub fn defaults() -> Config {
        Config::load(&Sources::default())
            .unwrap_or_else(|e| panic!("built-in defaults are invalid: {e}"))
    }

    /// Reads and validates the settings; lists every problem on failure.
    pub fn load(src: &Sources<'_>) -> Result<Config, ConfigErrors> {
        let mut l = Layered {
            table: Table::new(),
            origins: BTreeMap::new(),
            errors: Vec::new(),
        };
        let defaults: Table = DEFAULTS
            .parse()
            .map_err(|e| ConfigErrors(vec![format!("built-in defaults: {e}")]))?;
        l.merge("", defaults, &Origin::Default);

        if let Some(path) = src.file {
            let origin = Origin::File(path.display().to_string());
            match std::fs::read_to_string(path) {
                Err(e) => l
                    .errors
                    .push(format!("cannot read config file `{}`: {e}", path.display())),
                Ok(text) => match text.parse::<Table>() {
                    Err(e) => l.errors.push(format!(
                        "config file `{}` is not valid TOML: {e}",
                        path.display()
                    )),
                    Ok(t) => l.merge("", t, &origin),
                },
            }
        }
        let known = known_keys();
        for (name, value) in &src.env {
            let Some(rest) = name.strip_prefix("GROUNDTRUTH_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                l.errors.push(format!(
                    "environment variable `{name}` is not of the form GROUNDTRUTH_<SECTION>__<KEY>"
                ));
                continue;
            };
            let path = format!("{}.{}", section.to_lowercase(), key.to_lowercase());
            if let Some(prop) = path.strip_prefix("kafka.properties__") {
                let prop = prop.replace('_', ".");
                let mut t = Table::new();
                t.insert(prop, Value::String(value.clone()));
                l.merge("kafka.properties", t, &Origin::Env(name.clone()));
                continue;
            }
            l.origins.insert(path.clone(), Origin::Env(name.clone()));
            l.set(&path, scalar(value));
        }
        for o in &src.overrides {
            let Some((path, value)) = o.split_once('=') else {
                l.errors
                    .push(format!("--set `{o}` is not of the form section.key=value"));
                continue;
            };
            let path = path.trim().to_string();
            l.origins.insert(path.clone(), Origin::Flag);
            if let Some(prop) = path.strip_prefix("kafka.properties.") {
                let mut t = Table::new();
                t.insert(prop.to_string(), Value::String(value.to_string()));
                l.merge("kafka.properties", t, &Origin::Flag);
                continue;
            }
            l.set(&path, scalar(value.trim()));
        }

        // Unknown keys.
        let mut present = Vec::new();
        for (section, v) in &l.table {
            match v {
                Value::Table(t) => present.extend(t.keys().map(|k| format!("{section}.{k}"))),
                _ => present.push(section.clone()),
            }
        }
        for p in present {
            if !known.contains(&p) {
                let origin = l.origin(&p);
                l.errors.push(format!(
                    "`{p}` ({origin}): unknown setting; known settings are {}",
                    known.join(", ")
                ));
            }
        }

        let cfg = Config {
            lake: LakeConfig {
                dir: PathBuf::from(string(&mut l, "lake.dir", false)),
                day_zone: zone(&mut l, "lake.day_zone"),
                target_file_rows: int(&mut l, "lake.target_file_rows", 1, 1 << 30) as usize,
                row_group_rows: int(&mut l, "lake.row_group_rows", 1024, 1 << 24) as usize,
                compact_min_files: int(&mut l, "lake.compact_min_files", 2, 10_000) as usize,
                member: member(&mut l, "lake.member"),
            },
            ingest: IngestConfig {
                max_event_bytes: int(&mut l, "ingest.max_event_bytes", 256, 64 << 20) as usize,
                flush_interval_ms: int(&mut l, "ingest.flush_interval_ms", 10, 3_600_000) as u64,
                flush_max_rows: int(&mut l, "ingest.flush_max_rows", 1, 100_000_000) as usize,
                flush_max_bytes: int(&mut l, "ingest.flush_max_bytes", 1024, 1 << 40) as usize,
                allowed_lateness_s: int(&mut l, "ingest.allowed_lateness_s", 0, 30 * 86_400),
            },
            kafka: KafkaConfig {
                brokers: string(&mut l, "kafka.brokers", false),
                topics: string_list(&mut l, "kafka.topics"),
                group_id: string(&mut l, "kafka.group_id", false),
                dlq: boolean(&mut l, "kafka.dlq"),
                session_timeout_ms: int(&mut l, "kafka.session_timeout_ms", 1000, 3_600_000) as u32,
                properties: properties(&mut l, "kafka.properties"),
            },
            metrics: MetricsConfig {
                listen: socket(&mut l, "metrics.listen", "127.0.0.1:9898"),
            },
            live: LiveConfig {
                state_dir: PathBuf::from(string(&mut l, "live.state_dir", false)),
                findings_topic: Some(string(&mut l, "live.findings_topic", true))
                    .filter(|t| !t.is_empty()),
                window_memory_rows: int(&mut l, "live.window_memory_rows", 0, 1 << 40) as usize,
            },
            store: StoreConfig {
                url: Some(string(&mut l, "store.url", true))
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty()),
                max_connections: int(&mut l, "store.max_connections", 1, 1000) as u32,
                four_eyes: detector_list(&mut l, "store.four_eyes"),
            },
            api: ApiConfig {
                listen: socket(&mut l, "api.listen", "127.0.0.1:8080"),
                max_body_bytes: int(&mut l, "api.max_body_bytes", 1024, 1 << 30) as usize,
                request_timeout_ms: int(&mut l, "api.request_timeout_ms", 100, 3_600_000) as u64,
                metrics_token: boolean(&mut l, "api.metrics_token"),
            },
            query: QueryConfig {
                timeout_ms: int(&mut l, "query.timeout_ms", 100, 3_600_000) as u64,
                memory_mb: int(&mut l, "query.memory_mb", 16, 1 << 20) as usize,
                server_memory_mb: int(&mut l, "query.server_memory_mb", 16, 1 << 24) as usize,
                max_concurrent: int(&mut l, "query.max_concurrent", 1, 1024) as usize,
                max_rows: int(&mut l, "query.max_rows", 1, 100_000_000) as usize,
                max_sql_bytes: int(&mut l, "query.max_sql_bytes", 1024, 64 << 20) as usize,
                catalog: Some(string(&mut l, "query.catalog", true))
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .map(PathBuf::from),
            },
            pgwire: PgwireConfig {
                listen: socket(&mut l, "pgwire.listen", "127.0.0.1:5433"),
                tls: tls_files(&mut l),
            },
            windows: windows(&mut l),
            detect: detect(&mut l),
            log: LogConfig {
                level: string(&mut l, "log.level", false),
                format: match string(&mut l, "log.format", false).as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => {
                        l.problem("log.format", format!("`{other}` is not `text` or `json`"));
                        LogFormat::Text
                    }
                },
            },
        };
        if cfg.query.server_memory_mb < cfg.query.memory_mb {
            l.problem(
                "query.server_memory_mb",
                format!(
                    "{} MB must be at least query.memory_mb ({} MB): one query draws its memory from the server's",
                    cfg.query.server_memory_mb, cfg.query.memory_mb
                ),
            );
        }
        if cfg.query.timeout_ms >= cfg.api.request_timeout_ms {
            l.problem(
                "query.timeout_ms",
                format!(
                    "{} ms must be below api.request_timeout_ms ({} ms), so a slow query gets the query's own error",
                    cfg.query.timeout_ms, cfg.api.request_timeout_ms
                ),
            );
        }
        if let Some(c) = &cfg.query.catalog {
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
        if l.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(l.errors))
        }
    }
}

/// `pgwire.tls_cert` and `pgwire.tls_key`: both readable files, or both
/// empty.
fn tls_files(l: &mut Layered) -> Option<TlsFiles> {
    let path = |l: &mut Layered, key: &str| {
        Some(string(l, key, true))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let (cert, key) = (path(l, "pgwire.tls_cert"), path(l, "pgwire.tls_key"));
    for (name, p) in [("pgwire.tls_cert", &cert), ("pgwire.tls_key", &key)] {
        if let Some(p) = p {
            if !p.is_file() {
                l.problem(
                    name,
                    format!(
                        "`{}` is not a readable file; give a PEM file or \"\"",
                        p.display()
                    ),
                );
            }
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
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

/// `[detect]`: the calibration file, read and checked now.
fn detect(l: &mut Layered) -> DetectConfig {
    let file = Some(string(l, "detect.calibration", true))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .map(PathBuf::from);
    let calibration = match &file {
        None => Calibration::builtin(),
        Some(p) => Calibration::load(p).unwrap_or_else(|e| {
            l.problem("detect.calibration", e);
            Calibration::builtin()
        }),
    };
    DetectConfig {
        calibration_file: file,
        calibration,
    }
}

/// `[windows.<detector>]`: every contract detector, each with valid sizes.
fn windows(l: &mut Layered) -> BTreeMap<String, DetectorWindow> {
    let mut out = BTreeMap::new();
    let names: Vec<String> = match l.get("windows") {
        Some(Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    for name in names {
        let path = format!("windows.{name}");
        let Some(Value::Table(t)) = l.get(&path).cloned() else {
            l.problem(&path, "expected a table { size_s, lookback_s, delay_s }");
            continue;
        };
        for k in t.keys() {
            if !["size_s", "lookback_s", "delay_s"].contains(&k.as_str()) {
                l.problem(
                    &format!("{path}.{k}"),
                    "unknown setting; a window has size_s, lookback_s and delay_s",
                );
            }
        }
        let w = DetectorWindow {
            size_s: int(l, &format!("{path}.size_s"), 1, 7 * 86_400),
            lookback_s: int(l, &format!("{path}.lookback_s"), 0, 90 * 86_400),
            delay_s: int(l, &format!("{path}.delay_s"), 0, 30 * 86_400),
        };
        for e in w.validate(&name) {
            l.problem(&path, e.problem);
        }
        out.insert(name, w);
    }
    out
}

/// An address to listen on, or `None` for "".
fn socket(l: &mut Layered, path: &str, example: &str) -> Option<SocketAddr> {
    let s = string(l, path, true);
    if s.is_empty() {
        return None;
    }
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            l.problem(
                path,
                format!("`{s}` is not an address like {example} (or \"\" for off)"),
            );
            None
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    v.type_str()
}

/// A lake member name, or `None` for "".
fn member(l: &mut Layered, path: &str) -> Option<String> {
    let v = string(l, path, true);
    if v.is_empty() {
        return None;
    }
    let ok = v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        let origin = l.origin(path);
        l.errors.push(format!(
            "`{path}` ({origin}): `{v}` is not a member name; use 1 to 64 letters, digits, `-` or `_`, or \"\" for a lake with one writer"
        ));
    }
    Some(v)
}

fn string(l: &mut Layered, path: &str, allow_empty: bool) -> String {
    match l.get(path).cloned() {
        Some(Value::String(s)) if allow_empty || !s.trim().is_empty() => s,
        Some(Value::String(_)) => {
            l.problem(path, "must not be empty");
            String::new()
        }
        Some(v) => {
            l.problem(path, format!("expected a string, got {}", type_name(&v)));
            String::new()
        }
        None => String::new(),
    }
}

fn int(l: &mut Layered, path: &str, min: i64, max: i64) -> i64 {
    match l.get(path).cloned() {
        Some(Value::Integer(n)) if (min..=max).contains(&n) => n,
        Some(Value::Integer(n)) => {
            l.problem(path, format!("{n} is outside {min}..={max}"));
            min
        }
        Some(v) => {
            l.problem(
                path,
                format!("expected an integer, got {} `{v}`", type_name(&v)),
            );
            min
        }
        None => min,
    }
}

fn boolean(l: &mut Layered, path: &str) -> bool {
    match l.get(path).cloned() {
        Some(Value::Boolean(b)) => b,
        Some(v) => {
            l.problem(
                path,
                format!("expected true or false, got {} `{v}`", type_name(&v)),
            );
            false
        }
        None => false,
    }
}

/// Detector names (or `all`), as a TOML array or a comma-separated string;
/// may be empty.
fn detector_list(l: &mut Layered, path: &str) -> Vec<String> {
    let names: Vec<String> = match l.get(path).cloned() {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s),
                other => {
                    l.problem(
                        path,
                        format!("every item must be a detector's name, got `{other}`"),
                    );
                    None
                }
            })
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        Some(other) => {
            l.problem(path, format!("must be a list of detectors, got `{other}`"));
            Vec::new()
        }
        None => Vec::new(),
    };
    for n in &names {
        if n != "all" && !groundtruth_finding::DETECTORS.contains(&n.as_str()) {
            l.problem(
                path,
                format!(
                    "`{n}` is not a detector; use `all` or some of {}",
                    groundtruth_finding::DETECTORS.join(", ")
                ),
            );
        }
    }
    names
}

fn string_list(l: &mut Layered, path: &str) -> Vec<String> {
    match l.get(path).cloned() {
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Value::String(s) if !s.is_empty() => out.push(s),
                    other => l.problem(
                        path,
                        format!("every item must be a non-empty string, got `{other}`"),
                    ),
                }
            }
            if out.is_empty() {
                l.problem(path, "must name at least one topic");
            }
            out
        }
        // A single string from env/flags: comma-separated list.
        Some(Value::String(s)) => {
            let out: Vec<String> = s
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if out.is_empty() {
                l.problem(path, "must name at least one topic");
            }
            out
        }
        Some(v) => {
            l.problem(
                path,
                format!("expected a list of strings, got {}", type_name(&v)),
            );
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn properties(l: &mut Layered, path: &str) -> BTreeMap<String, String> {
    match l.get(path).cloned() {
        Some(Value::Table(t)) => {
            let mut out = BTreeMap::new();
            for (k, v) in t {
                match v {
                    Value::String(s) => {
                        out.insert(k, s);
                    }
                    Value::Integer(_) | Value::Boolean(_) | Value::Float(_) => {
                        out.insert(k, v.to_string());
                    }
                    other => l.problem(
                        &format!("{path}.{k}"),
                        format!("expected a string, got {}", type_name(&other)),
                    ),
                }
            }
            out
        }
        Some(v) => {
            l.problem(
                path,
                format!(
                    "expected a table of librdkafka properties, got {}",
                    type_name(&v)
                ),
            );
            BTreeMap::new()
        }
        None => BTreeMap::new(),
    }
}

fn zone(l: &mut Layered, path: &str) -> DayZone {
    let s = string(l, path, false);
    match DayZone::parse(&s) {
        Some(z) => z,
        None => {
            if !s.is_empty() {
                l.problem(
                    path,
                    format!("`{s}` is not an IANA time zone such as Asia/Shanghai"),
                );
            }
            DayZone::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.kafka.topics, vec!["app-events"]);
        assert_eq!(c.lake.day_zone, DayZone::default());
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9898".parse().unwrap()));
    }

    #[test]
    fn file_env_and_flags_layer_in_order() {
        let dir = std::env::temp_dir().join(format!("gt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gt.toml");
        std::fs::write(&file, "[lake]\ndir = \"/from/file\"\n[kafka]\nbrokers = \"file:9092\"\ngroup_id = \"g-file\"\n").unwrap();
        let src = Sources {
            file: Some(&file),
            env: vec![
                ("GROUNDTRUTH_KAFKA__BROKERS".into(), "env:9092".into()),
                ("GROUNDTRUTH_KAFKA__TOPICS".into(), "a, b".into()),
                ("PATH".into(), "/bin".into()),
            ],
            overrides: vec![
                "kafka.brokers=flag:9092".into(),
                "kafka.properties.fetch.wait.max.ms=50".into(),
            ],
        };
        let c = Config::load(&src).unwrap();
        assert_eq!(c.lake.dir, PathBuf::from("/from/file"));
        assert_eq!(c.kafka.group_id, "g-file");
        assert_eq!(c.kafka.brokers, "flag:9092");
        assert_eq!(c.kafka.topics, vec!["a", "b"]);
        assert_eq!(
            c.kafka
                .properties
                .get("fetch.wait.max.ms")
                .map(String::as_str),
            Some("50")
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_error_is_listed_at_once() {
        let src = Sources {
            file: None,
            env: vec![("GROUNDTRUTH_LAKE__TARGET_FILE_ROWS".into(), "lots".into())],
            overrides: vec![
                "lake.day_zone=Mars/Olympus".into(),
                "kafka.session_timeout_ms=5".into(),
                "kafka.bogus=1".into(),
                "log.format=xml".into(),
                "metrics.listen=nowhere".into(),
                "no-equals-sign".into(),
                "lake.member=\"../gt 1\"".into(),
            ],
        };
        let e = Config::load(&src).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.0.len(), 8, "{text}");
        for needle in [
            "lake.target_file_rows",
            "GROUNDTRUTH_LAKE__TARGET_FILE_ROWS",
            "Mars/Olympus",
            "kafka.session_timeout_ms",
            "kafka.bogus",
            "log.format",
            "metrics.listen",
            "no-equals-sign",
            "`../gt 1` is not a member name",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn the_wires_tls_needs_both_files() {
        assert_eq!(Config::defaults().pgwire.tls, None);
        let load = |overrides: &[&str]| {
            Config::load(&Sources {
                file: None,
                env: vec![],
                overrides: overrides.iter().map(|o| o.to_string()).collect(),
            })
        };
        let text = load(&["pgwire.tls_cert=\"/no/such/cert.pem\""])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("pgwire.tls_cert") && text.contains("not a readable file"),
            "{text}"
        );
        assert!(
            text.contains("pgwire.tls_key") && text.contains("is needed"),
            "{text}"
        );
        let dir = std::env::temp_dir().join(format!("gt-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, "x").unwrap();
        std::fs::write(&key, "x").unwrap();
        let c = load(&[
            &format!("pgwire.tls_cert=\"{}\"", cert.display()),
            &format!("pgwire.tls_key=\"{}\"", key.display()),
        ])
        .unwrap();
        assert_eq!(c.pgwire.tls, Some(TlsFiles { cert, key }));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn windows_are_read_per_detector_and_checked() {
        let c = Config::defaults();
        let s = c.schedule();
        assert_eq!(s.utc_offset_s, 8 * 3600);
        assert_eq!(c.windows.len(), 6);
        assert_eq!(c.windows["registration_farm"].delay_s, 90_000);
        let src = Sources {
            file: None,
            env: Vec::new(),
            overrides: vec![
                "windows.phone_farm.size_s=3600".into(),
                "windows.bulk_check_in.size_s=7000".into(),
                "windows.record_churn.lookback_s=-5".into(),
                "windows.report_inflation.sizes=1".into(),
                "windows.phone_farms.size_s=60".into(),
            ],
        };
        let e = Config::load(&src).unwrap_err().0;
        let all = e.join("\n");
        assert_eq!(e.len(), 4, "{all}");
        for needle in [
            "windows.bulk_check_in",
            "must divide a day",
            "windows.record_churn.lookback_s",
            "windows.report_inflation.sizes",
            "windows.phone_farms",
        ] {
            assert!(all.contains(needle), "{needle} missing in {all}");
        }
        let ok = Config::load(&Sources {
            file: None,
            env: Vec::new(),
            overrides: vec!["windows.phone_farm.size_s=3600".into()],
        })
        .unwrap();
        assert_eq!(ok.windows["phone_farm"].size_s, 3600);
        assert_eq!(ok.windows["phone_farm"].lookback_s, 518_400);
        // phone_farm (hourly here); non_human_track (two weeks of context);
        // registration_farm (a day's delay); the other day detectors.
        assert_eq!(ok.schedule().groups.len(), 4);
    }

    #[test]
    fn the_calibration_is_built_in_or_a_checked_file() {
        let c = Config::defaults();
        assert_eq!(c.detect.calibration_file, None);
        assert_eq!(c.detect.calibration, Calibration::builtin());
        let e = Config::load(&Sources {
            overrides: vec!["detect.calibration=/nonexistent/cal.json".into()],
            ..Sources::default()
        })
        .unwrap_err()
        .0
        .join("\n");
        assert!(
            e.contains("detect.calibration") && e.contains("/nonexistent/cal.json"),
            "{e}"
        );
    }

    #[test]
    fn the_live_pipeline_file_loads_and_matches_the_built_in_windows() {
        // Run-time CARGO_MANIFEST_DIR: the compile-time one may be another
        // checkout sharing the build cache.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        let file = Path::new(&dir).join("../../pipelines/live.toml");
        let c = Config::load(&Sources {
            file: Some(&file),
            env: Vec::new(),
            overrides: Vec::new(),
        })
        .unwrap();
        assert_eq!(c.windows, Config::defaults().windows);
        assert_eq!(c.live.findings_topic.as_deref(), Some("findings"));
        assert_eq!(c.kafka.group_id, "groundtruth-live");
    }

    #[test]
    fn store_and_api_settings() {
        let c = Config::defaults();
        assert_eq!(c.store.url, None);
        assert!(c.store.four_eyes.is_empty());
        assert_eq!(
            c.store_url(Path::new("/var/gt")),
            "/var/gt/review.db".to_string()
        );
        assert_eq!(c.api.listen, Some("127.0.0.1:8080".parse().unwrap()));
        let c = Config::load(&Sources {
            overrides: vec![
                "store.url=\"postgres://gt@db:5432/review\"".into(),
                "api.listen=\"\"".into(),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.store_url(Path::new("x")), "postgres://gt@db:5432/review");
        assert_eq!(c.api.listen, None);
        let e = Config::load(&Sources {
            overrides: vec![
                "api.listen=everywhere".into(),
                "api.max_body_bytes=1".into(),
                "store.max_connections=0".into(),
                "store.four_eyes=\"phone_farm,dogs\"".into(),
            ],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.0.len(), 4, "{e}");
        assert!(e.to_string().contains("`dogs` is not a detector"), "{e}");
        let c = Config::load(&Sources {
            overrides: vec!["store.four_eyes=[\"phone_farm\", \"report_inflation\"]".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.store.four_eyes, ["phone_farm", "report_inflation"]);
    }

    #[test]
    fn bad_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("gt-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[lake\n").unwrap();
        let e = Config::load(&Sources {
            file: Some(&file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("not valid TOML"), "{e}");
        let missing = dir.join("missing.toml");
        let e = Config::load(&Sources {
            file: Some(&missing),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("cannot read config file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
