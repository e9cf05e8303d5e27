//! `groundtruth detect --findings-topic`: every finding reaches the Kafka
//! topic in the contract's JSON, keyed by its `finding_id`, exactly as in
//! the findings file; a re-run publishes the same ids again (a compacted
//! topic keeps one per finding).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use groundtruth_finding::Finding;
use groundtruth_tests::{repo, run_groundtruth, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

/// Reads `topic` from the start until `want` messages or 60 s: (key, value).
fn read_all(broker: &Broker, topic: &str, want: usize) -> Result<Vec<(String, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("check-{want}"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < want && start.elapsed() < Duration::from_secs(60) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    Ok(out)
}

#[test]
fn detect_publishes_findings_keyed_by_id() -> Result<()> {
    let broker = Broker::start()?;
    let tmp = tempfile::tempdir()?;
    let events = tmp.path().join("events.ndjson");
    let scenario = repo().join("pipelines/sim-small.toml");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_string();
    let out = run_groundtruth(&["simulate", "--scenario", &s(&scenario), "-o", &s(&events)])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let findings = tmp.path().join("findings.ndjson");
    let bootstrap = broker.bootstrap();
    let detect = || {
        run_groundtruth(&[
            "--brokers",
            &bootstrap,
            "detect",
            "--input",
            &s(&events),
            "--output",
            &s(&findings),
            "--findings-topic",
            "findings",
        ])
    };
    let out = detect()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{err}");
    let file: BTreeMap<String, Finding> = std::fs::read_to_string(&findings)?
        .lines()
        .map(|l| {
            let f: Finding = serde_json::from_str(l)?;
            Ok((f.finding_id.clone(), f))
        })
        .collect::<Result<_>>()?;
    ensure!(file.len() > 10, "only {} findings", file.len());
    ensure!(
        err.contains(&format!("published {} findings", file.len())),
        "{err}"
    );

    let got = read_all(&broker, "findings", file.len())?;
    ensure!(
        got.len() == file.len(),
        "read {} of {}",
        got.len(),
        file.len()
    );
    for (key, value) in &got {
        let f: Finding = serde_json::from_str(value)?;
        f.validate()?;
        ensure!(
            *key == f.finding_id,
            "key {key} for finding {}",
            f.finding_id
        );
        ensure!(file.get(key) == Some(&f), "{key} differs from the file");
    }

    // A re-run publishes the same ids again.
    let out = detect()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let twice = read_all(&broker, "findings", 2 * file.len())?;
    ensure!(twice.len() == 2 * file.len(), "read {}", twice.len());
    let ids: BTreeSet<&String> = twice.iter().map(|(k, _)| k).collect();
    ensure!(ids.len() == file.len() && ids.iter().all(|k| file.contains_key(*k)));
    Ok(())
}
