//! The consumer: subscribing, the offsets read and not yet committed,
//! committing them, what is assigned.

use groundtruth_telemetry::InternalEvent;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::context::{SourceConsumer, SourceContext};
use crate::error::{kafka_err, SourceError};
use crate::options::{client_config, KafkaOptions};
use crate::telemetry::{KafkaTransientError, OffsetsCommitted};

/// Offsets read but not yet committed: next offset per (topic, partition).
pub type Uncommitted = HashMap<(String, i32), i64>;

/// A consumer of `opts.topics` in group `opts.group_id` that commits only
/// when told (see [`commit_offsets`]) and starts new groups at the earliest
/// offset. With `partition_eof`, `poll` reports reaching the end of each
/// partition (`KafkaError::PartitionEOF`).
pub fn subscribed_consumer(
    opts: &KafkaOptions,
    partition_eof: bool,
) -> Result<SourceConsumer, SourceError> {
    let brokers = opts.brokers.as_str();
    let consumer: SourceConsumer = client_config(brokers, &opts.extra)
        .set("group.id", &opts.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", partition_eof.to_string())
        .set("session.timeout.ms", opts.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (opts.session_timeout_ms / 3).max(100).to_string(),
        )
        // Eager rebalancing: every assignment restarts each partition at
        // its committed offset, which is what lets a rebalance drop the
        // rows read but not flushed (see `Ingestor::resync`).
        .set("partition.assignment.strategy", "range,roundrobin")
        .create_with_context(SourceContext::default())
        .map_err(kafka_err("consumer creation", brokers))?;
    let topics: Vec<&str> = opts.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(kafka_err("subscribe", brokers))?;
    Ok(consumer)
}

/// Commits `uncommitted` synchronously; clears it and returns true on
/// success, logs (at most every 5 s, via `last_error_log`) and returns
/// false when the broker does not answer.
pub fn commit_offsets(
    consumer: &SourceConsumer,
    uncommitted: &mut Uncommitted,
    last_error_log: &mut Instant,
) -> bool {
    if uncommitted.is_empty() {
        return true;
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in uncommitted.iter() {
        // Offsets are known-valid here; add cannot fail.
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            OffsetsCommitted {
                partitions: uncommitted.len(),
            }
            .emit();
            uncommitted.clear();
            true
        }
        Err(e) => {
            if last_error_log.elapsed() > Duration::from_secs(5) {
                KafkaTransientError {
                    action: "commit",
                    error: &e,
                }
                .emit();
                *last_error_log = Instant::now();
            }
            false
        }
    }
}

/// The consumer's current assignment: (topic, partition).
pub fn assignment_of(consumer: &SourceConsumer) -> Vec<(String, i32)> {
    consumer
        .assignment()
        .map(|a| {
            a.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every partition (`topic/partition`) of `topics`, `None` when the broker
/// does not say.
pub fn partitions_of(consumer: &SourceConsumer, topics: &[String]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for t in topics {
        let md = consumer
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .ok()?;
        for topic in md.topics() {
            for p in topic.partitions() {
                out.push(format!("{}/{}", topic.name(), p.id()));
            }
        }
    }
    Some(out)
}
