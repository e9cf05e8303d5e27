//! Runs the detectors over events with DataFusion.
//!
//! Events live in a lake (see `groundtruth-lake`); `groundtruth-sql`
//! adds the SQL views of `sql/`, and [`run_detectors`] runs every detector
//! over the session and returns contract findings; [`run_close`] judges one
//! window of the detectors' schedule, as the live service does. Offline runs
//! (the `detect` command over files, evaluation) are `groundtruth-eval`'s.

pub mod behaviour;
pub mod closes;
mod error;
pub mod scope;
pub mod tracks;

use datafusion::prelude::SessionContext;
use groundtruth_finding::{sort_findings, Finding};

pub use closes::{
    run_all_closes, run_close, CacheStats, CloseCache, CloseRun, FindingSet, DEFAULT_MEMORY_ROWS,
};
pub use error::DetectError;

/// Everything one detection run produced.
#[derive(Debug)]
pub struct DetectRun {
    pub findings: Vec<Finding>,
    /// The patrols judged by `non_human_track`, in the order of `tracks.assessments`.
    pub patrols: Vec<groundtruth_track::Patrol>,
    /// The track detector's assessments and statistics (its findings were
    /// moved into `findings`).
    pub tracks: groundtruth_track::Report,
    /// Seconds each behaviour detector took (its findings are in `findings`).
    pub behaviour_s: Vec<(&'static str, f64)>,
    /// Seconds spent in the behaviour views' SQL.
    pub behaviour_sql_s: f64,
}

/// Runs every detector over the `events` in `ctx` (views are registered
/// here). Findings come back in canonical order.
pub async fn run_detectors(ctx: &SessionContext) -> Result<DetectRun, DetectError> {
    groundtruth_sql::register_event_views(ctx).await?;
    let started = std::time::Instant::now();
    let patrols = tracks::load_patrols(ctx).await?;
    let loaded = started.elapsed();
    let mut report = groundtruth_track::detect(&patrols);
    tracing::info!(
        patrols = patrols.len(),
        fixes = patrols.iter().map(|p| p.fixes.len()).sum::<usize>(),
        flagged = report.findings.len(),
        sql_ms = loaded.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "non_human_track done"
    );
    let started = std::time::Instant::now();
    let input = behaviour::load_input(ctx).await?;
    let behaviour_sql_s = started.elapsed().as_secs_f64();
    let mut findings = std::mem::take(&mut report.findings);
    let mut behaviour_s = Vec::new();
    for run in groundtruth_behaviour::detect(&input) {
        tracing::info!(
            detector = run.detector,
            flagged = run.findings.len(),
            ms = (run.seconds * 1000.0) as u64,
            "detector done"
        );
        behaviour_s.push((run.detector, run.seconds));
        findings.extend(run.findings);
    }
    sort_findings(&mut findings);
    Ok(DetectRun {
        findings,
        patrols,
        tracks: report,
        behaviour_s,
        behaviour_sql_s,
    })
}
