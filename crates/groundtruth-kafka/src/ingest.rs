//! `groundtruth ingest --kafka`: the loop with nothing besides storing and
//! committing, ending when the topics are quiet if asked to.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use groundtruth_ingest::{IngestCounts, Ingestor};
use rdkafka::consumer::Consumer;

use crate::error::SourceError;
use crate::operator::{Cx, Operator, Position, Source, Turn};
use crate::options::KafkaOptions;

/// What a Kafka ingest run did.
#[derive(Debug, Default, Clone)]
pub struct KafkaIngestStats {
    pub messages: u64,
    pub counts: IngestCounts,
    pub dlq_produced: u64,
    pub commits: u64,
    pub seconds: f64,
}

/// The operator of `ingest --kafka`: commits at least once per flush
/// interval, and with `exit_when_idle` ends the run once the topics have
/// been quiet that long.
#[derive(Debug)]
pub struct IngestOperator {
    exit_when_idle: Option<Duration>,
    /// When partitions were first assigned: the idle clock starts there
    /// (joining a group after a crashed member can take a session timeout).
    assigned_at: Option<Instant>,
    last_message: Instant,
    last_commit: Instant,
    idle: bool,
}

impl IngestOperator {
    pub fn new(exit_when_idle: Option<Duration>) -> Self {
        IngestOperator {
            exit_when_idle,
            assigned_at: None,
            last_message: Instant::now(),
            last_commit: Instant::now(),
            idle: false,
        }
    }
}

impl Operator for IngestOperator {
    type Error = SourceError;

    fn on_message(
        &mut self,
        _cx: &mut Cx<'_>,
        _at: Position<'_>,
        _outcome: &groundtruth_ingest::Outcome,
        _event_us: Option<i64>,
    ) -> Result<(), SourceError> {
        self.last_message = Instant::now();
        Ok(())
    }

    fn plan(&mut self, cx: &mut Cx<'_>) -> Result<Turn, SourceError> {
        if self.assigned_at.is_none()
            && self.exit_when_idle.is_some()
            && cx.consumer.assignment().is_ok_and(|a| a.count() > 0)
        {
            let now = Instant::now();
            self.assigned_at = Some(now);
            self.last_message = self.last_message.max(now);
        }
        self.idle = self.assigned_at.is_some()
            && self
                .exit_when_idle
                .is_some_and(|d| self.last_message.elapsed() >= d);
        Ok(Turn {
            flush: self.idle,
            finished: self.idle,
        })
    }

    /// Right after a flush, when the run ends, and at most once per flush
    /// interval otherwise (everything read may have been duplicates, which
    /// flush nothing).
    fn commit_due(&self, cx: &Cx<'_>, flushed: bool) -> bool {
        !cx.uncommitted.is_empty()
            && (flushed
                || cx.stopping
                || self.idle
                || self.last_commit.elapsed() >= cx.ing.flush_interval())
    }

    fn before_commit(&mut self, _cx: &mut Cx<'_>) -> Result<bool, SourceError> {
        self.last_commit = Instant::now();
        Ok(true)
    }
}

/// Consumes `opts.topics` into the ingestor's lake until `shutdown` is set
/// (or the source is idle, see [`KafkaOptions::exit_when_idle`]); see
/// [`Source::run`] for what is durable when.
pub fn ingest_kafka(
    ing: &mut Ingestor,
    opts: &KafkaOptions,
    shutdown: &AtomicBool,
) -> Result<KafkaIngestStats, SourceError> {
    let started = Instant::now();
    let source = Source::subscribe(opts, false)?;
    let before = ing.totals();
    let run = source.run(ing, &mut IngestOperator::new(opts.exit_when_idle), shutdown)?;
    Ok(KafkaIngestStats {
        messages: run.messages,
        counts: ing.totals().since(&before),
        dlq_produced: run.dlq_produced,
        commits: run.commits,
        seconds: started.elapsed().as_secs_f64(),
    })
}
