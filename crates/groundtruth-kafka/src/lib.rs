//! Kafka for groundtruth: one consumer loop and the clients around it.
//!
//! Every path that reads Kafka runs the same loop, [`Source::run`]: poll,
//! hand the message to the [`Ingestor`](groundtruth_ingest::Ingestor)
//! (good events to the lake, bad ones to the dead-letter store and
//! `<topic>.dlq`), flush by size, time or when asked, commit offsets only
//! once what they cover is durable, pause the partitions while the lake
//! cannot be written, drop what was read on a rebalance. What a path does
//! besides is an [`Operator`] the loop calls at fixed points (Arroyo's
//! operator shape: on message, on flush, on rebalance, on tick, on close):
//! `ingest --kafka` is [`IngestOperator`] here, `groundtruth run` is the
//! live service's operator in `groundtruth-live`.
//!
//! Also here: the consumer and its context ([`subscribed_consumer`]), the
//! offsets read and not committed ([`Uncommitted`]), the producers of dead
//! letters ([`DeadLetters`]) and of one topic ([`TopicProducer`]: findings,
//! the simulator's events), topic creation, and the consumer-lag gauges
//! ([`LagReporter`]).

mod consumer;
mod context;
mod dead_letter;
mod error;
mod ingest;
mod lag;
mod operator;
mod options;
mod producer;
mod stall;
mod telemetry;

pub use consumer::{
    assignment_of, commit_offsets, partitions_of, subscribed_consumer, Uncommitted,
};
pub use context::{SourceConsumer, SourceContext};
pub use dead_letter::DeadLetters;
pub use error::SourceError;
pub use ingest::{ingest_kafka, IngestOperator, KafkaIngestStats};
pub use lag::LagReporter;
pub use operator::{Cx, Operator, Position, Source, SourceStats, Turn, STOP_GRACE};
pub use options::KafkaOptions;
pub use producer::{create_topics, TopicProducer};
pub use stall::{FlushRetry, MAX_FLUSH_RETRY};
