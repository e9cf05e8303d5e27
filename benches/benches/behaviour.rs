//! The five behaviour detectors (phone_farm, bulk_check_in,
//! registration_farm, record_churn, report_inflation) over simulated weeks
//! of growing size: SQL features (DataFusion) and detector time, events/s
//! and peak memory, and how time grows with size.
//!
//! `cargo bench -p groundtruth-benches --bench behaviour` simulates each
//! size (`GT_BENCH_SIZES`, events, default `1000000,10000000`) into a lake,
//! then runs detection in a fresh child process (so its peak RSS is the
//! detection's own), prints a table and writes
//! `target/bench-behaviour.json`.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use groundtruth_tests::peak_rss_mb;

/// Child: detection over one lake; prints one JSON line.
fn detect_child(lake: &Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let ctx = groundtruth_sql::open_session(lake).await?;
        groundtruth_sql::register_event_views(&ctx).await?;
        let t = Instant::now();
        let input = groundtruth_detect::behaviour::load_input(&ctx).await?;
        let sql_s = t.elapsed().as_secs_f64();
        let runs = groundtruth_behaviour::detect(&input);
        let total_s = t.elapsed().as_secs_f64();
        let per: serde_json::Map<String, serde_json::Value> = runs
            .iter()
            .map(|r| {
                (
                    r.detector.to_string(),
                    serde_json::json!({"seconds": r.seconds, "findings": r.findings.len()}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "sql_s": sql_s,
                "total_s": total_s,
                "sessions": input.sessions.len(),
                "check_ins": input.check_ins.len(),
                "registrations": input.registrations.len(),
                "detectors": per,
                "peak_rss_mb": peak_rss_mb(),
            })
        );
        anyhow::Ok(())
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--detect-child") {
        return detect_child(Path::new(&args[i + 1]));
    }
    let sizes: Vec<u64> = std::env::var("GT_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("GT_BENCH_SIZES: comma-separated event counts")
        })
        .collect::<Result<_>>()?;
    let tmp = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    println!("| events | simulate+ingest s | SQL s | detectors s | total s | events/s | peak RSS MB | findings |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let lake = tmp.path().join(format!("lake-{n}"));
        let t = Instant::now();
        let summary =
            groundtruth_ingest::simulate_into(&groundtruth_benches::scenario_for(n), &lake)?;
        let load_s = t.elapsed().as_secs_f64();
        let out = std::process::Command::new(&exe)
            .arg("--detect-child")
            .arg(&lake)
            .output()?;
        ensure!(
            out.status.success(),
            "detection failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let r: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap_or(""))
            .with_context(|| format!("child said: {line}"))?;
        let total = r["total_s"].as_f64().unwrap_or(0.0);
        let sql = r["sql_s"].as_f64().unwrap_or(0.0);
        let findings: u64 = r["detectors"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v["findings"].as_u64()).sum())
            .unwrap_or(0);
        println!(
            "| {} | {:.1} | {:.2} | {:.3} | {:.2} | {:.0} | {:.0} | {} |",
            summary.events,
            load_s,
            sql,
            total - sql,
            total,
            summary.events as f64 / total,
            r["peak_rss_mb"].as_f64().unwrap_or(0.0),
            findings
        );
        rows.push(serde_json::json!({"events": summary.events, "accounts": summary.accounts, "simulate_ingest_s": load_s, "detection": r}));
        let _ = std::fs::remove_dir_all(&lake);
    }
    if rows.len() >= 2 {
        let t = |r: &serde_json::Value| r["detection"]["total_s"].as_f64().unwrap_or(0.0);
        let e = |r: &serde_json::Value| r["events"].as_f64().unwrap_or(1.0);
        let (a, b) = (&rows[0], &rows[rows.len() - 1]);
        println!(
            "\n{:.1}x the events took {:.1}x the time",
            e(b) / e(a),
            t(b) / t(a).max(1e-9)
        );
    }
    let out = groundtruth_benches::write_report("behaviour", &serde_json::to_value(&rows)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
