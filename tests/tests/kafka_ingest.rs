//! End-to-end: simulated and malformed events through a real tansu broker
//! into the lake, by the real `groundtruth` binary; with kill -9 mid-stream
//! and a broker outage.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use groundtruth_kafka::TopicProducer;
use groundtruth_sim::{simulate, Scenario, VecSink};
use groundtruth_tests::{
    fill_disk, groundtruth_bin, send_signal, wait_out_session, Broker, ChildGuard, Tmpfs,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

const TOPIC: &str = "app-events";

/// `n` simulated events (JSON lines with their account key), in time order.
fn simulated(n: usize) -> Vec<(String, Vec<u8>)> {
    let text = include_str!("../../pipelines/sim-small.toml");
    let mut scenario = Scenario::from_toml_str(text).expect("sim-small.toml");
    scenario.days = 10;
    let mut sink = VecSink::default();
    simulate(&scenario, &mut sink).expect("simulate");
    assert!(sink.0.len() >= n, "scenario too small: {}", sink.0.len());
    sink.0.truncate(n);
    sink.0
}

/// `n` malformed messages of every class, with the reason code each must get.
fn malformed(n: usize) -> Vec<(Vec<u8>, &'static str)> {
    (0..n)
        .map(|i| {
            let id = format!("bad-{i}");
            let (text, code) = match i % 8 {
                0 => (format!("{{\"event_id\":\"{id}\",\"ts\":"), "invalid_json"),
                1 => (format!("{{\"event_id\":\"{id}\",\"ts\":\"2026-11-02T08:00:00+08:00\",\"app_id\":\"a\",\"account_id\":\"u\",\"kind\":\"check_in\",\"lat\":123,\"lon\":108}}"), "invalid_value"),
                2 => (format!("{{\"event_id\":\"{id}\",\"ts\":\"2026-11-02T08:00:00+08:00\",\"app_id\":\"a\",\"account_id\":\"u\",\"kind\":\"teleport\"}}"), "invalid_value"),
                3 => (format!("{{\"event_id\":\"{id}\",\"ts\":\"2026-11-02T08:00:00+08:00\",\"app_id\":\"a\",\"kind\":\"check_in\"}}"), "missing_field"),
                4 => (format!("{{\"event_id\":\"{id}\",\"ts\":\"2026-11-02T08:00:00+08:00\",\"app_id\":\"river-chief\",\"account_id\":\"u\",\"kind\":\"track_point\",\"lat\":22.8,\"lon\":108.3}}"), "missing_field"),
                5 => (format!("{{\"event_id\":\"{id}\",\"ts\":\"2026-11-02T08:00:00+08:00\",\"app_id\":\"a\",\"account_id\":42,\"kind\":\"check_in\"}}"), "wrong_type"),
                6 => (format!("[\"{id}\"]"), "not_an_object"),
                _ => (format!("{id} is not JSON at all"), "invalid_json"),
            };
            (text.into_bytes(), code)
        })
        .collect()
}

fn event_ids(events: &[(String, Vec<u8>)]) -> HashSet<String> {
    events
        .iter()
        .map(|(_, json)| {
            let v: serde_json::Value = serde_json::from_slice(json).expect("sim json");
            v["event_id"].as_str().expect("event_id").to_string()
        })
        .collect()
}

fn produce(broker: &Broker, events: &[(String, Vec<u8>)], bad: &[(Vec<u8>, &str)]) -> Result<()> {
    produce_with(broker, events, bad, &[])
}

/// One message per record batch: tansu 0.6.0 cannot serve a fetch that
/// starts inside a batch (see `broker_offsets.rs`), which is where a
/// consumer restarted after kill -9 resumes.
fn produce_one_per_batch(broker: &Broker, events: &[(String, Vec<u8>)]) -> Result<()> {
    let cfg = [
        ("batch.num.messages".to_string(), "1".to_string()),
        ("linger.ms".to_string(), "0".to_string()),
    ];
    produce_with(broker, events, &[], &cfg)
}

fn produce_with(
    broker: &Broker,
    events: &[(String, Vec<u8>)],
    bad: &[(Vec<u8>, &str)],
    cfg: &[(String, String)],
) -> Result<()> {
    let mut sink = TopicProducer::new(&broker.bootstrap(), TOPIC, cfg)?;
    let every = if bad.is_empty() {
        usize::MAX
    } else {
        (events.len() / bad.len()).max(1)
    };
    let mut bad_iter = bad.iter();
    for (i, (key, json)) in events.iter().enumerate() {
        sink.send_raw(key.as_bytes(), json);
        if i % every == 0 {
            if let Some((b, _)) = bad_iter.next() {
                sink.send_raw(b"bad", b);
            }
        }
    }
    for (b, _) in bad_iter {
        sink.send_raw(b"bad", b);
    }
    sink.flush(Duration::from_secs(120))?;
    Ok(())
}

fn ingest_cmd(broker: &Broker, lake: &Path, group: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(groundtruth_bin());
    cmd.args(["ingest", "--kafka", "--quiet", "--group", group])
        .arg("--lake")
        .arg(lake)
        .args(["--brokers", &broker.bootstrap()])
        .args(["--set", "metrics.listen=\"\""])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs an ingest that exits when idle; returns its stderr.
fn ingest_until_idle(broker: &Broker, lake: &Path, group: &str, extra: &[&str]) -> Result<String> {
    ingest_until_idle_for(broker, lake, group, extra, 5)
}

/// As [`ingest_until_idle`], exiting after `idle` seconds without a message.
/// After a member of the group was killed, `idle` must exceed the session
/// timeout: the dead member's partitions are reassigned only when it expires.
fn ingest_until_idle_for(
    broker: &Broker,
    lake: &Path,
    group: &str,
    extra: &[&str],
    idle: u32,
) -> Result<String> {
    let mut cmd = ingest_cmd(broker, lake, group, extra);
    cmd.args(["--exit-when-idle", &idle.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = ChildGuard::spawn(cmd)?;
    let out = child.into_inner().wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ensure!(out.status.success(), "ingest failed: {stderr}");
    Ok(stderr)
}

/// A running `groundtruth ingest --kafka` (flushing every 200 ms) logging
/// at debug to `log` (a pipe nobody reads would fill up and block it).
fn logged_ingest(
    broker: &Broker,
    lake: &Path,
    group: &str,
    log: &Path,
    extra: &[&str],
) -> Result<ChildGuard> {
    let mut args = vec!["--set", "ingest.flush_interval_ms=200"];
    args.extend_from_slice(extra);
    let mut c = ingest_cmd(broker, lake, group, &args);
    c.env("RUST_LOG", "info,groundtruth_ingest=debug");
    c.stdout(Stdio::null()).stderr(std::fs::File::create(log)?);
    ChildGuard::spawn(c)
}

/// Stops a [`logged_ingest`] with SIGTERM; it must exit cleanly (which
/// commits the offsets) within 60 s.
fn stop_ingest(mut ingest: ChildGuard, log: &Path) -> Result<()> {
    send_signal(ingest.id(), libc::SIGTERM)?;
    let status = ingest
        .wait_timeout(Duration::from_secs(60))?
        .context("ingest did not stop on SIGTERM")?;
    ensure!(
        status.success(),
        "ingest exited with {status}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    Ok(())
}

/// Waits up to `limit` until the lake holds at least `n` events.
fn wait_stored(lake: &Path, n: usize, limit: Duration) -> Result<()> {
    wait_for(&format!("{n} events in the lake"), limit, || {
        Ok(count(lake, "SELECT count(*) FROM events")? >= n as i64)
    })
}

/// Stops a [`logged_ingest`] cleanly and checks the end of a drill: the
/// lake holds every expected event once, and the offsets were committed
/// (the same group reads nothing more).
fn stop_and_check(
    broker: &Broker,
    lake: &Path,
    ingest: ChildGuard,
    log: &Path,
    group: &str,
    expected: &HashSet<String>,
) -> Result<()> {
    stop_ingest(ingest, log)?;
    assert_exactly_once(lake, expected)?;
    let out = ingest_until_idle(broker, lake, group, &[])?;
    ensure!(
        out.contains("ingested 0 Kafka messages"),
        "offsets were not committed: {out}"
    );
    Ok(())
}

fn query(lake: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let ctx = groundtruth_sql::open_session(lake).await?;
        Ok(groundtruth_sql::run_sql(&ctx, sql).await?.1)
    })
}

fn count(lake: &Path, sql: &str) -> Result<i64> {
    let b = query(lake, sql)?;
    Ok(b.first()
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0))
}

fn lake_event_ids(lake: &Path) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for b in query(lake, "SELECT event_id FROM events")? {
        let c = b.column(0).as_string::<i32>();
        for i in 0..c.len() {
            out.insert(c.value(i).to_string());
        }
    }
    Ok(out)
}

/// Exactly the expected event ids, each once.
fn assert_exactly_once(lake: &Path, expected: &HashSet<String>) -> Result<()> {
    let rows = count(lake, "SELECT count(*) FROM events")?;
    let distinct = count(lake, "SELECT count(DISTINCT event_id) FROM events")?;
    ensure!(
        rows == distinct,
        "the lake holds {rows} rows but {distinct} distinct event_ids: duplicates"
    );
    let got = lake_event_ids(lake)?;
    let missing = expected.difference(&got).count();
    let extra = got.difference(expected).count();
    ensure!(
        missing == 0 && extra == 0,
        "lake: {missing} event_ids missing, {extra} unexpected (of {})",
        expected.len()
    );
    Ok(())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has_event_files(lake: &Path) -> bool {
    fn walk(d: &Path) -> bool {
        std::fs::read_dir(d)
            .map(|it| {
                it.flatten().any(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        p.extension().is_some_and(|x| x == "parquet")
                    }
                })
            })
            .unwrap_or(false)
    }
    walk(&lake.join("events"))
}

#[test]
fn kafka_100k_events_and_1k_malformed_land_exactly_once() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic(TOPIC, 3)?;
    let events = simulated(100_000);
    let expected = event_ids(&events);
    let bad = malformed(1_000);
    produce(&broker, &events, &bad)?;
    // Resend 500 events: the sender retried.
    produce(&broker, &events[..500], &[])?;

    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let t = Instant::now();
    let log = ingest_until_idle(&broker, &lake, "e2e", &[])?;
    eprintln!("ingest took {:.1}s: {log}", t.elapsed().as_secs_f64());

    assert_exactly_once(&lake, &expected)?;
    ensure!(count(&lake, "SELECT count(*) FROM dead_letters")? == 1000);
    ensure!(
        count(
            &lake,
            "SELECT count(DISTINCT \"offset\" * 10 + \"partition\") FROM dead_letters"
        )? == 1000
    );
    // Each malformed message got the reason of its class.
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for (_, code) in &bad {
        *want.entry(code.to_string()).or_default() += 1;
    }
    let mut got = BTreeMap::new();
    for b in query(
        &lake,
        "SELECT reason_code, count(*) FROM dead_letters GROUP BY reason_code",
    )? {
        for i in 0..b.num_rows() {
            got.insert(
                b.column(0).as_string::<i32>().value(i).to_string(),
                b.column(1).as_primitive::<Int64Type>().value(i),
            );
        }
    }
    ensure!(
        got == want,
        "dead letters by reason: got {got:?}, want {want:?}"
    );
    ensure!(count(&lake, "SELECT count(*) FROM dead_letters WHERE source_kind = 'kafka' AND source = 'app-events' AND length(reason) > 10")? == 1000);

    // The same bad messages went to app-events.dlq, with their reason.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "dlq-check")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&["app-events.dlq"])?;
    let mut dlq = 0;
    let mut with_reason = 0;
    let start = Instant::now();
    while dlq < 1000 && start.elapsed() < Duration::from_secs(60) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            dlq += 1;
            if m.headers()
                .is_some_and(|h| h.iter().any(|h| h.key == "gt-reason-code"))
            {
                with_reason += 1;
            }
        }
    }
    ensure!(
        dlq == 1000 && with_reason == 1000,
        "DLQ held {dlq} messages ({with_reason} with a reason)"
    );

    // Offsets were committed: the same group reads nothing new.
    let log = ingest_until_idle(&broker, &lake, "e2e", &[])?;
    ensure!(
        log.contains("ingested 0 Kafka messages"),
        "re-run of the same group: {log}"
    );
    // A new group re-reads everything: the lake still holds each event once.
    let log = ingest_until_idle(&broker, &lake, "replay", &[])?;
    ensure!(log.contains("accepted 0,"), "replay by a new group: {log}");
    assert_exactly_once(&lake, &expected)?;
    ensure!(count(&lake, "SELECT count(*) FROM dead_letters")? == 1000);
    Ok(())
}

#[test]
fn kafka_kill9_mid_stream_loses_and_duplicates_nothing() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic(TOPIC, 3)?;
    let events = simulated(100_000);
    let expected = event_ids(&events);
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let fast = ["--set", "ingest.flush_interval_ms=50"];

    produce_one_per_batch(&broker, &events[..50_000])?;
    let mut killed = None;
    for round in 0..2 {
        if let Some(at) = killed {
            wait_out_session(at);
        }
        let log_path = tmp.path().join(format!("ingest-{round}.log"));
        let mut ingest = ChildGuard::spawn({
            let mut c = ingest_cmd(&broker, &lake, "crash", &fast);
            c.env("RUST_LOG", "info,groundtruth_ingest=debug");
            c.stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path)?);
            c
        })?;
        let before = if has_event_files(&lake) {
            count(&lake, "SELECT count(*) FROM events")?
        } else {
            0
        };
        let started = Instant::now();
        wait_for("a new flush", Duration::from_secs(60), || {
            Ok(has_event_files(&lake) && count(&lake, "SELECT count(*) FROM events")? > before)
        })
        .with_context(|| {
            format!(
                "round {round}, ingest log:\n{}\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default(),
                broker.log_tail(40)
            )
        })?;
        eprintln!(
            "round {round}: first new flush after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        ingest.kill9()?;
        killed = Some(Instant::now());
        let at_kill = count(&lake, "SELECT count(*) FROM events")?;
        eprintln!("round {round}: killed with {at_kill} events in the lake");
        if round == 0 {
            produce_one_per_batch(&broker, &events[50_000..])?;
        }
    }
    if let Some(at) = killed {
        wait_out_session(at);
    }
    let log = ingest_until_idle_for(&broker, &lake, "crash", &[], 20)?;
    eprintln!("final run: {log}");
    assert_exactly_once(&lake, &expected)
}

#[test]
fn kafka_broker_paused_30s_mid_stream_loses_nothing() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic(TOPIC, 3)?;
    let events = simulated(60_000);
    let expected = event_ids(&events);
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");

    produce(&broker, &events[..30_000], &[])?;
    let log_path = tmp.path().join("ingest.log");
    // The session outlives the outage, so the consumer keeps its
    // partitions instead of rejoining the group.
    let mut ingest = logged_ingest(
        &broker,
        &lake,
        "outage",
        &log_path,
        &["--set", "kafka.session_timeout_ms=60000"],
    )?;
    let show_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("first events", Duration::from_secs(60), || {
        Ok(has_event_files(&lake) && count(&lake, "SELECT count(*) FROM events")? > 0)
    })?;
    broker.pause()?;
    eprintln!(
        "broker paused with {} events in the lake",
        count(&lake, "SELECT count(*) FROM events")?
    );
    std::thread::sleep(Duration::from_secs(30));
    broker.resume()?;
    ensure!(
        ingest.wait_timeout(Duration::ZERO)?.is_none(),
        "ingest died during the outage"
    );
    produce(&broker, &events[30_000..], &[])?;
    wait_stored(&lake, expected.len(), Duration::from_secs(120))
        .with_context(|| format!("ingest log:\n{}", show_log()))?;
    // A clean stop commits the offsets.
    stop_and_check(&broker, &lake, ingest, &log_path, "outage", &expected)
}

/// Issue 9's drill: the broker process is stopped for 60 s mid-stream and
/// started again on the same durable storage (SQLite). The consumer rides
/// out the refused connections, rejoins its group, and the lake ends with
/// every event once; the offsets are committed.
#[test]
fn kafka_broker_stopped_60s_with_durable_storage_loses_nothing() -> Result<()> {
    let mut broker = Broker::start_durable()?;
    broker.create_topic(TOPIC, 3)?;
    let events = simulated(30_000);
    let expected = event_ids(&events);
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    // Restarted consumers resume inside record batches, which tansu 0.6.0
    // cannot serve (see `produce_one_per_batch`).
    produce_one_per_batch(&broker, &events[..15_000])?;
    let log_path = tmp.path().join("ingest.log");
    let mut ingest = logged_ingest(&broker, &lake, "stopped", &log_path, &[])?;
    let show_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("first events", Duration::from_secs(60), || {
        Ok(has_event_files(&lake) && count(&lake, "SELECT count(*) FROM events")? >= 1_000)
    })?;
    broker.stop()?;
    let stored = count(&lake, "SELECT count(*) FROM events")?;
    eprintln!("broker stopped with {stored} events in the lake");
    std::thread::sleep(Duration::from_secs(60));
    ensure!(
        ingest.wait_timeout(Duration::ZERO)?.is_none(),
        "ingest died while the broker was down: {}",
        show_log()
    );
    broker.restart()?;
    produce_one_per_batch(&broker, &events[15_000..])?;
    wait_stored(&lake, expected.len(), Duration::from_secs(180)).with_context(|| {
        format!(
            "ingest log:\n{}\nbroker log:\n{}",
            show_log(),
            broker.log_tail(40)
        )
    })?;
    stop_and_check(&broker, &lake, ingest, &log_path, "stopped", &expected)
}

/// A hostile corpus of `n` messages: every class of damage a phone, a proxy
/// or an attacker can produce. Returns each message with the reason code
/// it must get, or `None` where several codes are right (random bytes are
/// invalid UTF-8 or invalid JSON depending on the draw).
fn hostile(n: usize) -> Vec<(Vec<u8>, Option<&'static str>)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let good = |i: usize| {
        format!("{{\"event_id\":\"h-{i}\",\"ts\":\"2026-11-02T08:00:00+08:00\",\"app_id\":\"a\",\"account_id\":\"u{i}\",\"kind\":\"check_in\",\"lat\":22.8,\"lon\":108.3}}")
    };
    (0..n)
        .map(|i| match i % 10 {
            // Cut short anywhere.
            0 => {
                let g = good(i);
                let cut = 1 + (next() as usize) % (g.len() - 2);
                (g.as_bytes()[..cut].to_vec(), Some("invalid_json"))
            }
            1 => (
                good(i)
                    .replace(&format!("\"u{i}\""), &i.to_string())
                    .into_bytes(),
                Some("wrong_type"),
            ),
            // Over the size limit (the test sets 4096 bytes).
            2 => (
                good(i)
                    .replace(
                        "\"lat\"",
                        &format!("\"note\":\"{}\",\"lat\"", "x".repeat(5000)),
                    )
                    .into_bytes(),
                Some("too_large"),
            ),
            // Random bytes.
            3 => {
                let len = 1 + (next() as usize) % 512;
                ((0..len).map(|_| next() as u8).collect(), None)
            }
            // Nested far deeper than any parser's stack should follow (and
            // under the size limit, so the parser meets it).
            4 => {
                let depth = 2_000;
                let mut v = "[".repeat(depth).into_bytes();
                v.extend("]".repeat(depth).into_bytes());
                (v, None)
            }
            // An object where a string belongs, nested.
            5 => (
                good(i)
                    .replace(
                        "\"2026-11-02T08:00:00+08:00\"",
                        "{\"a\":{\"b\":{\"c\":[1,2,{\"d\":null}]}}}",
                    )
                    .into_bytes(),
                Some("wrong_type"),
            ),
            // Invalid UTF-8 inside a string.
            6 => {
                let mut v = good(i).into_bytes();
                let at = v.iter().position(|&b| b == b'h').unwrap_or(1);
                v.splice(at..at, [0xff, 0xfe, 0xc3]);
                (v, Some("invalid_utf8"))
            }
            7 => (Vec::new(), None),
            8 => (
                good(i)
                    .replace(
                        "\"kind\":\"check_in\"",
                        "\"kind\":\"check_in\",\"kind\":\"report_submit\"",
                    )
                    .into_bytes(),
                Some("duplicate_field"),
            ),
            _ => (
                [&b"42"[..], b"null", b"\"text\"", b"true"][i / 10 % 4].to_vec(),
                Some("not_an_object"),
            ),
        })
        .collect()
}

/// Drill: 100k hostile messages all land in the dead letters with a reason
/// (the class's own where only one is right), nothing is accepted, nothing
/// panics, and the ingest ends cleanly.
#[test]
fn kafka_100k_hostile_messages_are_all_dead_letters_with_reasons() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic(TOPIC, 3)?;
    let n = 100_000;
    let corpus = hostile(n);
    let bad: Vec<(Vec<u8>, &str)> = corpus.iter().map(|(m, _)| (m.clone(), "")).collect();
    produce(&broker, &[], &bad)?;
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let t = Instant::now();
    let log = ingest_until_idle(
        &broker,
        &lake,
        "hostile",
        &[
            "--set",
            "kafka.dlq=false",
            "--set",
            "ingest.max_event_bytes=4096",
        ],
    )?;
    eprintln!("ingest took {:.1}s: {log}", t.elapsed().as_secs_f64());
    ensure!(!log.contains("panicked"), "{log}");
    ensure!(count(&lake, "SELECT count(*) FROM events")? == 0);
    ensure!(count(&lake, "SELECT count(*) FROM dead_letters")? == n as i64);
    ensure!(
        count(
            &lake,
            "SELECT count(*) FROM (SELECT DISTINCT \"partition\", \"offset\" FROM dead_letters)"
        )? == n as i64
    );
    ensure!(
        count(
            &lake,
            "SELECT count(*) FROM dead_letters WHERE length(reason) < 10 OR reason_code NOT IN \
             ('too_large','invalid_utf8','invalid_json','not_an_object','duplicate_field','missing_field','wrong_type','invalid_value')"
        )? == 0
    );
    // Where one code is right, each class got it: the counts per code are
    // at least the corpus's sure ones, and the rest (random bytes, deep
    // nesting, empty) add up.
    let mut sure: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, code) in &corpus {
        if let Some(c) = code {
            *sure.entry(c).or_default() += 1;
        }
    }
    let unsure = corpus.iter().filter(|(_, c)| c.is_none()).count() as i64;
    let mut extra = 0;
    for b in query(
        &lake,
        "SELECT reason_code, count(*) FROM dead_letters GROUP BY reason_code",
    )? {
        for i in 0..b.num_rows() {
            let code = b.column(0).as_string::<i32>().value(i);
            let got = b.column(1).as_primitive::<Int64Type>().value(i);
            let want = sure.get(code).copied().unwrap_or(0);
            ensure!(
                got >= want,
                "{code}: {got} dead letters, the corpus has {want} sure ones"
            );
            extra += got - want;
        }
    }
    ensure!(
        extra == unsure,
        "{extra} dead letters beyond the sure ones, {unsure} unsure messages"
    );
    // Raw bytes are kept (a prefix of the huge ones) for a look later.
    ensure!(
        count(
            &lake,
            "SELECT count(*) FROM dead_letters WHERE reason_code = 'too_large' AND raw_len > 4096"
        )? == (n / 10) as i64
    );
    Ok(())
}

/// The offsets `group` has committed on `partitions` partitions of the
/// topic, summed (partitions with none count 0).
fn committed_total(broker: &Broker, group: &str, partitions: i32) -> Result<i64> {
    use rdkafka::{Offset, TopicPartitionList};
    // Asking for committed offsets does not join the group.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(TOPIC, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .sum())
}

/// Issue 9's drill: the lake's disk fills up mid-stream. Ingestion pauses
/// with a clear error and commits no offset for what it could not store;
/// when space returns it resumes by itself, and the lake ends with every
/// event once.
#[test]
fn disk_full_pauses_ingestion_without_committing_and_resumes_losing_nothing() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic(TOPIC, 3)?;
    let events = simulated(40_000);
    let expected = event_ids(&events);
    let tmp = tempfile::tempdir()?;
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "32m")?;
    let lake = disk.dir.join("lake");
    let log_path = tmp.path().join("ingest.log");
    let mut ingest = logged_ingest(&broker, &lake, "diskfull", &log_path, &[])?;
    let show_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("the lake to open", Duration::from_secs(60), || {
        Ok(show_log().contains("Kafka partitions assigned"))
    })?;
    // The first quarter is stored; then the disk is full.
    produce(&broker, &events[..10_000], &[])?;
    wait_stored(&lake, 10_000, Duration::from_secs(60))
        .with_context(|| format!("ingest log:\n{}", show_log()))?;
    let ballast = disk.dir.join("ballast");
    let filled = fill_disk(&ballast)?;
    // Pausing makes the consumer fetch again from where it stopped, inside
    // a record batch, which tansu 0.6.0 cannot serve (see
    // `produce_one_per_batch`): one message per batch.
    produce_one_per_batch(&broker, &events[10_000..])?;
    wait_for("the lake write error", Duration::from_secs(60), || {
        Ok(show_log().contains("cannot write the lake"))
    })
    .with_context(|| format!("ingest log:\n{}", show_log()))?;
    // Paused: alive, several failed retries, and the committed offsets
    // cover no more than the lake holds.
    std::thread::sleep(Duration::from_secs(5));
    ensure!(
        ingest.wait_timeout(Duration::ZERO)?.is_none(),
        "ingest died on a full disk: {}",
        show_log()
    );
    let stored = count(&lake, "SELECT count(*) FROM events")?;
    let committed = committed_total(&broker, "diskfull", 3)?;
    eprintln!("disk full ({filled} bytes of ballast): {stored} events stored, {committed} offsets committed");
    ensure!(
        committed <= stored && stored < expected.len() as i64,
        "offsets committed past what is stored: {committed} committed, {stored} stored"
    );
    let log = show_log();
    ensure!(
        log.contains("No space left on device") && log.contains("ingestion paused"),
        "the error does not say what is wrong: {log}"
    );
    // Space returns: ingestion resumes by itself.
    std::fs::remove_file(&ballast)?;
    wait_stored(&lake, expected.len(), Duration::from_secs(120))
        .with_context(|| format!("ingest log:\n{}", show_log()))?;
    ensure!(
        show_log().contains("ingestion resumed"),
        "no resume logged: {}",
        show_log()
    );
    stop_ingest(ingest, &log_path)?;
    assert_exactly_once(&lake, &expected)?;
    ensure!(
        committed_total(&broker, "diskfull", 3)? == expected.len() as i64,
        "not every offset was committed at the end"
    );
    Ok(())
}
