//! `groundtruth detect` (the contract's batch command) and the
//! non_human_track evaluation held to the bar.

use anyhow::{ensure, Context, Result};
use groundtruth_finding::Finding;
use groundtruth_tests::{repo, run_groundtruth};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn detect_over_a_simulated_file_writes_contract_findings() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let events = tmp.path().join("events.ndjson");
    let labels = tmp.path().join("labels");
    let scenario = repo().join("pipelines/sim-small.toml");
    let out = run_groundtruth(&[
        "simulate",
        "--scenario",
        s(&scenario),
        "--output",
        s(&events),
        "--labels",
        s(&labels),
    ])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two bad lines among the good ones.
    let mut text = std::fs::read_to_string(&events)?;
    text.push_str("{\"event_id\": \"x\", truncated\n\"not an object\"\n");
    std::fs::write(&events, text)?;

    let findings = tmp.path().join("findings.ndjson");
    let out = run_groundtruth(&["detect", "--input", s(&events), "--output", s(&findings)])?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    ensure!(out.status.success(), "{err}");
    ensure!(err.contains("rejected 2"), "{err}");

    let body = std::fs::read_to_string(&findings)?;
    let mut flagged = HashSet::new();
    for (i, line) in body.lines().enumerate() {
        let f: Finding =
            serde_json::from_str(line).with_context(|| format!("finding line {}", i + 1))?;
        f.validate()?;
        if f.detector == "non_human_track" {
            ensure!(f.patrol_ids.len() == 1, "{line}");
            ensure!(f.evidence.contains_key("geometry"), "{line}");
            flagged.insert(f.patrol_ids[0].clone());
        }
    }
    // Every faked patrol is flagged and no honest one.
    let patrols = std::fs::read_to_string(labels.join("patrols.csv"))?;
    let mut fake = HashSet::new();
    for l in patrols.lines().skip(1) {
        let c: Vec<&str> = l.split(',').collect();
        if c[2] == "non_human_track" {
            fake.insert(c[0].to_string());
        }
    }
    ensure!(!fake.is_empty());
    ensure!(flagged == fake, "flagged {flagged:?}, faked {fake:?}");

    // The behaviour detectors name exactly the labelled accounts (a farm's
    // operator fakes colleagues' accounts, not their own, so is not named).
    let accounts = std::fs::read_to_string(labels.join("accounts.csv"))?;
    for det in [
        "phone_farm",
        "bulk_check_in",
        "registration_farm",
        "record_churn",
        "report_inflation",
    ] {
        let want: BTreeSet<String> = accounts
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|c| c[1] == det && c[2] != "farm_operator")
            .map(|c| c[0].to_string())
            .collect();
        let got: BTreeSet<String> = body
            .lines()
            .map(|l| serde_json::from_str::<Finding>(l).expect("checked above"))
            .filter(|f| f.detector == det)
            .flat_map(|f| f.accounts)
            .collect();
        ensure!(!want.is_empty(), "sim-small has no {det}");
        ensure!(got == want, "{det}: flagged {got:?}, labelled {want:?}");
    }

    // Bad events are in the dead-letter output with their reasons.
    let dead = std::fs::read_to_string(tmp.path().join("findings.dead-letters.ndjson"))?;
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(dead.len() == 2, "{dead:?}");
    let codes: Vec<&str> = dead
        .iter()
        .filter_map(|d| d["reason_code"].as_str())
        .collect();
    ensure!(
        codes.contains(&"invalid_json") && codes.contains(&"not_an_object"),
        "{codes:?}"
    );

    // The same input gives the same findings, byte for byte.
    let again = tmp.path().join("again.ndjson");
    let out = run_groundtruth(&["detect", "--input", s(&events), "--output", s(&again)])?;
    ensure!(out.status.success());
    ensure!(
        std::fs::read_to_string(&again)? == body,
        "findings differ between runs"
    );
    Ok(())
}

#[test]
fn detect_explains_a_missing_input() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = run_groundtruth(&[
        "detect",
        "--input",
        "/nonexistent/events.ndjson",
        "--output",
        s(&tmp.path().join("f.ndjson")),
    ])?;
    ensure!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(err.contains("/nonexistent/events.ndjson"), "{err}");
    Ok(())
}

/// Issue 26's bar: precision >= 0.95 and recall >= 0.90 per fraud type on
/// the labelled evaluation week (with boats, poor GPS and cycling in it),
/// and at most 1% of real GeoLife people flagged. (Recall was held to 0.95
/// here before dashes became the animal's required sign: the simulator's
/// few dogs that never dash are given up so that people surveying a small
/// plot, who wind, stop and change pace too, are not called dogs.)
#[test]
fn non_human_track_meets_the_bar() -> Result<()> {
    let text = std::fs::read_to_string(repo().join("pipelines/eval-tracks.toml"))?;
    let scenario = groundtruth_sim::Scenario::from_toml_str(&text)?;
    let tmp = tempfile::tempdir()?;
    let geolife = repo().join("../shared/data");
    let geolife = geolife.is_dir().then_some(geolife);
    let rt = tokio::runtime::Runtime::new()?;
    let cfg = groundtruth_config::Config::defaults();
    let eval = rt.block_on(groundtruth_eval::tracks::evaluate_tracks(
        &scenario,
        &cfg.schedule(),
        &cfg.detect.calibration,
        geolife.as_deref(),
        tmp.path(),
    ))?;
    println!("{}", eval.table());
    for t in &eval.types {
        ensure!(
            t.patrols >= 20,
            "too few {} patrols to judge: {}",
            t.fraud_type,
            t.patrols
        );
        ensure!(t.recall >= 0.90, "{} recall {:.3}", t.fraud_type, t.recall);
        ensure!(
            t.precision >= 0.95,
            "{} precision {:.3}",
            t.fraud_type,
            t.precision
        );
    }
    let honest: usize = eval.honest.iter().map(|h| h.patrols).sum();
    let honest_flagged: usize = eval.honest.iter().map(|h| h.flagged).sum();
    ensure!(
        (honest_flagged as f64) <= 0.01 * honest as f64,
        "{honest_flagged} of {honest} honest patrols flagged"
    );
    match &eval.geolife {
        Some(g) => {
            ensure!(g.patrols >= 100, "GeoLife gave only {} patrols", g.patrols);
            ensure!(
                g.share <= 0.01,
                "GeoLife flagged {:.2}%: {:?}",
                100.0 * g.share,
                g.flags
            );
        }
        None => println!("shared/data not found: GeoLife check skipped"),
    }
    Ok(())
}

/// The bar for the behaviour detectors: account-level precision of
/// at least 0.95 and recall of at least 0.90 per detector over the scenario
/// matrix (seeds and sizes, farms of 8 to 60 phones, 5% to 40% camouflage, every honest
/// look-alike), three days per scenario to keep CI quick.
#[test]
fn behaviour_detectors_meet_the_bar() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let scenarios = groundtruth_eval::behaviour::matrix(3);
    let rt = tokio::runtime::Runtime::new()?;
    let cfg = groundtruth_config::Config::defaults();
    let eval = rt.block_on(groundtruth_eval::behaviour::evaluate_behaviour(
        &scenarios,
        &cfg.schedule(),
        &cfg.detect.calibration,
        tmp.path(),
    ))?;
    println!("{}", eval.table());
    ensure!(eval.totals.len() == 5);
    for t in &eval.totals {
        ensure!(
            t.positives >= 5,
            "too few {} accounts: {}",
            t.detector,
            t.positives
        );
        ensure!(t.recall >= 0.90, "{} recall {:.3}", t.detector, t.recall);
        ensure!(
            t.precision >= 0.95,
            "{} precision {:.3}",
            t.detector,
            t.precision
        );
    }
    // Every honest look-alike is in the matrix and none is flagged.
    for r in &eval.rows {
        ensure!(
            r.false_by_scenario.is_empty(),
            "{} on {} flagged honest accounts: {:?}",
            r.detector,
            r.scenario,
            r.false_by_scenario
        );
    }
    Ok(())
}

/// The behaviour detectors over a family of simulated worlds drawn from a
/// seed (every parameter from a wide range): the worst world still meets
/// issue 26's bar. `groundtruth eval worlds --worlds 20` reports more.
#[test]
fn drawn_worlds_meet_the_bar_in_the_worst_case() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let worlds = groundtruth_eval::behaviour::draw_worlds(6, 2, 3);
    let rt = tokio::runtime::Runtime::new()?;
    let cfg = groundtruth_config::Config::defaults();
    let eval = rt.block_on(groundtruth_eval::behaviour::evaluate_behaviour(
        &worlds,
        &cfg.schedule(),
        &cfg.detect.calibration,
        tmp.path(),
    ))?;
    println!("{}\n{}", eval.table(), eval.worst_case_table());
    for w in eval.worst_case() {
        ensure!(
            w.worlds == 6,
            "{} judged on {} worlds",
            w.detector,
            w.worlds
        );
        ensure!(
            w.worst_precision >= 0.95 && w.worst_recall >= 0.90,
            "{}: worst precision {:.3} ({}), worst recall {:.3} ({})",
            w.detector,
            w.worst_precision,
            w.worst_precision_world,
            w.worst_recall,
            w.worst_recall_world
        );
    }
    Ok(())
}
