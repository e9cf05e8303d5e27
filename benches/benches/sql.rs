//! The analysts' SQL: ten typical queries (`benches/queries/q*.sql`) with
//! DataFusion beside DuckDB (the Python package) on the same Parquet files
//! of one simulated lake, and each metrics view in both (DuckDB creates
//! the `sql/*.sql` views over empty copies of the review store's tables:
//! see `queries/duckdb_run.py`); a geometric mean of the queries, and one
//! of the queries and views together.
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
//! view over `read_parquet` of the lake's `events` files. Each query and
//! view also runs, in the same run, without groundtruth's optimizer rules
//! (the "before" of `MixedDistinctToGroupBy`, `SharedSubplans`, `CountsFromFooters` and
//! `DictionaryKeys`).
//!
//! `GT_BENCH_LAKE=DIR` keeps the simulated lake in `DIR` and reuses it on
//! the next run when `DIR/events` exists (comparing builds on the same
//! files); `GT_BENCH_QUERIES=q02,q10` runs only the queries whose names
//! start with one of those prefixes (and no metrics views unless one is
//! named, e.g. `app_health`); `GT_BENCH_SET='key=value;key=value'` sets
//! DataFusion options (e.g. `datafusion.execution.batch_size=16384`) in
//! every session, to try a setting without a rebuild;
//! `GT_BENCH_STRING_VIEWS=1` adds a column: each query and view over
//! `events` with its string columns read as `Utf8View` instead of `Utf8`
//! (tried on 2026-12-01: no gain, see docs/benchmarks.md);
//! `GT_BENCH_EXPLAIN=1` prints each DataFusion plan (stderr) before timing it;
//! `GT_BENCH_STRING_VIEWS=dict` instead reads the low-cardinality string
//! columns (app, kind, region, module, ...) as `Dictionary(Int32, Utf8)`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use groundtruth_benches::env_num;
use groundtruth_query::{AppCatalog, Limits, QueryService};
use groundtruth_store::{Principal, ReviewStore, Role, Scope, StoreOptions};

/// The allocator of the `groundtruth` binary, so that DataFusion's times
/// are the server's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<()> {
    let events = env_num("GT_BENCH_EVENTS", 10_000_000)?;
    let repeats = env_num("GT_BENCH_REPEATS", 3)?.max(1) as usize;
    let tmp = tempfile::tempdir()?;
    let kept = std::env::var_os("GT_BENCH_LAKE").map(std::path::PathBuf::from);
    let lake = kept.clone().unwrap_or_else(|| tmp.path().join("lake"));
    let t = Instant::now();
    let simulated = if kept.is_some() && lake.join("events").is_dir() {
        eprintln!("reusing the lake at {}", lake.display());
        None
    } else {
        let summary =
            groundtruth_ingest::simulate_into(&groundtruth_benches::scenario_for(events), &lake)?;
        eprintln!(
            "simulated {} events into {} in {:.1} s",
            summary.events,
            lake.display(),
            t.elapsed().as_secs_f64()
        );
        Some(summary.events as u64)
    };
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
    let only: Option<Vec<String>> = std::env::var("GT_BENCH_QUERIES")
        .ok()
        .map(|v| v.split(',').map(|p| p.trim().to_string()).collect());
    let wanted = |name: &str| {
        only.as_ref().is_none_or(|o| {
            o.iter()
                .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
        })
    };
    queries.retain(|(name, _)| wanted(name));

    let settings: Vec<(String, String)> = std::env::var("GT_BENCH_SET")
        .unwrap_or_default()
        .split(';')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("GT_BENCH_SET: `{kv}` is not key=value"))
        })
        .collect::<Result<_>>()?;
    let settings = &settings;
    let strings = match std::env::var("GT_BENCH_STRING_VIEWS").as_deref() {
        Ok("1") | Ok("view") => Some(Strings::View),
        Ok("dict") => Some(Strings::Dict),
        Ok("") | Ok("0") | Err(_) => None,
        Ok(other) => anyhow::bail!("GT_BENCH_STRING_VIEWS={other}: expected 1, view or dict"),
    };
    let string_views = strings.is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base_dir = tmp.path().join("duckdb-base");
    let (events, df_times, view_times) = rt.block_on(async {
        let store = ReviewStore::open(
            &tmp.path().join("review.db").display().to_string(),
            &StoreOptions::default(),
        )
        .await?;
        let lake = &lake;
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
        // Distinct counts for join selection, measured now rather than in
        // the background during the first timed query.
        service.refresh_statistics(&who.scope).await?;
        // `plain`: the same session without groundtruth's optimizer rule
        // (the "before" of MixedDistinctToGroupBy, in the same run).
        // `views`: `events` read with its strings as GT_BENCH_STRING_VIEWS
        // says (Utf8View or dictionaries), and the views bound to it again.
        let explain = std::env::var_os("GT_BENCH_EXPLAIN").is_some();
        let analyze = std::env::var("GT_BENCH_EXPLAIN").is_ok_and(|v| v == "analyze");
        let best = |sql: String, plain: bool, views: bool| {
            let service = &service;
            let who = &who;
            async move {
                let mut best = f64::INFINITY;
                let mut rows = 0;
                for _ in 0..repeats {
                    let mut ctx = service.session(who).await?;
                    for (k, v) in settings {
                        ctx.state_ref()
                            .write()
                            .config_mut()
                            .options_mut()
                            .set(k, v)?;
                    }
                    if views {
                        ctx.deregister_table("events")?;
                        ctx.register_table(
                            "events",
                            events_with_strings(lake, strings.unwrap_or(Strings::View))?,
                        )?;
                        // The views were bound to the session's table when
                        // it was built: bind them again.
                        groundtruth_sql::register_all_views(&ctx).await?;
                    }
                    if plain {
                        ctx = datafusion::prelude::SessionContext::new_with_state(
                            groundtruth_sql::without_rules(
                                ctx.state(),
                                groundtruth_sql::GROUNDTRUTH_RULES,
                            ),
                        );
                    }
                    if explain && best.is_infinite() {
                        let plan = ctx.sql(&sql).await?.create_physical_plan().await?;
                        eprintln!(
                            "-- {}{}\n{}",
                            if plain { "without the rules: " } else { "" },
                            sql.lines().find(|l| l.starts_with("--")).unwrap_or(""),
                            datafusion::physical_plan::displayable(plan.as_ref()).indent(false)
                        );
                    }
                    let t = Instant::now();
                    let df = ctx.sql(&sql).await?;
                    let batches = if analyze && best.is_infinite() {
                        // The executed plan with each operator's metrics.
                        let plan = df.create_physical_plan().await?;
                        let batches =
                            datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx())
                                .await?;
                        eprintln!(
                            "-- executed{}:\n{}",
                            if plain { ", without the rules" } else { "" },
                            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                                plan.as_ref()
                            )
                            .indent(false)
                        );
                        batches
                    } else {
                        df.collect().await?
                    };
                    best = best.min(t.elapsed().as_secs_f64());
                    rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
                }
                anyhow::Ok((best, rows))
            }
        };
        let mut df = Vec::new();
        for (name, sql) in &queries {
            let with_rule = best(sql.clone(), false, false).await?;
            let without = best(sql.clone(), true, false).await?;
            let views = match string_views {
                true => Some(best(sql.clone(), false, true).await?.0),
                false => None,
            };
            df.push((name.clone(), with_rule, without.0, views));
        }
        let mut views = Vec::new();
        for v in [
            "activity_daily",
            "app_health",
            "app_overlap",
            "worker_burden",
            "account_days",
        ]
        .into_iter()
        .filter(|v| wanted(v))
        {
            let with_rule = best(format!("SELECT * FROM {v}"), false, false).await?;
            let without = best(format!("SELECT * FROM {v}"), true, false).await?;
            let string_views = match string_views {
                true => Some(best(format!("SELECT * FROM {v}"), false, true).await?.0),
                false => None,
            };
            views.push((v.to_string(), with_rule, without.0, string_views));
        }
        // The review store's tables and the app catalog, empty, as Parquet
        // files of their schemas: DuckDB builds the same views over them.
        if !views.is_empty() {
            let ctx = service.session(&who).await?;
            std::fs::create_dir_all(&base_dir)?;
            for table in BASE_TABLES {
                let schema = ctx.table(*table).await?.schema().inner().clone();
                let file = std::fs::File::create(base_dir.join(format!("{table}.parquet")))?;
                datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None)?.close()?;
            }
        }
        let events = match simulated {
            Some(n) => n,
            None => {
                let ctx = service.session(&who).await?;
                let b = ctx
                    .sql("SELECT count(*) FROM events")
                    .await?
                    .collect()
                    .await?;
                datafusion::arrow::array::AsArray::as_primitive::<
                    datafusion::arrow::datatypes::Int64Type,
                >(b[0].column(0))
                .value(0) as u64
            }
        };
        anyhow::Ok((events, df, views))
    })?;

    let glob = lake.join("events/**/*.parquet");
    let duck = std::process::Command::new("python3")
        .arg(qdir.join("duckdb_run.py"))
        .arg(&glob)
        .arg(&qdir)
        .arg(repeats.to_string())
        .arg(std::env::var("GT_BENCH_QUERIES").unwrap_or_default())
        .arg(&base_dir)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql"))
        .arg(
            view_times
                .iter()
                .map(|(name, ..)| name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
        .output();
    let duck: Option<serde_json::Value> = match duck {
        Ok(o) if o.status.success() => {
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice(&o.stdout).ok()
        }
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
        events,
        duck.as_ref()
            .and_then(|d| d["version"].as_str())
            .unwrap_or("(not run)")
    );
    let other = match strings {
        Some(Strings::Dict) => "with dictionary strings",
        _ => "with Utf8View strings",
    };
    println!("| query | rows | DataFusion s | DuckDB s | DataFusion / DuckDB | DataFusion s without groundtruth's rules | DataFusion s {other} |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut view_logs = Vec::new();
    let mut logs = Vec::new();
    let mut plain_logs = Vec::new();
    let mut rows_json = Vec::new();
    for (name, (s, rows), plain, sv) in &df_times {
        let d = duck
            .as_ref()
            .and_then(|d| d["queries"][name]["best_s"].as_f64());
        let ratio = d.map(|d| s / d.max(1e-9));
        if let Some(r) = ratio {
            logs.push(r.ln());
        }
        if let Some(d) = d {
            plain_logs.push((plain / d.max(1e-9)).ln());
        }
        if let (Some(d), Some(sv)) = (d, sv) {
            view_logs.push((sv / d.max(1e-9)).ln());
        }
        println!(
            "| {name} | {rows} | {s:.3} | {} | {} | {plain:.3} | {} |",
            d.map(|d| format!("{d:.3}")).unwrap_or_else(|| "-".into()),
            ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
            seconds(*sv)
        );
        rows_json.push(serde_json::json!({"query": name, "rows": rows, "datafusion_s": s, "duckdb_s": d, "ratio": ratio, "datafusion_without_rule_s": plain, "datafusion_string_views_s": sv}));
    }
    let geomean = geometric_mean(&logs);
    let plain_geomean = geometric_mean(&plain_logs);
    let views_geomean = geometric_mean(&view_logs);
    if let Some(g) = geomean {
        println!(
            "| **geometric mean** | | | | **{g:.2}** | {} | {} |",
            plain_geomean
                .map(|p| format!("{p:.2} / DuckDB"))
                .unwrap_or_default(),
            views_geomean
                .map(|u| format!("{u:.2} / DuckDB"))
                .unwrap_or_default()
        );
    }
    println!("\n| metrics view | rows | DataFusion s | DuckDB s | DataFusion / DuckDB | without groundtruth's rules | {other} |\n|---|---:|---:|---:|---:|---:|---:|");
    let mut views_json = Vec::new();
    let mut all_logs = logs.clone();
    for (name, (s, rows), plain, sv) in &view_times {
        let d = duck
            .as_ref()
            .and_then(|d| d["views"][name.as_str()]["best_s"].as_f64());
        let ratio = d.filter(|d| *d > 0.0).map(|d| s / d);
        if let Some(r) = ratio {
            all_logs.push(r.ln());
        }
        let duck_rows = duck
            .as_ref()
            .and_then(|d| d["views"][name.as_str()]["rows"].as_u64());
        if duck_rows.is_some_and(|r| r != *rows as u64) {
            eprintln!("DuckDB's {name} has {duck_rows:?} rows, DataFusion's {rows}");
        }
        println!(
            "| {name} | {rows} | {s:.3} | {} | {} | {plain:.3} | {} |",
            seconds(d),
            ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
            seconds(*sv)
        );
        if let Some(err) = duck
            .as_ref()
            .and_then(|d| d["view_errors"][name.as_str()].as_str())
        {
            eprintln!("DuckDB could not run {name}: {err}");
        }
        views_json.push(serde_json::json!({"view": name, "rows": rows, "datafusion_s": s, "duckdb_s": d, "ratio": ratio, "datafusion_without_rule_s": plain, "datafusion_string_views_s": sv}));
    }
    let all_geomean = geometric_mean(&all_logs);
    if !view_times.is_empty() {
        if let Some(g) = all_geomean {
            println!("| **geometric mean, queries and views** | | | | **{g:.2}** | | |");
        }
    }
    let out = groundtruth_benches::write_report(
        "sql",
        &serde_json::json!({
            "events": events,
            "repeats": repeats,
            "duckdb": duck.as_ref().and_then(|d| d["version"].as_str()),
            "queries": rows_json,
            "geometric_mean_ratio": geomean,
            "geometric_mean_ratio_without_rules": plain_geomean,
            "geometric_mean_ratio_with_views": all_geomean,
            "geometric_mean_ratio_string_views": views_geomean,
            "views": views_json,
        }),
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The tables the metrics views read besides `events` (the review store's
/// and the app catalog), given to DuckDB empty with their schemas.
const BASE_TABLES: &[&str] = &[
    "review_findings",
    "finding_accounts",
    "review_cases",
    "review_verdicts",
    "app_catalog",
];

/// The geometric mean of ratios given as their logarithms; `None` for none.
fn geometric_mean(logs: &[f64]) -> Option<f64> {
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// A time in seconds, or `-` when it was not measured.
fn seconds(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into())
}

/// How the string columns are read in the extra column.
#[derive(Debug, Clone, Copy)]
enum Strings {
    /// Every `Utf8` column as `Utf8View`.
    View,
    /// The low-cardinality ones as `Dictionary(Int32, Utf8)`.
    Dict,
}

/// Columns with few distinct values (apps, kinds, regions, ...).
const LOW_CARDINALITY: &[&str] = &[
    "app_id",
    "kind",
    "region",
    "device_model",
    "os_version",
    "app_version",
    "integrity",
    "module",
    "claimed_region",
    "registry",
    "category",
];

/// The lake's `events` with its strings read another way
/// (`GT_BENCH_STRING_VIEWS`).
fn events_with_strings(
    lake: &Path,
    how: Strings,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = groundtruth_event::event_schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match (how, f.data_type()) {
            (Strings::View, DataType::Utf8) => {
                f.as_ref().clone().with_data_type(DataType::Utf8View)
            }
            (Strings::Dict, DataType::Utf8) if LOW_CARDINALITY.contains(&f.name().as_str()) => {
                f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                ))
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    Ok(Arc::new(groundtruth_sql::events_table_with_schema(
        lake, schema,
    )?))
}
