use std::path::PathBuf;

use groundtruth_lake::LakeError;

/// Errors that stop an ingest run. Bad events never do: they become dead
/// letters.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Kafka {action} failed: {source}; check that the broker at `{brokers}` is reachable and the settings under [kafka] are right")]
    Kafka {
        action: &'static str,
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("simulation failed: {0}")]
    Sim(#[from] groundtruth_sim::SimError),
}
