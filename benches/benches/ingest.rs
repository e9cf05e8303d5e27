//! Ingest throughput, each figure beside its baseline measured in the same
//! run on the same machine:
//!
//! * decode only (NDJSON line → validated event → Arrow builders) vs
//!   NDJSON file → Parquet lake (target: lake ≥ 60% of decode-only);
//! * a plain rdkafka consumer draining the topic vs Kafka → lake on the
//!   same broker (target: ≥ 80%);
//! * peak RSS.
//!
//! `cargo bench -p groundtruth-benches --bench ingest` (env `BENCH_EVENTS`,
//! default 500000; `BENCH_KAFKA=0` skips the Kafka part). Results are
//! printed and written to `target/bench-ingest.json`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use groundtruth_benches::{plain_consumer, simulate_ndjson, Figure};
use groundtruth_event::{decode, DayZone, DecodeOptions, EventBatchBuilder};
use groundtruth_ingest::{ingest_files, FlushPolicy, Ingestor};
use groundtruth_kafka::{ingest_kafka, KafkaOptions, TopicProducer};
use groundtruth_lake::{LakeOptions, LakeWriter};
use groundtruth_tests::peak_rss_mb;

fn decode_only(path: &Path) -> Result<Figure> {
    let started = Instant::now();
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let opts = DecodeOptions::default();
    let mut builder = EventBatchBuilder::with_capacity(DayZone::default(), 64 * 1024);
    let (mut events, mut bytes, mut rows) = (0u64, 0u64, 0usize);
    for line in reader.split(b'\n') {
        let line = line?;
        bytes += line.len() as u64 + 1;
        if let Ok(e) = decode(&line, &opts) {
            builder.append(&e, line.len());
            events += 1;
        }
        if builder.len() >= 64 * 1024 {
            rows += builder.finish()?.num_rows();
        }
    }
    rows += builder.finish()?.num_rows();
    assert_eq!(rows as u64, events);
    Ok(Figure {
        name: "decode only (NDJSON → Arrow)",
        events,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn file_to_lake(path: &Path, lake: &Path) -> Result<Figure> {
    let writer = LakeWriter::open(lake, LakeOptions::default())?;
    let mut ing = Ingestor::new(
        writer,
        DecodeOptions::default(),
        FlushPolicy::default(),
        "file",
    );
    let s = ingest_files(&mut ing, &[path.to_path_buf()], false)?;
    Ok(Figure {
        name: "NDJSON file → Parquet lake",
        events: s.counts.accepted,
        bytes: s.counts.bytes,
        seconds: s.seconds,
    })
}

fn kafka_to_lake(bootstrap: &str, topic: &str, lake: &Path) -> Result<Figure> {
    let writer = LakeWriter::open(lake, LakeOptions::default())?;
    let mut ing = Ingestor::new(
        writer,
        DecodeOptions::default(),
        FlushPolicy::default(),
        "kafka",
    );
    let opts = KafkaOptions {
        brokers: bootstrap.into(),
        topics: vec![topic.into()],
        group_id: "bench-lake".into(),
        exit_when_idle: Some(Duration::from_secs(3)),
        ..KafkaOptions::default()
    };
    let s = ingest_kafka(&mut ing, &opts, &AtomicBool::new(false))?;
    // The run ends 3 s after the last message and includes the group join;
    // subtract the idle wait.
    let seconds = s.seconds - 3.0;
    Ok(Figure {
        name: "Kafka → Parquet lake",
        events: s.counts.accepted,
        bytes: s.counts.bytes,
        seconds,
    })
}

fn main() -> Result<()> {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("events.ndjson");
    simulate_ndjson(n, &input)?;
    let size = std::fs::metadata(&input)?.len();
    println!("input: {n} simulated events, {:.1} MB", size as f64 / 1e6);

    let mut figures = Vec::new();
    let decode = decode_only(&input)?;
    let file = file_to_lake(&input, &tmp.path().join("lake-file"))?;
    let rss_file = peak_rss_mb();
    figures.push(decode);
    figures.push(file);

    let kafka = std::env::var("BENCH_KAFKA")
        .map(|v| v != "0")
        .unwrap_or(true);
    if kafka {
        let broker =
            groundtruth_tests::Broker::start().context("BENCH_KAFKA=0 skips the Kafka part")?;
        broker.create_topic("bench-events", 3)?;
        let mut sink = TopicProducer::new(&broker.bootstrap(), "bench-events", &[])?;
        let t = Instant::now();
        for line in BufReader::new(std::fs::File::open(&input)?).split(b'\n') {
            let line = line?;
            sink.send_raw(b"k", &line);
        }
        sink.flush(Duration::from_secs(600))?;
        println!("produced {n} messages in {:.1}s", t.elapsed().as_secs_f64());
        figures.push(plain_consumer(
            &broker.bootstrap(),
            "bench-events",
            n as u64,
        )?);
        figures.push(kafka_to_lake(
            &broker.bootstrap(),
            "bench-events",
            &tmp.path().join("lake-kafka"),
        )?);
    }

    println!(
        "\n{:<34} {:>10} {:>12} {:>9} {:>8}",
        "run", "events", "events/s", "MB/s", "seconds"
    );
    for f in &figures {
        println!(
            "{:<34} {:>10} {:>12.0} {:>9.1} {:>8.2}",
            f.name,
            f.events,
            f.eps(),
            f.mbps(),
            f.seconds
        );
    }
    let ratio_file = figures[1].eps() / figures[0].eps();
    println!(
        "\nfile → lake / decode only: {:.0}% (target ≥ 60%)",
        ratio_file * 100.0
    );
    let mut json = serde_json::json!({
        "events": n, "input_mb": size as f64 / 1e6,
        "decode_eps": figures[0].eps(), "decode_mbps": figures[0].mbps(),
        "file_lake_eps": figures[1].eps(), "file_lake_mbps": figures[1].mbps(),
        "file_vs_decode": ratio_file, "peak_rss_mb_after_file": rss_file,
    });
    if figures.len() == 4 {
        let ratio_kafka = figures[3].eps() / figures[2].eps();
        println!(
            "Kafka → lake / plain consumer: {:.0}% (target ≥ 80%)",
            ratio_kafka * 100.0
        );
        json["kafka_plain_eps"] = figures[2].eps().into();
        json["kafka_lake_eps"] = figures[3].eps().into();
        json["kafka_vs_plain"] = ratio_kafka.into();
    }
    let rss = peak_rss_mb();
    println!("peak RSS: {rss:.0} MB (after file ingest: {rss_file:.0} MB)");
    json["peak_rss_mb"] = rss.into();
    let out = groundtruth_benches::write_report("ingest", &json)?;
    println!("wrote {}", out.display());
    Ok(())
}
