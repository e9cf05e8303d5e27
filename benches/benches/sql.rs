//! The analysts' SQL: ten typical queries (`benches/queries/q*.sql`) with
//! DataFusion beside DuckDB (the Python package) on the same Parquet files
//! of one simulated lake, and each metrics view in DataFusion.
//!
//! `cargo bench -p groundtruth-benches --bench sql` simulates
//! `GT_BENCH_EVENTS` events (default 10 000 000) into a lake, runs each
//! query `GT_BENCH_REPEATS` times (default 3) in each engine and keeps the
//! best, prints a table with the ratio per query and the geometric mean,
//! and writes `target/bench-sql.json`. DuckDB must be importable by
//! `python3` (`pip install duckdb`); without it only DataFusion runs.
//!
//! Both engines use every core; DataFusion through the same scoped session
//! an analyst gets (`QueryService::session`, nationwide), DuckDB through a
//! view over `read_parquet` of the lake's `events` files.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use groundtruth_query::{AppCatalog, Limits, QueryService};
use groundtruth_store::{Principal, ReviewStore, Role, Scope, StoreOptions};

fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v}: a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    let events = env_num("GT_BENCH_EVENTS", 10_000_000)?;
    let repeats = env_num("GT_BENCH_REPEATS", 3)?.max(1) as usize;
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let t = Instant::now();
    let summary =
        groundtruth_detect::eval::simulate_into(&groundtruth_benches::scenario_for(events), &lake)?;
    eprintln!(
        "simulated {} events into {} in {:.1} s",
        summary.events,
        lake.display(),
        t.elapsed().as_secs_f64()
    );
    let qdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let mut queries: Vec<(String, String)> = std::fs::read_dir(&qdir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sql")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('q'))
        })
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            std::fs::read_to_string(&p).map(|sql| (name, sql))
        })
        .collect::<std::io::Result<_>>()?;
    queries.sort();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (df_times, view_times) = rt.block_on(async {
        let store = ReviewStore::open(
            &tmp.path().join("review.db").display().to_string(),
            &StoreOptions::default(),
        )
        .await?;
        let service = QueryService::new(
            lake.clone(),
            Default::default(),
            store,
            AppCatalog::default(),
            Limits {
                memory_bytes: 8 << 30,
                timeout: std::time::Duration::from_secs(3600),
                ..Limits::default()
            },
        );
        let who = Principal {
            token_id: String::new(),
            subject: "bench".into(),
            role: Role::Analyst,
            scope: Scope::nationwide(),
        };
        // `plain`: the same session without groundtruth's optimizer rule
        // (the "before" of MixedDistinctToGroupBy, in the same run).
        let best = |sql: String, plain: bool| {
            let service = &service;
            let who = &who;
            async move {
                let mut best = f64::INFINITY;
                let mut rows = 0;
                for _ in 0..repeats {
                    let mut ctx = service.session(who).await?;
                    if plain {
                        let state = ctx.state();
                        let rules: Vec<_> = state
                            .optimizers()
                            .iter()
                            .filter(|r| r.name() != "groundtruth_mixed_distinct_to_group_by")
                            .cloned()
                            .collect();
                        ctx = datafusion::prelude::SessionContext::new_with_state(
                            datafusion::execution::SessionStateBuilder::new_from_existing(state)
                                .with_optimizer_rules(rules)
                                .build(),
                        );
                    }
                    let t = Instant::now();
                    let batches = ctx.sql(&sql).await?.collect().await?;
                    best = best.min(t.elapsed().as_secs_f64());
                    rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
                }
                anyhow::Ok((best, rows))
            }
        };
        let mut df = Vec::new();
        for (name, sql) in &queries {
            let with_rule = best(sql.clone(), false).await?;
            let without = best(sql.clone(), true).await?;
            df.push((name.clone(), with_rule, without.0));
        }
        let mut views = Vec::new();
        for v in [
            "activity_daily",
            "app_health",
            "app_overlap",
            "worker_burden",
            "account_days",
        ] {
            let with_rule = best(format!("SELECT * FROM {v}"), false).await?;
            let without = best(format!("SELECT * FROM {v}"), true).await?;
            views.push((v.to_string(), with_rule, without.0));
        }
        anyhow::Ok((df, views))
    })?;

    let glob = lake.join("events/**/*.parquet");
    let duck = std::process::Command::new("python3")
        .arg(qdir.join("duckdb_run.py"))
        .arg(&glob)
        .arg(&qdir)
        .arg(repeats.to_string())
        .output();
    let duck: Option<serde_json::Value> = match duck {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!("DuckDB did not run: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            eprintln!("DuckDB did not run: {e}");
            None
        }
    };

    println!(
        "\n{} events; best of {repeats}; DuckDB {}\n",
        summary.events,
        duck.as_ref()
            .and_then(|d| d["version"].as_str())
            .unwrap_or("(not run)")
    );
    println!("| query | rows | DataFusion s | DuckDB s | DataFusion / DuckDB | DataFusion s without the distinct rule |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut logs = Vec::new();
    let mut rows_json = Vec::new();
    for (name, (s, rows), plain) in &df_times {
        let d = duck
            .as_ref()
            .and_then(|d| d["queries"][name]["best_s"].as_f64());
        let ratio = d.map(|d| s / d.max(1e-9));
        if let Some(r) = ratio {
            logs.push(r.ln());
        }
        println!(
            "| {name} | {rows} | {s:.3} | {} | {} | {plain:.3} |",
            d.map(|d| format!("{d:.3}")).unwrap_or_else(|| "-".into()),
            ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into())
        );
        rows_json.push(serde_json::json!({"query": name, "rows": rows, "datafusion_s": s, "duckdb_s": d, "ratio": ratio, "datafusion_without_rule_s": plain}));
    }
    let geomean = (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp());
    if let Some(g) = geomean {
        println!("| **geometric mean** | | | | **{g:.2}** |");
    }
    println!("\n| metrics view | rows | DataFusion s | without the distinct rule |\n|---|---:|---:|---:|");
    let mut views_json = Vec::new();
    for (name, (s, rows), plain) in &view_times {
        println!("| {name} | {rows} | {s:.3} | {plain:.3} |");
        views_json.push(serde_json::json!({"view": name, "rows": rows, "datafusion_s": s, "datafusion_without_rule_s": plain}));
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-sql.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::json!({
            "events": summary.events,
            "repeats": repeats,
            "duckdb": duck.as_ref().and_then(|d| d["version"].as_str()),
            "queries": rows_json,
            "geometric_mean_ratio": geomean,
            "views": views_json,
        }))?,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}
