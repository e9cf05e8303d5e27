//! Kafka settings and producers shared by `ingest`, `run` and `demo`.

use std::time::Duration;

use anyhow::{Context, Result};
use groundtruth_config::Config;
use groundtruth_kafka::{create_topics, KafkaOptions, TopicProducer};

use crate::setup::toml_string;

/// `--topic` flags as a `kafka.topics` override.
pub(crate) fn topic_overrides(topics: &[String]) -> Vec<String> {
    if topics.is_empty() {
        return Vec::new();
    }
    vec![format!("kafka.topics={}", toml_string(&topics.join(",")))]
}

pub(crate) fn kafka_options(cfg: &Config, exit_when_idle: Option<Duration>) -> KafkaOptions {
    KafkaOptions {
        brokers: cfg.kafka.brokers.clone(),
        topics: cfg.kafka.topics.clone(),
        group_id: cfg.kafka.group_id.clone(),
        dlq: cfg.kafka.dlq,
        session_timeout_ms: cfg.kafka.session_timeout_ms,
        extra: cfg
            .kafka
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        exit_when_idle,
    }
}

/// The extra librdkafka properties of the config.
pub(crate) fn kafka_properties(cfg: &Config) -> Vec<(String, String)> {
    cfg.kafka
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Produces `findings` to `topic` (contract JSON, key = `finding_id`) and
/// waits until the broker has them all.
pub(crate) fn publish_findings(
    cfg: &Config,
    topic: &str,
    findings: &[groundtruth_finding::Finding],
) -> Result<usize> {
    create_topics(&cfg.kafka.brokers, &[(topic.to_string(), 3)])?;
    let extra = kafka_properties(cfg);
    let mut sink = TopicProducer::new(&cfg.kafka.brokers, topic, &extra)?;
    for f in findings {
        sink.send_finding(f)?;
    }
    sink.flush(Duration::from_secs(120)).with_context(|| {
        format!(
            "not every finding reached topic {topic} at {} within 120 s; the findings file is complete, re-run to publish (ids are stable)",
            cfg.kafka.brokers
        )
    })?;
    Ok(findings.len())
}
