use groundtruth_error::{Classified, ErrorDomain, RetryHint};
use groundtruth_ingest::IngestError;

/// What stops a Kafka run. Bad events never do: they become dead letters;
/// a broker that is down for a while does not either (the client
/// reconnects and the loop retries its commits).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Kafka {action} failed: {source}; check that the broker at `{brokers}` is reachable and the settings under [kafka] are right")]
    Kafka {
        action: &'static str,
        brokers: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The lake (or the ingestor in front of it) failed in a way pausing
    /// does not fix.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl Classified for SourceError {
    fn domain(&self) -> ErrorDomain {
        match self {
            SourceError::Kafka { .. } => ErrorDomain::External,
            SourceError::Ingest(e) => e.domain(),
        }
    }

    /// A Kafka error that stops a run is one the client did not recover
    /// from itself; a lake error says of itself.
    fn retry_hint(&self) -> RetryHint {
        match self {
            SourceError::Kafka { .. } => RetryHint::NoRetry,
            SourceError::Ingest(e) => e.retry_hint(),
        }
    }
}

/// Wraps a client error with what was being done and the brokers asked.
pub(crate) fn kafka_err<'a>(
    action: &'static str,
    brokers: &'a str,
) -> impl Fn(rdkafka::error::KafkaError) -> SourceError + 'a {
    move |source| SourceError::Kafka {
        action,
        brokers: brokers.to_string(),
        source,
    }
}
