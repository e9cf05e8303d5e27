//! The process's telemetry, declared once: every Prometheus metric
//! groundtruth emits ([`METRICS`]: name, kind, labels, help) and the
//! [`InternalEvent`] trait its components implement (Vector's shape: one
//! struct per thing that happened, whose `emit` writes the log line and
//! the metrics together).
//!
//! Components name a metric by its constant (`metric::INGEST_EVENTS.name`),
//! never by a literal, so a name is spelled in one place; [`describe`]
//! gives each its help text on the exporter; [`check_exposition`] holds a
//! scrape of `/metrics` to this table (the end-to-end tests call it).
//!
//! Names: `groundtruth_<component>_<what>_<unit>`, counters end in
//! `_total`; labels are low-cardinality (a source, an outcome, a detector,
//! a route), never an account or a region.
//!
//! Also [`LogThrottle`]: a failure that repeats on every try is logged at
//! once, then at most every [`REPEAT_LOG_EVERY`].

mod throttle;

pub use throttle::{LogThrottle, REPEAT_LOG_EVERY};

/// What kind of Prometheus metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The exposition format's `# TYPE` word (a histogram without buckets is
    /// exported as a `summary`).
    fn type_words(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["counter"],
            Kind::Gauge => &["gauge"],
            Kind::Histogram => &["histogram", "summary"],
        }
    }
}

/// One metric: its name, kind, the labels it carries and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Something that happened inside the process, worth a log line and
/// metrics: each component's telemetry structs implement it.
pub trait InternalEvent {
    /// Writes the log line and updates the metrics.
    fn emit(self);
}

/// Emits `event` (`emit(Flushed { .. })` reads as what happened).
pub fn emit(event: impl InternalEvent) {
    event.emit();
}

macro_rules! metrics_table {
    ($($id:ident = $name:literal, $kind:ident, [$($label:literal),*], $help:literal;)*) => {
        /// Every metric, by name (see the [crate documentation](crate)).
        pub mod metric {
            use super::{Kind, Metric};
            $(
                #[doc = $help]
                pub const $id: Metric = Metric {
                    name: $name,
                    kind: Kind::$kind,
                    labels: &[$($label),*],
                    help: $help,
                };
            )*
        }
        /// The table of every metric the process emits.
        pub const METRICS: &[Metric] = &[$(metric::$id),*];
    };
}

metrics_table! {
    // Ingest: any source into the lake.
    INGEST_EVENTS = "groundtruth_ingest_events_total", Counter, ["source", "outcome"],
        "Events a flush made durable (outcome accepted) or dropped as already stored (duplicate).";
    INGEST_DEAD_LETTERS = "groundtruth_ingest_dead_letters_total", Counter, ["source", "reason"],
        "Messages refused and kept as dead letters, by reject code.";
    INGEST_BYTES = "groundtruth_ingest_bytes_total", Counter, ["source"],
        "Bytes of messages read by ingest.";
    INGEST_LATE_EVENTS = "groundtruth_ingest_late_events_total", Counter, ["source"],
        "Events older than the watermark allows (kept, counted).";
    INGEST_WATERMARK = "groundtruth_ingest_watermark_seconds", Gauge, ["source"],
        "Event-time watermark of ingest, Unix seconds.";
    INGEST_WATERMARK_DELAY = "groundtruth_ingest_watermark_delay_seconds", Gauge, ["source"],
        "How far ingest's watermark lags the wall clock, seconds (includes the allowed lateness).";
    KAFKA_ERRORS = "groundtruth_kafka_errors_total", Counter, ["action"],
        "Kafka client errors, by what was being done.";
    KAFKA_COMMITS = "groundtruth_kafka_commits_total", Counter, [],
        "Offset commits after durable flushes.";
    CONSUMER_LAG = "groundtruth_consumer_lag_messages", Gauge, ["partition"],
        "Messages between the live service's position and the partition's end.";
    // The lake.
    LAKE_FILES_WRITTEN = "groundtruth_lake_files_written_total", Counter, [],
        "Parquet files written to the lake.";
    LAKE_BYTES_WRITTEN = "groundtruth_lake_bytes_written_total", Counter, [],
        "Bytes of Parquet written to the lake.";
    LAKE_FLUSH = "groundtruth_lake_flush_seconds", Histogram, [],
        "Time a lake flush took, seconds (write, fsync, rename).";
    LAKE_WRITE_FAILURES = "groundtruth_lake_write_failures_total", Counter, [],
        "Lake flushes that failed (retried; the source is not acknowledged).";
    LAKE_WRITE_STALLED = "groundtruth_lake_write_stalled", Gauge, [],
        "1 while the lake cannot be written and the source is paused, else 0.";
    LAKE_COMPACTION_FAILURES = "groundtruth_lake_compaction_failures_total", Counter, [],
        "Compactions that failed (the small files stay until a later flush merges them).";
    // The live service.
    LIVE_WATERMARK = "groundtruth_live_watermark_seconds", Gauge, [],
        "The live service's event-time watermark (the slowest partition), Unix seconds.";
    LIVE_WATERMARK_DELAY = "groundtruth_live_watermark_delay_seconds", Gauge, [],
        "How far the live watermark lags the wall clock, seconds.";
    LIVE_STATE = "groundtruth_live_state_bytes", Gauge, [],
        "Size of the live service's last checkpoint, bytes.";
    LIVE_RESCAN_PENDING = "groundtruth_live_rescan_pending", Gauge, [],
        "Windows waiting to be judged again after late events.";
    LIVE_PARTITIONS = "groundtruth_live_partitions", Gauge, [],
        "Kafka partitions assigned to this instance.";
    LIVE_PARTITIONS_CAUGHT_UP = "groundtruth_live_partitions_caught_up", Gauge, [],
        "Assigned partitions read to their end.";
    LIVE_STATE_WRITE_FAILURES = "groundtruth_live_state_write_failures_total", Counter, [],
        "Checkpoints that could not be written (the previous one stays).";
    WINDOWS_CLOSED = "groundtruth_windows_closed_total", Counter, ["group", "kind"],
        "Detection windows judged, by detector group, first close or rescan.";
    WINDOW_DETECT = "groundtruth_window_detect_seconds", Histogram, ["group"],
        "Time to judge one window, seconds.";
    FINDINGS = "groundtruth_findings_total", Counter, ["detector"],
        "Findings produced, by detector.";
    DETECTION_LATENCY = "groundtruth_detection_latency_seconds", Histogram, [],
        "From a window's end in event time to its findings, wall-clock seconds.";
    LATE_FOR_CLOSED_WINDOWS = "groundtruth_late_for_closed_windows_total", Counter, [],
        "Events that arrived after their window was judged (the window is judged again).";
    // The review API and the analysts' channels.
    API_REQUESTS = "groundtruth_api_requests_total", Counter, ["route", "method", "status"],
        "HTTP requests, by route template, method and status class.";
    API_REQUEST = "groundtruth_api_request_seconds", Histogram, ["route"],
        "Time to answer an HTTP request, seconds.";
    REVIEW_VERDICTS = "groundtruth_review_verdicts_total", Counter, ["verdict"],
        "Verdicts recorded by inspectors.";
    REVIEW_PRECISION = "groundtruth_review_precision_ratio", Gauge, ["detector"],
        "Share of decided cases confirmed, by detector.";
    REVIEW_DECIDED_CASES = "groundtruth_review_decided_cases", Gauge, ["detector"],
        "Cases confirmed or dismissed, by detector.";
    PGWIRE_CONNECTIONS = "groundtruth_pgwire_connections_total", Counter, [],
        "Connections accepted on the PostgreSQL wire protocol.";
    PGWIRE_REFUSED = "groundtruth_pgwire_refused_total", Counter, ["why"],
        "Connections turned away before sign-in, by reason.";
    PGWIRE_SIGNINS = "groundtruth_pgwire_signins_total", Counter, ["outcome"],
        "Sign-ins on the wire protocol, by outcome.";
    PGWIRE_QUERIES = "groundtruth_pgwire_queries_total", Counter, ["outcome"],
        "Statements run on the wire protocol, by outcome.";
}

/// Gives every metric of [`METRICS`] its help text on the installed
/// recorder (the `# HELP` lines of `/metrics`).
pub fn describe() {
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// What in a `/metrics` scrape (Prometheus text format) disagrees with
/// [`METRICS`]: a `groundtruth_` metric not in the table, one whose
/// `# TYPE` is not its kind, a label it does not declare. Empty when all
/// agree.
pub fn check_exposition(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let find = |name: &str| {
        METRICS.iter().find(|m| {
            name == m.name
                || (m.kind == Kind::Histogram
                    && ["_sum", "_count", "_bucket"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(m.name)))
        })
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            if !name.starts_with("groundtruth_") {
                continue;
            }
            match METRICS.iter().find(|m| m.name == name) {
                None => problems.push(format!("{name} is not in the metrics table")),
                Some(m) if !m.kind.type_words().contains(&kind) => problems.push(format!(
                    "{name} is exported as {kind}, the table says {:?}",
                    m.kind
                )),
                Some(_) => {}
            }
            continue;
        }
        if line.starts_with('#') || !line.starts_with("groundtruth_") {
            continue;
        }
        let series = line.split_whitespace().next().unwrap_or_default();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let Some(m) = find(name) else {
            problems.push(format!("{name} is not in the metrics table"));
            continue;
        };
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap_or_default();
            if !(m.labels.contains(&key) || key == "quantile" || key == "le") {
                problems.push(format!(
                    "{name} carries label `{key}`, not one of {:?}",
                    m.labels
                ));
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// The metrics table as Markdown (docs/metrics.md is this text; a test
/// keeps it so).
pub fn markdown_table() -> String {
    let mut out = String::from("| metric | kind | labels | meaning |\n|---|---|---|---|\n");
    for m in METRICS {
        let labels: Vec<String> = m.labels.iter().map(|l| format!("`{l}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            format!("{:?}", m.kind).to_lowercase(),
            labels.join(", "),
            m.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_the_convention() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("groundtruth_"), "{}", m.name);
            assert!(
                m.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                m.name
            );
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                _ => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            if m.kind == Kind::Histogram {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(m.help.ends_with('.'), "{}: help is a sentence", m.name);
        }
    }

    #[test]
    fn a_scrape_is_held_to_the_table() {
        let good = "# TYPE groundtruth_findings_total counter\n\
                    groundtruth_findings_total{detector=\"phone_farm\"} 3\n\
                    # TYPE groundtruth_lake_flush_seconds summary\n\
                    groundtruth_lake_flush_seconds{quantile=\"0.5\"} 0.1\n\
                    groundtruth_lake_flush_seconds_sum 0.3\n\
                    groundtruth_lake_flush_seconds_count 3\n\
                    # TYPE process_cpu_seconds_total counter\n\
                    process_cpu_seconds_total 1\n";
        assert!(
            check_exposition(good).is_empty(),
            "{:?}",
            check_exposition(good)
        );
        let bad = "# TYPE groundtruth_findings_total gauge\n\
                   groundtruth_findings_total{account=\"u1\"} 3\n\
                   groundtruth_watermark_seconds 5\n";
        assert_eq!(
            check_exposition(bad),
            [
                "groundtruth_findings_total carries label `account`, not one of [\"detector\"]",
                "groundtruth_findings_total is exported as gauge, the table says Counter",
                "groundtruth_watermark_seconds is not in the metrics table",
            ]
        );
    }

    #[test]
    fn the_docs_table_is_the_metrics_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
        let docs = std::fs::read_to_string(path).expect("docs/metrics.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/metrics.md is out of date; paste in:\n{}",
            markdown_table()
        );
    }
}
