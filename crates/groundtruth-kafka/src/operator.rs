//! The one consumer loop ([`Source::run`]) and the [`Operator`] it drives.

use groundtruth_telemetry::InternalEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use groundtruth_event::SourcePosition;
use groundtruth_ingest::{Ingestor, Outcome};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use crate::consumer::{commit_offsets, subscribed_consumer, Uncommitted};
use crate::context::SourceConsumer;
use crate::dead_letter::DeadLetters;
use crate::error::SourceError;
use crate::options::KafkaOptions;
use crate::stall::FlushRetry;
use crate::telemetry::KafkaTransientError;

/// How long a stopping loop keeps trying to make durable and commit what it
/// read (and, for the live service, to finish the windows at detection).
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// How often a poll error that goes on is logged.
const POLL_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// What the loop lends an operator at each call.
pub struct Cx<'a> {
    /// The ingestor in front of the lake: what is buffered, the flush
    /// policy, the watermark.
    pub ing: &'a mut Ingestor,
    pub consumer: &'a SourceConsumer,
    /// Offsets read and not yet committed.
    pub uncommitted: &'a Uncommitted,
    /// Shutdown was asked for: nothing more is read; the loop makes durable
    /// and commits what it read, then ends.
    pub stopping: bool,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// What an operator wants of the current turn ([`Operator::plan`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// Flush what is buffered now, whatever its size (windows are due, a
    /// bounded run is ending).
    pub flush: bool,
    /// A bounded run has nothing left to do: the loop ends once everything
    /// read is durable and committed and the operator is settled.
    pub finished: bool,
}

/// What a consuming path does besides storing and committing: the loop
/// calls it at fixed points of each turn, in this order:
/// [`on_rebalance`](Operator::on_rebalance) (when the group rebalanced),
/// [`on_tick`](Operator::on_tick), [`on_message`](Operator::on_message) or
/// [`on_partition_eof`](Operator::on_partition_eof) (when one was polled),
/// [`plan`](Operator::plan), the flush, [`on_flush`](Operator::on_flush),
/// [`commit_due`](Operator::commit_due) and
/// [`before_commit`](Operator::before_commit) (when nothing is buffered),
/// the commit, [`on_turn_end`](Operator::on_turn_end); and
/// [`on_close`](Operator::on_close) once the loop ends.
pub trait Operator {
    type Error: From<SourceError>;

    /// How long a poll waits for a message.
    fn poll_timeout(&self) -> Duration {
        Duration::from_millis(100)
    }

    /// The group rebalanced. The eager protocol restarts every partition at
    /// its committed offset, so the loop has dropped what was read since
    /// (the ingestor's buffers, the uncommitted offsets) before this call.
    fn on_rebalance(&mut self, _cx: &mut Cx<'_>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Every turn, before the polled message is handled.
    fn on_tick(&mut self, _cx: &mut Cx<'_>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// A message the ingestor took (`outcome`), with its event time (epoch
    /// µs) when it decoded, new or duplicate. A rejected one is already on
    /// its way to the dead-letter topic.
    fn on_message(
        &mut self,
        _cx: &mut Cx<'_>,
        _at: Position<'_>,
        _outcome: &Outcome,
        _event_us: Option<i64>,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The consumer read partition `partition` of every subscribed topic to
    /// its end (only with `partition_eof`).
    fn on_partition_eof(&mut self, _partition: i32) {}

    /// After the message: whether to flush now and whether the run is done.
    fn plan(&mut self, cx: &mut Cx<'_>) -> Result<Turn, Self::Error>;

    /// After the flush decision; `flushed` when the buffered rows were made
    /// durable this turn.
    fn on_flush(&mut self, _cx: &mut Cx<'_>, _flushed: bool) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Whether to commit now. Asked only when nothing is buffered.
    fn commit_due(&self, cx: &Cx<'_>, flushed: bool) -> bool;

    /// Right before the commit: make durable what the commit depends on
    /// (the live service's checkpoint). `false` holds the commit back to a
    /// later turn.
    fn before_commit(&mut self, _cx: &mut Cx<'_>) -> Result<bool, Self::Error> {
        Ok(true)
    }

    /// The end of every turn, after the commit.
    fn on_turn_end(&mut self, _cx: &mut Cx<'_>, _turn: &Turn) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Nothing of the operator's own is outstanding (the live service: no
    /// window at detection). The loop ends only when settled.
    fn is_settled(&self) -> bool {
        true
    }

    /// What is left undone when a stopping loop gives up after
    /// [`STOP_GRACE`], for the log.
    fn outstanding(&self) -> Option<String> {
        None
    }

    /// The loop ended without an error (stopped or finished).
    fn on_close(&mut self, _cx: &mut Cx<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What a run of the loop did.
#[derive(Debug, Default, Clone)]
pub struct SourceStats {
    pub messages: u64,
    /// Rejected messages produced to `<topic>.dlq`.
    pub dlq_produced: u64,
    pub commits: u64,
    /// Seconds from the first to the last message read (throughput; the
    /// group join before the first message is not counted).
    pub read_s: f64,
    pub seconds: f64,
}

/// A subscribed consumer and the dead-letter producer of its topics.
pub struct Source {
    consumer: SourceConsumer,
    dead_letters: Option<DeadLetters>,
}

/// The loop's own state across turns.
struct Progress {
    uncommitted: Uncommitted,
    retry: FlushRetry,
    rebalances: u64,
    last_error_log: Instant,
    stop_since: Option<Instant>,
    first_message: Option<Instant>,
    stats: SourceStats,
}

impl Source {
    /// Subscribes to `opts.topics` (see [`subscribed_consumer`]) and, with
    /// `opts.dlq`, creates the dead-letter topics and their producer.
    pub fn subscribe(opts: &KafkaOptions, partition_eof: bool) -> Result<Source, SourceError> {
        Ok(Source {
            consumer: subscribed_consumer(opts, partition_eof)?,
            dead_letters: DeadLetters::new(opts)?,
        })
    }

    pub fn consumer(&self) -> &SourceConsumer {
        &self.consumer
    }

    /// Consumes into `ing`'s lake, driving `op`, until shutdown is set (or
    /// the operator says the run is finished) and everything read is
    /// durable and committed.
    ///
    /// Offsets are committed only after the lake flush that covers them
    /// has returned and the dead letters among them are acknowledged by the
    /// broker, so a crash at any point re-delivers at most what was not yet
    /// durable; the lake drops re-delivered `event_id`s. While the broker
    /// is unreachable the loop keeps polling (librdkafka reconnects), keeps
    /// what it has and retries the commit; while the lake cannot be written
    /// it pauses the partitions ([`FlushRetry`]).
    pub fn run<O: Operator>(
        &self,
        ing: &mut Ingestor,
        op: &mut O,
        shutdown: &AtomicBool,
    ) -> Result<SourceStats, O::Error> {
        let started = Instant::now();
        let mut p = Progress {
            uncommitted: Uncommitted::new(),
            retry: FlushRetry::new(),
            rebalances: 0,
            last_error_log: Instant::now() - Duration::from_secs(60),
            stop_since: None,
            first_message: None,
            stats: SourceStats::default(),
        };
        // What the operator is lent at each call.
        macro_rules! cx {
            ($stopping:expr) => {
                Cx {
                    ing: &mut *ing,
                    consumer: &self.consumer,
                    uncommitted: &p.uncommitted,
                    stopping: $stopping,
                }
            };
        }
        loop {
            let stopping = shutdown.load(Ordering::Relaxed);
            // Once stopping, read nothing more: only make what was read
            // durable.
            let polled = if stopping {
                None
            } else {
                self.consumer.poll(op.poll_timeout())
            };
            let rebalances = self.consumer.context().rebalances();
            if rebalances != p.rebalances {
                p.rebalances = rebalances;
                ing.resync().map_err(SourceError::from)?;
                p.uncommitted.clear();
                p.retry.reset();
                op.on_rebalance(&mut cx!(stopping))?;
            }
            op.on_tick(&mut cx!(stopping))?;
            match polled {
                Some(Ok(m)) => {
                    p.stats.messages += 1;
                    let first = *p.first_message.get_or_insert_with(Instant::now);
                    p.stats.read_s = first.elapsed().as_secs_f64();
                    let at = Position {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                    };
                    let (outcome, event_us) =
                        ing.accept_timed(m.payload().unwrap_or(&[]), || SourcePosition::Kafka {
                            topic: at.topic.to_string(),
                            partition: at.partition,
                            offset: at.offset,
                        });
                    if let (Outcome::Rejected(reject), Some(d)) = (&outcome, &self.dead_letters) {
                        d.send(&m, reject);
                        p.stats.dlq_produced += 1;
                    }
                    op.on_message(&mut cx!(stopping), at, &outcome, event_us)?;
                    p.uncommitted
                        .insert((at.topic.to_string(), at.partition), at.offset + 1);
                }
                // The error names only the partition: every subscribed
                // topic's partition `p` is at its end.
                Some(Err(KafkaError::PartitionEOF(partition))) => op.on_partition_eof(partition),
                Some(Err(e)) if p.last_error_log.elapsed() > POLL_ERROR_LOG_EVERY => {
                    KafkaTransientError {
                        action: "poll",
                        error: &e,
                    }
                    .emit();
                    p.last_error_log = Instant::now();
                }
                Some(Err(_)) | None => {}
            }

            let turn = op.plan(&mut cx!(stopping))?;
            // Make durable what was read: by size, by time, or when asked
            // (windows due, a run ending). A lake that cannot be written
            // pauses the partitions; nothing is committed while rows are
            // buffered.
            let mut flushed = false;
            if (ing.over_size()
                || ing.interval_due()
                || ((turn.flush || stopping) && ing.has_buffered()))
                && p.retry.may_try()
            {
                flushed = p
                    .retry
                    .flush(ing, &self.consumer)
                    .map_err(SourceError::from)?
                    .is_some();
            }
            op.on_flush(&mut cx!(stopping), flushed)?;
            let due = !ing.has_buffered() && op.commit_due(&cx!(stopping), flushed);
            if due && op.before_commit(&mut cx!(stopping))? {
                let timeout = Duration::from_secs(if stopping { 30 } else { 5 });
                let acknowledged = self
                    .dead_letters
                    .as_ref()
                    .is_none_or(|d| d.acknowledged(timeout));
                if acknowledged
                    && !p.uncommitted.is_empty()
                    && commit_offsets(&self.consumer, &mut p.uncommitted, &mut p.last_error_log)
                {
                    p.stats.commits += 1;
                }
            }
            op.on_turn_end(&mut cx!(stopping), &turn)?;

            let settled = !ing.has_buffered() && p.uncommitted.is_empty() && op.is_settled();
            if settled && (stopping || turn.finished) {
                break;
            }
            if stopping && p.stop_since.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE {
                give_up(ing, &p.uncommitted, op.outstanding());
                break;
            }
            if stopping && !settled {
                // Keep retrying the final flush and commit.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        op.on_close(&mut cx!(shutdown.load(Ordering::Relaxed)))?;
        p.stats.seconds = started.elapsed().as_secs_f64();
        Ok(p.stats)
    }
}

/// Logs what a stopping loop leaves after [`STOP_GRACE`]; all of it is
/// redone at the next start.
fn give_up(ing: &Ingestor, uncommitted: &Uncommitted, outstanding: Option<String>) {
    if ing.has_buffered() {
        // The lake could not be written: those messages were not
        // committed and are read again at the next start.
        tracing::warn!(
            buffered = ing.buffered_rows(),
            "stopping with messages not stored: the lake could not be written within {STOP_GRACE:?}; they are read again at the next start"
        );
    } else if !uncommitted.is_empty() {
        // Everything read is durable in the lake; only the commit is
        // missing, so a restart re-reads and drops those messages as
        // duplicates.
        tracing::warn!(
            partitions = uncommitted.len(),
            "stopping without committing the last offsets: the broker did not answer within {STOP_GRACE:?}"
        );
    }
    if let Some(what) = outstanding {
        tracing::warn!(
            outstanding = %what,
            "stopping with work outstanding after {STOP_GRACE:?}; it is redone at the next start"
        );
    }
}
