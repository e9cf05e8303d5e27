//! Detection in event time: the detectors judge *windows* (see
//! [`groundtruth_window::Schedule`]), and a window's findings depend only on
//! the events of its context. The live service runs a close when the
//! watermark passes its horizon; `groundtruth detect` runs every close of a
//! file in the same order; both therefore give the same findings.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use groundtruth_event::{date32_to_string, local_date, DayZone};
use groundtruth_finding::calibration::Calibration;
use groundtruth_finding::{sort_findings, Finding};
use groundtruth_sql::open_range_session;
use groundtruth_window::{Close, Progress, Schedule};

use crate::error::DetectError;
use crate::{behaviour, scope, tracks};

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

/// The events a window may hold in memory by default (about 0.4 KB each in
/// Arrow; see [`CloseCache::with_memory_rows`]).
pub const DEFAULT_MEMORY_ROWS: usize = 2_000_000;

/// What a series of closes keeps from one window to the next, so that a
/// week of context shared by seven daily windows is not worked out seven
/// times. Using it never changes a close's findings, only its cost.
///
/// * **The window's events in memory.** A window's detectors run about ten
///   queries over its context; when the context holds at most
///   `memory_rows` events they are decoded from Parquet once, into Arrow
///   batches that every query of that close reads (above that, each query
///   scans the files, as a cache of 0 does).
/// * **Prepared patrols.** `non_human_track` prepares every patrol of the
///   week (points, features, rules) and only then compares them (replays,
///   travel modes). A patrol whose fixes are unchanged since the previous
///   close is not prepared again; patrols the latest close did not see are
///   dropped, so the cache holds at most one window's patrols.
///
/// `detect.close_cache = false` turns both off (to compare timings with
/// and without it).
#[derive(Debug)]
pub struct CloseCache {
    memory_rows: usize,
    reuse_patrols: bool,
    patrols: Mutex<PatrolCache>,
}

#[derive(Debug, Default)]
struct PatrolCache {
    /// Closes that looked patrols up so far.
    run: u64,
    entries: HashMap<(String, String, String), CachedPatrol>,
    stats: CacheStats,
}

/// What the patrol cache did so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Patrols prepared (not in the cache, or their fixes changed).
    pub prepared: u64,
    /// Patrols taken from the cache.
    pub reused: u64,
    /// Patrols the cache holds now.
    pub held: usize,
}

#[derive(Debug)]
struct CachedPatrol {
    patrol: groundtruth_track::Patrol,
    prepared: Arc<groundtruth_track::Prepared>,
    used: u64,
}

impl Default for CloseCache {
    fn default() -> Self {
        CloseCache::with_memory_rows(DEFAULT_MEMORY_ROWS)
    }
}

impl CloseCache {
    /// A cache holding a window's events in memory when there are at most
    /// `memory_rows` of them (0: never).
    pub fn with_memory_rows(memory_rows: usize) -> Self {
        CloseCache::new(memory_rows, true)
    }

    /// A cache as [`CloseCache::with_memory_rows`] when `on`; otherwise one
    /// that keeps nothing (every close reads the files and prepares every
    /// patrol), to compare timings.
    pub fn new(memory_rows: usize, on: bool) -> Self {
        CloseCache {
            memory_rows: if on { memory_rows } else { 0 },
            reuse_patrols: on,
            patrols: Mutex::default(),
        }
    }

    /// What the patrol cache did so far (tests, telemetry).
    pub fn stats(&self) -> CacheStats {
        let cache = self.patrols.lock().unwrap_or_else(PoisonError::into_inner);
        CacheStats {
            held: cache.entries.len(),
            ..cache.stats
        }
    }

    /// Each patrol prepared, from the cache when its fixes are the ones
    /// prepared before; the patrols not in `patrols` leave the cache.
    fn prepare(
        &self,
        patrols: &[groundtruth_track::Patrol],
    ) -> Vec<Arc<groundtruth_track::Prepared>> {
        if !self.reuse_patrols {
            return patrols
                .iter()
                .map(|p| Arc::new(groundtruth_track::prepare(p)))
                .collect();
        }
        let mut guard = self.patrols.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = &mut *guard;
        cache.run += 1;
        let run = cache.run;
        let out = patrols
            .iter()
            .map(|p| {
                let key = (p.app_id.clone(), p.account_id.clone(), p.patrol_id.clone());
                match cache.entries.get_mut(&key) {
                    Some(e) if e.patrol == *p => {
                        e.used = run;
                        cache.stats.reused += 1;
                        Arc::clone(&e.prepared)
                    }
                    _ => {
                        cache.stats.prepared += 1;
                        let prepared = Arc::new(groundtruth_track::prepare(p));
                        cache.entries.insert(
                            key,
                            CachedPatrol {
                                patrol: p.clone(),
                                prepared: Arc::clone(&prepared),
                                used: run,
                            },
                        );
                        prepared
                    }
                }
            })
            .collect();
        cache.entries.retain(|_, e| e.used == run);
        out
    }
}

/// Replaces the session's `events` (the lake's files, filtered to the
/// window's span) with the same rows decoded once into memory, when the
/// files hold at most `max_rows` events. Returns the rows held, if it did.
async fn events_in_memory(
    ctx: &SessionContext,
    max_rows: usize,
) -> Result<Option<usize>, DetectError> {
    let q = |source| DetectError::Query {
        what: "the window's events (into memory)",
        source,
    };
    if max_rows == 0 {
        return Ok(None);
    }
    // Rows in the partitions' files (Parquet footers, nothing decoded): the
    // span filter can only keep fewer.
    let in_files = ctx
        .table("lake_events")
        .await
        .map_err(q)?
        .count()
        .await
        .map_err(q)?;
    if in_files > max_rows {
        return Ok(None);
    }
    let events = ctx.table("events").await.map_err(q)?;
    let schema = Arc::new(events.schema().as_arrow().clone());
    let partitions = events.collect_partitioned().await.map_err(q)?;
    let rows = partitions.iter().flatten().map(|b| b.num_rows()).sum();
    let table = MemTable::try_new(schema, partitions).map_err(q)?;
    ctx.deregister_table("events").map_err(q)?;
    ctx.register_table("events", Arc::new(table)).map_err(q)?;
    Ok(Some(rows))
}

/// Judges one window: the group's detectors over the events of
/// `[close.from_us, close.horizon_us)` in the lake at `lake`, keeping the
/// findings whose `window_end` lies in the window, their scores calibrated
/// by `calibration`. `cache` carries work from one close to the next (it
/// never changes the findings).
pub async fn run_close(
    lake: &Path,
    schedule: &Schedule,
    close: &Close,
    zone: DayZone,
    calibration: &Calibration,
    cache: &CloseCache,
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
    let in_memory = events_in_memory(&ctx, cache.memory_rows).await?;
    groundtruth_sql::register_event_views(&ctx).await?;
    let wanted = |d: &str| group.detectors.iter().any(|g| g == d);
    let mut findings = Vec::new();
    if wanted(groundtruth_track::DETECTOR) {
        let t = Instant::now();
        let patrols = tracks::load_patrols(&ctx).await?;
        let prepared = cache.prepare(&patrols);
        let (found, judged) = judge_tracks(patrols, &prepared, close.span);
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
    for f in &mut findings {
        calibration.apply(f);
    }
    scope::annotate(&ctx, &mut findings).await?;
    sort_findings(&mut findings);
    run.findings = findings;
    run.seconds = started.elapsed().as_secs_f64();
    tracing::debug!(
        group = %group.name,
        window_start = %groundtruth_finding::rfc3339_ms(close.span.start_us / 1000),
        findings = run.findings.len(),
        events_in_memory = in_memory.unwrap_or(0),
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
    prepared: &[Arc<groundtruth_track::Prepared>],
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
    let prepared: Vec<&groundtruth_track::Prepared> = prepared.iter().map(Arc::as_ref).collect();
    let report = groundtruth_track::detect_prepared(&patrols, &prepared, |i| inside[i]);
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
    calibration: &Calibration,
    cache: &CloseCache,
) -> Result<(FindingSet, Vec<CloseRun>), DetectError> {
    let mut set = FindingSet::default();
    let mut runs = Vec::new();
    let Some((first, last)) = event_span(lake).await? else {
        return Ok((set, runs));
    };
    for close in schedule.due(&Progress::new(), first, last, i64::MAX) {
        let run = run_close(lake, schedule, &close, zone, calibration, cache).await?;
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
    let ctx = groundtruth_sql::open_session(lake).await?;
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

#[cfg(test)]
mod tests {
    use groundtruth_lake::LakeOptions;

    use super::*;

    /// A patrol is prepared once while its fixes stay the same, again when
    /// a (late) fix joins it, and leaves the cache when a close no longer
    /// sees it.
    #[test]
    fn a_patrol_is_prepared_again_only_when_its_fixes_change() {
        use groundtruth_track::{Fix, Patrol};
        let fix = |t: i64| Fix {
            t_ms: t,
            lat: 22.8 + t as f64 * 1e-8,
            lon: 108.3,
            accuracy_m: Some(5.0),
            mock: false,
            speed_mps: None,
        };
        let mut p = Patrol {
            app_id: "river".into(),
            account_id: "u1".into(),
            patrol_id: "p1".into(),
            fixes: (0..20).map(|i| fix(i * 10_000)).collect(),
            ..Patrol::default()
        };
        let cache = CloseCache::default();
        let stats = |prepared, reused, held| CacheStats {
            prepared,
            reused,
            held,
        };
        cache.prepare(std::slice::from_ref(&p));
        cache.prepare(std::slice::from_ref(&p));
        assert_eq!(cache.stats(), stats(1, 1, 1));
        p.fixes.push(fix(200_000));
        let again = cache.prepare(std::slice::from_ref(&p));
        assert_eq!(cache.stats(), stats(2, 1, 1));
        let fresh = groundtruth_track::prepare(&p);
        assert_eq!(format!("{:?}", again[0]), format!("{fresh:?}"));
        cache.prepare(&[]);
        assert_eq!(cache.stats(), stats(2, 1, 0));
    }

    /// Closes judged one after the other with one cache (the window's
    /// events in memory, patrols prepared by earlier closes) give exactly
    /// what each close gives alone, reading the files.
    #[tokio::test]
    async fn a_warm_cache_gives_the_findings_of_no_cache() {
        let mut sc = groundtruth_sim::Scenario::from_toml_str(include_str!(
            "../../../pipelines/sim-small.toml"
        ))
        .unwrap();
        sc.days = 4;
        let dir = tempfile::tempdir().unwrap();
        groundtruth_ingest::simulate_into(&sc, dir.path()).unwrap();
        let schedule = groundtruth_config::Config::defaults().schedule();
        let zone = LakeOptions::default().zone;
        let (first, last) = event_span(dir.path()).await.unwrap().unwrap();
        let warm = CloseCache::default();
        let cal = Calibration::builtin();
        let (mut findings, mut patrols) = (0, 0);
        for close in schedule.due(&Progress::new(), first, last, i64::MAX) {
            let cached = run_close(dir.path(), &schedule, &close, zone, &cal, &warm)
                .await
                .unwrap();
            let cold = CloseCache::with_memory_rows(0);
            let plain = run_close(dir.path(), &schedule, &close, zone, &cal, &cold)
                .await
                .unwrap();
            assert_eq!(cached.findings, plain.findings, "{close:?}");
            assert_eq!(cached.patrols, plain.patrols, "{close:?}");
            findings += plain.findings.len();
            patrols += plain.patrols.len();
        }
        assert!(
            findings > 5 && patrols > 50,
            "{findings} findings, {patrols} patrols"
        );
        let stats = warm.stats();
        assert!(
            stats.reused > stats.prepared / 2 && stats.held > 0,
            "later windows reuse the week's patrols: {stats:?}"
        );
    }
}
