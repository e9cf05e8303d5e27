//! Scores as probabilities, end to end through the binary: `detect` emits
//! calibrated scores with the raw score kept, `eval reliability` checks a
//! findings file against labels, `calibrate` refits the curves to the
//! inspectors' verdicts in a review store, and `detect.calibration` reads
//! the result (a bad file is refused with what is wrong). `eval tracks
//! --events` judges the same file's patrols as `detect` does.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use groundtruth_finding::calibration::{Calibration, MAX_PROBABILITY, RAW_SCORE};
use groundtruth_finding::Finding;
use groundtruth_store::{CaseQuery, Principal, ReviewStore, Scope, StoreOptions, Verdict};
use groundtruth_tests::run_groundtruth;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_findings(p: &Path) -> Result<Vec<Finding>> {
    Ok(groundtruth_finding::read_ndjson(&std::fs::read_to_string(
        p,
    )?)?)
}

#[test]
fn detect_calibrates_eval_checks_and_verdicts_refit() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let events = tmp.path().join("events.ndjson");
    let labels_dir = tmp.path().join("labels");
    let scenario = repo().join("pipelines/sim-small.toml");
    let out = run_groundtruth(&[
        "simulate",
        "--scenario",
        s(&scenario),
        "-o",
        s(&events),
        "--labels",
        s(&labels_dir),
    ])?;
    ensure!(out.status.success(), "simulate: {}", text(&out.stderr));

    // Findings carry probabilities, the detectors' own scores beside them.
    let findings = tmp.path().join("findings.ndjson");
    let out = run_groundtruth(&["detect", "--input", s(&events), "--output", s(&findings)])?;
    ensure!(out.status.success(), "detect: {}", text(&out.stderr));
    let found = read_findings(&findings)?;
    ensure!(!found.is_empty(), "the small week has fraud");
    let builtin = Calibration::builtin();
    for f in &found {
        if builtin.detectors.contains_key(&f.detector) {
            ensure!(
                f.evidence.get(RAW_SCORE).and_then(|v| v.as_f64()).is_some(),
                "{} has no raw score: {:?}",
                f.finding_id,
                f.evidence
            );
            ensure!(f.score <= MAX_PROBABILITY, "{}: {}", f.finding_id, f.score);
        }
    }

    // Each patrol of the same file judged with its features, as `detect`
    // judged it: the flagged ones are the non_human_track findings'.
    let details = tmp.path().join("patrols.ndjson");
    let out = run_groundtruth(&[
        "eval",
        "tracks",
        "--events",
        s(&events),
        "--details",
        s(&details),
    ])?;
    ensure!(
        out.status.success(),
        "eval tracks --events: {}",
        text(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&details)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let simulated = std::fs::read_to_string(labels_dir.join("patrols.csv"))?
        .lines()
        .skip(1)
        .count();
    ensure!(
        rows.len() == simulated,
        "{} patrols judged, {simulated} simulated",
        rows.len()
    );
    ensure!(rows
        .iter()
        .all(|r| r["features"]["course_straightness"].is_number()));
    let mut flagged: Vec<&str> = rows
        .iter()
        .filter(|r| r["verdicts"].as_array().is_some_and(|v| !v.is_empty()))
        .filter_map(|r| r["patrol_id"].as_str())
        .collect();
    let mut found_patrols: Vec<&str> = found
        .iter()
        .filter(|f| f.detector == "non_human_track")
        .flat_map(|f| f.patrol_ids.iter().map(String::as_str))
        .collect();
    flagged.sort_unstable();
    found_patrols.sort_unstable();
    ensure!(
        !flagged.is_empty() && flagged == found_patrols,
        "{flagged:?} vs {found_patrols:?}"
    );

    // The simulator's labels as `kind,id,label`.
    let mut csv = String::from("kind,id,label\n");
    for (file, kind, id_col, label_col) in [
        ("accounts.csv", "account", 0, 1),
        ("patrols.csv", "patrol", 0, 2),
    ] {
        let t = std::fs::read_to_string(labels_dir.join(file))?;
        for line in t.lines().skip(1) {
            let c: Vec<&str> = line.split(',').collect();
            csv.push_str(&format!("{kind},{},{}\n", c[id_col], c[label_col]));
        }
    }
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, csv)?;
    let json = tmp.path().join("reliability.json");
    let out = run_groundtruth(&[
        "eval",
        "reliability",
        "--findings",
        s(&findings),
        "--labels",
        s(&labels),
        "--json",
        s(&json),
    ])?;
    ensure!(
        out.status.success(),
        "eval reliability: {}",
        text(&out.stderr)
    );
    let table = text(&out.stdout);
    ensure!(
        table.contains("brier") && table.contains("\nall "),
        "{table}"
    );
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let all = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["detector"] == "all"))
        .context("an `all` row")?;
    ensure!(all["findings"] == found.len(), "{all}");

    // Inspectors' verdicts: 15 record_churn findings of raw score 0.8, 8
    // confirmed and 7 dismissed; 15 of raw score 0.95, all confirmed.
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let store = ReviewStore::open(
            &state.join("review.db").display().to_string(),
            &StoreOptions::default(),
        )
        .await?;
        for i in 0..30 {
            let account = format!("acct{i:02}");
            let f = Finding {
                finding_id: format!("churn-{i:02}"),
                detector: "record_churn".into(),
                accounts: vec![account.clone()],
                devices: vec![],
                patrol_ids: vec![],
                window_start: "2026-11-30T00:00:00Z".into(),
                window_end: "2026-11-30T12:00:00Z".into(),
                score: if i < 15 { 0.8 } else { 0.95 },
                reason: "test".into(),
                evidence: Default::default(),
            };
            store.upsert_findings(1_000_000 + i, &[f]).await?;
            let case = store
                .list_cases(
                    &Scope::nationwide(),
                    &CaseQuery {
                        account: Some(account),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?
                .items
                .pop()
                .context("a case")?;
            let verdict = if i >= 15 || i % 2 == 0 {
                Verdict::Confirmed
            } else {
                Verdict::Dismissed
            };
            store
                .record_verdict(&Principal::system(), case.case_id, verdict, "checked", None)
                .await?;
        }
        anyhow::Ok(())
    })?;
    let fitted = tmp.path().join("calibration.json");
    let out = run_groundtruth(&["calibrate", "--state", s(&state), "--out", s(&fitted)])?;
    ensure!(out.status.success(), "calibrate: {}", text(&out.stderr));
    let printed = text(&out.stdout);
    ensure!(
        printed.contains("record_churn: refitted on 30 verdicts (23 confirmed)"),
        "{printed}"
    );
    let cal = Calibration::load(&fitted)?;
    let churn = &cal.detectors["record_churn"];
    let (low, high) = (churn.probability(0.8), churn.probability(0.95));
    ensure!(low > 0.4 && low < 0.65 && high > 0.9, "{low} {high}");
    for (d, c) in &builtin.detectors {
        if d != "record_churn" {
            ensure!(cal.detectors.get(d) == Some(c), "{d} kept its curve");
        }
    }

    // The refitted file is used; a broken one is refused, naming the key.
    let again = tmp.path().join("again.ndjson");
    let set = format!("detect.calibration={}", s(&fitted));
    let detect_with_it = || {
        run_groundtruth(&[
            "detect",
            "--input",
            s(&events),
            "--output",
            s(&again),
            "--set",
            &set,
        ])
    };
    let out = detect_with_it()?;
    ensure!(out.status.success(), "detect: {}", text(&out.stderr));
    std::fs::write(&fitted, "{\"detectors\": 3}")?;
    let out = detect_with_it()?;
    let err = text(&out.stderr);
    ensure!(
        !out.status.success()
            && err.contains("detect.calibration")
            && err.contains("not a calibration"),
        "{err}"
    );
    Ok(())
}
