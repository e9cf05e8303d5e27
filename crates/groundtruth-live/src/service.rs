//! `groundtruth run`: the Kafka loop of the live service.

use groundtruth_error::Classified;
use groundtruth_telemetry::{metric, InternalEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use groundtruth_detect::{run_close, CloseCache, CloseRun, DetectError};
use groundtruth_event::{DayZone, SourcePosition};
use groundtruth_finding::Finding;
use groundtruth_ingest::{
    commit_offsets, create_topics, dlq_producer, send_dead_letter, subscribed_consumer,
    IngestCounts, Ingestor, KafkaOptions, KafkaProducerSink, Outcome, Uncommitted,
};
use groundtruth_window::{Close, Progress, Schedule};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use crate::checkpoint::Checkpoint;
use crate::error::LiveError;
use crate::handover::{self, JudgeState, PartitionRecord};
use crate::telemetry::{LateForClosedWindow, StreamState, WindowClosed};

/// Settings of the live service.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Source topics and consumer group; `exit_when_idle` makes a bounded
    /// run: once the topics are drained and quiet that long, every window
    /// holding data is closed (as at the end of a file) and the run ends.
    pub kafka: KafkaOptions,
    pub state_dir: PathBuf,
    pub lake_dir: PathBuf,
    pub zone: DayZone,
    pub schedule: Schedule,
    /// Turns the detectors' raw scores into probabilities.
    pub calibration: groundtruth_finding::calibration::Calibration,
    /// Kafka topic the findings are published to (keyed by `finding_id`).
    pub findings_topic: Option<String>,
    /// The review store the findings go to (upserted by id).
    pub store: groundtruth_store::ReviewStore,
    /// The runtime the store's connections and the detectors' queries run
    /// on (the worker thread blocks on it).
    pub runtime: tokio::runtime::Handle,
    /// A window with at most this many events is decoded once into memory
    /// for all its queries (see [`CloseCache`]; 0: never).
    pub window_memory_rows: usize,
}

/// What a run of the service did.
#[derive(Debug, Default, Clone)]
pub struct LiveStats {
    pub messages: u64,
    pub counts: IngestCounts,
    pub windows_closed: u64,
    pub rescans: u64,
    /// Findings stored (new or newer versions).
    pub findings_stored: u64,
    pub findings_published: u64,
    /// Accepted events that fell in an already closed window.
    pub late_for_closed: u64,
    /// Wall seconds from the watermark passing a window's horizon to its
    /// findings being stored, per window closed.
    pub latencies_s: Vec<f64>,
    /// Seconds each window's detection took (SQL and detectors, without
    /// the time it waited behind other windows).
    pub detect_s: Vec<f64>,
    /// Seconds from the first to the last message read (throughput; the
    /// group join before the first message is not counted).
    pub read_s: f64,
    pub seconds: f64,
}

/// How often the assignment is read and the state gauges set.
const POSITION_EVERY: Duration = Duration::from_millis(100);

/// The worker's job queue, its reports, its thread.
type Worker = (
    mpsc::Sender<Job>,
    mpsc::Receiver<Result<Done, LiveError>>,
    std::thread::JoinHandle<()>,
);

/// A window handed to the detection worker.
struct Job {
    close: Close,
    /// A re-scan of a closed window (late events), not its first close.
    rescan: bool,
    /// When the watermark passed the window's horizon.
    passed_at: Instant,
}

/// What the worker reports back for a job.
struct Done {
    close: Close,
    rescan: bool,
    latency_s: f64,
    /// Seconds the window's detection took (without waiting in the queue).
    detect_s: f64,
    stored: u64,
    published: u64,
    findings_total: u64,
}

/// The detection worker: runs windows in the order they are sent, stores
/// and publishes their findings, reports each back. It runs beside the
/// consuming loop (which keeps reading and flushing), holding the lake's
/// read gate while it queries so compaction waits for it.
fn spawn_worker(
    opts: &LiveOptions,
    gate: groundtruth_lake::ReadGate,
    mut publisher: Option<KafkaProducerSink>,
) -> Result<Worker, LiveError> {
    let rt = opts.runtime.clone();
    let store = opts.store.clone();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel();
    let (lake, schedule, zone) = (opts.lake_dir.clone(), opts.schedule.clone(), opts.zone);
    let memory_rows = opts.window_memory_rows;
    let calibration = opts.calibration.clone();
    let handle = std::thread::Builder::new()
        .name("gt-detect".into())
        .spawn(move || {
            let cache = CloseCache::with_memory_rows(memory_rows);
            for job in job_rx {
                let result = (|| {
                    let run = {
                        let _reading = gate.read().unwrap_or_else(|p| p.into_inner());
                        // The gate holds this process's compactions off;
                        // another member's (scale-out) may remove a file
                        // the window listed: judge it again.
                        rt.block_on(groundtruth_sql::retry_vanished(
                            || run_close(&lake, &schedule, &job.close, zone, &calibration, &cache),
                            |e: &DetectError| e.is_retryable(),
                        ))?
                    };
                    let latency_s = job.passed_at.elapsed().as_secs_f64();
                    let (stored, published) = deliver(
                        &run,
                        &schedule.groups[job.close.group].name,
                        job.rescan,
                        (!job.rescan).then_some(latency_s),
                        &rt,
                        &store,
                        publisher.as_mut(),
                    )?;
                    let findings_total = rt.block_on(store.finding_count())?;
                    Ok(Done {
                        close: job.close,
                        rescan: job.rescan,
                        latency_s,
                        detect_s: run.seconds,
                        stored,
                        published,
                        findings_total,
                    })
                })();
                let failed = result.is_err();
                if done_tx.send(result).is_err() || failed {
                    return;
                }
            }
        })
        .map_err(LiveError::Runtime)?;
    Ok((job_tx, done_rx, handle))
}

/// Runs the service until `shutdown` (or, with `exit_when_idle`, until the
/// topics are drained). See the crate documentation for the guarantees.
pub fn run_live(
    ing: &mut Ingestor,
    opts: &LiveOptions,
    shutdown: &AtomicBool,
) -> Result<LiveStats, LiveError> {
    let started = Instant::now();
    let lateness_us = ing.watermark().lateness_us();
    let mut cp = Checkpoint::load(&opts.state_dir, lateness_us)?;
    let brokers = opts.kafka.brokers.as_str();
    let consumer = subscribed_consumer(&opts.kafka, true)?;
    let dlq = dlq_producer(&opts.kafka)?;
    let publisher = match &opts.findings_topic {
        Some(t) => {
            create_topics(brokers, &[(t.clone(), 1)])?;
            Some(KafkaProducerSink::new(brokers, t, &opts.kafka.extra)?)
        }
        None => None,
    };
    let (jobs, done, worker) = spawn_worker(opts, ing.lake().read_gate(), publisher)?;
    let lag = LagReporter::start(&opts.kafka);
    tracing::info!(
        state = %opts.state_dir.display(),
        windows_closed = cp.windows_closed,
        groups = opts.schedule.groups.len(),
        "live service started"
    );

    let mut stats = LiveStats::default();
    let before = ing.totals();
    let mut uncommitted = Uncommitted::new();
    let mut last_message = Instant::now();
    let mut last_error_log = Instant::now() - Duration::from_secs(60);
    let mut last_position = Instant::now() - POSITION_EVERY;
    let mut pending: Vec<String> = Vec::new();
    // Partitions read to their end (librdkafka's partition EOF) and not
    // given a message since: they do not hold event time back.
    let mut caught_up: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut assigned = false;
    let mut checkpoint_bytes = 0;
    let mut stop_since: Option<Instant> = None;
    let mut first_message: Option<Instant> = None;
    // Per group, the end of the last window closed or handed to the worker:
    // what is due next and what counts as late. The checkpoint's progress
    // only records a window once its findings are stored.
    let mut dispatched: Progress = cp.progress.clone();
    let mut jobs_out = 0usize;
    let mut rescans_out: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut closed_since_rescan = false;
    // Scale-out (see `handover`): the partitions owned and their records,
    // every partition of the topics, and per owned partition the hours of event time read
    // since the last flush (checked against the judge's windows after it).
    let mut rebalances = 0u64;
    let mut owned: BTreeSet<String> = BTreeSet::new();
    let mut all_partitions: Vec<String> = Vec::new();
    let judge_tp = format!(
        "{}/0",
        opts.kafka.topics.first().map(String::as_str).unwrap_or("")
    );
    let mut judge = false;
    let mut records: BTreeMap<String, PartitionRecord> = BTreeMap::new();
    let mut written: BTreeMap<String, PartitionRecord> = BTreeMap::new();
    let mut spans: HashMap<String, BTreeMap<i64, (i64, i64)>> = HashMap::new();
    let mut retry = groundtruth_ingest::FlushRetry::new();
    // The state files (checkpoint, partition records, judge file) that
    // could not be written yet: nothing is committed and no window handed
    // over until they are.
    let mut writes = StateWrites::default();
    let mut records_owed = false;
    let mut commit_owed = false;

    let result = (|| -> Result<(), LiveError> {
        loop {
            let stop = shutdown.load(Ordering::Relaxed);
            let polled = if stop {
                None
            } else {
                consumer.poll(Duration::from_millis(if jobs_out > 0 { 20 } else { 100 }))
            };
            if consumer.context().rebalances() != rebalances {
                // The eager protocol restarts every partition at its
                // committed offset: drop what was read since; take over
                // the partitions gained (and the judge's role with 0).
                rebalances = consumer.context().rebalances();
                ing.resync()?;
                retry.reset();
                uncommitted.clear();
                caught_up.clear();
                spans.clear();
                let now: BTreeSet<String> = assignment_of(&consumer)
                    .iter()
                    .map(|(t, p)| format!("{t}/{p}"))
                    .collect();
                if let Some(all) = partitions_of(&consumer, &opts.kafka.topics) {
                    all_partitions = all;
                }
                for tp in now.difference(&owned) {
                    let rec = handover::load_record(&opts.lake_dir, tp)?.unwrap_or_default();
                    learn_clock(&mut cp, tp, &rec);
                    written.insert(tp.clone(), rec.clone());
                    records.insert(tp.clone(), rec);
                }
                records.retain(|tp, _| now.contains(tp));
                written.retain(|tp, _| now.contains(tp));
                let was_judge = judge;
                judge = now.contains(&judge_tp);
                if judge && !was_judge {
                    let mut mine = judge_state(&cp, &dispatched);
                    if let Some(shared) = handover::load_judge(&opts.lake_dir)? {
                        mine.merge(&shared);
                    }
                    dispatched = mine.dispatched.clone();
                    cp.progress = mine.progress;
                    cp.rescan = mine.rescan;
                    cp.first_event_us = mine.first_event_us;
                    cp.absorbed = mine.absorbed;
                    closed_since_rescan = true;
                }
                tracing::info!(
                    owned = now.len(),
                    of = all_partitions.len(),
                    judge,
                    partitions = ?now,
                    "partitions owned"
                );
                owned = now;
                last_position = Instant::now() - POSITION_EVERY;
            }
            // Windows the worker finished.
            loop {
                let d = match done.try_recv() {
                    Ok(d) => d?,
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) if jobs_out > 0 => {
                        return Err(LiveError::Runtime(std::io::Error::other(
                            "the detection worker stopped unexpectedly",
                        )));
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                };
                jobs_out -= 1;
                let name = opts.schedule.groups[d.close.group].name.clone();
                if d.rescan {
                    rescans_out.remove(&(name.clone(), d.close.span.start_us));
                    cp.rescan.remove(&(name, d.close.span.start_us));
                    stats.rescans += 1;
                } else {
                    let p = cp.progress.entry(name).or_insert(d.close.span.end_us);
                    *p = (*p).max(d.close.span.end_us);
                    cp.windows_closed += 1;
                    stats.windows_closed += 1;
                    stats.latencies_s.push(d.latency_s);
                    stats.detect_s.push(d.detect_s);
                    closed_since_rescan = true;
                }
                stats.findings_stored += d.stored;
                stats.findings_published += d.published;
                cp.findings_stored = d.findings_total;
                if let Some(b) =
                    writes.attempt("checkpoint", persist(opts, &cp, &dispatched, judge))?
                {
                    checkpoint_bytes = b;
                }
            }
            match polled {
                Some(Ok(m)) => {
                    last_message = Instant::now();
                    stats.messages += 1;
                    stats.read_s = first_message
                        .get_or_insert_with(Instant::now)
                        .elapsed()
                        .as_secs_f64();
                    let (outcome, ts) =
                        ing.accept_timed(m.payload().unwrap_or(&[]), || SourcePosition::Kafka {
                            topic: m.topic().to_string(),
                            partition: m.partition(),
                            offset: m.offset(),
                        });
                    if let (Outcome::Rejected(reject), Some(p)) = (&outcome, &dlq) {
                        send_dead_letter(p, &m, reject);
                    }
                    let tp = format!("{}/{}", m.topic(), m.partition());
                    if let Some(t) = ts {
                        cp.clock.observe(&tp, t);
                        // Duplicates too: after a crash the first events come
                        // back as duplicates of what the lake already holds.
                        handover::earliest(&mut cp.first_event_us, t);
                        if let Some(r) = records.get_mut(&tp) {
                            handover::earliest(&mut r.first_event_us, t);
                        }
                        if !judge {
                            // Checked against the judge's windows once flushed.
                            let hour = t.div_euclid(3_600_000_000);
                            let e = spans
                                .entry(tp.clone())
                                .or_default()
                                .entry(hour)
                                .or_insert((t, t));
                            e.0 = e.0.min(t);
                            e.1 = e.1.max(t);
                        }
                        // A duplicate may be an event flushed just before a
                        // crash, before its re-scan was checkpointed: judging
                        // its windows again is harmless (same lake, same
                        // findings), missing them is not.
                        let seen = if judge {
                            opts.schedule.closed_windows_seeing(&dispatched, t)
                        } else {
                            Vec::new()
                        };
                        if !seen.is_empty() {
                            if outcome == Outcome::Accepted {
                                stats.late_for_closed += 1;
                                LateForClosedWindow {
                                    windows: seen.len(),
                                }
                                .emit();
                            }
                            for c in seen {
                                let name = opts.schedule.groups[c.group].name.clone();
                                cp.rescan.insert((name, c.span.start_us));
                            }
                        }
                    }
                    caught_up.remove(&(m.topic().to_string(), m.partition()));
                    uncommitted.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                    cp.offsets.insert(tp, m.offset() + 1);
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    // The error names only the partition: every subscribed
                    // topic's partition `p` is at its end.
                    for t in &opts.kafka.topics {
                        caught_up.insert((t.clone(), p));
                    }
                }
                Some(Err(e)) if last_error_log.elapsed() > Duration::from_secs(5) => {
                    tracing::warn!(error = %e, "Kafka poll failed; retrying");
                    last_error_log = Instant::now();
                }
                Some(Err(_)) | None => {}
            }

            if last_position.elapsed() >= POSITION_EVERY {
                last_position = Instant::now();
                let assignment = assignment_of(&consumer);
                assigned = !assignment.is_empty();
                lag.positions(&assignment, &cp);
                pending = assignment
                    .iter()
                    .filter(|tp| !caught_up.contains(*tp))
                    .map(|(t, p)| format!("{t}/{p}"))
                    .collect();
                let own_caught_up = assignment.len() - pending.len();
                // Records of owned partitions that only changed in being
                // read to the end (nothing unflushed behind their clocks):
                // written below, with those of a flush.
                if !ing.has_buffered() {
                    records_owed = true;
                }
                if judge {
                    // The other partitions: their clocks hold the watermark
                    // back until read to their end; their late events ask
                    // for re-scans.
                    let mut absorbed_any = false;
                    for tp in all_partitions.iter().filter(|tp| !owned.contains(*tp)) {
                        match handover::load_record(&opts.lake_dir, tp)? {
                            Some(r) => {
                                learn_clock(&mut cp, tp, &r);
                                if !r.caught_up {
                                    pending.push(tp.clone());
                                }
                                absorbed_any |= absorb(opts, &mut cp, &dispatched, tp, &r);
                            }
                            None => pending.push(tp.clone()),
                        }
                    }
                    // Requests carried over in the records of partitions
                    // taken over.
                    for (tp, r) in records.iter_mut() {
                        if absorb(opts, &mut cp, &dispatched, tp, r) {
                            absorbed_any = true;
                            r.prune(cp.absorbed.get(tp).copied().unwrap_or(0));
                        }
                    }
                    if absorbed_any {
                        if let Some(b) =
                            writes.attempt("checkpoint", persist(opts, &cp, &dispatched, judge))?
                        {
                            checkpoint_bytes = b;
                        }
                        closed_since_rescan = true;
                    }
                }
                StreamState {
                    watermark_us: cp.clock.watermark(pending.iter().map(String::as_str)),
                    checkpoint_bytes,
                    rescan_pending: cp.rescan.len(),
                    partitions: assignment.len(),
                    caught_up: own_caught_up,
                }
                .emit();
            }
            let drain = opts
                .kafka
                .exit_when_idle
                .is_some_and(|d| assigned && pending.is_empty() && last_message.elapsed() >= d);
            let wm = if !judge {
                None
            } else if drain {
                Some(i64::MAX)
            } else if assigned {
                cp.clock.watermark(pending.iter().map(String::as_str))
            } else {
                None
            };
            let due: Vec<Close> = match (wm, cp.first_event_us, cp.clock.latest_event()) {
                (Some(wm), Some(first), Some(last)) => {
                    opts.schedule.due(&dispatched, first, last, wm)
                }
                _ => Vec::new(),
            };

            // The watermark has passed these windows' horizons now.
            let passed_at = Instant::now();
            // Make everything read durable before a window reads the lake.
            // A lake that cannot be written pauses the partitions; nothing
            // below commits, records or judges while rows are buffered.
            let mut flushed = false;
            if (ing.over_size()
                || ing.interval_due()
                || ((!due.is_empty() || stop || drain) && ing.has_buffered()))
                && retry.may_try()
            {
                flushed = retry.flush(&mut *ing, &consumer)?.is_some();
            }
            if flushed && !judge && !spans.is_empty() {
                // What was just stored and falls in a window the judge has
                // handed to detection (read after the flush) is asked to be
                // judged again.
                let j = handover::load_judge(&opts.lake_dir)?.unwrap_or_default();
                for (tp, hours) in spans.drain() {
                    let Some(r) = records.get_mut(&tp) else {
                        continue;
                    };
                    for (_, (lo, hi)) in hours {
                        if !opts
                            .schedule
                            .closed_windows_touching(&j.dispatched, lo, hi)
                            .is_empty()
                        {
                            r.request(lo, hi);
                        }
                    }
                }
                for (tp, r) in records.iter_mut() {
                    r.prune(j.absorbed.get(tp).copied().unwrap_or(0));
                }
            }
            if flushed {
                records_owed = true;
                commit_owed = true;
            }
            // Before the commit: the records cover every committed event.
            // (Only the changed ones are written.)
            if records_owed && !ing.has_buffered() {
                let result = write_records(opts, &mut records, &mut written, &cp, &caught_up);
                if writes.attempt("partition records", result)?.is_some() {
                    records_owed = false;
                }
            }
            let commit_now = commit_owed || ((stop || drain) && !uncommitted.is_empty());
            if commit_now && !records_owed && !ing.has_buffered() {
                if let Some(b) =
                    writes.attempt("checkpoint", persist(opts, &cp, &dispatched, judge))?
                {
                    checkpoint_bytes = b;
                    commit_owed = false;
                    let dlq_ok = dlq.as_ref().is_none_or(|p| {
                        rdkafka::producer::Producer::flush(p, Duration::from_secs(5)).is_ok()
                    });
                    if dlq_ok {
                        commit_offsets(&consumer, &mut uncommitted, &mut last_error_log);
                    }
                }
            }
            if !due.is_empty() && !ing.has_buffered() {
                let mut next = dispatched.clone();
                for close in &due {
                    let name = &opts.schedule.groups[close.group].name;
                    let e = next.entry(name.clone()).or_insert(close.span.end_us);
                    *e = (*e).max(close.span.end_us);
                }
                // Others read the windows handed to detection (for late
                // events) before the detection reads the lake; a window
                // is handed over only once that is written.
                if writes
                    .attempt("checkpoint", persist(opts, &cp, &next, judge))?
                    .is_some()
                {
                    dispatched = next;
                    for close in due {
                        send(&jobs, close, false, passed_at)?;
                        jobs_out += 1;
                    }
                }
            }
            // Re-scans follow the regular closes (daily windows: daily) and
            // the end of a bounded run.
            if judge && (closed_since_rescan || drain) && jobs_out == 0 && !ing.has_buffered() {
                closed_since_rescan = false;
                let queued: Vec<(String, i64)> = cp
                    .rescan
                    .iter()
                    .filter(|k| !rescans_out.contains(*k))
                    .cloned()
                    .collect();
                for (name, start) in queued {
                    let Some(g) = opts.schedule.groups.iter().position(|g| g.name == name) else {
                        cp.rescan.remove(&(name, start)); // the pipeline file changed
                        continue;
                    };
                    send(&jobs, opts.schedule.close(g, start), true, passed_at)?;
                    rescans_out.insert((name, start));
                    jobs_out += 1;
                }
            }

            let settled = !ing.has_buffered() && uncommitted.is_empty() && jobs_out == 0;
            if settled && (stop || (drain && (!judge || cp.rescan.is_empty()))) {
                return Ok(());
            }
            if stop
                && stop_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(30)
            {
                tracing::warn!("stopping with work outstanding: offsets not committed or windows not judged are redone at the next start");
                return Ok(());
            }
            if stop && !settled {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })();
    drop(jobs);
    let _ = worker.join();
    lag.stop();
    result?;
    persist(opts, &cp, &dispatched, judge)?;
    stats.counts = ing.totals().since(&before);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

fn send(
    jobs: &mpsc::Sender<Job>,
    close: Close,
    rescan: bool,
    passed_at: Instant,
) -> Result<(), LiveError> {
    jobs.send(Job {
        close,
        rescan,
        passed_at,
    })
    .map_err(|_| LiveError::Runtime(std::io::Error::other("the detection worker stopped")))
}

/// The consumer's current assignment.
fn assignment_of(consumer: &groundtruth_ingest::IngestConsumer) -> Vec<(String, i32)> {
    consumer
        .assignment()
        .map(|a| {
            a.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every partition (`topic/partition`) of `topics`, `None` when the broker
/// does not say.
fn partitions_of(
    consumer: &groundtruth_ingest::IngestConsumer,
    topics: &[String],
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for t in topics {
        let md = consumer
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .ok()?;
        for topic in md.topics() {
            for p in topic.partitions() {
                out.push(format!("{}/{}", topic.name(), p.id()));
            }
        }
    }
    Some(out)
}

/// What partition `tp`'s record says of event time: its latest event in
/// the lake (a clock) and its earliest (where windows start).
fn learn_clock(cp: &mut Checkpoint, tp: &str, r: &PartitionRecord) {
    if let Some(l) = r.latest_us {
        cp.clock.observe(tp, l);
    }
    if let Some(f) = r.first_event_us {
        handover::earliest(&mut cp.first_event_us, f);
    }
}

/// The judge's part of the checkpoint.
fn judge_state(cp: &Checkpoint, dispatched: &Progress) -> JudgeState {
    JudgeState {
        dispatched: dispatched.clone(),
        progress: cp.progress.clone(),
        rescan: cp.rescan.clone(),
        first_event_us: cp.first_event_us,
        absorbed: cp.absorbed.clone(),
    }
}

/// Saves the checkpoint, and the judge's state for the instances sharing
/// the lake while this one is the judge. Returns the checkpoint's size.
fn persist(
    opts: &LiveOptions,
    cp: &Checkpoint,
    dispatched: &Progress,
    judge: bool,
) -> Result<usize, LiveError> {
    if judge {
        handover::save_judge(&opts.lake_dir, &judge_state(cp, dispatched))?;
    }
    cp.save(&opts.state_dir)
}

/// Writes the records of the owned partitions that changed: clocks of what
/// is in the lake, whether read to the end, re-scan requests.
fn write_records(
    opts: &LiveOptions,
    records: &mut BTreeMap<String, PartitionRecord>,
    written: &mut BTreeMap<String, PartitionRecord>,
    cp: &Checkpoint,
    caught_up: &BTreeSet<(String, i32)>,
) -> Result<(), LiveError> {
    for (tp, r) in records.iter_mut() {
        r.latest_us = cp.clock.latest.get(tp).copied().or(r.latest_us);
        r.caught_up = tp
            .rsplit_once('/')
            .and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)))
            .is_some_and(|k| caught_up.contains(&k));
        if written.get(tp) != Some(r) {
            handover::save_record(&opts.lake_dir, tp, r)?;
            written.insert(tp.clone(), r.clone());
        }
    }
    Ok(())
}

/// The judge takes partition `tp`'s new re-scan requests into its queue.
/// True when there were any.
fn absorb(
    opts: &LiveOptions,
    cp: &mut Checkpoint,
    dispatched: &Progress,
    tp: &str,
    r: &PartitionRecord,
) -> bool {
    let done = cp.absorbed.get(tp).copied().unwrap_or(0);
    let mut any = false;
    for span in r.late.values().filter(|s| s.seq > done) {
        for c in opts
            .schedule
            .closed_windows_touching(dispatched, span.lo_us, span.hi_us)
        {
            let name = opts.schedule.groups[c.group].name.clone();
            cp.rescan.insert((name, c.span.start_us));
        }
        any = true;
    }
    if let Some(max) = r.late.values().map(|s| s.seq).max().filter(|&m| m > done) {
        cp.absorbed.insert(tp.to_string(), max);
    }
    any
}

/// Stores a window's findings, publishes the new or changed ones (acked
/// before the window counts as done), logs them. Returns (stored,
/// published).
#[allow(clippy::too_many_arguments)]
fn deliver(
    run: &CloseRun,
    group: &str,
    rescan: bool,
    latency_s: Option<f64>,
    rt: &tokio::runtime::Handle,
    store: &groundtruth_store::ReviewStore,
    publisher: Option<&mut KafkaProducerSink>,
) -> Result<(u64, u64), LiveError> {
    let outcome = rt.block_on(store.upsert_findings(run.close.span.end_us, &run.findings))?;
    let stored: Vec<&Finding> = outcome.stored.iter().map(|&i| &run.findings[i]).collect();
    let mut published = 0;
    if let Some(p) = publisher {
        for f in &stored {
            match p.send_finding(f) {
                Ok(()) => published += 1,
                Err(e) => {
                    tracing::error!(finding_id = %f.finding_id, error = %e, "cannot encode a finding for Kafka; it is in the store")
                }
            }
        }
        while let Err(e) = p.flush(Duration::from_secs(30)) {
            tracing::warn!(error = %e, "findings not yet acknowledged by Kafka; retrying");
        }
    }
    for f in &stored {
        tracing::info!(
            finding_id = %f.finding_id,
            detector = %f.detector,
            accounts = f.accounts.len(),
            score = f.score,
            reason = %f.reason,
            "finding"
        );
    }
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &stored {
        *by.entry(f.detector.as_str()).or_default() += 1;
    }
    WindowClosed {
        group,
        rescan,
        window_start_us: run.close.span.start_us,
        findings: run.findings.len(),
        stored: stored.len(),
        by_detector: by.into_iter().collect(),
        seconds: run.seconds,
        latency_s,
    }
    .emit();
    Ok((stored.len() as u64, published))
}

/// Sets `groundtruth_consumer_lag_messages{partition}` every few seconds
/// from a thread of its own: asking the broker for a partition's high
/// watermark is a round trip the consuming loop must not wait for.
struct LagReporter {
    positions: Positions,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Per `topic/partition`: (topic, partition, next offset to read).
type Positions = Arc<Mutex<BTreeMap<String, (String, i32, i64)>>>;

/// How often the lag gauges are refreshed.
const LAG_EVERY: Duration = Duration::from_secs(5);

impl LagReporter {
    fn start(kafka: &KafkaOptions) -> LagReporter {
        let positions: Positions = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &kafka.brokers);
        for (k, v) in &kafka.extra {
            cfg.set(k, v);
        }
        let client: Option<rdkafka::consumer::BaseConsumer> = cfg.create().ok();
        let thread = client.map(|client| {
            let (positions, stop) = (positions.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now() - LAG_EVERY;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() < LAG_EVERY {
                        continue;
                    }
                    last = Instant::now();
                    let now: Vec<(String, (String, i32, i64))> = positions
                        .lock()
                        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    for (tp, (topic, partition, next)) in now {
                        if let Ok((_, high)) =
                            client.fetch_watermarks(&topic, partition, Duration::from_secs(2))
                        {
                            metrics::gauge!(metric::CONSUMER_LAG.name, "partition" => tp)
                                .set((high - next).max(0) as f64);
                        }
                    }
                }
            })
        });
        LagReporter {
            positions,
            stop,
            thread,
        }
    }

    /// The next offset to read of each assigned partition.
    fn positions(&self, assignment: &[(String, i32)], cp: &Checkpoint) {
        if let Ok(mut p) = self.positions.lock() {
            p.clear();
            for (t, part) in assignment {
                let tp = format!("{t}/{part}");
                let next = cp.offsets.get(&tp).copied().unwrap_or(0);
                p.insert(tp, (t.clone(), *part, next));
            }
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes of the service's state files (checkpoint, partition records,
/// judge file) that may fail for a while (a full disk): a failure is
/// logged, the caller holds back what depends on it (commits, handing
/// windows over), and the write is tried again on a later turn of the loop.
#[derive(Default)]
struct StateWrites {
    failing_since: Option<Instant>,
    log: groundtruth_ingest::LogThrottle,
}

impl StateWrites {
    /// `Some` with the result, `None` after an I/O failure (logged at once,
    /// then at most every 30 s while it goes on); other errors stop the
    /// service.
    fn attempt<T>(
        &mut self,
        what: &'static str,
        result: Result<T, LiveError>,
    ) -> Result<Option<T>, LiveError> {
        match result {
            Ok(v) => {
                if let Some(since) = self.failing_since.take() {
                    tracing::warn!(
                        failing_s = since.elapsed().as_secs_f64(),
                        "the service's state files can be written again"
                    );
                    self.log.clear();
                }
                Ok(Some(v))
            }
            Err(e) if e.is_retryable() => {
                self.failing_since.get_or_insert_with(Instant::now);
                if self.log.due() {
                    tracing::error!(
                        error = %e,
                        what,
                        "cannot write the service's state files: no offset committed and no window handed to detection until they can be written; retrying"
                    );
                    metrics::counter!(metric::LIVE_STATE_WRITE_FAILURES.name).increment(1);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
