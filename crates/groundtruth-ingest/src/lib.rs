//! Sources into the lake.
//!
//! Every source hands raw messages to an [`Ingestor`], which decodes them
//! ([`groundtruth_event::decode`]), appends good events to the
//! [`LakeWriter`](groundtruth_lake::LakeWriter) and bad ones to the
//! dead-letter store, and flushes by size or time. Sources acknowledge
//! their input only after a flush returns. The sources here are files and
//! the simulator; Kafka's consumer loop drives an `Ingestor` from
//! `groundtruth-kafka`.

mod counts;
mod error;
mod file;
mod ingestor;
mod scratch;
#[cfg(feature = "simulator")]
mod sim;
mod telemetry;

pub use counts::IngestCounts;
pub use error::IngestError;
pub use file::{ingest_files, FileIngestStats};
pub use ingestor::{FlushPolicy, Ingestor, Outcome};
pub use scratch::ingest_lines;
#[cfg(feature = "simulator")]
pub use scratch::simulate_into;
#[cfg(feature = "simulator")]
pub use sim::{ingest_simulation, LakeSink};
