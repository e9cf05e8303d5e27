//! The `groundtruth` command line, run as a user would.

use anyhow::{ensure, Context, Result};
use groundtruth_tests::{repo, run_groundtruth};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn ingest_a_file_then_query_it() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().expect("utf-8 path");
    let fixture = repo().join("tests/fixtures/lake.ndjson");
    let out = run_groundtruth(&[
        "ingest",
        "--quiet",
        "--lake",
        lake,
        fixture.to_str().expect("path"),
    ])?;
    let err = text(&out.stderr);
    ensure!(out.status.success(), "{err}");
    ensure!(
        err.contains("accepted 16, duplicates 1, rejected 5"),
        "{err}"
    );

    let out = run_groundtruth(&["sql", "--lake", lake, "SELECT count(*) AS n FROM events"])?;
    ensure!(
        out.status.success() && text(&out.stdout).contains("| 16 |"),
        "{}",
        text(&out.stdout)
    );
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--format",
        "csv",
        "SELECT app_id, count(*) AS n FROM events GROUP BY app_id ORDER BY app_id",
    ])?;
    ensure!(
        text(&out.stdout).starts_with("app_id,n\nattendance,3\n"),
        "{}",
        text(&out.stdout)
    );
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--format",
        "json",
        "SELECT reason_code FROM dead_letters WHERE field = 'lat'",
    ])?;
    ensure!(
        text(&out.stdout).trim() == r#"{"reason_code":"invalid_value"}"#,
        "{}",
        text(&out.stdout)
    );

    // Re-ingesting the same file adds nothing.
    let out = run_groundtruth(&[
        "ingest",
        "--quiet",
        "--lake",
        lake,
        fixture.to_str().expect("path"),
    ])?;
    ensure!(
        text(&out.stderr).contains("accepted 0, duplicates 17, rejected 0"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().expect("utf-8 path");
    let out = run_groundtruth(&["sql", "--lake", lake, "DROP TABLE events"])?;
    ensure!(!out.status.success());
    ensure!(
        text(&out.stderr).contains("query failed"),
        "{}",
        text(&out.stderr)
    );
    let out = run_groundtruth(&["ingest", "--lake", lake, "/no/such/file.ndjson"])?;
    ensure!(!out.status.success() && text(&out.stderr).contains("/no/such/file.ndjson"));
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--set",
        "lake.day_zone=Nowhere/City",
        "--set",
        "kafka.session_timeout_ms=1",
        "--set",
        "lake.colour=blue",
        "SELECT 1",
    ])?;
    let err = text(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("3 problem(s)"),
        "{err}"
    );
    for needle in ["Nowhere/City", "kafka.session_timeout_ms", "lake.colour"] {
        ensure!(err.contains(needle), "{needle} missing from: {err}");
    }
    Ok(())
}

#[test]
fn simulate_writes_events_and_labels_and_demo_summarises() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let scenario = repo().join("pipelines/sim-small.toml");
    let scenario = scenario.to_str().expect("path");
    let events = tmp.path().join("events.ndjson.gz");
    let labels = tmp.path().join("labels");
    let out = run_groundtruth(&[
        "simulate",
        "--scenario",
        scenario,
        "-o",
        events.to_str().expect("path"),
        "--labels",
        labels.to_str().expect("path"),
    ])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let accounts = std::fs::read_to_string(labels.join("accounts.csv"))?;
    ensure!(accounts.starts_with("account_id,label,scenario\n"));
    ensure!(accounts.contains(",phone_farm,"), "no phone farm label");
    ensure!(std::fs::read_to_string(labels.join("patrols.csv"))?
        .starts_with("patrol_id,account_id,label,scenario\n"));
    // The gzip file ingests.
    let lake = tmp.path().join("lake");
    let out = run_groundtruth(&[
        "ingest",
        "--quiet",
        "--lake",
        lake.to_str().expect("path"),
        events.to_str().expect("path"),
    ])?;
    ensure!(
        out.status.success() && text(&out.stderr).contains("rejected 0"),
        "{}",
        text(&out.stderr)
    );

    let demo_lake = tmp.path().join("demo");
    let out = run_groundtruth(&[
        "demo",
        "--scenario",
        scenario,
        "--lake",
        demo_lake.to_str().expect("path"),
    ])?;
    let stdout = text(&out.stdout);
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(
        stdout.contains("events per app and day") && stdout.contains("zhiguitong"),
        "{stdout}"
    );
    ensure!(stdout.contains("2026-11-02"), "{stdout}");
    // The demo scores every detector against the simulator's ground truth:
    // on sim-small each finds exactly its labelled accounts.
    let table = stdout
        .split("against the ground truth")
        .nth(1)
        .with_context(|| format!("no ground-truth table in {stdout}"))?;
    for det in groundtruth_finding::DETECTORS {
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(det))
            .with_context(|| format!("no {det} row in {stdout}"))?;
        let cells: Vec<&str> = row.split_whitespace().collect();
        ensure!(cells[4] == "1.000" && cells[5] == "1.000", "{det}: {row}");
    }
    Ok(())
}
