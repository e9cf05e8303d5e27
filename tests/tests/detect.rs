//! `groundtruth detect` (the contract's batch command) and the
//! non_human_track evaluation held to the bar.

use anyhow::{ensure, Context, Result};
use groundtruth_finding::Finding;
use groundtruth_tests::{repo, run_groundtruth};
use std::collections::HashSet;
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
    let labels = std::fs::read_to_string(labels.join("patrols.csv"))?;
    let mut fake = HashSet::new();
    for l in labels.lines().skip(1) {
        let c: Vec<&str> = l.split(',').collect();
        if c[2] == "non_human_track" {
            fake.insert(c[0].to_string());
        }
    }
    ensure!(!fake.is_empty());
    ensure!(flagged == fake, "flagged {flagged:?}, faked {fake:?}");

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

/// The bar: precision and recall >= 0.95 per fraud type on the
/// labelled evaluation week (with boats, poor GPS and cycling in it), and at
/// most 1% of real GeoLife people flagged.
#[test]
fn non_human_track_meets_the_bar() -> Result<()> {
    let text = std::fs::read_to_string(repo().join("pipelines/eval-tracks.toml"))?;
    let scenario = groundtruth_sim::Scenario::from_toml_str(&text)?;
    let tmp = tempfile::tempdir()?;
    let geolife = repo().join("../shared/data");
    let geolife = geolife.is_dir().then_some(geolife);
    let rt = tokio::runtime::Runtime::new()?;
    let eval = rt.block_on(groundtruth_detect::eval::evaluate_tracks(
        &scenario,
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
        ensure!(t.recall >= 0.95, "{} recall {:.3}", t.fraud_type, t.recall);
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
