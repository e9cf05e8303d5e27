//! The live service (`groundtruth run`) from the broker, all detectors on,
//! beside a plain rdkafka consumer draining the same topic in the same run:
//!
//! * sustained throughput (events/s from the first to the last message
//!   read, window closes included) and its ratio to the plain consumer
//!   (target ≥ 80%);
//! * detection latency: the time one window's detection takes (p50, p99;
//!   target p99 ≤ 2 s), and from the watermark passing a window's horizon
//!   to its findings stored while the whole backlog is replayed at broker
//!   speed (windows then wait behind each other: in a live stream a day's
//!   windows close once a day and do not queue);
//! * resident memory sampled through the run (start, middle, end: flat),
//!   and before the service starts (the producer's and plain consumer's
//!   heap, which the samples include);
//! * then the live edge: the service restarted from its checkpoint while
//!   the next days are produced at a steady rate it keeps up with (as
//!   a live stream is), so each window closes as its horizon is read and
//!   waits behind nothing: watermark passing the horizon → findings stored
//!   (p50, p99; the target p99 ≤ 2 s) and each window's detection.
//!
//! `cargo bench -p groundtruth-benches --bench live` (env `BENCH_EVENTS`,
//! default 1000000: about 14 simulated days; `BENCH_TAIL_DAYS`, default 4,
//! produced afterwards at `BENCH_TAIL_RATE` events/s, default 10000).
//! Writes `target/bench-live.json`.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use groundtruth_benches::{env_num, plain_consumer, simulate_ndjson};
use groundtruth_event::DecodeOptions;
use groundtruth_ingest::{FlushPolicy, Ingestor};
use groundtruth_kafka::{KafkaOptions, TopicProducer};
use groundtruth_lake::{LakeOptions, LakeWriter};
use groundtruth_live::{run_live, LiveOptions};
use groundtruth_tests::rss_mb;

/// The allocator of the `groundtruth` binary, so that resident memory is
/// the service's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const TOPIC: &str = "bench-live";

/// The region of an event line (the message key: a detector's evidence
/// stays on one partition).
fn region(line: &[u8]) -> &[u8] {
    let pat = b"\"region\":\"";
    line.windows(pat.len())
        .position(|w| w == pat)
        .and_then(|i| {
            let rest = &line[i + pat.len()..];
            rest.iter().position(|&b| b == b'"').map(|e| &rest[..e])
        })
        .unwrap_or(b"")
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Events of one simulated day of the default week (see `simulate_ndjson`).
const EVENTS_PER_DAY: usize = 71_000;

fn main() -> Result<()> {
    let n = env_num("BENCH_EVENTS", 1_000_000)? as usize;
    let tail_days = env_num("BENCH_TAIL_DAYS", 4)? as usize;
    let tail_rate = env_num("BENCH_TAIL_RATE", 10_000)?.max(1) as f64;
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("events.ndjson");
    simulate_ndjson(n + tail_days * EVENTS_PER_DAY, &input)?;
    let broker = groundtruth_tests::Broker::start()?;
    broker.create_topic(TOPIC, 3)?;
    let mut sink = TopicProducer::new(&broker.bootstrap(), TOPIC, &[])?;
    let t = Instant::now();
    // The first n events are the backlog; the rest come at the live edge.
    let mut tail: Vec<Vec<u8>> = Vec::new();
    for (i, line) in BufReader::new(std::fs::File::open(&input)?)
        .split(b'\n')
        .enumerate()
    {
        let line = line?;
        if i < n {
            sink.send_raw(region(&line), &line);
        } else {
            tail.push(line);
        }
    }
    sink.flush(Duration::from_secs(1800))?;
    println!("produced {n} messages in {:.1}s", t.elapsed().as_secs_f64());

    let plain = plain_consumer(&broker.bootstrap(), TOPIC, n as u64)?;

    // What this process holds before the service starts: the producer's
    // and the plain consumer's heap (librdkafka's, on glibc's malloc),
    // which the service's figures below include.
    let before_service = rss_mb();
    // Memory, sampled every 250 ms while the service runs.
    let samples: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done) = (samples.clone(), done.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if let Ok(mut s) = samples.lock() {
                    s.push((t.elapsed().as_secs_f64(), rss_mb()));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let cfg = groundtruth_config::Config::defaults();
    let lake = tmp.path().join("lake");
    // The service's ingestor over the lake (opened again for the restart).
    let ingestor = |lake: &std::path::Path| -> Result<Ingestor> {
        Ok(Ingestor::new(
            LakeWriter::open(lake, LakeOptions::default())?,
            DecodeOptions::default(),
            FlushPolicy::default(),
            "kafka",
        )
        .with_lateness_s(cfg.ingest.allowed_lateness_s)
        .without_late_count())
    };
    let mut ing = ingestor(&lake)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opts = LiveOptions {
        kafka: KafkaOptions {
            brokers: broker.bootstrap(),
            topics: vec![TOPIC.into()],
            group_id: "bench-live".into(),
            exit_when_idle: Some(Duration::from_secs(2)),
            ..KafkaOptions::default()
        },
        state_dir: tmp.path().join("state"),
        lake_dir: lake,
        zone: cfg.lake.day_zone,
        schedule: cfg.schedule(),
        calibration: cfg.detect.calibration.clone(),
        findings_topic: Some("findings".into()),
        store: rt.block_on(groundtruth_store::ReviewStore::open(
            &tmp.path()
                .join("state")
                .join("review.db")
                .display()
                .to_string(),
            &Default::default(),
        ))?,
        runtime: rt.handle().clone(),
        window_memory_rows: cfg.live.window_memory_rows,
        close_cache: cfg.detect.close_cache,
    };
    let s = run_live(&mut ing, &opts, &AtomicBool::new(false))?;
    drop(ing);

    // The live edge: the same service restarted from its checkpoint while
    // the next days arrive at a rate it keeps up with.
    let tail_n = tail.len();
    let producer = {
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || -> Result<f64> {
            let mut sink = TopicProducer::new(&bootstrap, TOPIC, &[])?;
            let t = Instant::now();
            for (i, chunk) in tail.chunks(1000).enumerate() {
                for line in chunk {
                    sink.send_raw(region(line), line);
                }
                sink.flush(Duration::from_secs(60))?;
                let due = Duration::from_secs_f64(((i + 1) * 1000) as f64 / tail_rate);
                if let Some(wait) = due.checked_sub(t.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(t.elapsed().as_secs_f64())
        })
    };
    let mut ing = ingestor(&opts.lake_dir)?;
    let edge = run_live(&mut ing, &opts, &AtomicBool::new(false))?;
    let tail_s = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the live-edge producer panicked"))??;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let live_eps = s.messages as f64 / s.read_s;
    let ratio = live_eps / plain.eps();
    let mut lat = s.latencies_s.clone();
    lat.sort_by(f64::total_cmp);
    let mut det = s.detect_s.clone();
    det.sort_by(f64::total_cmp);
    let mut edge_lat = edge.latencies_s.clone();
    edge_lat.sort_by(f64::total_cmp);
    let mut edge_det = edge.detect_s.clone();
    edge_det.sort_by(f64::total_cmp);
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(f64::NAN, |s| s.1)
    };
    println!(
        "\nplain consumer: {:.0} msg/s ({} in {:.1} s)",
        plain.eps(),
        plain.events,
        plain.seconds
    );
    println!(
        "live service:   {:.0} events/s ({} read in {:.1} s; {} windows closed, {} findings) = {:.0}% of plain (target ≥ 80%)",
        live_eps,
        s.messages,
        s.read_s,
        s.windows_closed,
        s.findings_stored,
        ratio * 100.0
    );
    println!(
        "detection of one window (SQL + detectors, 7 days of context): p50 {:.3} s, p99 {:.3} s over {} windows (target p99 ≤ 2 s)",
        pct(&det, 0.5),
        pct(&det, 0.99),
        det.len()
    );
    println!(
        "watermark passing a horizon → findings stored, while replaying the backlog as fast as the broker serves it (windows queue behind each other): p50 {:.3} s, p99 {:.3} s",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
    );
    println!(
        "live edge ({tail_n} events over {tail_s:.1} s = {:.0}/s, service restarted from its checkpoint): \
         watermark passing a horizon → findings stored p50 {:.3} s, p99 {:.3} s over {} windows (target p99 ≤ 2 s); \
         detection p50 {:.3} s, p99 {:.3} s",
        tail_n as f64 / tail_s,
        pct(&edge_lat, 0.5),
        pct(&edge_lat, 0.99),
        edge_lat.len(),
        pct(&edge_det, 0.5),
        pct(&edge_det, 0.99),
    );
    println!(
        "RSS: before the service {before_service:.0} MB; start {:.0} MB, 25% {:.0}, middle {:.0}, 75% {:.0}, end {:.0} MB",
        at(0.02),
        at(0.25),
        at(0.5),
        at(0.75),
        at(1.0)
    );
    let json = serde_json::json!({
        "events": n,
        "plain_eps": plain.eps(),
        "live_eps": live_eps,
        "live_vs_plain": ratio,
        "windows_closed": s.windows_closed,
        "findings": s.findings_stored,
        "window_detect_p50_s": pct(&det, 0.5),
        "window_detect_p99_s": pct(&det, 0.99),
        // Every window's detection, sorted: p99 over ~30 windows is the
        // slowest one, so the whole spread is kept.
        "window_detect_s": det.clone(),
        "backlog_latency_p50_s": pct(&lat, 0.5),
        "backlog_latency_p99_s": pct(&lat, 0.99),
        "edge_events": tail_n,
        "edge_eps": tail_n as f64 / tail_s,
        "edge_windows": edge_lat.len(),
        "edge_latency_p50_s": pct(&edge_lat, 0.5),
        "edge_latency_p99_s": pct(&edge_lat, 0.99),
        "edge_latency_s": edge_lat.clone(),
        "edge_detect_p50_s": pct(&edge_det, 0.5),
        "edge_detect_p99_s": pct(&edge_det, 0.99),
        "rss_mb": {"before_service": before_service, "start": at(0.02), "q25": at(0.25), "middle": at(0.5), "q75": at(0.75), "end": at(1.0)},
    });
    let out = groundtruth_benches::write_report("live", &json)?;
    println!("wrote {}", out.display());
    Ok(())
}
