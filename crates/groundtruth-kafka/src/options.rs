//! Kafka settings of a consuming run.

use std::time::Duration;

use rdkafka::config::ClientConfig;

/// Kafka settings of an ingest or live run.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    /// Also produce dead letters to `<topic>.dlq`.
    pub dlq: bool,
    pub session_timeout_ms: u32,
    /// Extra librdkafka properties for the consumer and producers.
    pub extra: Vec<(String, String)>,
    /// Stop after this long without a message and with nothing pending
    /// (batch runs and tests); `None` runs until shutdown.
    pub exit_when_idle: Option<Duration>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            brokers: "127.0.0.1:9092".into(),
            topics: vec!["app-events".into()],
            group_id: "groundtruth-ingest".into(),
            dlq: true,
            session_timeout_ms: 6000,
            extra: Vec::new(),
            exit_when_idle: None,
        }
    }
}

/// A librdkafka client configuration: the brokers, then the extra
/// properties (which may override anything the caller sets before them).
pub(crate) fn client_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}
