//! Smoke tests of the tansu test broker with rdkafka: produce and consume
//! 10k messages through a consumer group, and a broker-outage (pause) drill.
//!
//! Needs tansu installed (`tests/run.sh` does it). Each test starts its own
//! broker; nextest runs `broker_*` binaries in a limited test group.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use groundtruth_tests::{was_sigkilled, Broker, ChildGuard};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message};

/// Records when the consumer got its first partition assignment.
struct JoinTimer {
    assigned_at: Mutex<Option<Instant>>,
}

impl ClientContext for JoinTimer {}

impl ConsumerContext for JoinTimer {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if tpl.count() > 0 {
                if let Ok(mut at) = self.assigned_at.lock() {
                    at.get_or_insert_with(Instant::now);
                }
            }
        }
    }
}

fn producer(broker: &Broker) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .context("creating producer")
}

fn consumer(broker: &Broker, group: &str) -> Result<StreamConsumer<JoinTimer>> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .create_with_context(JoinTimer {
            assigned_at: Mutex::new(None),
        })
        .context("creating consumer")
}

fn payload(i: usize) -> String {
    format!("msg-{i:06}")
}

/// Enqueues messages `range` (payload `msg-NNNNNN`, key = index) and returns
/// their delivery futures without waiting for them.
fn enqueue(
    p: &FutureProducer,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Result<Vec<DeliveryFuture>> {
    let mut futures = Vec::with_capacity(range.len());
    for i in range {
        let (key, value) = (i.to_string(), payload(i));
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        match p.send_result(record) {
            Ok(f) => futures.push(f),
            Err((e, _)) => bail!("enqueueing message {i}: {e}"),
        }
    }
    Ok(futures)
}

/// Awaits delivery reports; any failure is an error.
async fn delivered(futures: Vec<DeliveryFuture>) -> Result<usize> {
    let n = futures.len();
    for f in futures {
        match f.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, m))) => bail!("delivery failed: {e} (message {:?})", m.payload()),
            Err(_) => bail!("delivery future cancelled (producer dropped)"),
        }
    }
    Ok(n)
}

/// What a consumer saw.
struct Consumed {
    unique: HashSet<String>,
    total: usize,
    first_join: Duration,
    first_message: Duration,
    elapsed: Duration,
}

/// Consumes until `expected` distinct payloads were seen or `timeout`.
async fn consume(
    c: &StreamConsumer<JoinTimer>,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Result<Consumed> {
    let start = Instant::now();
    c.subscribe(&[topic]).context("subscribe")?;
    let mut unique = HashSet::with_capacity(expected);
    let mut total = 0;
    let mut first_message = None;
    while unique.len() < expected {
        let left = timeout.saturating_sub(start.elapsed());
        ensure!(
            !left.is_zero(),
            "consumed only {} distinct of {expected} messages ({total} total) in {timeout:?}",
            unique.len()
        );
        let msg = match tokio::time::timeout(left, c.recv()).await {
            Ok(m) => m.context("consumer error")?,
            Err(_) => continue, // deadline; reported by the ensure above
        };
        first_message.get_or_insert_with(|| start.elapsed());
        let body = msg
            .payload_view::<str>()
            .context("message without payload")?
            .context("payload is not UTF-8")?;
        unique.insert(body.to_owned());
        total += 1;
    }
    let assigned_at = c.context().assigned_at.lock().ok().and_then(|a| *a);
    Ok(Consumed {
        unique,
        total,
        first_join: assigned_at.map(|t| t - start).unwrap_or_default(),
        first_message: first_message.unwrap_or_default(),
        elapsed: start.elapsed(),
    })
}

fn expected(range: std::ops::Range<usize>) -> HashSet<String> {
    range.map(payload).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_10k_through_a_group() -> Result<()> {
    const N: usize = 10_000;
    let t = Instant::now();
    let broker = Broker::start()?;
    println!(
        "broker {} (pid {}) ready in {:?}",
        broker.bootstrap(),
        broker.pid(),
        t.elapsed()
    );

    let t = Instant::now();
    broker.create_topic("smoke", 3)?;
    println!("topic smoke (3 partitions) usable in {:?}", t.elapsed());

    let t = Instant::now();
    let p = producer(&broker)?;
    let n = delivered(enqueue(&p, "smoke", 0..N)?).await?;
    println!("produced {n} messages in {:?}", t.elapsed());

    let c = consumer(&broker, "smoke-group")?;
    let got = consume(&c, "smoke", N, Duration::from_secs(40)).await?;
    println!(
        "consumed {} messages ({} distinct) in {:?}; first group join took {:?}, \
         first message after {:?}",
        got.total,
        got.unique.len(),
        got.elapsed,
        got.first_join,
        got.first_message
    );
    ensure!(
        got.total == N,
        "expected exactly {N} messages, got {}",
        got.total
    );
    ensure!(got.unique == expected(0..N), "payload set differs");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_drill_loses_nothing() -> Result<()> {
    const BATCH: usize = 1_000;
    const PAUSE: Duration = Duration::from_secs(5);
    let broker = Broker::start()?;
    broker.create_topic("drill", 3)?;
    let p = producer(&broker)?;

    // A consumer keeps reading through the outage, like `groundtruth ingest`.
    let c = Arc::new(consumer(&broker, "drill-group")?);
    let reader = tokio::spawn({
        let c = Arc::clone(&c);
        async move { consume(&c, "drill", 3 * BATCH, Duration::from_secs(45)).await }
    });

    delivered(enqueue(&p, "drill", 0..BATCH)?).await?;

    broker.pause()?;
    let paused_at = Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let during = enqueue(&p, "drill", BATCH..2 * BATCH)?;
    let waiter = tokio::spawn({
        let acked = Arc::clone(&acked);
        async move {
            let mut n = 0;
            for f in during {
                match f.await {
                    Ok(Ok(_)) => n = acked.fetch_add(1, Ordering::SeqCst) + 1,
                    Ok(Err((e, _))) => bail!("delivery during outage failed: {e}"),
                    Err(_) => bail!("delivery future cancelled"),
                }
            }
            Ok(n)
        }
    });
    tokio::time::sleep(PAUSE).await;
    let acked_while_paused = acked.load(Ordering::SeqCst);
    broker.resume()?;
    let resumed_at = Instant::now();
    ensure!(
        acked_while_paused == 0,
        "{acked_while_paused} messages acked while the broker was SIGSTOPped"
    );
    let n = waiter.await.context("delivery waiter panicked")??;
    println!(
        "paused {:?}; {n} messages queued during the outage delivered {:?} after resume",
        resumed_at - paused_at,
        resumed_at.elapsed()
    );

    delivered(enqueue(&p, "drill", 2 * BATCH..3 * BATCH)?).await?;

    let got = reader.await.context("consumer task panicked")??;
    println!(
        "drill consumer: {} messages ({} distinct, {} redelivered) in {:?}; first join {:?}",
        got.total,
        got.unique.len(),
        got.total - got.unique.len(),
        got.elapsed,
        got.first_join
    );
    ensure!(
        got.unique == expected(0..3 * BATCH),
        "messages lost across the outage: {} distinct of {}",
        got.unique.len(),
        3 * BATCH
    );
    Ok(())
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn broker_is_killed_on_drop_even_when_paused() -> Result<()> {
    let broker = Broker::start()?;
    let pid = broker.pid();
    ensure!(broker.topics()?.is_empty(), "a fresh broker has no topics");
    broker.pause()?;
    drop(broker);
    ensure!(
        !process_exists(pid),
        "tansu pid {pid} survived Broker::drop"
    );
    Ok(())
}

#[test]
fn child_guard_kills_and_kill9_reports_sigkill() -> Result<()> {
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let mut child = ChildGuard::spawn(cmd)?;
    let status = child.kill9()?;
    ensure!(was_sigkilled(&status), "expected SIGKILL, got {status}");

    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let child = ChildGuard::spawn(cmd)?;
    let pid = child.id();
    ensure!(process_exists(pid), "sleep did not start");
    drop(child);
    ensure!(!process_exists(pid), "pid {pid} survived ChildGuard::drop");
    Ok(())
}
