//! Dead letters to Kafka: a refused message goes to `<topic>.dlq` with
//! why and where it came from, beside the lake's dead-letter store.

use std::time::Duration;

use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::error::{kafka_err, SourceError};
use crate::options::KafkaOptions;
use crate::producer::{create_topics, dead_letter_config, send_blocking};

/// The producer of `<topic>.dlq` for every consumed topic.
pub struct DeadLetters {
    producer: BaseProducer,
}

impl DeadLetters {
    /// Creates the `<topic>.dlq` topics and their producer; `None` unless
    /// `opts.dlq`.
    pub fn new(opts: &KafkaOptions) -> Result<Option<DeadLetters>, SourceError> {
        if !opts.dlq {
            return Ok(None);
        }
        let brokers = opts.brokers.as_str();
        let topics: Vec<(String, i32)> = opts
            .topics
            .iter()
            .map(|t| (format!("{t}.dlq"), 1))
            .collect();
        create_topics(brokers, &topics)?;
        let producer = dead_letter_config(brokers, &opts.extra)
            .create()
            .map_err(kafka_err("DLQ producer creation", brokers))?;
        Ok(Some(DeadLetters { producer }))
    }

    /// Produces a refused message to `<topic>.dlq` with the reason and its
    /// source position in headers.
    pub fn send<M: Message>(&self, m: &M, reject: &groundtruth_event::Reject) {
        let dlq = format!("{}.dlq", m.topic());
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "gt-reason-code",
                value: Some(reject.code.as_str()),
            })
            .insert(Header {
                key: "gt-reason",
                value: Some(reject.detail.as_str()),
            })
            .insert(Header {
                key: "gt-source-topic",
                value: Some(m.topic()),
            })
            .insert(Header {
                key: "gt-source-partition",
                value: Some(&m.partition().to_string()),
            })
            .insert(Header {
                key: "gt-source-offset",
                value: Some(&m.offset().to_string()),
            });
        let mut record = BaseRecord::to(&dlq)
            .payload(m.payload().unwrap_or(&[]))
            .headers(headers);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        send_blocking(&self.producer, record);
    }

    /// Whether every dead letter sent is acknowledged within `timeout`
    /// (offsets past a dead letter are committed only then).
    pub fn acknowledged(&self, timeout: Duration) -> bool {
        self.producer.flush(timeout).is_ok()
    }
}
