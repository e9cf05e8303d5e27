//! The consumers' librdkafka context and consumer type, shared by the
//! consumer loop and the flush retry that pauses it.

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The consumers' librdkafka context: counts the group's rebalances and
/// logs librdkafka's errors, except the end-of-partition notices the live
/// service asks for (they are how it knows a partition is caught up, not a
/// fault).
#[derive(Default)]
pub struct SourceContext {
    rebalances: std::sync::atomic::AtomicU64,
}

impl SourceContext {
    /// Partition revocations and assignments seen so far: when it changes,
    /// the consumer's positions were reset to the committed offsets (the
    /// eager protocol, which [`subscribed_consumer`](crate::subscribed_consumer) sets).
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            return;
        }
        tracing::error!(%error, reason, "librdkafka error");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "Kafka partitions revoked");
            self.rebalances
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "Kafka partitions assigned");
                self.rebalances
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "Kafka rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The consumer type of every ingest path.
pub type SourceConsumer = BaseConsumer<SourceContext>;
