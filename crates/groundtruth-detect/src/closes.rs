//! Detection in event time: the detectors judge *windows* (see
//! [`groundtruth_window::Schedule`]), and a window's findings depend only on
//! the events of its context. The live service runs a close when the
//! watermark passes its horizon; `groundtruth detect` runs every close of a
//! file in the same order; both therefore give the same findings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use groundtruth_event::{date32_to_string, local_date, DayZone};
use groundtruth_finding::{sort_findings, Finding};
use groundtruth_lake::open_range_session;
use groundtruth_window::{Close, Progress, Schedule};

use crate::error::DetectError;
use crate::{behaviour, register_views, scope, tracks};

/// What one close produced.
#[derive(Debug, Clone)]
pub struct CloseRun {
    pub close: Close,
    /// Findings whose evidence ends in the window, in canonical order.
    pub findings: Vec<Finding>,
    /// Seconds per detector of the group (SQL included).
    pub detector_s: Vec<(String, f64)>,
    pub seconds: f64,
    /// The window had no events: nothing was run.
    pub empty: bool,
    /// `non_human_track`'s judgement of every patrol that ends in the
    /// window, flagged or not (for evaluation).
    pub patrols: Vec<(groundtruth_track::Patrol, groundtruth_track::Assessment)>,
}

/// The local dates (`YYYY-MM-DD`, lake partitions) that `[from, to)` touches.
pub fn dates_between(from_us: i64, to_us: i64, zone: DayZone) -> Vec<String> {
    let first = local_date(from_us, zone);
    let last = local_date(to_us.saturating_sub(1), zone);
    (first..=last).map(date32_to_string).collect()
}

/// Event time (epoch µs) of an RFC 3339 string.
fn micros(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Judges one window: the group's detectors over the events of
/// `[close.from_us, close.horizon_us)` in the lake at `lake`, keeping the
/// findings whose `window_end` lies in the window.
pub async fn run_close(
    lake: &Path,
    schedule: &Schedule,
    close: &Close,
    zone: DayZone,
) -> Result<CloseRun, DetectError> {
    let started = Instant::now();
    let group = &schedule.groups[close.group];
    let mut run = CloseRun {
        close: close.clone(),
        findings: Vec::new(),
        detector_s: Vec::new(),
        seconds: 0.0,
        empty: true,
        patrols: Vec::new(),
    };
    // No partition for the window's own days: nothing can end in it.
    let own = dates_between(close.span.start_us, close.span.end_us, zone);
    if !own.iter().any(|d| lake.join("events").join(d).is_dir()) {
        return Ok(run);
    }
    let dates = dates_between(close.from_us, close.horizon_us, zone);
    let Some(ctx) = open_range_session(lake, &dates, close.from_us, close.horizon_us).await? else {
        return Ok(run);
    };
    run.empty = false;
    register_views(&ctx).await?;
    let wanted = |d: &str| group.detectors.iter().any(|g| g == d);
    let mut findings = Vec::new();
    if wanted(groundtruth_track::DETECTOR) {
        let t = Instant::now();
        let patrols = tracks::load_patrols(&ctx).await?;
        let (found, judged) = judge_tracks(patrols, close.span);
        findings.extend(found);
        run.patrols = judged;
        run.detector_s.push((
            groundtruth_track::DETECTOR.to_string(),
            t.elapsed().as_secs_f64(),
        ));
    }
    if groundtruth_behaviour::DETECTORS.iter().any(|d| wanted(d)) {
        let t = Instant::now();
        let input = behaviour::load_input_for(&ctx, &wanted).await?;
        let sql_s = t.elapsed().as_secs_f64();
        let runs = groundtruth_behaviour::detect_only(&input, &wanted);
        // The SQL is shared: each detector is charged an equal part.
        let share = sql_s / runs.len().max(1) as f64;
        for r in runs {
            run.detector_s
                .push((r.detector.to_string(), r.seconds + share));
            findings.extend(r.findings);
        }
    }
    findings.retain(|f| {
        micros(&f.window_end).is_some_and(|t| close.span.start_us <= t && t < close.span.end_us)
    });
    scope::annotate(&ctx, &mut findings).await?;
    sort_findings(&mut findings);
    run.findings = findings;
    run.seconds = started.elapsed().as_secs_f64();
    tracing::debug!(
        group = %group.name,
        window_start = %groundtruth_finding::rfc3339_ms(close.span.start_us / 1000),
        findings = run.findings.len(),
        ms = (run.seconds * 1000.0) as u64,
        detectors_ms = %run
            .detector_s
            .iter()
            .map(|(d, s)| format!("{d}={}", (s * 1000.0) as u64))
            .collect::<Vec<_>>()
            .join(","),
        "window judged"
    );
    Ok(run)
}

/// Judges `patrols` (a window's context) with `non_human_track`: only
/// those ending in `span` are judged (their findings are the window's),
/// the rest of the week is their context (replays are searched among all).
/// Returns the findings and the judged patrols with their assessments.
fn judge_tracks(
    patrols: Vec<groundtruth_track::Patrol>,
    span: groundtruth_window::Span,
) -> (
    Vec<Finding>,
    Vec<(groundtruth_track::Patrol, groundtruth_track::Assessment)>,
) {
    let inside: Vec<bool> = patrols
        .iter()
        .map(|p| {
            p.fixes.last().is_some_and(|f| {
                let t = f.t_ms * 1000;
                span.start_us <= t && t < span.end_us
            })
        })
        .collect();
    let report = groundtruth_track::detect_of(&patrols, |i| inside[i]);
    let judged = patrols
        .into_iter()
        .zip(report.assessments)
        .zip(inside)
        .filter_map(|(pa, inside)| inside.then_some(pa))
        .collect();
    (report.findings, judged)
}

/// Findings upserted by `finding_id`: a later close's version of a finding
/// replaces an earlier one (the evidence grew), an earlier close never
/// replaces a later one (a re-scan of an old window).
#[derive(Debug, Default, Clone)]
pub struct FindingSet {
    by_id: BTreeMap<String, (i64, Finding)>,
}

impl FindingSet {
    /// Adds a close's finding; true when it was new or replaced one.
    pub fn upsert(&mut self, close_end_us: i64, f: Finding) -> bool {
        match self.by_id.get(&f.finding_id) {
            Some((end, _)) if *end > close_end_us => false,
            _ => {
                self.by_id.insert(f.finding_id.clone(), (close_end_us, f));
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Each finding with the end of the close that produced its version
    /// (what a store upserts by).
    pub fn versioned(&self) -> Vec<(i64, Finding)> {
        self.by_id.values().cloned().collect()
    }

    /// The findings in canonical order.
    pub fn into_findings(self) -> Vec<Finding> {
        let mut v: Vec<Finding> = self.by_id.into_values().map(|(_, f)| f).collect();
        sort_findings(&mut v);
        v
    }
}

/// Every close of a finished input (a file), in horizon order, as the
/// live service would run them once the stream ended.
pub async fn run_all_closes(
    lake: &Path,
    schedule: &Schedule,
    zone: DayZone,
) -> Result<(FindingSet, Vec<CloseRun>), DetectError> {
    let mut set = FindingSet::default();
    let mut runs = Vec::new();
    let Some((first, last)) = event_span(lake).await? else {
        return Ok((set, runs));
    };
    for close in schedule.due(&Progress::new(), first, last, i64::MAX) {
        let run = run_close(lake, schedule, &close, zone).await?;
        for f in &run.findings {
            set.upsert(close.span.end_us, f.clone());
        }
        runs.push(run);
    }
    Ok((set, runs))
}

/// Earliest and latest event time in the lake (µs), if it has events.
pub async fn event_span(lake: &Path) -> Result<Option<(i64, i64)>, DetectError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let ctx = groundtruth_lake::open_session(lake).await?;
    let q = |source| DetectError::Query {
        what: "the event time span",
        source,
    };
    let batches = ctx
        .sql("SELECT min(CAST(ts AS BIGINT)), max(CAST(ts AS BIGINT)) FROM events")
        .await
        .map_err(q)?
        .collect()
        .await
        .map_err(q)?;
    let Some(b) = batches.into_iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let (min, max) = (
        b.column(0).as_primitive::<Int64Type>(),
        b.column(1).as_primitive::<Int64Type>(),
    );
    if min.is_null(0) || max.is_null(0) {
        return Ok(None);
    }
    Ok(Some((min.value(0), max.value(0))))
}
