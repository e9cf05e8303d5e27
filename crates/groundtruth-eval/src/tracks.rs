//! The `non_human_track` evaluation: precision and recall per fraud type on
//! the simulator's labelled patrols (honest confounders included), and the
//! share of real GeoLife people flagged. `groundtruth eval tracks` prints
//! it; a test in CI holds it to the bar.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use groundtruth_event::DecodeOptions;
use groundtruth_finding::calibration::{Calibration, Sample};
use groundtruth_ingest::{ingest_lines, simulate_into};
use groundtruth_lake::LakeOptions;
use groundtruth_sim::Scenario;
use groundtruth_sql::open_session;
use serde::Serialize;

use crate::calibrate::Truth;
use crate::error::EvalError;
use groundtruth_detect::run_all_closes;
use groundtruth_detect::run_detectors;

/// Fraud types of the simulator and the class that should name them.
pub const FRAUD_TYPES: [(&str, &str); 4] = [
    ("dog_leg", "animal-like"),
    ("straight_line", "synthetic"),
    ("teleport", "teleporting"),
    ("replay", "replayed"),
];

/// One fraud type's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeRow {
    pub fraud_type: String,
    pub class: String,
    /// Patrols of this type.
    pub patrols: usize,
    /// ...of which flagged (any class).
    pub flagged: usize,
    /// Patrols whose top class is this type's class.
    pub predicted: usize,
    /// ...of which are truly non-human.
    pub predicted_fraud: usize,
    /// ...of which are of exactly this type.
    pub predicted_exact: usize,
    pub recall: f64,
    pub precision: f64,
}

/// Honest patrols of one kind and how many were flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HonestRow {
    pub scenario: String,
    pub patrols: usize,
    pub flagged: usize,
}

/// The GeoLife check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeolifeResult {
    pub patrols: usize,
    pub fixes: usize,
    pub flagged: usize,
    pub share: f64,
    /// `patrol_id: reason` of each flagged one.
    pub flags: Vec<String>,
    #[serde(skip)]
    pub details: Vec<serde_json::Value>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackEval {
    pub scenario: String,
    pub events: u64,
    pub types: Vec<TypeRow>,
    pub honest: Vec<HonestRow>,
    /// Over all non-human patrols vs all flags.
    pub overall_precision: f64,
    pub overall_recall: f64,
    pub geolife: Option<GeolifeResult>,
    pub patrols_per_s: f64,
    pub fixes_per_s: f64,
    /// Per patrol: scenario, verdicts and features (for looking into misses).
    #[serde(skip)]
    pub details: Vec<serde_json::Value>,
    /// The world's findings, labelled for calibration.
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

pub(crate) fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Runs the evaluation. `scratch` is an empty directory for the lakes.
pub async fn evaluate_tracks(
    scenario: &Scenario,
    schedule: &groundtruth_window::Schedule,
    calibration: &Calibration,
    geolife_dir: Option<&Path>,
    scratch: &Path,
) -> Result<TrackEval, EvalError> {
    let sim_dir = scratch.join("sim");
    let summary = simulate_into(scenario, &sim_dir)?;
    let started = std::time::Instant::now();
    let (set, closes) = run_all_closes(
        &sim_dir,
        schedule,
        LakeOptions::default().zone,
        calibration,
        &groundtruth_detect::CloseCache::default(),
    )
    .await?;
    let samples = Truth::of_sim(&summary.labels).samples(
        &set.into_findings()
            .into_iter()
            .filter(|f| f.detector == groundtruth_track::DETECTOR)
            .collect::<Vec<_>>(),
    );
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    // Each patrol as judged by the window it ends in.
    let judged_patrols: Vec<&(groundtruth_track::Patrol, groundtruth_track::Assessment)> =
        closes.iter().flat_map(|c| &c.patrols).collect();
    let fixes: usize = judged_patrols.iter().map(|(p, _)| p.fixes.len()).sum();

    let labels: HashMap<(&str, &str), &groundtruth_sim::PatrolLabel> = summary
        .labels
        .patrols
        .iter()
        .map(|l| ((l.account_id.as_str(), l.patrol_id.as_str()), l))
        .collect();
    // (scenario, flagged, top class)
    let mut judged: Vec<(&str, bool, Option<&'static str>)> = Vec::new();
    let mut details = Vec::new();
    for (p, a) in judged_patrols.iter().map(|(p, a)| (p, a)) {
        let scen = labels
            .get(&(p.account_id.as_str(), p.patrol_id.as_str()))
            .map_or("unlabelled", |l| l.scenario.as_str());
        details.push(detail(scen, p, a));
        judged.push((
            scen,
            a.flagged(),
            a.verdicts.first().map(|v| v.class.name()),
        ));
    }
    let is_fraud = |s: &str| FRAUD_TYPES.iter().any(|(t, _)| *t == s);
    let mut types = Vec::new();
    for (t, class) in FRAUD_TYPES {
        let patrols = judged.iter().filter(|j| j.0 == t).count();
        let flagged = judged.iter().filter(|j| j.0 == t && j.1).count();
        let pred: Vec<_> = judged.iter().filter(|j| j.2 == Some(class)).collect();
        let predicted_fraud = pred.iter().filter(|j| is_fraud(j.0)).count();
        let predicted_exact = pred.iter().filter(|j| j.0 == t).count();
        types.push(TypeRow {
            fraud_type: t.into(),
            class: class.into(),
            patrols,
            flagged,
            predicted: pred.len(),
            predicted_fraud,
            predicted_exact,
            recall: ratio(flagged, patrols),
            precision: ratio(predicted_fraud, pred.len()),
        });
    }
    let mut honest: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for j in judged.iter().filter(|j| !is_fraud(j.0)) {
        let e = honest.entry(j.0).or_default();
        e.0 += 1;
        e.1 += usize::from(j.1);
    }
    let fraud_n = judged.iter().filter(|j| is_fraud(j.0)).count();
    let flagged_n = judged.iter().filter(|j| j.1).count();
    let tp = judged.iter().filter(|j| j.1 && is_fraud(j.0)).count();

    let geolife = match geolife_dir {
        Some(dir) => Some(evaluate_geolife(dir, &scratch.join("geolife")).await?),
        None => None,
    };
    Ok(TrackEval {
        scenario: scenario.name.clone(),
        events: summary.events,
        types,
        honest: honest
            .into_iter()
            .map(|(s, (n, f))| HonestRow {
                scenario: s.into(),
                patrols: n,
                flagged: f,
            })
            .collect(),
        overall_precision: ratio(tp, flagged_n),
        overall_recall: ratio(tp, fraud_n),
        geolife,
        patrols_per_s: judged_patrols.len() as f64 / secs,
        fixes_per_s: fixes as f64 / secs,
        details,
        samples,
    })
}

fn detail(
    scenario: &str,
    p: &groundtruth_track::Patrol,
    a: &groundtruth_track::Assessment,
) -> serde_json::Value {
    serde_json::json!({
        "scenario": scenario,
        "patrol_id": p.patrol_id,
        "account_id": p.account_id,
        "mode": a.mode,
        "verdicts": a.verdicts,
        "features": a.features,
    })
}

/// Every patrol of NDJSON event files (any world: another generator's, real
/// people's) as `non_human_track` judges it in event time, with its
/// features, for looking into misses and false alarms: one JSON object per
/// patrol (`scenario` is `"file"`; join the world's own labels on
/// `patrol_id`). `scratch` must be empty or absent.
pub async fn patrol_details_of_files(
    inputs: &[std::path::PathBuf],
    scratch: &Path,
    schedule: &groundtruth_window::Schedule,
    calibration: &Calibration,
) -> Result<Vec<serde_json::Value>, EvalError> {
    let (_, _, closes) = crate::batch::judge_files(
        inputs,
        &scratch.join("lake"),
        LakeOptions::default(),
        DecodeOptions::default(),
        schedule,
        calibration,
        &groundtruth_detect::CloseCache::default(),
        false,
    )
    .await?;
    Ok(closes
        .iter()
        .flat_map(|c| &c.patrols)
        .map(|(p, a)| detail("file", p, a))
        .collect())
}

/// Feeds the GeoLife people through the detector; counts who is flagged.
pub async fn evaluate_geolife(dir: &Path, lake_dir: &Path) -> Result<GeolifeResult, EvalError> {
    let (lines, patrols) = crate::geolife::patrol_events(dir)?;
    ingest_lines(lake_dir, "geolife", &lines)?;
    let ctx = open_session(lake_dir).await?;
    let run = run_detectors(&ctx).await?;
    let fixes = run.patrols.iter().map(|p| p.fixes.len()).sum();
    let details = run
        .patrols
        .iter()
        .zip(&run.tracks.assessments)
        .map(|(p, a)| detail("geolife", p, a))
        .collect();
    let flags: Vec<String> = run
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.patrol_ids.join(","), f.reason))
        .collect();
    Ok(GeolifeResult {
        patrols,
        fixes,
        flagged: run.findings.len(),
        share: if patrols == 0 {
            0.0
        } else {
            run.findings.len() as f64 / patrols as f64
        },
        flags,
        details,
    })
}

impl TrackEval {
    /// The evaluation as Markdown tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "non_human_track on scenario `{}` ({} events)\n",
            self.scenario, self.events
        );
        let _ = writeln!(
            s,
            "| fraud type | class | patrols | flagged | recall | predicted as class | of which non-human | of which this type | precision |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.types {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.3} | {} | {} | {} | {:.3} |",
                r.fraud_type,
                r.class,
                r.patrols,
                r.flagged,
                r.recall,
                r.predicted,
                r.predicted_fraud,
                r.predicted_exact,
                r.precision
            );
        }
        let _ = writeln!(
            s,
            "\noverall: precision {:.3}, recall {:.3}\n",
            self.overall_precision, self.overall_recall
        );
        let _ = writeln!(s, "| honest patrols | patrols | flagged |");
        let _ = writeln!(s, "|---|---:|---:|");
        for h in &self.honest {
            let _ = writeln!(s, "| {} | {} | {} |", h.scenario, h.patrols, h.flagged);
        }
        if let Some(g) = &self.geolife {
            let _ = writeln!(
                s,
                "\nGeoLife real people: {} patrols ({} fixes), {} flagged ({:.2}%)",
                g.patrols,
                g.fixes,
                g.flagged,
                100.0 * g.share
            );
            for f in &g.flags {
                let _ = writeln!(s, "  flagged {f}");
            }
        }
        let _ = writeln!(
            s,
            "\ndetection speed (SQL + features + replay search + classification): {:.0} patrols/s, {:.0} fixes/s",
            self.patrols_per_s, self.fixes_per_s
        );
        s
    }
}
