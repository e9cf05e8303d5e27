//! Kafka: consume `app-events` into the lake with at-least-once offsets,
//! dead letters also to `<topic>.dlq`; and a producer sink for the
//! simulator.

use groundtruth_telemetry::InternalEvent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use groundtruth_event::SourcePosition;
use groundtruth_sim::{SimError, SimSink};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::context::{IngestConsumer, IngestContext};
use crate::counts::IngestCounts;
use crate::error::IngestError;
use crate::ingestor::{Ingestor, Outcome};
use crate::stall::FlushRetry;
use crate::telemetry::{KafkaTransientError, OffsetsCommitted};

/// How long a stopping consumer keeps retrying its last commit.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Kafka settings of an ingest run.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    /// Also produce dead letters to `<topic>.dlq`.
    pub dlq: bool,
    pub session_timeout_ms: u32,
    /// Extra librdkafka properties for the consumer and producer.
    pub extra: Vec<(String, String)>,
    /// Stop after this long without a message and with nothing pending
    /// (batch runs and tests); `None` runs until `shutdown`.
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

/// What a Kafka ingest run did.
#[derive(Debug, Default, Clone)]
pub struct KafkaIngestStats {
    pub messages: u64,
    pub counts: IngestCounts,
    pub dlq_produced: u64,
    pub commits: u64,
    pub seconds: f64,
}

fn kafka_err<'a>(
    action: &'static str,
    brokers: &'a str,
) -> impl Fn(KafkaError) -> IngestError + 'a {
    move |source| IngestError::Kafka {
        action,
        brokers: brokers.to_string(),
        source,
    }
}

fn client_config(opts: &KafkaOptions) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &opts.brokers);
    for (k, v) in &opts.extra {
        c.set(k, v);
    }
    c
}

/// Creates `topics` (name, partitions) unless they exist.
pub fn create_topics(brokers: &str, topics: &[(String, i32)]) -> Result<(), IngestError> {
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
                return Err(IngestError::Kafka {
                    action: "topic creation",
                    brokers: brokers.to_string(),
                    source: KafkaError::AdminOp(code),
                })
                .inspect_err(|_| tracing::error!(%topic, "cannot create topic"));
            }
        }
    }
    Ok(())
}

/// Consumes `opts.topics` into the ingestor's lake until `shutdown` is set
/// (or the source is idle, see [`KafkaOptions::exit_when_idle`]).
///
/// Offsets are committed only after the lake flush that covers them has
/// returned and the dead letters among them are acknowledged by the
/// broker, so a crash at any point re-delivers at most what was not yet
/// durable; the lake drops re-delivered `event_id`s. While the broker is
/// unreachable the loop keeps polling (librdkafka reconnects), keeps what
/// it has and retries the commit.
pub fn ingest_kafka(
    ing: &mut Ingestor,
    opts: &KafkaOptions,
    shutdown: &AtomicBool,
) -> Result<KafkaIngestStats, IngestError> {
    let started = Instant::now();
    let consumer = subscribed_consumer(opts, false)?;
    let producer = dlq_producer(opts)?;

    let mut stats = KafkaIngestStats::default();
    let before = ing.totals();
    // Next offset to commit per (topic, partition): read but maybe not durable.
    let mut uncommitted = Uncommitted::new();
    let mut last_commit = Instant::now();
    let mut stop_since: Option<Instant> = None;
    let mut assigned_at: Option<Instant> = None;
    let mut last_message = Instant::now();
    let mut last_error_log = Instant::now() - Duration::from_secs(60);
    let mut rebalances = 0;
    let mut retry = FlushRetry::new();

    loop {
        let stop = shutdown.load(Ordering::Relaxed);
        // Once stopping, read nothing more: only make what was read durable.
        let polled = if stop {
            None
        } else {
            consumer.poll(Duration::from_millis(100))
        };
        if consumer.context().rebalances() != rebalances {
            // Positions restart at the committed offsets: what was read
            // since is read again, so drop it (and its offsets).
            rebalances = consumer.context().rebalances();
            ing.resync()?;
            uncommitted.clear();
            retry.reset();
        }
        match polled {
            Some(Ok(m)) => {
                last_message = Instant::now();
                stats.messages += 1;
                let payload = m.payload().unwrap_or(&[]);
                let outcome = ing.accept(payload, || SourcePosition::Kafka {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                });
                if let (Outcome::Rejected(reject), Some(p)) = (&outcome, &producer) {
                    send_dead_letter(p, &m, reject);
                    stats.dlq_produced += 1;
                }
                uncommitted.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            }
            Some(Err(e)) if last_error_log.elapsed() > Duration::from_secs(5) => {
                KafkaTransientError {
                    action: "poll",
                    error: &e,
                }
                .emit();
                last_error_log = Instant::now();
            }
            Some(Err(_)) | None => {}
        }

        // The idle clock starts once partitions are assigned: joining a
        // group after a crashed member can take a session timeout.
        if assigned_at.is_none()
            && opts.exit_when_idle.is_some()
            && consumer.assignment().is_ok_and(|a| a.count() > 0)
        {
            assigned_at = Some(Instant::now());
            last_message = last_message.max(Instant::now());
        }
        let idle = assigned_at.is_some()
            && opts
                .exit_when_idle
                .is_some_and(|d| last_message.elapsed() >= d);
        let mut flushed = false;
        if (ing.over_size() || ing.interval_due() || ((stop || idle) && ing.has_buffered()))
            && retry.may_try()
        {
            flushed = retry.flush(ing, &consumer)?.is_some();
        }
        // Offsets are committed only when nothing read is still buffered
        // (right after a flush, or when everything read was a duplicate),
        // and at most once per flush interval otherwise.
        let commit_due = flushed || stop || idle || last_commit.elapsed() >= ing.flush_interval();
        if commit_due && !ing.has_buffered() && !uncommitted.is_empty() {
            let dlq_ok = match &producer {
                Some(p) => p
                    .flush(Duration::from_secs(if stop { 30 } else { 5 }))
                    .is_ok(),
                None => true,
            };
            if dlq_ok && commit_offsets(&consumer, &mut uncommitted, &mut last_error_log) {
                stats.commits += 1;
            }
            last_commit = Instant::now();
        }
        let settled = !ing.has_buffered() && uncommitted.is_empty();
        if settled && (stop || idle) {
            break;
        }
        if stop && stop_since.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE {
            if ing.has_buffered() {
                // The lake could not be written: those messages were not
                // committed and are read again at the next start.
                tracing::warn!(
                    buffered = ing.buffered_rows(),
                    "stopping with messages not stored: the lake could not be written within {STOP_GRACE:?}; they are read again at the next start"
                );
            } else {
                // Everything read is durable in the lake; only the commit is
                // missing, so a restart re-reads and drops those messages as
                // duplicates.
                tracing::warn!(
                    partitions = uncommitted.len(),
                    "stopping without committing the last offsets: the broker did not answer within {STOP_GRACE:?}"
                );
            }
            break;
        }
        if stop && !settled {
            // Keep retrying the final commit until the broker answers.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    stats.counts = ing.totals().since(&before);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Offsets read but not yet committed: next offset per (topic, partition).
pub type Uncommitted = HashMap<(String, i32), i64>;

/// A consumer of `opts.topics` in group `opts.group_id` that commits only
/// when told (see [`commit_offsets`]) and starts new groups at the earliest
/// offset. With `partition_eof`, `poll` reports reaching the end of each
/// partition (`KafkaError::PartitionEOF`).
pub fn subscribed_consumer(
    opts: &KafkaOptions,
    partition_eof: bool,
) -> Result<IngestConsumer, IngestError> {
    let brokers = opts.brokers.as_str();
    let consumer: IngestConsumer = client_config(opts)
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
        .create_with_context(IngestContext::default())
        .map_err(kafka_err("consumer creation", brokers))?;
    let topics: Vec<&str> = opts.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(kafka_err("subscribe", brokers))?;
    Ok(consumer)
}

/// The producer of `<topic>.dlq` (topics created), when `opts.dlq`.
pub fn dlq_producer(opts: &KafkaOptions) -> Result<Option<BaseProducer>, IngestError> {
    if !opts.dlq {
        return Ok(None);
    }
    let brokers = opts.brokers.as_str();
    let dlq_topics: Vec<(String, i32)> = opts
        .topics
        .iter()
        .map(|t| (format!("{t}.dlq"), 1))
        .collect();
    create_topics(brokers, &dlq_topics)?;
    Ok(Some(
        client_config(opts)
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .create()
            .map_err(kafka_err("DLQ producer creation", brokers))?,
    ))
}

/// Produces a refused message to `<topic>.dlq` with the reason and its
/// source position in headers.
pub fn send_dead_letter<M: Message>(p: &BaseProducer, m: &M, reject: &groundtruth_event::Reject) {
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
    send_blocking(p, record);
}

/// Commits `uncommitted` synchronously; clears it and returns true on
/// success, logs (at most every 5 s, via `last_error_log`) and returns
/// false when the broker does not answer.
pub fn commit_offsets(
    consumer: &IngestConsumer,
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

/// Sends, waiting while librdkafka's queue is full.
fn send_blocking<
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

/// A producer to one topic: the simulator's sink (events keyed by account)
/// and the findings publisher (keyed by `finding_id`).
pub struct KafkaProducerSink {
    producer: BaseProducer,
    topic: String,
    pub sent: u64,
}

impl KafkaProducerSink {
    pub fn new(
        brokers: &str,
        topic: &str,
        extra: &[(String, String)],
    ) -> Result<Self, IngestError> {
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
        Ok(KafkaProducerSink {
            producer,
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
    pub fn flush(&self, timeout: Duration) -> Result<(), IngestError> {
        self.producer
            .flush(timeout)
            .map_err(|source| IngestError::Kafka {
                action: "producer flush",
                brokers: String::new(),
                source,
            })
    }
}

impl SimSink for KafkaProducerSink {
    fn event(&mut self, key: &str, json: &[u8]) -> Result<(), SimError> {
        self.send_raw(key.as_bytes(), json);
        Ok(())
    }
}
