//! The analysts' SQL over both protocols: `POST /api/v1/sql` over real
//! HTTP and the PostgreSQL wire protocol with the real `psql` (Debian's
//! postgresql-client; `tests/run.sh` installs it) and sqlx's extended
//! protocol. Region scoping, the audit log, and a battery of escape and
//! abuse attempts, each refused or limited with a clear error while the
//! server keeps serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use groundtruth_api::{ApiLimits, ApiState, LakeAccess};
use groundtruth_query::{AppCatalog, Limits, QueryService};
use groundtruth_store::{AuditQuery, ReviewStore, Role, Scope, StoreOptions};
use groundtruth_tests::http::{request, request_with};
use groundtruth_tests::repo;
use serde_json::{json, Value};

#[path = "support/fixtures.rs"]
mod fixtures;

/// The server under test runs in this process: it allocates as the
/// `groundtruth` binary does (jemalloc, counted), so its resident memory is
/// the binary's, not glibc's arenas', and the query service holds its
/// queries to the server's budget as it does there.
#[global_allocator]
static ALLOCATOR: groundtruth_alloc::Counting<tikv_jemallocator::Jemalloc> =
    groundtruth_alloc::Counting::new(tikv_jemallocator::Jemalloc);

struct Tokens {
    admin: String,
    analyst: String,
    analyst_4501: String,
    analyst_4502: String,
    inspector: String,
}

struct Env {
    rt: tokio::runtime::Runtime,
    http: SocketAddr,
    pg: SocketAddr,
    store: ReviewStore,
    t: Tokens,
    _dir: tempfile::TempDir,
}

const FIXTURE: &str = "tests/fixtures/metrics.ndjson";

/// Events of the fixture per region prefix (counted from the file, not
/// hard-coded).
fn events_in(prefix: &str) -> usize {
    std::fs::read_to_string(repo().join(FIXTURE))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["region"].as_str().unwrap_or("").starts_with(prefix))
        .count()
}

async fn token(store: &ReviewStore, subject: &str, role: Role, region: &str) -> String {
    let region = Scope::parse(region).unwrap();
    store.system_token(subject, role, region).await.unwrap()
}

fn env() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = fixtures::fixture_lake(&repo().join(FIXTURE));
    let (store, t, http, pg) = rt.block_on(async {
        let store = ReviewStore::open(
            &dir.path().join("review.db").display().to_string(),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        fixtures::load_review(&store, "metrics").await.unwrap();
        let t = Tokens {
            admin: token(&store, "root", Role::Admin, "").await,
            analyst: token(&store, "chen", Role::Analyst, "").await,
            analyst_4501: token(&store, "nanning", Role::Analyst, "4501").await,
            analyst_4502: token(&store, "liuzhou", Role::Analyst, "4502").await,
            inspector: token(&store, "li", Role::Inspector, "").await,
        };
        let catalog =
            AppCatalog::load(&repo().join("tests/fixtures/metrics.catalog.toml")).unwrap();
        let limits = Limits {
            // Generous for the metrics views when the 2-core CI machine runs
            // the whole suite at once; the abuse tests only need it finite.
            timeout: Duration::from_secs(8),
            memory_bytes: 64 << 20,
            server_memory_bytes: 256 << 20,
            max_rows: 100,
            ..Limits::default()
        };
        let service = Arc::new(groundtruth_pgwire::with_pg_catalog(QueryService::new(
            lake.clone(),
            Default::default(),
            store.clone(),
            catalog,
            limits,
        )));
        let app = groundtruth_api::router(ApiState {
            store: store.clone(),
            lake: Some(LakeAccess {
                dir: lake.clone(),
                zone: Default::default(),
            }),
            metrics: None,
            limits: ApiLimits {
                request_timeout: Duration::from_secs(10),
                ..ApiLimits::default()
            },
            query: Some(service.clone()),
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = l.local_addr().unwrap();
        tokio::spawn(groundtruth_api::serve(l, app, std::future::pending()));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pg = l.local_addr().unwrap();
        tokio::spawn(groundtruth_pgwire::serve(
            l,
            service,
            16,
            None,
            std::future::pending(),
        ));
        (store, t, http, pg)
    });
    Env {
        rt,
        http,
        pg,
        store,
        t,
        _dir: dir,
    }
}

impl Env {
    /// `POST /api/v1/sql` with a JSON body.
    fn sql(&self, token: &str, body: Value) -> (u16, Value) {
        let r = request(
            self.http,
            "POST",
            "/api/v1/sql",
            Some(token),
            Some(body.to_string().as_bytes()),
        )
        .unwrap();
        (r.status, r.json())
    }

    /// `POST path` (`/api/v1/sql` with its parameters) with the query as
    /// the body, `text/plain`.
    fn query_text(&self, token: &str, path: &str, sql: &str) -> groundtruth_tests::http::Response {
        request_with(
            self.http,
            "POST",
            path,
            Some(token),
            "text/plain",
            Some(sql.as_bytes()),
        )
        .unwrap()
    }

    /// Rows of a JSON query answer that must succeed.
    fn rows(&self, token: &str, sql: &str) -> Vec<Value> {
        let (status, v) = self.sql(token, json!({ "sql": sql }));
        assert_eq!(status, 200, "{sql}: {v}");
        v["rows"].as_array().cloned().unwrap_or_default()
    }

    /// `psql -c sql` with `token` as the password: (ok, stdout, stderr).
    fn psql(&self, token: &str, args: &[&str]) -> (bool, String, String) {
        let out = groundtruth_tests::psql(self.pg.port(), token)
            .args(args)
            .output()
            .expect("psql (postgresql-client) is installed by tests/run.sh");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    fn psql_ok(&self, token: &str, sql: &str) -> String {
        let (ok, out, err) = self.psql(token, &["-c", sql]);
        assert!(ok, "psql {sql}: {err}");
        out
    }

    fn psql_err(&self, token: &str, sql: &str) -> String {
        let (ok, out, err) = self.psql(token, &["-c", sql]);
        assert!(!ok, "psql {sql} should fail, printed {out}");
        err
    }

    fn audit_queries(&self) -> Vec<Value> {
        self.rt.block_on(async {
            let page = self
                .store
                .audit_log(
                    &Scope::nationwide(),
                    &AuditQuery {
                        action: Some("sql.query".into()),
                        limit: 500,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            page.items
                .into_iter()
                .map(|e| serde_json::to_value(e).unwrap())
                .collect()
        })
    }
}

fn count(rows: &[Value], key: &str) -> i64 {
    rows.first().and_then(|r| r[key].as_i64()).unwrap_or(-1)
}

#[test]
fn http_answers_in_json_csv_and_arrow_with_a_row_cap() {
    let e = env();
    let all = events_in("");
    let rows = e.rows(&e.t.analyst, "SELECT count(*) AS n FROM events");
    assert_eq!(count(&rows, "n"), all as i64);

    // CSV: header + rows; the query as text/plain with ?format=csv.
    let r = e.query_text(
        &e.t.analyst,
        "/api/v1/sql?format=csv",
        "SELECT app_id, count(*) AS n FROM events GROUP BY app_id ORDER BY app_id",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "app_id,n");
    let by_app: BTreeMap<String, usize> = lines[1..]
        .iter()
        .map(|l| {
            let (a, n) = l.split_once(',').unwrap();
            (a.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(by_app.values().sum::<usize>(), all);

    // Arrow IPC stream, read back.
    let (status, _) = (200, ());
    let r = request(
        e.http,
        "POST",
        "/api/v1/sql",
        Some(&e.t.analyst),
        Some(
            json!({"sql": "SELECT arrow_cast(event_id, 'Utf8View') AS event_id, ts FROM events", "format": "arrow"})
                .to_string()
                .as_bytes(),
        ),
    )
    .unwrap();
    assert_eq!(r.status, status);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apache.arrow.stream")
    );
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body.clone()), None)
            .unwrap();
    // A column of string views is handed out as plain Utf8.
    assert_eq!(
        reader.schema().field(0).data_type(),
        &arrow::datatypes::DataType::Utf8
    );
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    // The cap is 100 rows: cut and flagged.
    assert_eq!(n, 100);
    assert_eq!(r.header("x-groundtruth-truncated"), Some("true"));

    // max_rows below the cap; truncated only when more existed.
    let (status, v) = e.sql(
        &e.t.analyst,
        json!({"sql": "SELECT event_id FROM events ORDER BY event_id", "max_rows": 7}),
    );
    assert_eq!(status, 200);
    assert_eq!(v["rows"].as_array().unwrap().len(), 7);
    assert_eq!(v["truncated"], json!(true));
    assert_eq!(v["columns"][0]["type"], json!("Utf8"));
    let (_, v) = e.sql(&e.t.analyst, json!({"sql": "SELECT 1 AS one"}));
    assert_eq!(v["truncated"], json!(false));
    assert_eq!(v["columns"][0]["name"], json!("one"));

    // The metrics views answer over HTTP.
    for view in [
        "activity_daily",
        "app_health",
        "app_overlap",
        "worker_burden",
        "findings",
        "cases",
        "verdicts",
    ] {
        let (status, v) = e.sql(
            &e.t.analyst,
            json!({"sql": format!("SELECT * FROM {view}")}),
        );
        assert_eq!(status, 200, "{view}: {v}");
    }
    let health = e.rows(
        &e.t.analyst,
        "SELECT app_id, classification FROM app_health ORDER BY app_id",
    );
    assert!(
        health
            .iter()
            .any(|r| r["classification"] == json!("zombie")),
        "{health:?}"
    );
}

#[test]
fn http_roles_and_region_scope_hold_under_the_query() {
    let e = env();
    // Roles: inspectors and units have no SQL; no token is 401.
    let (status, v) = e.sql(&e.t.inspector, json!({"sql": "SELECT 1"}));
    assert_eq!(status, 403, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("analyst"));
    let r = request(
        e.http,
        "POST",
        "/api/v1/sql",
        None,
        Some(b"{\"sql\":\"SELECT 1\"}"),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = request(
        e.http,
        "POST",
        "/api/v1/sql",
        Some("gt_0000000000000000000000000000000000000000000000000000000000000000"),
        Some(b"{\"sql\":\"SELECT 1\"}"),
    )
    .unwrap();
    assert_eq!(r.status, 401);

    // Admins may query too.
    assert_eq!(e.rows(&e.t.admin, "SELECT 1 AS x").len(), 1);

    // A 4501 analyst sees 4501 rows only, however the query asks.
    let t = &e.t.analyst_4501;
    let n = e.rows(t, "SELECT count(*) AS n FROM events");
    assert_eq!(count(&n, "n"), events_in("4501") as i64);
    assert!(events_in("4502") > 0, "the fixture has another city");
    for probe in [
        "SELECT count(*) AS n FROM events WHERE region LIKE '4502%'",
        "SELECT count(*) AS n FROM events WHERE region NOT LIKE '4501%'",
        "SELECT count(*) AS n FROM (SELECT * FROM events UNION ALL SELECT * FROM events) x WHERE region = '450201'",
        "SELECT count(*) AS n FROM activity_daily WHERE region NOT LIKE '4501%'",
        "SELECT count(*) AS n FROM findings WHERE finding_id = 'farm-twin-liuzhou'",
        "SELECT count(*) AS n FROM dead_letters",
        "SELECT count(*) AS n FROM cases c WHERE c.region LIKE '4502%'",
    ] {
        let rows = e.rows(t, probe);
        assert_eq!(count(&rows, "n"), 0, "{probe} leaked: {rows:?}");
    }
    let regions = e.rows(t, "SELECT DISTINCT region FROM events");
    assert!(regions
        .iter()
        .all(|r| r["region"].as_str().unwrap().starts_with("4501")));
    // The other city's analyst sees the other half; nationwide sees both.
    let n2 = e.rows(&e.t.analyst_4502, "SELECT count(*) AS n FROM events");
    assert_eq!(count(&n2, "n"), events_in("4502") as i64);
    let f_all = e.rows(&e.t.analyst, "SELECT count(*) AS n FROM findings");
    let f1 = e.rows(t, "SELECT count(*) AS n FROM findings");
    let f2 = e.rows(&e.t.analyst_4502, "SELECT count(*) AS n FROM findings");
    assert!(count(&f1, "n") < count(&f_all, "n"));
    assert!(count(&f2, "n") < count(&f_all, "n"));

    // Every query is in the audit log with its caller and channel.
    let audit = e.audit_queries();
    assert!(audit.iter().any(|a| a["actor"] == json!("nanning")
        && a["after"]["sql"].as_str().unwrap().contains("NOT LIKE")));
    assert!(audit
        .iter()
        .any(|a| a["actor"] == json!("li") || a["actor"] == json!("chen")));
}

/// One attempt: the text (as text/plain) or a raw request.
enum Attempt {
    Sql(String),
    Raw(&'static str, Vec<u8>),
}

#[test]
fn abuse_battery_over_http_is_refused_or_limited_and_the_server_keeps_serving() {
    let e = env();
    let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
    let many = format!("SELECT {}", vec!["1"; 30_000].join("+"));
    let nested_case = format!(
        "SELECT {} 1 {}",
        "CASE WHEN true THEN (".repeat(100),
        ") END".repeat(100)
    );
    let long = format!("SELECT '{}'", "x".repeat(200_000));
    let huge = vec![b'x'; 10 << 20];
    let attempts: Vec<(&str, Attempt, &[u16], &str)> = vec![
        ("drop", Attempt::Sql("DROP TABLE events".into()), &[403], "not a query"),
        ("create table", Attempt::Sql("CREATE TABLE t AS SELECT 1".into()), &[403], "not a query"),
        ("create view", Attempt::Sql("CREATE VIEW v AS SELECT * FROM events".into()), &[403], "not a query"),
        ("insert", Attempt::Sql("INSERT INTO events SELECT * FROM events".into()), &[403], "not a query"),
        ("delete", Attempt::Sql("DELETE FROM events".into()), &[403], "not a query"),
        ("update", Attempt::Sql("UPDATE events SET app_id = 'x'".into()), &[403], "not a query"),
        ("truncate", Attempt::Sql("TRUNCATE TABLE events".into()), &[400, 403], ""),
        ("copy to file", Attempt::Sql("COPY (SELECT * FROM events) TO '/tmp/gt-stolen.csv'".into()), &[403], "COPY"),
        ("external table", Attempt::Sql("CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'".into()), &[403], "EXTERNAL"),
        ("read_csv", Attempt::Sql("SELECT * FROM read_csv('/etc/passwd')".into()), &[400], "read_csv"),
        ("read_parquet", Attempt::Sql("SELECT * FROM read_parquet('/etc/passwd')".into()), &[400], "read_parquet"),
        ("file as table", Attempt::Sql("SELECT * FROM '/etc/passwd'".into()), &[400], "passwd"),
        ("file url as table", Attempt::Sql("SELECT * FROM 'file:///etc/passwd'".into()), &[400], "passwd"),
        ("set option", Attempt::Sql("SET datafusion.execution.target_partitions = 1000".into()), &[403], "SET"),
        ("set memory", Attempt::Sql("SET datafusion.runtime.memory_limit = '100G'".into()), &[403], "SET"),
        ("two statements", Attempt::Sql("SELECT 1; DROP TABLE events".into()), &[403], "exactly one"),
        ("two queries", Attempt::Sql("SELECT 1; SELECT 2".into()), &[403], "exactly one"),
        ("dml in cte", Attempt::Sql("WITH x AS (DELETE FROM events RETURNING *) SELECT * FROM x".into()), &[400, 403], ""),
        ("select into", Attempt::Sql("SELECT * INTO stolen FROM events".into()), &[403], "INTO"),
        ("explain dml", Attempt::Sql("EXPLAIN DELETE FROM events".into()), &[403], "not a query"),
        ("prepare", Attempt::Sql("PREPARE p AS SELECT 1".into()), &[403], "not a query"),
        ("deep nesting", Attempt::Sql(deep), &[403], "nests"),
        ("many tokens", Attempt::Sql(many), &[403], "tokens"),
        ("nested case", Attempt::Sql(nested_case), &[403], "nests"),
        ("long text", Attempt::Sql(long), &[413], "at most"),
        ("10 MB body", Attempt::Raw("text/plain", huge.clone()), &[413], ""),
        ("10 MB json", Attempt::Raw("application/json", [b"{\"sql\":\"".as_slice(), &huge, b"\"}"].concat()), &[413], ""),
        ("invalid utf-8 text", Attempt::Raw("text/plain", b"SELECT '\xff\xfe'".to_vec()), &[400], "UTF-8"),
        ("invalid utf-8 json", Attempt::Raw("application/json", b"{\"sql\": \"SELECT '\xff'\"}".to_vec()), &[400], "query request"),
        ("not json", Attempt::Raw("application/json", b"{\"sql\": ".to_vec()), &[400], "query request"),
        ("wrong json type", Attempt::Raw("application/json", b"{\"sql\": 42}".to_vec()), &[400], "query request"),
        ("unknown field", Attempt::Raw("application/json", b"{\"sql\": \"SELECT 1\", \"as_user\": \"admin\"}".to_vec()), &[400], "unknown field"),
        ("empty", Attempt::Sql("   ".into()), &[400], "empty"),
        ("bad syntax", Attempt::Sql("SELEC * FROM events".into()), &[400], "parse"),
        ("unknown table", Attempt::Sql("SELECT * FROM pg_shadow_passwords".into()), &[400], "pg_shadow_passwords"),
        ("huge cross join", Attempt::Sql("SELECT sum(length(a.event_id || b.event_id || c.event_id || d.event_id)) FROM events a, events b, events c, events d".into()), &[408], "longer than"),
        ("sort beyond memory", Attempt::Sql("SELECT a.event_id, b.event_id, c.event_id FROM events a, events b, events c ORDER BY 1, 2, 3".into()), &[408, 422], ""),
        ("repeat bomb", Attempt::Sql("SELECT repeat('x', 2000000000)".into()), &[400], "at most"),
        ("repeat per row", Attempt::Sql("SELECT length(repeat(event_id, 1000000)) FROM events".into()), &[400], "at most"),
        ("pad bomb", Attempt::Sql("SELECT lpad('x', 1000000000)".into()), &[400], "at most"),
        ("range bomb", Attempt::Sql("SELECT range(1, 10000000000)".into()), &[400], "at most"),
        ("array_repeat bomb", Attempt::Sql("SELECT array_repeat(1, 1000000000)".into()), &[400], "at most"),
        ("series of timestamps", Attempt::Sql("SELECT generate_series(TIMESTAMP '1970-01-01', TIMESTAMP '2100-01-01', INTERVAL '1 second')".into()), &[400], "at most"),
    ];
    assert!(attempts.len() >= 30);
    for (name, attempt, statuses, needle) in &attempts {
        let r = match attempt {
            Attempt::Sql(sql) => request_with(
                e.http,
                "POST",
                "/api/v1/sql",
                Some(&e.t.analyst),
                "text/plain",
                Some(sql.as_bytes()),
            ),
            Attempt::Raw(ct, body) => request_with(
                e.http,
                "POST",
                "/api/v1/sql",
                Some(&e.t.analyst),
                ct,
                Some(body),
            ),
        }
        .unwrap_or_else(|err| panic!("{name}: {err:#}"));
        let v = r.json();
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            statuses.contains(&r.status),
            "{name}: expected {statuses:?}, got {} {}",
            r.status,
            r.text().chars().take(300).collect::<String>()
        );
        assert!(
            !message.is_empty(),
            "{name}: no error message in {}",
            r.text()
        );
        assert!(
            message.contains(needle),
            "{name}: `{message}` lacks `{needle}`"
        );
        // Still serving, and still right.
        let rows = e.rows(&e.t.analyst, "SELECT count(*) AS n FROM events");
        assert_eq!(count(&rows, "n"), events_in("") as i64, "after {name}");
    }
    // The process wrote no file.
    assert!(!Path::new("/tmp/gt-stolen.csv").exists());
    // A calendar within bounds still works.
    let days = e.rows(
        &e.t.analyst,
        "SELECT unnest(generate_series(DATE '2026-09-01', DATE '2026-11-30', INTERVAL '1 day')) AS d",
    );
    assert_eq!(days.len(), 91);
}

#[test]
fn psql_signs_in_with_a_token_and_sees_its_region() {
    let e = env();
    let all = e.psql_ok(&e.t.analyst, "SELECT count(*) FROM events");
    assert_eq!(all, events_in("").to_string());
    let own = e.psql_ok(&e.t.analyst_4501, "SELECT count(*) FROM events");
    assert_eq!(own, events_in("4501").to_string());
    let leaked = e.psql_ok(
        &e.t.analyst_4501,
        "SELECT count(*) FROM events WHERE region LIKE '4502%'",
    );
    assert_eq!(leaked, "0");
    let regions = e.psql_ok(&e.t.analyst_4502, "SELECT DISTINCT region FROM events");
    assert!(regions.lines().all(|r| r.starts_with("4502")), "{regions}");
    let f1: i64 = e
        .psql_ok(&e.t.analyst_4501, "SELECT count(*) FROM findings")
        .parse()
        .unwrap();
    let fa: i64 = e
        .psql_ok(&e.t.analyst, "SELECT count(*) FROM findings")
        .parse()
        .unwrap();
    assert!(f1 < fa);
    // groundtruth's rule switches: set for the connection, same answers.
    let per_day = "SELECT event_date, count(*) FROM events GROUP BY 1 ORDER BY 1";
    let with_rules = e.psql_ok(&e.t.analyst, per_day);
    let explain = format!("EXPLAIN {per_day}");
    let footers = "partition_sizes"; // the counts come from the footers, not a scan
    assert!(e.psql_ok(&e.t.analyst, &explain).contains(footers));
    let (ok, out, err) = e.psql(
        &e.t.analyst,
        &[
            "-c",
            "SET groundtruth.footer_counts = false",
            "-c",
            &explain,
            "-c",
            per_day,
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.contains(footers), "the rule still ran: {out}");
    assert!(out.ends_with(&with_rules), "{out}");
    let err = e.psql_err(&e.t.analyst, "SET datafusion.execution.batch_size = 1");
    assert!(err.contains("groundtruth.*"), "{err}");
    // A misspelt switch or a value it does not take is refused, not
    // answered SET and ignored.
    let err = e.psql_err(&e.t.analyst, "SET groundtruth.footer_count = false");
    assert!(err.contains("groundtruth.footer_counts"), "{err}");
    let err = e.psql_err(&e.t.analyst, "SET groundtruth.footer_counts = maybe");
    assert!(err.contains("true or false"), "{err}");
    // The metrics views.
    let zombies = e.psql_ok(
        &e.t.analyst,
        "SELECT app_id FROM app_health WHERE classification = 'zombie'",
    );
    assert!(!zombies.is_empty());

    // Wrong or unfit tokens.
    let err = e.psql_err("gt_nope", "SELECT 1");
    assert!(
        err.to_lowercase()
            .contains("password authentication failed"),
        "{err}"
    );
    let err = e.psql_err(&e.t.inspector, "SELECT 1");
    assert!(err.contains("cannot use SQL"), "{err}");

    // What DBeaver, Grafana and psql ask of pg_catalog.
    for q in [
        "SELECT current_database()",
        "SELECT version()",
        "SHOW search_path",
        "SET extra_float_digits = 3",
        "SET application_name = 'DBeaver 24'",
        "SELECT n.nspname FROM pg_catalog.pg_namespace n ORDER BY 1",
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname = 'events'",
        "SELECT table_name FROM information_schema.tables WHERE table_name = 'app_health'",
        "SELECT t.oid, t.typname FROM pg_catalog.pg_type t LIMIT 5",
    ] {
        e.psql_ok(&e.t.analyst, q);
    }
    let tables = e.psql_ok(&e.t.analyst, "SELECT relname FROM pg_catalog.pg_class WHERE relname IN ('events', 'app_health') ORDER BY 1");
    assert!(tables.contains("events"), "{tables}");

    // Audit, on the wire too.
    let audit = e.audit_queries();
    assert!(audit.iter().any(|a| a["entity_id"] == json!("pgwire")
        && a["actor"] == json!("nanning")
        && a["after"]["sql"].as_str().unwrap().contains("4502")));
}

#[test]
fn the_wire_protocol_refuses_what_http_refuses() {
    let e = env();
    let t = &e.t.analyst;
    for (sql, needle) in [
        ("DROP TABLE events", "not a query"),
        ("CREATE TABLE t (a INT)", "not a query"),
        ("INSERT INTO events SELECT * FROM events", "not a query"),
        ("DELETE FROM events", "not a query"),
        ("COPY (SELECT 1) TO '/tmp/gt-stolen-pg.csv'", ""),
        ("CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'", ""),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM '/etc/passwd'", "passwd"),
        ("SET datafusion.execution.target_partitions = 1000", "not allowed"),
        ("SELECT 1; DROP TABLE events", "not a query"),
        ("SELECT repeat('x', 2000000000)", "at most"),
        ("SELECT sum(length(a.event_id || b.event_id || c.event_id || d.event_id)) FROM events a, events b, events c, events d", "longer than"),
    ] {
        let err = e.psql_err(t, sql);
        assert!(err.contains(needle), "{sql}: {err}");
        assert_eq!(e.psql_ok(t, "SELECT count(*) FROM events"), events_in("").to_string());
    }
    // A 10 MB statement from a file.
    let dir = tempfile::tempdir().unwrap();
    let big: PathBuf = dir.path().join("big.sql");
    std::fs::write(&big, format!("SELECT '{}';\n", "x".repeat(10 << 20))).unwrap();
    let (ok, _, err) = e.psql(t, &["-f", big.to_str().unwrap()]);
    assert!(!ok && err.contains("at most"), "{err}");
    assert!(!Path::new("/tmp/gt-stolen-pg.csv").exists());

    // The extended protocol (sqlx): parameters, same scope, same guard.
    let url = |tok: &str| {
        format!(
            "postgres://analyst:{tok}@{}/groundtruth?sslmode=disable",
            e.pg
        )
    };
    e.rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url(&e.t.analyst_4501))
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE region LIKE $1")
            .bind("45%")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n as usize, events_in("4501"));
        let err = sqlx::query("DELETE FROM events")
            .execute(&mut c)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a query"), "{err}");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n as usize, events_in("4501"));
    });
}

/// The attacks of the standing suite, by family: queries that took the
/// process down (deep expressions, values that grow past memory, series
/// that never end), limits that did not hold, and reads across the region
/// scope through error messages. Each runs on both channels.
fn attack_suite() -> Vec<(String, String)> {
    let chain = |sep: &str, term: &str, n: usize| vec![term; n].join(sep);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |name: String, sql: String| out.push((name, sql));
    // Deep expressions: the planner recursed until the stack ran out.
    for n in [300, 1000, 2000, 5000] {
        add(
            format!("{n} additions"),
            format!("SELECT {}", chain("+", "1", n)),
        );
        add(
            format!("{n} string concats"),
            format!("SELECT {}", chain("||", "'a'", n)),
        );
        add(
            format!("{n} ANDs"),
            format!(
                "SELECT count(*) FROM events WHERE {}",
                chain(" AND ", "true", n)
            ),
        );
        add(
            format!("{n} ORs"),
            format!(
                "SELECT count(*) FROM events WHERE {}",
                chain(" OR ", "kind = 'x'", n)
            ),
        );
        add(
            format!("{n} multiplications"),
            format!("SELECT {}", chain("*", "lat", n)),
        );
        add(
            format!("{n} NOTs"),
            format!("SELECT {} true", "NOT ".repeat(n)),
        );
        add(
            format!("{n} unary minus"),
            format!("SELECT {}1", "- ".repeat(n)),
        );
        add(format!("{n} UNIONs"), chain(" UNION ALL ", "SELECT 1", n));
        add(
            format!("{n} CASE branches"),
            format!(
                "SELECT CASE {} END",
                (0..n)
                    .map(|i| format!("WHEN lat = {i} THEN {i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        add(
            format!("{n}-table join"),
            format!(
                "SELECT 1 FROM events{}",
                (0..n.min(600))
                    .map(|i| format!(" JOIN events e{i} USING (event_id)"))
                    .collect::<String>()
            ),
        );
    }
    add(
        "IN list of 5000".into(),
        format!(
            "SELECT count(*) FROM events WHERE account_id IN ({})",
            (0..5000)
                .map(|i| format!("'a{i}'"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    // Values that grow past memory, also in constant folding.
    for (name, sql) in [
        ("array_repeat of a 1 MB string", "SELECT cardinality(array_repeat(arrow_cast(repeat('x',1048576),'LargeUtf8'),1000000))"),
        ("array_repeat nested", "SELECT cardinality(array_repeat(array_repeat(array_repeat(1,1000),1000),1000))"),
        ("array_resize of a big fill", "SELECT cardinality(array_resize([1], 1000000, repeat('x', 1000)))"),
        ("replace growth", "SELECT length(replace(repeat('a',100000),'a',repeat('b',100000)))"),
        ("replace of the empty string", "SELECT length(replace(repeat('a',100000),'',repeat('b',1000)))"),
        ("regexp_replace growth", "SELECT length(regexp_replace(repeat('a',100000),'a','$0$0$0$0$0$0$0$0$0$0','g'))"),
        ("repeat per row", "SELECT sum(length(repeat(md5(value::text),32000))) FROM range(2000)"),
        ("repeat of a 1 MB constant per row", "SELECT sum(length(repeat(repeat('x', 1000000), 1))) FROM range(100000)"),
        ("repeat in a result", "SELECT repeat('x', 1000000) AS big FROM range(100)"),
        ("a folded constant copied into every row", "SELECT sum(length(big)) FROM (SELECT repeat('x', 1000000) AS big FROM range(8192))"),
        ("a folded constant aggregated over every row", "SELECT length(string_agg(repeat('x', 1000000), ',')) FROM range(8192)"),
        ("concat of many", "SELECT length(concat(repeat('x',1000000),repeat('x',1000000),repeat('x',1000000)))"),
        ("concat_ws separator", "SELECT length(concat_ws(repeat('x',1000000),'a','b','c','d'))"),
        ("|| of a CTE", "WITH t AS (SELECT repeat('x', 1000000) AS s) SELECT length(s||s||s||s||s||s||s||s) FROM t"),
        ("|| per row", "SELECT sum(length(repeat('x', 100000) || value::text)) FROM range(100000)"),
        ("recursive doubling", "WITH RECURSIVE t(s, n) AS (SELECT 'x', 1 UNION ALL SELECT s || s, n + 1 FROM t WHERE n < 40) SELECT max(length(s)) FROM t"),
        ("hex of hex of hex", "SELECT length(encode(encode(encode(repeat('x',1000000),'hex'),'hex'),'hex'))"),
        ("upper of a big string", "SELECT length(upper(repeat('ß', 500000)))"),
        ("lpad with a big fill", "SELECT length(lpad('x', 1000000000, 'ab'))"),
        ("range, zero step from the 31st", "SELECT cardinality(range(DATE '2020-01-31', DATE '2019-01-01', INTERVAL '-1 month 31 days'))"),
        ("range, mixed-sign step", "SELECT cardinality(range(TIMESTAMP '2020-01-31', TIMESTAMP '2030-01-01', INTERVAL '1 month -30 days'))"),
        ("generate_series of seconds", "SELECT cardinality(generate_series(TIMESTAMP '1970-01-01', TIMESTAMP '2100-01-01', INTERVAL '1 second'))"),
        ("range of 1e12", "SELECT cardinality(range(1, 1000000000000))"),
        ("array_concat of big lists", "SELECT cardinality(array_concat(range(1000000), range(1000000), range(1000000)))"),
        ("make_array of big strings", "SELECT cardinality(make_array(repeat('x',1000000),repeat('x',1000000),repeat('x',1000000),repeat('x',1000000)))"),
        // Limits that did not hold.
        ("regex over a cross join", "SELECT count(*) FROM events a, events b, events c WHERE regexp_like(a.event_id || b.event_id || c.event_id, '(a|b|c|d|e)+x')"),
        ("count over a huge range", "SELECT count(*) FROM range(10000000000)"),
        ("recursive without end", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"),
        ("sort beyond memory", "SELECT a.event_id, b.event_id, c.event_id FROM events a, events b, events c ORDER BY 1, 2, 3"),
        ("string_agg of big values", "SELECT length(string_agg(repeat('x', 1000000), ',')) FROM range(60)"),
        ("array_agg of big values", "SELECT cardinality(array_agg(repeat('x', 1000000))) FROM range(60)"),
        ("edit distance of two long strings", "SELECT levenshtein(repeat('a', 1000000), repeat('b', 1000000))"),
        ("edit distance per row", "SELECT sum(levenshtein(repeat(event_id, 1000), repeat(account_id, 1000))) FROM events"),
        ("list containment of long lists", "SELECT array_has_all(range(1000000), range(1000000))"),
    ] {
        add(name.into(), sql.into());
    }
    // Reads across the scope through error messages.
    let leak = "concat(region,'|',account_id,'|',device_id,'|',ip)";
    for (name, sql) in [
        ("cast of another region's row".to_string(), format!("SELECT count(*) FROM events WHERE CAST(CASE WHEN region LIKE '4502%' THEN {leak} ELSE '1' END AS INT) = 1")),
        ("divide by zero on another region".to_string(), "SELECT count(*) FROM events WHERE 1/(CASE WHEN region LIKE '4502%' THEN 0 ELSE 1 END) = 1".to_string()),
        ("walk with NOT IN".to_string(), format!("SELECT count(*) FROM events WHERE account_id NOT IN ('u01') AND CAST(CASE WHEN region NOT LIKE '4501%' THEN {leak} ELSE '1' END AS INT) = 1")),
        ("cast in a join".to_string(), format!("SELECT count(*) FROM events a JOIN events b ON a.event_id = b.event_id WHERE CAST(CASE WHEN b.region LIKE '4502%' THEN {leak} ELSE '1' END AS INT) = 1")),
        ("cast in a view".to_string(), "SELECT count(*) FROM account_days WHERE CAST(CASE WHEN region LIKE '4502%' THEN account_id ELSE '1' END AS INT) = 1".to_string()),
        ("cast in an aggregate".to_string(), format!("SELECT max(CAST(CASE WHEN region LIKE '4502%' THEN {leak} ELSE '1' END AS INT)) FROM events")),
        ("arrow_cast on another region".to_string(), "SELECT count(*) FROM events WHERE arrow_cast(CASE WHEN region LIKE '4502%' THEN account_id ELSE '1' END, 'Int64') = 1".to_string()),
        ("to_timestamp on another region".to_string(), "SELECT count(*) FROM events WHERE to_timestamp(CASE WHEN region LIKE '4502%' THEN device_id ELSE '2026-01-01' END) IS NOT NULL".to_string()),
        ("explain analyze".to_string(), "EXPLAIN ANALYZE SELECT app_id, count(*) FROM events GROUP BY 1".to_string()),
        ("explain verbose".to_string(), "EXPLAIN VERBOSE SELECT * FROM events WHERE account_id = 'x'".to_string()),
    ] {
        add(name, sql);
    }
    for column in [
        "account_id",
        "device_id",
        "ip",
        "event_id",
        "app_id",
        "region",
        "kind",
    ] {
        add(
            format!("cast of {column}"),
            format!("SELECT count(*) FROM events WHERE CAST({column} AS INT) > 0"),
        );
        add(
            format!("sum of {column}"),
            format!("SELECT sum(CAST({column} AS DOUBLE)) FROM events"),
        );
        add(
            format!("date of {column}"),
            format!("SELECT count(*) FROM events WHERE CAST({column} AS DATE) IS NOT NULL"),
        );
    }
    out
}

#[test]
fn standing_attack_suite_over_both_channels_keeps_scope_limits_and_the_server() {
    let e = env();
    let attacks = attack_suite();
    assert!(attacks.len() >= 100, "{} attacks", attacks.len());
    let foreign = fixtures::foreign_values(&repo().join(FIXTURE), "4501");
    assert!(
        foreign.len() > 50,
        "the fixture's other city has values: {}",
        foreign.len()
    );
    let t = &e.t.analyst_4501;
    let clean = |what: &str, sql: &str, text: &str| {
        for v in foreign.iter().filter(|v| !sql.contains(v.as_str())) {
            assert!(
                !text.contains(v.as_str()),
                "{what}: quotes `{v}` from outside the scope: {}",
                text.chars().take(400).collect::<String>()
            );
        }
        assert!(
            !text.contains(".parquet"),
            "{what}: names lake files: {}",
            text.chars().take(400).collect::<String>()
        );
    };
    let alive = |after: &str| {
        let rows = e.rows(t, "SELECT count(*) AS n FROM events");
        assert_eq!(count(&rows, "n"), events_in("4501") as i64, "after {after}");
    };
    let started = std::time::Instant::now();
    for (name, sql) in &attacks {
        let r = request_with(
            e.http,
            "POST",
            "/api/v1/sql",
            Some(t),
            "text/plain",
            Some(sql.as_bytes()),
        )
        .unwrap_or_else(|err| panic!("http {name}: the server did not answer: {err:#}"));
        assert!(
            r.status < 500,
            "http {name}: {} {}",
            r.status,
            r.text().chars().take(300).collect::<String>()
        );
        clean(&format!("http {name}"), sql, &r.text());
        alive(&format!("http {name}"));
        let (_, out, err) = e.psql(t, &["-c", sql]);
        clean(&format!("pgwire {name}"), sql, &out);
        clean(&format!("pgwire {name}"), sql, &err);
        assert!(
            !err.contains("server closed the connection unexpectedly"),
            "pgwire {name}: {err}"
        );
        assert_eq!(
            e.psql_ok(t, "SELECT count(*) FROM events"),
            events_in("4501").to_string(),
            "pgwire after {name}"
        );
    }
    eprintln!(
        "{} attacks on both channels in {:.1} s",
        attacks.len(),
        started.elapsed().as_secs_f64()
    );
    // The crashers are refused, not answered, and each is in the audit log.
    for (name, sql) in &attacks[..4] {
        let r = e.query_text(t, "/api/v1/sql", sql);
        assert_eq!(r.status, 403, "{name}: {}", r.text());
    }
    let audit = e.audit_queries();
    let refused = audit
        .iter()
        .filter(|a| a["after"]["outcome"]["status"] == json!("refused"))
        .count();
    assert!(refused >= 4, "refusals are audited: {refused}");
    // A scoped caller's error quotes only its own rows.
    let (status, v) = e.sql(t, json!({"sql": "SELECT count(*) FROM events WHERE CAST(concat(region, '|', account_id) AS INT) = 1"}));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("'4501"),
        "{v}"
    );
}

#[test]
fn http_answers_an_xlsx_workbook_that_pandas_reads_as_the_json() {
    let e = env();
    let query = "SELECT app_id, count(*) AS n, avg(accuracy_m) AS acc, min(event_date) AS first, \
                 CAST(NULL AS BIGINT) AS nothing, '=1+1' AS formula, '网格员' AS who \
                 FROM events GROUP BY app_id ORDER BY app_id";
    let (status, v) = e.sql(&e.t.analyst, json!({ "sql": query }));
    assert_eq!(status, 200, "{v}");
    let r = request(
        e.http,
        "POST",
        "/api/v1/sql",
        Some(&e.t.analyst),
        Some(
            json!({ "sql": query, "format": "xlsx" })
                .to_string()
                .as_bytes(),
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    );
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("result.xlsx");
    std::fs::write(&book, &r.body).unwrap();
    // Read back as an office would (pandas over openpyxl): numbers are
    // numbers, the date its text, the null empty, `=1+1` text.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,pandas; d=pandas.read_excel(sys.argv[1], sheet_name=None); \
             (name, t), = d.items(); t=t.astype(object).where(t.notna(), None); \
             print(json.dumps({'sheet': name, 'columns': list(t.columns), 'rows': t.to_dict('records')}, ensure_ascii=False))",
        ])
        .arg(&book)
        .output()
        .expect("python3 runs (tests/run.sh installs pandas and openpyxl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["sheet"], json!("查询结果"));
    assert_eq!(
        got["columns"],
        json!(["app_id", "n", "acc", "first", "nothing", "formula", "who"])
    );
    let rows = got["rows"].as_array().unwrap();
    let want = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (g, w) in rows.iter().zip(want) {
        assert_eq!(g["app_id"], w["app_id"]);
        assert_eq!(g["n"], w["n"]);
        match (g["acc"].as_f64(), w["acc"].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{g} {w}"),
            (a, b) => assert_eq!(a, b, "{g} {w}"),
        }
        assert_eq!(g["first"], w["first"]);
        assert_eq!(g["nothing"], Value::Null);
        assert_eq!(g["formula"], json!("=1+1"));
        assert_eq!(g["who"], json!("网格员"));
    }
    // Beyond Excel's limits a clear refusal: a cell of 40,000 characters.
    let r = e.query_text(
        &e.t.analyst,
        "/api/v1/sql?format=xlsx",
        "SELECT repeat('x', 40000) AS long_text",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("long_text") && r.text().contains("csv"),
        "{}",
        r.text()
    );
}

#[test]
fn csv_cells_cannot_run_as_spreadsheet_formulas() {
    let e = env();
    let r = e.query_text(&e.t.analyst, "/api/v1/sql?format=csv", "SELECT '=HYPERLINK(\"http://x\")' AS \"=evil\", '+1+1' AS b, '-3.5' AS c, '@SUM(A1)' AS d, 'plain' AS e");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("'=evil,b,c,d,e"), "{text}");
    assert_eq!(
        lines.next(),
        Some("\"'=HYPERLINK(\"\"http://x\"\")\",'+1+1,-3.5,'@SUM(A1),plain"),
        "{text}"
    );
}

#[test]
fn sessions_end_and_silent_connections_cannot_lock_anyone_out() {
    let e = env();
    // A token revoked while its wire connection is open stops there.
    let who =
        e.rt.block_on(e.store.authenticate(&e.t.analyst_4502))
            .unwrap();
    e.rt.block_on(async {
        use sqlx::Connection;
        let url = format!(
            "postgres://x:{}@{}/groundtruth?sslmode=disable",
            e.t.analyst_4502, e.pg
        );
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n as usize, events_in("4502"));
        let admin = e.store.authenticate(&e.t.admin).await.unwrap();
        e.store.revoke_token(&admin, &who.token_id).await.unwrap();
        let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&mut c)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("revoked"), "{err}");
    });
    // A statement that fails on the wire, while planning or while its rows
    // stream, is audited as an error, never as ok; one that streams to the
    // end, with its row count.
    let failing = "SELECT CAST(account_id AS INT) AS n FROM events";
    e.psql_err(&e.t.analyst, failing);
    e.psql_ok(&e.t.analyst, "SELECT event_id FROM events LIMIT 7");
    let audit = e.audit_queries();
    let of = |sql: &str| -> Vec<Value> {
        audit
            .iter()
            .filter(|a| a["after"]["sql"] == json!(sql) && a["entity_id"] == json!("pgwire"))
            .map(|a| a["after"]["outcome"].clone())
            .collect()
    };
    let failed = of(failing);
    assert!(
        !failed.is_empty() && failed.iter().all(|o| o["status"] == json!("error")),
        "{failed:?}"
    );
    let ok = of("SELECT event_id FROM events LIMIT 7");
    assert!(
        ok.iter()
            .any(|o| o["status"] == json!("ok") && o["rows"] == json!(7)),
        "{ok:?}"
    );

    // A client's CancelRequest (psql sends one on Ctrl-C) stops its
    // statement at once, long before the time limit; it is audited as
    // cancelled and the server goes on.
    let long = "SELECT sum(length(a.event_id) + length(b.event_id) + length(c.event_id)) \
                FROM events a CROSS JOIN events b CROSS JOIN events c CROSS JOIN events d";
    let child = groundtruth_tests::psql(e.pg.port(), &e.t.analyst)
        .args(["-c", long])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A cancel request reaches only a statement already running (as in
    // PostgreSQL); under load the statement may start late, so psql is
    // interrupted once a second until it ends (each Ctrl-C sends one).
    let started = std::time::Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1000));
        let killed = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success() || child.try_wait().unwrap().is_some());
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "psql after Ctrl-C: {err} {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(e.psql_ok(&e.t.analyst, "SELECT 1"), "1");
    let cancelled: Vec<Value> = e
        .audit_queries()
        .into_iter()
        .filter(|a| a["after"]["sql"] == json!(long))
        .map(|a| a["after"]["outcome"].clone())
        .collect();
    assert!(
        cancelled.iter().any(|o| o["status"] == json!("cancelled")),
        "{cancelled:?}"
    );

    // The same inside one long function call (the edit distance of
    // 3,000-character strings, row after row: one batch would run for
    // minutes): the call stops at its next row, and the core is free.
    let in_call = "SELECT sum(levenshtein(repeat(md5(event_id), 94), repeat(md5(account_id), 94))) FROM events";
    let mut child = groundtruth_tests::psql(e.pg.port(), &e.t.analyst)
        .args(["-c", in_call])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1000));
        let _ = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "psql after Ctrl-C in a function call: {err}"
    );
    let before = groundtruth_tests::cpu_seconds();
    std::thread::sleep(Duration::from_secs(2));
    let used = groundtruth_tests::cpu_seconds() - before;
    assert!(
        used < 0.6,
        "the cancelled statement's calls used {used:.2} s of CPU in the 2 s after"
    );
    assert_eq!(e.psql_ok(&e.t.analyst, "SELECT 1"), "1");

    // Wrong passwords are audited.
    let (ok, _, _) = e.psql(
        "gt_1111111111111111111111111111111111111111111111111111111111111111",
        &["-c", "SELECT 1"],
    );
    assert!(!ok);
    let failed =
        e.rt.block_on(e.store.audit_log(
            &Scope::nationwide(),
            &AuditQuery {
                action: Some("auth.failed".into()),
                limit: 50,
                ..Default::default()
            },
        ))
        .unwrap();
    assert!(
        !failed.items.is_empty(),
        "a failed sign-in is in the audit log"
    );

    // 40 silent connections from another address: psql still signs in,
    // and the silent ones are closed after the startup timeout.
    let silent: Vec<std::net::TcpStream> = e.rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..40 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            if let Ok(c) = s.connect(e.pg).await {
                out.push(c.into_std().unwrap());
            }
        }
        out
    });
    assert!(silent.len() >= 10);
    let started = std::time::Instant::now();
    assert_eq!(e.psql_ok(&e.t.analyst, "SELECT 1"), "1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "signed in at once beside the silent connections"
    );
    let mut first = silent.into_iter().next().unwrap();
    first.set_nonblocking(false).unwrap();
    first
        .set_read_timeout(Some(
            groundtruth_pgwire::STARTUP_TIMEOUT + Duration::from_secs(10),
        ))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut first, &mut buf)
        .unwrap_or_else(|err| panic!("not closed after the startup timeout: {err}"));
    assert_eq!(n, 0, "closed, not answered");

    // HTTP: half a request is cut off after the header-read timeout.
    let mut half = std::net::TcpStream::connect(e.http).unwrap();
    std::io::Write::write_all(&mut half, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut half, &mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "half a request held {:?}",
        started.elapsed()
    );
}

/// Twenty heavy queries at once, from several callers, over both channels: the server's memory
/// stays within the server-wide pool (256 MB here) plus a fixed overhead,
/// each query gets an answer or a clear limit error, and `/healthz`
/// answers throughout.
#[test]
fn twenty_concurrent_hostile_queries_stay_within_the_servers_memory() {
    twenty_at_once(&[
        "SELECT a.event_id, b.event_id, c.event_id FROM events a, events b, events c ORDER BY 1, 2, 3",
        "SELECT length(string_agg(repeat('x', 1000000), ',')) FROM range(60)",
        "SELECT cardinality(array_agg(repeat(md5(value::text), 30000))) FROM range(60)",
        "SELECT a.account_id, count(DISTINCT b.event_id || c.event_id) FROM events a, events b, events c GROUP BY 1",
        "SELECT repeat('x', 1000000) AS big FROM range(60)",
    ]);
}

/// As above with aggregates of values that vary by row (each batch under
/// the per-call bound) grown past a query's pool: DataFusion's pools count
/// a fraction of what these hold (a grouped `array_agg` held 430 MB under
/// a 64 MB pool), so it is the server's memory governor that holds them
/// (pool.rs), stopping the biggest with 503.
#[test]
fn twenty_concurrent_growing_aggregates_stay_within_the_servers_memory() {
    twenty_at_once(&[
        "SELECT a.event_id, b.event_id, c.event_id FROM events a, events b, events c ORDER BY 1, 2, 3",
        "SELECT length(string_agg(repeat(md5(value::text), 60), ',')) FROM range(200000)",
        "SELECT value % 1000 AS k, cardinality(array_agg(repeat(md5(value::text), 60))) FROM range(200000) GROUP BY 1",
        "SELECT a.account_id, count(DISTINCT b.event_id || c.event_id) FROM events a, events b, events c GROUP BY 1",
    ]);
}

fn twenty_at_once(heavy: &[&str]) {
    let e = env();
    let tokens = [
        &e.t.analyst,
        &e.t.analyst_4501,
        &e.t.analyst_4502,
        &e.t.admin,
    ];
    let before = groundtruth_tests::rss_mb();
    // What the allocator holds at most, beside resident memory (jemalloc
    // keeps freed pages a while).
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut most = 0usize;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(groundtruth_alloc::live_bytes().unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            most >> 20
        })
    };
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let sql = heavy[i % heavy.len()];
                let token = tokens[i % tokens.len()];
                let e = &e;
                s.spawn(move || {
                    if i % 5 == 4 {
                        // A quarter over the wire protocol, as HTTP's
                        // statuses: what the server said, in its words.
                        let (ok, _, err) = e.psql(token, &["-c", sql]);
                        return match () {
                            _ if ok => 200,
                            _ if err.contains("the last to start, was stopped") => 503,
                            _ if err.contains("memory") => 422,
                            _ if err.contains("canceling") || err.contains("longer than") => 408,
                            _ if err.contains("ERROR") => 400,
                            _ => {
                                eprintln!("psql: {err}");
                                0
                            }
                        };
                    }
                    request_with(
                        e.http,
                        "POST",
                        "/api/v1/sql",
                        Some(token),
                        "text/plain",
                        Some(sql.as_bytes()),
                    )
                    .map(|r| r.status)
                    .unwrap_or(0)
                })
            })
            .collect();
        // The API answers while they run.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(500));
            let started = std::time::Instant::now();
            let r = request(e.http, "GET", "/healthz", None, None).unwrap();
            assert_eq!(r.status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "healthz took {:?}",
                started.elapsed()
            );
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak = groundtruth_tests::peak_rss_mb();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let allocated = sampler.join().unwrap();
    eprintln!("20 heavy queries: statuses {statuses:?}; resident memory {before:.0} MB before, peak {peak:.0} MB; allocated at most {allocated} MB");
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, 200 | 400 | 408 | 422 | 429 | 503)),
        "{statuses:?}"
    );
    assert!(
        peak < before + 256.0 + 256.0,
        "peak {peak:.0} MB against {before:.0} MB before and a 256 MB server pool"
    );
    // Still serving.
    let rows = e.rows(&e.t.analyst, "SELECT count(*) AS n FROM events");
    assert_eq!(count(&rows, "n"), events_in("") as i64);
}

/// Days, hours, clock times and bounds of `ts` read as PostgreSQL reads a
/// `timestamptz`: in the session's time zone, the lake's day zone unless
/// the client sets another. Held against a real PostgreSQL server given
/// the same instants, in three zones (one with daylight saving).
#[test]
fn time_zones_read_as_postgresql_reads_them() {
    let e = env();
    let t = &e.t.analyst;
    let pg = groundtruth_tests::postgres::Postgres::start()
        .expect("PostgreSQL (tests/run.sh installs it)");
    let db = pg.database().unwrap();
    let instants: Vec<String> = std::fs::read_to_string(repo().join(FIXTURE))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["ts"].as_str().map(|s| format!("('{s}')")))
        .collect();
    assert_eq!(instants.len(), events_in(""));
    pg.psql(
        &db,
        &format!(
            "CREATE TABLE events (ts timestamptz); INSERT INTO events VALUES {}",
            instants.join(",")
        ),
    )
    .unwrap();
    let queries = [
        "SELECT ts::date AS d, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(extract(hour FROM ts) AS int) AS h, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT to_char(ts, 'YYYY-MM-DD HH24:MI') AS t, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(date_trunc('day', ts) AS date) AS d, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT count(*) FROM events WHERE ts >= '2026-11-30 10:00:00'",
        "SELECT count(*) FROM events WHERE ts >= TIMESTAMP '2026-11-30 10:00:00'",
        "SELECT count(*) FROM events WHERE ts >= DATE '2026-12-01'",
        "SELECT count(*) FROM events WHERE ts < '2026-11-30T02:00:00Z'",
        // A zone the query names itself is that zone's clock, UTC too (the
        // tag ts is stored with: zone.rs spells it out).
        "SELECT to_char(ts AT TIME ZONE 'America/New_York', 'YYYY-MM-DD HH24:MI') AS t, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS t, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(ts AT TIME ZONE 'utc' AS date) AS d, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(extract(hour FROM ts AT TIME ZONE 'Etc/UTC') AS int) AS h, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(ts AT TIME ZONE 'America/New_York' AS date) AS d, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT CAST(extract(hour FROM ts AT TIME ZONE 'Asia/Tokyo') AS int) AS h, count(*) FROM events GROUP BY 1 ORDER BY 1",
    ];
    // The session's zone at sign-in is the lake's (Asia/Shanghai).
    assert_eq!(e.psql_ok(t, "SHOW TIME ZONE"), "Asia/Shanghai");
    for zone in [None, Some("UTC"), Some("America/New_York")] {
        let set = format!("SET TIME ZONE '{}'", zone.unwrap_or("Asia/Shanghai"));
        for q in queries {
            let theirs = pg.psql(&db, &format!("{set}; {q}")).unwrap();
            let theirs = theirs.trim().strip_prefix("SET").unwrap_or(&theirs).trim();
            let mut args = Vec::new();
            if zone.is_some() {
                args.extend(["-c", set.as_str()]);
            }
            args.extend(["-c", q]);
            let (ok, ours, err) = e.psql(t, &args);
            assert!(ok, "{zone:?} {q}: {err}");
            assert_eq!(ours.trim(), theirs, "{zone:?}: {q}");
        }
    }
    // Over HTTP too (the session's zone is the lake's there).
    let q = "SELECT CAST(ts AT TIME ZONE 'UTC' AS date) AS d, count(*) AS n FROM events GROUP BY 1 ORDER BY 1";
    let theirs = pg
        .psql(&db, &format!("SET TIME ZONE 'Asia/Shanghai'; {q}"))
        .unwrap();
    let theirs = theirs.trim().strip_prefix("SET").unwrap_or(&theirs).trim();
    let http: Vec<String> = e
        .rows(t, q)
        .iter()
        .map(|r| format!("{}|{}", r["d"].as_str().unwrap(), r["n"]))
        .collect();
    assert_eq!(http.join("\n"), theirs, "HTTP: {q}");
    let (ok, _, err) = e.psql(t, &["-c", "SET TIME ZONE 'Mars/Olympus'"]);
    assert!(
        !ok && err.contains("invalid value for parameter \"TimeZone\""),
        "{err}"
    );
    assert_eq!(e.psql_ok(t, "SET TIME ZONE 'UTC'"), "", "accepted");
    let (ok, out, err) = e.psql(
        t,
        &[
            "-c",
            "SET TIME ZONE 'UTC'",
            "-c",
            "SHOW TIME ZONE",
            "-c",
            "SET TIME ZONE DEFAULT",
            "-c",
            "SHOW TIME ZONE",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["UTC", "Asia/Shanghai"]);
}

/// The analysts' own Python clients work unchanged against the wire
/// protocol (tests/clients/clients.py: psycopg 3 and 2 with parameters,
/// server-side cursors and COPY TO STDOUT; SQLAlchemy with both drivers and
/// its inspector; pandas.read_sql; Polars through connectorx and
/// SQLAlchemy), as a scoped analyst: every count is the scope's.
#[test]
fn python_clients_work_unchanged() {
    let e = env();
    let t = &e.t.analyst_4501;
    // psql first: `\copy` to a file on the client's side (COPY ... TO
    // STDOUT on the wire), in CSV with a header; the database's name.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.csv");
    let copy = format!(
        "\\copy (SELECT event_id, kind FROM events ORDER BY event_id) TO '{}' WITH CSV HEADER",
        file.display()
    );
    let (ok, out, err) = e.psql(t, &["-c", &copy]);
    assert!(ok, "{out} {err}");
    let csv = std::fs::read_to_string(&file).unwrap();
    assert_eq!(csv.lines().next(), Some("event_id,kind"));
    assert_eq!(csv.lines().count(), events_in("4501") + 1);
    assert_eq!(e.psql_ok(t, "SELECT current_database()"), "groundtruth");
    // psql's listings: tables, views, functions (none outside pg_catalog,
    // as in a new PostgreSQL database), each in detail.
    for listing in [
        "\\d events",
        "\\dv",
        "\\df",
        "\\d+ events",
        "\\d+ account_days",
        "\\d+",
    ] {
        let (ok, _, err) = e.psql(t, &["-c", listing]);
        assert!(ok, "{listing}: {err}");
    }
    // Dashboards' version probes, and to_char in PostgreSQL's patterns.
    assert_eq!(
        e.psql_ok(t, "SELECT current_setting('server_version_num')"),
        "160006"
    );
    assert_eq!(e.psql_ok(t, "SHOW server_version"), "16.6");
    assert!(e
        .psql_ok(t, "SELECT version()")
        .starts_with("PostgreSQL 16.6 (groundtruth"));
    let (_, _, err) = e.psql(t, &["-c", "SELECT current_setting('shared_buffers')"]);
    assert!(
        err.contains("unrecognized configuration parameter"),
        "{err}"
    );
    assert_eq!(
        e.psql_ok(
            t,
            "SELECT to_char(TIMESTAMP '2026-11-30 09:05:00', 'YYYY-MM-DD HH24:MI \"h\" FMMM月')"
        ),
        "2026-11-30 09:05 h 11月"
    );
    let (_, _, err) = e.psql(t, &["-c", "COPY (SELECT 1) TO '/tmp/groundtruth-copy'"]);
    assert!(err.contains("only TO STDOUT"), "{err}");
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/clients/clients.py"))
        .env("GT_PG_PORT", e.pg.port().to_string())
        .env("GT_TOKEN", t)
        .env("GT_EVENTS", events_in("4501").to_string())
        .output()
        .expect("python3 runs (tests/run.sh installs the clients)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != json!(true))
        .map(|r| {
            format!(
                "{}: {}\n{}",
                r["check"],
                r["error"],
                r["trace"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        out.status.success() && failed.is_empty() && results.len() >= 14,
        "{} of {} client checks failed ({}):\n{}\nstdout: {stdout}\nstderr: {}",
        failed.len(),
        results.len(),
        out.status,
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scalar subquery in the select list answers over the wire as over
/// HTTP. The catalogue rewrites of datafusion-postgres turned a correlated
/// one into NULL and stamped LIMIT 1 on an uncorrelated one; they are kept
/// to the catalogue's queries (groundtruth-pgwire's shield.rs), and psql's
/// `\d` still works through them.
#[test]
fn subqueries_in_the_select_list_answer_over_the_wire_as_over_http() {
    let e = env();
    let t = &e.t.analyst_4501;
    let sql = "SELECT k.kind, (SELECT count(*) FROM events e WHERE e.kind = k.kind) AS n, \
               (SELECT count(*) FROM events) AS total \
               FROM (SELECT DISTINCT kind FROM events) k ORDER BY 1";
    let http: Vec<String> = e
        .rows(t, sql)
        .iter()
        .map(|r| format!("{}|{}|{}", r["kind"].as_str().unwrap(), r["n"], r["total"]))
        .collect();
    assert!(http.len() > 1, "{http:?}");
    let wire = e.psql_ok(t, sql);
    assert_eq!(wire.lines().collect::<Vec<_>>(), http);
    let sum: i64 = wire
        .lines()
        .map(|l| l.split('|').nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum as usize, events_in("4501"));
    // Several rows where one value is expected: an error, as in PostgreSQL
    // (not the first of them).
    let err = e.psql_err(t, "SELECT (SELECT kind FROM events) AS k");
    assert!(!err.is_empty());
    let (ok, _, err) = e.psql(t, &["-c", "\\d events"]);
    assert!(ok, "{err}");
}
