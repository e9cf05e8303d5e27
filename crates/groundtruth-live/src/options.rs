//! The live service's settings and what a run of it did.

use std::path::PathBuf;

use groundtruth_event::DayZone;
use groundtruth_ingest::IngestCounts;
use groundtruth_kafka::KafkaOptions;
use groundtruth_window::Schedule;

/// Settings of the live service.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Source topics and consumer group; `exit_when_idle` makes a bounded
    /// run: once the topics are drained and quiet that long, every window
    /// holding data is closed (as at the end of a file) and the run ends.
    pub kafka: KafkaOptions,
    pub state_dir: PathBuf,
    pub lake_dir: PathBuf,
    pub zone: DayZone,
    pub schedule: Schedule,
    /// Turns the detectors' raw scores into probabilities.
    pub calibration: groundtruth_finding::calibration::Calibration,
    /// Kafka topic the findings are published to (keyed by `finding_id`).
    pub findings_topic: Option<String>,
    /// The review store the findings go to (upserted by id).
    pub store: groundtruth_store::ReviewStore,
    /// The runtime the store's connections and the detectors' queries run
    /// on (the worker thread blocks on it).
    pub runtime: tokio::runtime::Handle,
    /// A window with at most this many events is decoded once into memory
    /// for all its queries (see `groundtruth_detect::CloseCache`; 0: never).
    pub window_memory_rows: usize,
    /// Reuse work between closes (`detect.close_cache`; off only to
    /// compare timings).
    pub close_cache: bool,
}

/// What a run of the service did.
#[derive(Debug, Default, Clone)]
pub struct LiveStats {
    pub messages: u64,
    pub counts: IngestCounts,
    pub windows_closed: u64,
    pub rescans: u64,
    /// Findings stored (new or newer versions).
    pub findings_stored: u64,
    pub findings_published: u64,
    /// Accepted events that fell in an already closed window.
    pub late_for_closed: u64,
    /// Wall seconds from the watermark passing a window's horizon to its
    /// findings being stored, per window closed.
    pub latencies_s: Vec<f64>,
    /// Seconds each window's detection took (SQL and detectors, without
    /// the time it waited behind other windows).
    pub detect_s: Vec<f64>,
    /// Seconds from the first to the last message read (throughput; the
    /// group join before the first message is not counted).
    pub read_s: f64,
    pub seconds: f64,
}
