//! The live service as an [`Operator`] of the Kafka loop: [`LiveState`]
//! holds what the service knows between turns, and its methods are the
//! steps of a turn.

use groundtruth_telemetry::InternalEvent;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use groundtruth_ingest::Outcome;
use groundtruth_kafka::{assignment_of, partitions_of, Cx, LagReporter, Operator, Position, Turn};
use groundtruth_window::{Close, Progress};

use crate::checkpoint::Checkpoint;
use crate::error::LiveError;
use crate::handover::{self, JudgeState, PartitionRecord};
use crate::options::{LiveOptions, LiveStats};
use crate::telemetry::{LateForClosedWindow, StreamState};
use crate::worker::{Done, Worker};
use crate::writes::StateWrites;

/// How often the assignment is read, the other partitions' records looked
/// at and the state gauges set.
const POSITION_EVERY: Duration = Duration::from_millis(100);

/// Per partition, per hour of event time: the earliest and latest event
/// read since the last flush.
type Spans = HashMap<String, BTreeMap<i64, (i64, i64)>>;

/// What the live service knows between turns of the loop.
pub(crate) struct LiveState<'o> {
    opts: &'o LiveOptions,
    /// Offsets, partition clocks, windows done, re-scans queued: what a
    /// restart resumes from.
    cp: Checkpoint,
    pub stats: LiveStats,
    worker: Worker,
    lag: LagReporter,

    // Event time.
    last_message: Instant,
    last_position: Instant,
    /// Partitions whose clocks hold the watermark back (not read to the end).
    pending: Vec<String>,
    /// Partitions read to their end (librdkafka's partition EOF) and not
    /// given a message since: they do not hold event time back.
    caught_up: BTreeSet<(String, i32)>,
    assigned: bool,
    checkpoint_bytes: usize,

    // Windows. Per group, the end of the last window closed or handed to
    // the worker: what is due next and what counts as late. The
    // checkpoint's progress only records a window once its findings are
    // stored.
    dispatched: Progress,
    rescans_out: BTreeSet<(String, i64)>,
    closed_since_rescan: bool,
    /// This turn: the windows whose horizon the watermark passed, and when.
    due: Vec<Close>,
    passed_at: Instant,
    /// This turn: a bounded run has read everything (see
    /// `KafkaOptions::exit_when_idle`): every window holding data closes.
    drain: bool,

    // Scale-out (see `handover`): the partitions owned and their records,
    // every partition of the topics, and per owned partition the hours of
    // event time read since the last flush (checked against the judge's
    // windows after it).
    owned: BTreeSet<String>,
    all_partitions: Vec<String>,
    judge_tp: String,
    judge: bool,
    records: BTreeMap<String, PartitionRecord>,
    written: BTreeMap<String, PartitionRecord>,
    spans: Spans,

    // The state files (checkpoint, partition records, judge file) that
    // could not be written yet: nothing is committed and no window handed
    // over until they are.
    writes: StateWrites,
    records_owed: bool,
    commit_owed: bool,
}

impl<'o> LiveState<'o> {
    pub fn new(opts: &'o LiveOptions, cp: Checkpoint, worker: Worker, lag: LagReporter) -> Self {
        let judge_tp = format!(
            "{}/0",
            opts.kafka.topics.first().map(String::as_str).unwrap_or("")
        );
        LiveState {
            opts,
            dispatched: cp.progress.clone(),
            cp,
            stats: LiveStats::default(),
            worker,
            lag,
            last_message: Instant::now(),
            last_position: Instant::now() - POSITION_EVERY,
            pending: Vec::new(),
            caught_up: BTreeSet::new(),
            assigned: false,
            checkpoint_bytes: 0,
            rescans_out: BTreeSet::new(),
            closed_since_rescan: false,
            due: Vec::new(),
            passed_at: Instant::now(),
            drain: false,
            owned: BTreeSet::new(),
            all_partitions: Vec::new(),
            judge_tp,
            judge: false,
            records: BTreeMap::new(),
            written: BTreeMap::new(),
            spans: Spans::new(),
            writes: StateWrites::default(),
            records_owed: false,
            commit_owed: false,
        }
    }

    /// Stops the worker and the lag reporter; what the run did.
    pub fn finish(self) -> LiveStats {
        self.worker.stop();
        self.lag.stop();
        self.stats
    }

    /// Saves the checkpoint, and the judge's state for the instances sharing
    /// the lake while this one is the judge, with `dispatched` as the
    /// windows handed over. Returns the checkpoint's size.
    fn persist_with(&self, dispatched: &Progress) -> Result<usize, LiveError> {
        if self.judge {
            handover::save_judge(&self.opts.lake_dir, &judge_state(&self.cp, dispatched))?;
        }
        self.cp.save(&self.opts.state_dir)
    }

    /// Saves the checkpoint (and judge file); a write that fails for a
    /// while is retried later ([`StateWrites`]). True when it was written.
    fn try_persist(&mut self) -> Result<bool, LiveError> {
        let result = self.persist_with(&self.dispatched);
        match self.writes.attempt("checkpoint", result)? {
            Some(bytes) => {
                self.checkpoint_bytes = bytes;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// After a rebalance: the partitions gained are taken over from their
    /// records (their clocks, their earliest event), those lost forgotten,
    /// and the judge's role taken with partition 0.
    fn take_over_assignment(&mut self, cx: &Cx<'_>) -> Result<(), LiveError> {
        self.caught_up.clear();
        self.spans.clear();
        let now: BTreeSet<String> = assignment_of(cx.consumer)
            .iter()
            .map(|(t, p)| format!("{t}/{p}"))
            .collect();
        if let Some(all) = partitions_of(cx.consumer, &self.opts.kafka.topics) {
            self.all_partitions = all;
        }
        for tp in now.difference(&self.owned) {
            let rec = handover::load_record(&self.opts.lake_dir, tp)?.unwrap_or_default();
            learn_clock(&mut self.cp, tp, &rec);
            self.written.insert(tp.clone(), rec.clone());
            self.records.insert(tp.clone(), rec);
        }
        self.records.retain(|tp, _| now.contains(tp));
        self.written.retain(|tp, _| now.contains(tp));
        let was_judge = self.judge;
        self.judge = now.contains(&self.judge_tp);
        if self.judge && !was_judge {
            self.become_judge()?;
        }
        tracing::info!(
            owned = now.len(),
            of = self.all_partitions.len(),
            judge = self.judge,
            partitions = ?now,
            "partitions owned"
        );
        self.owned = now;
        self.last_position = Instant::now() - POSITION_EVERY;
        Ok(())
    }

    /// Takes the judge's role: what this instance knew merged with what the
    /// last judge left in the lake.
    fn become_judge(&mut self) -> Result<(), LiveError> {
        let mut mine = judge_state(&self.cp, &self.dispatched);
        if let Some(shared) = handover::load_judge(&self.opts.lake_dir)? {
            mine.merge(&shared);
        }
        self.dispatched = mine.dispatched.clone();
        self.cp.progress = mine.progress;
        self.cp.rescan = mine.rescan;
        self.cp.first_event_us = mine.first_event_us;
        self.cp.absorbed = mine.absorbed;
        self.closed_since_rescan = true;
        Ok(())
    }

    /// Takes in the windows the worker finished: progress, counts, re-scans
    /// done; saves the checkpoint.
    fn collect_finished_windows(&mut self) -> Result<(), LiveError> {
        while let Some(d) = self.worker.finished()? {
            self.record_done(d);
            self.try_persist()?;
        }
        Ok(())
    }

    fn record_done(&mut self, d: Done) {
        let name = self.opts.schedule.groups[d.close.group].name.clone();
        if d.rescan {
            self.rescans_out
                .remove(&(name.clone(), d.close.span.start_us));
            self.cp.rescan.remove(&(name, d.close.span.start_us));
            self.stats.rescans += 1;
        } else {
            let p = self.cp.progress.entry(name).or_insert(d.close.span.end_us);
            *p = (*p).max(d.close.span.end_us);
            self.cp.windows_closed += 1;
            self.stats.windows_closed += 1;
            self.stats.latencies_s.push(d.latency_s);
            self.stats.detect_s.push(d.detect_s);
            self.closed_since_rescan = true;
        }
        self.stats.findings_stored += d.stored;
        self.stats.findings_published += d.published;
        self.cp.findings_stored = d.findings_total;
    }

    /// An event read at `at` with event time `t`: the partition's clock,
    /// the earliest event, the hours to check against the judge's windows
    /// (another instance), or the closed windows to judge again (the judge).
    fn observe_event(&mut self, tp: &str, t: i64, outcome: &Outcome) {
        self.cp.clock.observe(tp, t);
        // Duplicates too: after a crash the first events come back as
        // duplicates of what the lake already holds.
        handover::earliest(&mut self.cp.first_event_us, t);
        if let Some(r) = self.records.get_mut(tp) {
            handover::earliest(&mut r.first_event_us, t);
        }
        if !self.judge {
            // Checked against the judge's windows once flushed.
            let hour = t.div_euclid(3_600_000_000);
            let e = self
                .spans
                .entry(tp.to_string())
                .or_default()
                .entry(hour)
                .or_insert((t, t));
            e.0 = e.0.min(t);
            e.1 = e.1.max(t);
            return;
        }
        // A duplicate may be an event flushed just before a crash, before
        // its re-scan was checkpointed: judging its windows again is
        // harmless (same lake, same findings), missing them is not.
        let seen = self
            .opts
            .schedule
            .closed_windows_seeing(&self.dispatched, t);
        if seen.is_empty() {
            return;
        }
        if *outcome == Outcome::Accepted {
            self.stats.late_for_closed += 1;
            LateForClosedWindow {
                windows: seen.len(),
            }
            .emit();
        }
        for c in seen {
            let name = self.opts.schedule.groups[c.group].name.clone();
            self.cp.rescan.insert((name, c.span.start_us));
        }
    }

    /// Reads the assignment, sets the lag positions, finds the partitions
    /// that hold event time back; the judge also reads the other
    /// partitions' records (their clocks, their re-scan requests). Sets the
    /// state gauges.
    fn refresh_positions(&mut self, cx: &Cx<'_>) -> Result<(), LiveError> {
        self.last_position = Instant::now();
        let assignment = assignment_of(cx.consumer);
        self.assigned = !assignment.is_empty();
        self.lag.positions(assignment.iter().map(|(t, p)| {
            let next = self.cp.offsets.get(&format!("{t}/{p}")).copied();
            (t.clone(), *p, next.unwrap_or(0))
        }));
        self.pending = assignment
            .iter()
            .filter(|tp| !self.caught_up.contains(*tp))
            .map(|(t, p)| format!("{t}/{p}"))
            .collect();
        let own_caught_up = assignment.len() - self.pending.len();
        // Records of owned partitions that only changed in being read to
        // the end (nothing unflushed behind their clocks): written with
        // those of a flush.
        if !cx.ing.has_buffered() {
            self.records_owed = true;
        }
        if self.judge && self.absorb_other_partitions()? {
            self.try_persist()?;
            self.closed_since_rescan = true;
        }
        StreamState {
            watermark_us: self.watermark(),
            checkpoint_bytes: self.checkpoint_bytes,
            rescan_pending: self.cp.rescan.len(),
            partitions: assignment.len(),
            caught_up: own_caught_up,
        }
        .emit();
        Ok(())
    }

    /// The judge reads the partitions it does not own: their clocks hold
    /// the watermark back until read to their end; their late events ask
    /// for re-scans, as do the requests carried over in the records of
    /// partitions taken over. True when any request was taken in.
    fn absorb_other_partitions(&mut self) -> Result<bool, LiveError> {
        let mut absorbed_any = false;
        let others: Vec<String> = self
            .all_partitions
            .iter()
            .filter(|tp| !self.owned.contains(*tp))
            .cloned()
            .collect();
        for tp in others {
            match handover::load_record(&self.opts.lake_dir, &tp)? {
                Some(r) => {
                    learn_clock(&mut self.cp, &tp, &r);
                    if !r.caught_up {
                        self.pending.push(tp.clone());
                    }
                    absorbed_any |= absorb(self.opts, &mut self.cp, &self.dispatched, &tp, &r);
                }
                None => self.pending.push(tp),
            }
        }
        for (tp, r) in self.records.iter_mut() {
            if absorb(self.opts, &mut self.cp, &self.dispatched, tp, r) {
                absorbed_any = true;
                r.prune(self.cp.absorbed.get(tp).copied().unwrap_or(0));
            }
        }
        Ok(absorbed_any)
    }

    /// Event time: the partition clocks' watermark over the partitions not
    /// read to their end.
    fn watermark(&self) -> Option<i64> {
        self.cp
            .clock
            .watermark(self.pending.iter().map(String::as_str))
    }

    /// The windows whose horizon the watermark has passed (only the judge
    /// closes windows; a draining run closes every window holding data).
    fn due_windows(&self) -> Vec<Close> {
        let wm = if !self.judge {
            None
        } else if self.drain {
            Some(i64::MAX)
        } else if self.assigned {
            self.watermark()
        } else {
            None
        };
        match (wm, self.cp.first_event_us, self.cp.clock.latest_event()) {
            (Some(wm), Some(first), Some(last)) => {
                self.opts.schedule.due(&self.dispatched, first, last, wm)
            }
            _ => Vec::new(),
        }
    }

    /// After a flush on an instance that is not the judge: what was just
    /// stored and falls in a window the judge has handed to detection (read
    /// after the flush) is asked to be judged again.
    fn request_rescans_of_flushed(&mut self) -> Result<(), LiveError> {
        let j = handover::load_judge(&self.opts.lake_dir)?.unwrap_or_default();
        for (tp, hours) in self.spans.drain() {
            let Some(r) = self.records.get_mut(&tp) else {
                continue;
            };
            for (_, (lo, hi)) in hours {
                if !self
                    .opts
                    .schedule
                    .closed_windows_touching(&j.dispatched, lo, hi)
                    .is_empty()
                {
                    r.request(lo, hi);
                }
            }
        }
        for (tp, r) in self.records.iter_mut() {
            r.prune(j.absorbed.get(tp).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// Writes the records of the owned partitions that changed: clocks of
    /// what is in the lake, whether read to the end, re-scan requests.
    fn write_records(&mut self) -> Result<(), LiveError> {
        for (tp, r) in self.records.iter_mut() {
            r.latest_us = self.cp.clock.latest.get(tp).copied().or(r.latest_us);
            r.caught_up = tp
                .rsplit_once('/')
                .and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)))
                .is_some_and(|k| self.caught_up.contains(&k));
            if self.written.get(tp) != Some(r) {
                handover::save_record(&self.opts.lake_dir, tp, r)?;
                self.written.insert(tp.clone(), r.clone());
            }
        }
        Ok(())
    }

    /// Hands the due windows to detection. Others read the windows handed
    /// over (for late events) before the detection reads the lake, so a
    /// window is handed over only once the checkpoint saying so is written.
    fn hand_over_due_windows(&mut self) -> Result<(), LiveError> {
        let mut next = self.dispatched.clone();
        for close in &self.due {
            let name = &self.opts.schedule.groups[close.group].name;
            let e = next.entry(name.clone()).or_insert(close.span.end_us);
            *e = (*e).max(close.span.end_us);
        }
        let written = self.persist_with(&next);
        if self.writes.attempt("checkpoint", written)?.is_some() {
            self.dispatched = next;
            for close in std::mem::take(&mut self.due) {
                self.worker.send(close, false, self.passed_at)?;
            }
        }
        Ok(())
    }

    /// Hands the queued re-scans to detection (after the regular closes:
    /// daily windows, daily; and when a bounded run drains).
    fn queue_rescans(&mut self) -> Result<(), LiveError> {
        self.closed_since_rescan = false;
        let queued: Vec<(String, i64)> = self
            .cp
            .rescan
            .iter()
            .filter(|k| !self.rescans_out.contains(*k))
            .cloned()
            .collect();
        for (name, start) in queued {
            let Some(g) = self
                .opts
                .schedule
                .groups
                .iter()
                .position(|g| g.name == name)
            else {
                self.cp.rescan.remove(&(name, start)); // the pipeline file changed
                continue;
            };
            self.worker
                .send(self.opts.schedule.close(g, start), true, self.passed_at)?;
            self.rescans_out.insert((name, start));
        }
        Ok(())
    }
}

impl Operator for LiveState<'_> {
    type Error = LiveError;

    fn poll_timeout(&self) -> Duration {
        Duration::from_millis(if self.worker.outstanding() > 0 {
            20
        } else {
            100
        })
    }

    fn on_rebalance(&mut self, cx: &mut Cx<'_>) -> Result<(), LiveError> {
        self.take_over_assignment(cx)
    }

    fn on_tick(&mut self, _cx: &mut Cx<'_>) -> Result<(), LiveError> {
        self.collect_finished_windows()
    }

    fn on_message(
        &mut self,
        _cx: &mut Cx<'_>,
        at: Position<'_>,
        outcome: &Outcome,
        event_us: Option<i64>,
    ) -> Result<(), LiveError> {
        self.last_message = Instant::now();
        let tp = format!("{}/{}", at.topic, at.partition);
        if let Some(t) = event_us {
            self.observe_event(&tp, t, outcome);
        }
        self.caught_up.remove(&(at.topic.to_string(), at.partition));
        self.cp.offsets.insert(tp, at.offset + 1);
        Ok(())
    }

    fn on_partition_eof(&mut self, partition: i32) {
        for t in &self.opts.kafka.topics {
            self.caught_up.insert((t.clone(), partition));
        }
    }

    fn plan(&mut self, cx: &mut Cx<'_>) -> Result<Turn, LiveError> {
        if self.last_position.elapsed() >= POSITION_EVERY {
            self.refresh_positions(cx)?;
        }
        self.drain = self.opts.kafka.exit_when_idle.is_some_and(|d| {
            self.assigned && self.pending.is_empty() && self.last_message.elapsed() >= d
        });
        self.due = self.due_windows();
        // The watermark has passed these windows' horizons now.
        self.passed_at = Instant::now();
        Ok(Turn {
            // Make everything read durable before a window reads the lake.
            flush: !self.due.is_empty() || self.drain,
            finished: self.drain && (!self.judge || self.cp.rescan.is_empty()),
        })
    }

    fn on_flush(&mut self, cx: &mut Cx<'_>, flushed: bool) -> Result<(), LiveError> {
        if flushed && !self.judge && !self.spans.is_empty() {
            self.request_rescans_of_flushed()?;
        }
        if flushed {
            self.records_owed = true;
            self.commit_owed = true;
        }
        // Before the commit: the records cover every committed event.
        if self.records_owed && !cx.ing.has_buffered() {
            let result = self.write_records();
            if self.writes.attempt("partition records", result)?.is_some() {
                self.records_owed = false;
            }
        }
        Ok(())
    }

    fn commit_due(&self, cx: &Cx<'_>, _flushed: bool) -> bool {
        self.commit_owed || ((cx.stopping || self.drain) && !cx.uncommitted.is_empty())
    }

    /// The partition records and the checkpoint (offsets, clocks) are
    /// written before the offsets are committed.
    fn before_commit(&mut self, _cx: &mut Cx<'_>) -> Result<bool, LiveError> {
        if self.records_owed || !self.try_persist()? {
            return Ok(false);
        }
        self.commit_owed = false;
        Ok(true)
    }

    fn on_turn_end(&mut self, cx: &mut Cx<'_>, _turn: &Turn) -> Result<(), LiveError> {
        let buffered = cx.ing.has_buffered();
        if !self.due.is_empty() && !buffered {
            self.hand_over_due_windows()?;
        }
        if self.judge
            && (self.closed_since_rescan || self.drain)
            && self.worker.outstanding() == 0
            && !buffered
        {
            self.queue_rescans()?;
        }
        Ok(())
    }

    fn is_settled(&self) -> bool {
        self.worker.outstanding() == 0
    }

    fn outstanding(&self) -> Option<String> {
        let n = self.worker.outstanding();
        (n > 0).then(|| format!("{n} windows at detection, judged again at the next start"))
    }

    fn on_close(&mut self, _cx: &mut Cx<'_>) -> Result<(), LiveError> {
        self.persist_with(&self.dispatched)?;
        Ok(())
    }
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
