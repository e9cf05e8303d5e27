//! `groundtruth run`: the Kafka loop driving [`LiveState`], with the
//! detection worker beside it.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use groundtruth_ingest::Ingestor;
use groundtruth_kafka::{create_topics, LagReporter, Source, TopicProducer};

use crate::checkpoint::Checkpoint;
use crate::error::LiveError;
use crate::options::{LiveOptions, LiveStats};
use crate::state::LiveState;
use crate::worker::Worker;

/// Runs the service until `shutdown` (or, with `exit_when_idle`, until the
/// topics are drained). See the crate documentation for the guarantees.
pub fn run_live(
    ing: &mut Ingestor,
    opts: &LiveOptions,
    shutdown: &AtomicBool,
) -> Result<LiveStats, LiveError> {
    let started = Instant::now();
    let cp = Checkpoint::load(&opts.state_dir, ing.watermark().lateness_us())?;
    let brokers = opts.kafka.brokers.as_str();
    let source = Source::subscribe(&opts.kafka, true)?;
    let publisher = match &opts.findings_topic {
        Some(t) => {
            create_topics(brokers, &[(t.clone(), 1)])?;
            Some(TopicProducer::new(brokers, t, &opts.kafka.extra)?)
        }
        None => None,
    };
    let worker = Worker::spawn(opts, ing.lake().read_gate(), publisher)?;
    tracing::info!(
        state = %opts.state_dir.display(),
        windows_closed = cp.windows_closed,
        groups = opts.schedule.groups.len(),
        "live service started"
    );
    let before = ing.totals();
    let mut state = LiveState::new(opts, cp, worker, LagReporter::start(&opts.kafka));
    let result = source.run(ing, &mut state, shutdown);
    let mut stats = state.finish();
    let run = result?;
    stats.messages = run.messages;
    stats.read_s = run.read_s;
    stats.counts = ing.totals().since(&before);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}
