//! Producing: topic creation, and a producer to one topic (the findings
//! topic, the simulator's events).

use groundtruth_telemetry::InternalEvent;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::error::{kafka_err, SourceError};
use crate::options::client_config;
use crate::telemetry::KafkaTransientError;

/// Creates `topics` (name, partitions) unless they exist.
pub fn create_topics(brokers: &str, topics: &[(String, i32)]) -> Result<(), SourceError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(kafka_err("admin client creation", brokers))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, parts)| NewTopic::new(name, *parts, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics(&new, &opts))
        .map_err(kafka_err("topic creation", brokers))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(%topic, "cannot create topic");
                return Err(kafka_err("topic creation", brokers)(KafkaError::AdminOp(
                    code,
                )));
            }
        }
    }
    Ok(())
}

/// Sends, waiting while librdkafka's queue is full; a send the client
/// refuses otherwise (the broker unreachable for longer than the queue
/// lasts) is logged and tried again.
pub(crate) fn send_blocking<
    'a,
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
>(
    producer: &BaseProducer,
    mut record: BaseRecord<'a, K, P>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(50));
                record = r;
            }
            Err((e, r)) => {
                KafkaTransientError {
                    action: "produce",
                    error: &e,
                }
                .emit();
                std::thread::sleep(Duration::from_millis(200));
                record = r;
            }
        }
    }
}

/// A producer to one topic: the findings publisher (keyed by `finding_id`)
/// and the simulator's sink (events keyed by account).
pub struct TopicProducer {
    producer: BaseProducer,
    brokers: String,
    topic: String,
    pub sent: u64,
}

impl TopicProducer {
    pub fn new(
        brokers: &str,
        topic: &str,
        extra: &[(String, String)],
    ) -> Result<Self, SourceError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "0");
        for (k, v) in extra {
            c.set(k, v);
        }
        let producer = c
            .create()
            .map_err(kafka_err("producer creation", brokers))?;
        Ok(TopicProducer {
            producer,
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            sent: 0,
        })
    }

    /// Sends a raw message (tests use it for malformed ones).
    pub fn send_raw(&mut self, key: &[u8], payload: &[u8]) {
        send_blocking(
            &self.producer,
            BaseRecord::to(&self.topic).key(key).payload(payload),
        );
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
    }

    /// Sends a finding in the contract's JSON, keyed by its `finding_id`
    /// (a compacted topic keeps one message per finding).
    pub fn send_finding(&mut self, f: &groundtruth_finding::Finding) -> serde_json::Result<()> {
        let json = serde_json::to_vec(f)?;
        self.send_raw(f.finding_id.as_bytes(), &json);
        Ok(())
    }

    /// Waits until every message is acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), SourceError> {
        self.producer
            .flush(timeout)
            .map_err(kafka_err("producer flush", &self.brokers))
    }
}

/// Client properties of the dead-letter producer: never give up on a
/// message (the offsets wait for it), batch briefly.
pub(crate) fn dead_letter_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut c = client_config(brokers, extra);
    c.set("message.timeout.ms", "0").set("linger.ms", "5");
    c
}
