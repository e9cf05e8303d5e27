//! Sources into the lake.
//!
//! Every source hands raw messages to an [`Ingestor`], which decodes them
//! ([`groundtruth_event::decode`]), appends good events to the
//! [`LakeWriter`](groundtruth_lake::LakeWriter) and bad ones to the
//! dead-letter store, and flushes by size or time. Sources acknowledge
//! their input (commit Kafka offsets) only after a flush returns.

mod context;
mod counts;
mod error;
mod file;
mod ingestor;
mod kafka;
mod scratch;
mod sim;
mod stall;
mod telemetry;

pub use context::{IngestConsumer, IngestContext};
pub use counts::IngestCounts;
pub use error::IngestError;
pub use file::{ingest_files, FileIngestStats};
pub use ingestor::{FlushPolicy, Ingestor, Outcome};
pub use kafka::{
    commit_offsets, create_topics, dlq_producer, ingest_kafka, send_dead_letter,
    subscribed_consumer, KafkaIngestStats, KafkaOptions, KafkaProducerSink, Uncommitted,
};
pub use scratch::{ingest_lines, simulate_into};
pub use sim::{ingest_simulation, LakeSink};
pub use stall::{FlushRetry, LogThrottle, MAX_FLUSH_RETRY, REPEAT_LOG_EVERY};
