//! `groundtruth eval`: the detectors scored on simulated worlds, files and real data.

use std::path::Path;

use anyhow::{bail, Context, Result};
use groundtruth_config::Config;
use groundtruth_finding::calibration::{Calibration, Reliability, Sample};
use groundtruth_sim::Scenario;

use crate::cmd::simulate::read_scenario;
use crate::runtime::query_runtime;
use crate::{EvalBehaviourArgs, EvalReliabilityArgs, EvalTracksArgs, EvalWorldsArgs};

pub(crate) fn eval_behaviour(cfg: &Config, args: &EvalBehaviourArgs) -> Result<()> {
    let scenarios = if args.scenario.is_empty() {
        groundtruth_eval::behaviour::matrix(args.days)
    } else {
        args.scenario
            .iter()
            .map(|p| read_scenario(p))
            .collect::<Result<Vec<_>>>()?
    };
    let eval = run_behaviour(cfg, &scenarios)?;
    print!("{}", eval.table());
    write_json(args.json.as_deref(), &eval)
}

/// Validates `scenarios`, simulates and judges each in a scratch directory.
pub(crate) fn run_behaviour(
    cfg: &Config,
    scenarios: &[Scenario],
) -> Result<groundtruth_eval::behaviour::BehaviourEval> {
    for s in scenarios {
        s.validate()
            .with_context(|| format!("scenario {}", s.name))?;
    }
    let scratch = eval_scratch()?;
    Ok(
        query_runtime()?.block_on(groundtruth_eval::behaviour::evaluate_behaviour(
            scenarios,
            &cfg.schedule(),
            &cfg.detect.calibration,
            scratch.path(),
        ))?,
    )
}

pub(crate) fn eval_worlds(cfg: &Config, args: &EvalWorldsArgs) -> Result<()> {
    anyhow::ensure!(args.worlds >= 1, "--worlds must be at least 1");
    let scenarios = groundtruth_eval::behaviour::draw_worlds(args.worlds, args.seed, args.days);
    let eval = run_behaviour(cfg, &scenarios)?;
    print!("{}", eval.table());
    // non_human_track on the same worlds' patrols.
    let mut tracks = Vec::new();
    if !args.no_tracks {
        let rt = query_runtime()?;
        for s in &scenarios {
            let s = groundtruth_eval::behaviour::with_drawn_patrols(s.clone());
            s.validate()
                .with_context(|| format!("drawn world {}", s.name))?;
            let scratch = eval_scratch()?;
            let t = rt.block_on(groundtruth_eval::tracks::evaluate_tracks(
                &s,
                &cfg.schedule(),
                &cfg.detect.calibration,
                None,
                scratch.path(),
            ))?;
            tracks.push(t);
        }
    }
    if let Some(p) = &args.details {
        let rows = tracks.iter().flat_map(|t| {
            t.details.iter().map(|d| {
                let mut d = d.clone();
                d["world"] = serde_json::Value::from(t.scenario.as_str());
                d
            })
        });
        write_ndjson(p, rows)?;
    }
    let tracks_worst = groundtruth_eval::behaviour::track_worst_case(&tracks);
    if !args.no_tracks {
        println!(
            "\nnon_human_track, worst case over {} worlds:\n\n{}",
            tracks.len(),
            groundtruth_eval::behaviour::track_worst_case_table(&tracks_worst)
        );
    }
    println!(
        "\nWorst case over {} worlds (seed {}):\n\n{}",
        args.worlds,
        args.seed,
        eval.worst_case_table()
    );
    // Calibration: every finding of the worlds (the behaviour runs' own
    // patrols and the drawn patrols' track findings), labelled.
    let samples: Vec<Sample> = eval
        .samples
        .iter()
        .chain(tracks.iter().flat_map(|t| &t.samples))
        .cloned()
        .collect();
    let reliability = Reliability::table_of(&samples);
    println!(
        "\nScores as emitted ({}), over {} findings of the {} worlds:\n\n{}",
        calibration_source(cfg),
        samples.len(),
        args.worlds,
        Reliability::text(&reliability)
    );
    if let Some(path) = &args.fit_calibration {
        let fit = Calibration::fit(
            &samples,
            format!(
                "groundtruth eval worlds --worlds {} --seed {} --days {}{}: {} labelled findings",
                args.worlds,
                args.seed,
                args.days,
                if args.no_tracks { " --no-tracks" } else { "" },
                samples.len()
            ),
        );
        let refit: Vec<Sample> = samples
            .iter()
            .map(|s| Sample {
                score: fit.probability(&s.detector, s.raw).unwrap_or(s.raw),
                ..s.clone()
            })
            .collect();
        println!(
            "Refitted on these worlds (in-sample; check it on a world it was not fitted on with `eval reliability`):\n\n{}",
            Reliability::text(&Reliability::table_of(&refit))
        );
        fit.save(path)?;
        eprintln!("calibration written to {}", path.display());
    }
    write_json(
        args.json.as_deref(),
        &serde_json::json!({
            "eval": eval,
            "worst_case": eval.worst_case(),
            "tracks": tracks,
            "tracks_worst_case": tracks_worst,
            "reliability": reliability,
        }),
    )
}

/// Where the scores' calibration came from, in words.
pub(crate) fn calibration_source(cfg: &Config) -> String {
    match &cfg.detect.calibration_file {
        Some(p) => format!("calibration {}", p.display()),
        None => format!("built-in calibration: {}", cfg.detect.calibration.fitted_on),
    }
}

pub(crate) fn eval_reliability(args: &EvalReliabilityArgs) -> Result<()> {
    let truth = groundtruth_eval::calibrate::Truth::read_csv(&args.labels)?;
    let text = std::fs::read_to_string(&args.findings)
        .with_context(|| format!("cannot read {}", args.findings.display()))?;
    let findings = groundtruth_finding::read_ndjson(&text)
        .with_context(|| args.findings.display().to_string())?;
    let rows = Reliability::table_of(&truth.samples(&findings));
    print!("{}", Reliability::text(&rows));
    write_json(args.json.as_deref(), &rows)
}

pub(crate) fn eval_scratch() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("groundtruth-eval-")
        .tempdir()
        .context("cannot create a scratch directory")
}

/// Writes `value` as pretty JSON to `path` when one is given.
pub(crate) fn write_json(
    path: Option<&std::path::Path>,
    value: &impl serde::Serialize,
) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

pub(crate) fn eval_tracks(cfg: &Config, args: &EvalTracksArgs) -> Result<()> {
    if !args.events.is_empty() {
        return patrol_details(cfg, args);
    }
    let scenario = match &args.scenario {
        Some(p) => read_scenario(p)?,
        None => Scenario::default(),
    };
    let scratch = eval_scratch()?;
    let rt = query_runtime()?;
    let eval = rt.block_on(groundtruth_eval::tracks::evaluate_tracks(
        &scenario,
        &cfg.schedule(),
        &cfg.detect.calibration,
        args.geolife.as_deref(),
        scratch.path(),
    ))?;
    print!("{}", eval.table());
    write_json(args.json.as_deref(), &eval)?;
    if let Some(p) = &args.details {
        let geo = eval.geolife.iter().flat_map(|g| g.details.iter());
        write_ndjson(p, eval.details.iter().chain(geo))?;
    }
    Ok(())
}

/// `eval tracks --events F... --details OUT`: each patrol of the files,
/// judged, with its features.
pub(crate) fn patrol_details(cfg: &Config, args: &EvalTracksArgs) -> Result<()> {
    let Some(out) = &args.details else {
        bail!("--events needs --details FILE to write the patrols to");
    };
    let scratch = eval_scratch()?;
    let rt = query_runtime()?;
    let details = rt.block_on(groundtruth_eval::tracks::patrol_details_of_files(
        &args.events,
        scratch.path(),
        &cfg.schedule(),
        &cfg.detect.calibration,
    ))?;
    let flagged = details
        .iter()
        .filter(|d| d["verdicts"].as_array().is_some_and(|v| !v.is_empty()))
        .count();
    println!(
        "{} patrols judged, {flagged} flagged; each one's verdicts and features in {}",
        details.len(),
        out.display()
    );
    write_ndjson(out, details.iter())
}

pub(crate) fn write_ndjson(
    path: &Path,
    rows: impl IntoIterator<Item = impl std::borrow::Borrow<serde_json::Value>>,
) -> Result<()> {
    let mut out = String::new();
    for d in rows {
        out.push_str(&d.borrow().to_string());
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}
