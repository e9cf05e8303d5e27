//! The review API under load: the queue page with 1M findings in the
//! store, 50 concurrent clients (wrk, Debian's package), on SQLite and on
//! PostgreSQL, for a nationwide admin and a city-scoped inspector.
//!
//! `cargo bench -p groundtruth-benches --bench api` (env `BENCH_FINDINGS`,
//! default 1000000; `BENCH_BACKENDS`, default `sqlite,postgres`;
//! `BENCH_SECONDS` of load per run, default 20; `BENCH_SQLITE_STORE=PATH`
//! keeps the filled SQLite store and reuses it next time). Needs `wrk` and
//! PostgreSQL installed. Writes `target/bench-api.json`.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use groundtruth_api::{ApiLimits, ApiState};
use groundtruth_finding::Finding;
use groundtruth_store::{ReviewStore, Role, Scope, StoreOptions};
use serde_json::json;

const DETECTORS: [&str; 6] = groundtruth_finding::DETECTORS;

/// Finding `i`: spread over 3 provinces x 10 cities x 5 districts, every
/// detector, scores over 0..1; a fifth of the accounts have a second finding
/// (so cases group findings as in real data).
fn finding(i: usize) -> Finding {
    let account = if i % 5 == 4 { i - 1 } else { i };
    let region = format!(
        "{}{:02}{:02}",
        [45, 44, 43][account % 3],
        1 + account / 3 % 10,
        1 + account / 30 % 5
    );
    let day = 1 + (i % 28) as u32;
    let det = DETECTORS[i % DETECTORS.len()];
    Finding {
        finding_id: format!("f{i:08}"),
        detector: det.into(),
        accounts: vec![format!("a{account:08}")],
        devices: vec![format!("d{account:08}")],
        patrol_ids: if det == "non_human_track" { vec![format!("p{i}")] } else { Vec::new() },
        window_start: format!("2026-10-{day:02}T00:00:00.000Z"),
        window_end: format!("2026-10-{day:02}T06:00:00.000Z"),
        score: ((i * 7919) % 1000) as f64 / 1000.0,
        reason: format!("{det} on a{account:08}: a benchmark finding with a reason of realistic length for the queue page."),
        evidence: json!({"app_id": "zhiguitong", "scope": {"apps": ["zhiguitong"], "regions": {region: 1}}, "figure": i})
            .as_object()
            .unwrap()
            .clone(),
    }
}

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

/// wrk -c50 against `url` with `token`.
fn wrk(url: &str, token: &str, seconds: u32) -> Result<Load> {
    let out = Command::new("wrk")
        // wrk's default 2 s timeout would cap the percentiles: allow 30 s.
        .args([
            "-t2",
            "-c50",
            &format!("-d{seconds}s"),
            "--timeout",
            "30s",
            "--latency",
            "-H",
        ])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let pct = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(ms)
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("no Requests/sec in wrk's output")?;
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Load {
        rps,
        p50_ms: pct("50%").context("no p50")?,
        p99_ms: pct("99%").context("no p99")?,
        non_2xx,
    })
}

/// Findings upserted into PostgreSQL through the store before the copy.
const PG_UPSERT: usize = 20_000;

/// Replaces the rows of every store table in PostgreSQL database `db` by
/// those of the SQLite store at `sqlite`: CSV out with Python's sqlite3,
/// `\copy` in with psql, sequences moved past the copied ids. Returns the
/// rows copied.
fn copy_sqlite_into_postgres(
    sqlite: &str,
    pg: &groundtruth_tests::Postgres,
    db: &str,
    dir: &std::path::Path,
) -> Result<u64> {
    const EXPORT: &str = r#"
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
out = sys.argv[2]
for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' AND name <> 'tokens'"):
    cur = con.execute(f'SELECT * FROM "{t}"')
    cols = [d[0] for d in cur.description]
    n = 0
    # NULL is an empty unquoted field; text is always quoted ('' stays '').
    cell = lambda v: '' if v is None else ('"' + v.replace('"', '""') + '"' if isinstance(v, str) else repr(v))
    with open(os.path.join(out, t + '.csv'), 'w', newline='') as f:
        for row in cur:
            f.write(','.join(cell(v) for v in row) + '\n')
            n += 1
    print(t, n, ','.join(cols))
"#;
    let csv_dir = dir.join("copy");
    std::fs::create_dir_all(&csv_dir)?;
    let out = Command::new("python3")
        .args(["-c", EXPORT, sqlite])
        .arg(&csv_dir)
        .output()
        .context("python3")?;
    if !out.status.success() {
        bail!("export failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // psql may run as another user: let it read the files.
    for p in [dir, csv_dir.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let mut rows = 0;
    let listing = String::from_utf8(out.stdout)?;
    let tables: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split(' ').next())
        .collect();
    pg.psql(db, &format!("TRUNCATE {}", tables.join(", ")))?;
    for line in listing.lines() {
        let mut parts = line.split(' ');
        let (Some(table), Some(n), Some(cols)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("export said {line:?}");
        };
        let file = csv_dir.join(format!("{table}.csv"));
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        pg.psql(
            db,
            &format!(
                "\\copy {table} ({cols}) FROM '{}' WITH (FORMAT csv)",
                file.display()
            ),
        )?;
        rows += n.parse::<u64>()?;
    }
    // Serial ids continue after the copied ones.
    let serials = pg.psql(
        db,
        "SELECT table_name || ' ' || column_name FROM information_schema.columns \
         WHERE column_default LIKE 'nextval%' AND table_schema = 'public'",
    )?;
    for l in serials.lines().filter(|l| !l.is_empty()) {
        let (t, c) = l.split_once(' ').context("serial column")?;
        pg.psql(
            db,
            &format!("SELECT setval(pg_get_serial_sequence('{t}', '{c}'), coalesce(max({c}), 0) + 1, false) FROM {t}"),
        )?;
    }
    pg.psql(db, "ANALYZE")?;
    Ok(rows)
}

fn main() -> Result<()> {
    let n: usize = std::env::var("BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let mut pg = None;
    let mut sqlite_db: Option<String> = None;
    // BENCH_SQLITE_STORE=PATH keeps the filled SQLite store there (and
    // reuses it on the next run when it holds BENCH_FINDINGS findings).
    let kept = std::env::var("BENCH_SQLITE_STORE").ok();
    let mut report = Vec::new();
    println!("review API, queue page (50 cases) under 50 concurrent clients, {n} findings");
    println!(
        "{:<9} {:>12} {:<28} {:>9} {:>9} {:>9} {:>7}",
        "backend", "fill f/s", "caller", "req/s", "p50 ms", "p99 ms", "non-2xx"
    );
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let url = match backend {
            "sqlite" => kept
                .clone()
                .unwrap_or_else(|| tmp.path().join("review.db").display().to_string()),
            "postgres" => pg
                .get_or_insert(groundtruth_tests::Postgres::start()?)
                .database()?,
            other => bail!("unknown backend {other}"),
        };
        let opts = StoreOptions {
            max_connections: 16,
            ..Default::default()
        };
        let store = rt.block_on(ReviewStore::open(&url, &opts))?;
        // SQLite: every finding through the store's upsert. PostgreSQL: the
        // upsert rate is measured on the first PG_UPSERT findings (each is
        // ~10 round trips, ~30 min for 1M), then the tables are replaced by
        // a copy of the SQLite store filled above (same migrations, same
        // rows).
        let through_store = if backend == "postgres" && sqlite_db.is_some() {
            n.min(PG_UPSERT)
        } else {
            n
        };
        // A kept SQLite store that already holds the findings is reused.
        let reuse = backend == "sqlite"
            && kept.is_some()
            && rt.block_on(store.finding_count())? == through_store as u64;
        let through_store = if reuse { 0 } else { through_store };
        let started = Instant::now();
        let batch = 2000;
        for chunk in (0..through_store).collect::<Vec<_>>().chunks(batch) {
            let fs: Vec<Finding> = chunk.iter().map(|&i| finding(i)).collect();
            rt.block_on(store.upsert_findings(1, &fs))?;
        }
        let fill = through_store as f64 / started.elapsed().as_secs_f64();
        if reuse {
            println!("(sqlite: reusing the {n} findings in {url})");
        }
        if backend == "postgres" && through_store < n {
            let pg = pg.as_ref().context("postgres")?;
            let db = url.rsplit('/').next().context("database name")?;
            let copied = copy_sqlite_into_postgres(
                sqlite_db.as_deref().context("sqlite store")?,
                pg,
                db,
                tmp.path(),
            )?;
            println!("(postgres: upserted {through_store} findings at {fill:.0}/s, then copied {copied} rows from the SQLite store)");
        }
        if backend == "sqlite" {
            sqlite_db = Some(url.clone());
        }
        let token = |role, region: &str, subject: &str| {
            rt.block_on(store.system_token(subject, role, Scope::parse(region).unwrap()))
        };
        let admin = token(Role::Admin, "", "admin")?;
        let city = token(Role::Inspector, "4501", "inspector")?;
        let state = ApiState {
            store: store.clone(),
            lake: None,
            metrics: None,
            limits: ApiLimits::default(),
            query: None,
        };
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(groundtruth_api::serve(
            listener,
            groundtruth_api::router(state),
            async move {
                let _ = rx.await;
            },
        ));
        for (who, token, query) in [
            ("admin, nationwide", &admin, "status=open&limit=50"),
            ("inspector 4501", &city, "status=open&limit=50"),
            (
                "inspector 4501, filtered",
                &city,
                "status=open&detector=phone_farm&min_score=0.5&limit=50",
            ),
        ] {
            let l = wrk(
                &format!("http://{addr}/api/v1/cases?{query}"),
                token,
                seconds,
            )?;
            println!(
                "{backend:<9} {fill:>12.0} {who:<28} {:>9.0} {:>9.2} {:>9.2} {:>7}",
                l.rps, l.p50_ms, l.p99_ms, l.non_2xx
            );
            report.push(json!({"backend": backend, "findings": n, "fill_findings_per_s": fill, "caller": who, "query": query,
                "requests_per_s": l.rps, "p50_ms": l.p50_ms, "p99_ms": l.p99_ms, "non_2xx": l.non_2xx}));
        }
        let _ = tx.send(());
        rt.block_on(server)??;
        rt.block_on(store.close());
    }
    let path = groundtruth_benches::write_report("api", &serde_json::to_value(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
