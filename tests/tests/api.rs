//! The review API, through `Router::oneshot` and over real HTTP, on SQLite
//! and on a real PostgreSQL (started here; `tests/run.sh` installs it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Result;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use groundtruth_api::{ApiLimits, ApiState, LakeAccess};
use groundtruth_finding::Finding;
use groundtruth_store::{NewToken, Principal, ReviewStore, Role, Scope, StoreOptions};
use groundtruth_tests::Postgres;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const APP: &str = "zhiguitong";

/// The accounts of the fixture and their units: two cities (4501, 4503).
const FARM: [&str; 5] = [
    "o450102-01",
    "o450102-02",
    "o450102-03",
    "o450102-04",
    "o450102-05",
];
const DOG: &str = "o450103-07";
const FAR: [&str; 3] = ["o450302-01", "o450302-02", "o450302-03"];
const CHURN: &str = "o450302-09";

fn region_of(account: &str) -> &str {
    &account[1..7]
}

fn finding(
    id: &str,
    detector: &str,
    accounts: &[&str],
    devices: &[&str],
    score: f64,
    day: u32,
) -> Finding {
    let mut regions = serde_json::Map::new();
    for a in accounts {
        let n = regions
            .get(region_of(a))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        regions.insert(region_of(a).to_string(), json!(n + 1));
    }
    Finding {
        finding_id: id.into(),
        detector: detector.into(),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        devices: devices.iter().map(|s| s.to_string()).collect(),
        patrol_ids: if detector == "non_human_track" {
            vec![format!("p-{id}")]
        } else {
            Vec::new()
        },
        window_start: format!("2026-11-{day:02}T00:30:00.000Z"),
        window_end: format!("2026-11-{day:02}T02:00:00.000Z"),
        score,
        reason: format!("{detector}: {} account(s)", accounts.len()),
        evidence: json!({"app_id": APP, "scope": {
            "apps": [APP],
            "regions": regions,
            "accounts": accounts.iter().map(|a| (a.to_string(), json!(region_of(a)))).collect::<serde_json::Map<_, _>>()
        }})
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn fixture_findings() -> Vec<Finding> {
    vec![
        finding(
            "farm",
            "phone_farm",
            &FARM,
            &["d1", "d2", "d3", "d4", "d5"],
            0.97,
            2,
        ),
        finding("dog", "non_human_track", &[DOG], &["d7"], 0.9, 2),
        finding("far", "bulk_check_in", &FAR, &["d9"], 0.8, 2),
        finding("churn", "record_churn", &[CHURN], &["d10"], 0.7, 2),
    ]
}

/// A small lake: a day of sessions and check-ins for every fixture account.
fn fixture_lake() -> PathBuf {
    static LAKE: OnceLock<PathBuf> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gt-api-lake-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lines = String::new();
        let all: Vec<&str> = FARM.iter().chain(FAR.iter()).copied().chain([DOG, CHURN]).collect();
        for (i, a) in all.iter().enumerate() {
            for h in 0..6 {
                let kind = if h % 2 == 0 { "session_start" } else { "check_in" };
                lines.push_str(&json!({
                    "event_id": format!("e-{a}-{h}"), "ts": format!("2026-11-02T{:02}:{:02}:00+08:00", 7 + h, i),
                    "app_id": APP, "account_id": a, "kind": kind, "region": region_of(a),
                    "device_id": format!("dev-{a}"), "lat": 22.8, "lon": 108.3, "accuracy_m": 10
                }).to_string());
                lines.push('\n');
            }
        }
        let file = dir.join("events.ndjson");
        std::fs::write(&file, lines).unwrap();
        let lake = dir.join("lake");
        let writer = groundtruth_lake::LakeWriter::open(&lake, groundtruth_lake::LakeOptions::default()).unwrap();
        let mut ing = groundtruth_ingest::Ingestor::new(writer, groundtruth_event::DecodeOptions::default(), groundtruth_ingest::FlushPolicy::default(), "file");
        groundtruth_ingest::ingest_files(&mut ing, &[file], false).unwrap();
        lake
    })
    .clone()
}

fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start().expect("start PostgreSQL (tests/run.sh installs it)"))
}

/// Where a test's store lives.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    fn all() -> Vec<Backend> {
        vec![
            Backend::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres(postgres().database().unwrap()),
        ]
    }

    fn url(&self) -> String {
        match self {
            Backend::Sqlite(d) => d.path().join("review.db").display().to_string(),
            Backend::Postgres(u) => u.clone(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

struct Tokens {
    admin: String,
    insp: String,
    insp2: String,
    guilin: String,
    analyst: String,
    unit: String,
}

struct Env {
    app: Router,
    store: ReviewStore,
    t: Tokens,
    name: &'static str,
}

async fn token(store: &ReviewStore, subject: &str, role: Role, region: &str) -> String {
    let region = Scope::parse(region).unwrap();
    store.system_token(subject, role, region).await.unwrap()
}

async fn env(b: &Backend) -> Env {
    env_with(b, StoreOptions::default()).await
}

async fn env_with(b: &Backend, opts: StoreOptions) -> Env {
    let store = ReviewStore::open(&b.url(), &opts).await.unwrap();
    store.upsert_findings(1, &fixture_findings()).await.unwrap();
    let t = Tokens {
        admin: token(&store, "admin", Role::Admin, "").await,
        insp: token(&store, "li", Role::Inspector, "4501").await,
        insp2: token(&store, "zhao", Role::Inspector, "4501").await,
        guilin: token(&store, "wang", Role::Inspector, "4503").await,
        analyst: token(&store, "chen", Role::Analyst, "45").await,
        unit: token(&store, "unit-450102", Role::Unit, "450102").await,
    };
    let state = ApiState {
        store: store.clone(),
        lake: Some(LakeAccess {
            dir: fixture_lake(),
            zone: Default::default(),
        }),
        metrics: None,
        limits: ApiLimits::default(),
        query: Some(std::sync::Arc::new(groundtruth_query::QueryService::new(
            fixture_lake(),
            Default::default(),
            store.clone(),
            Default::default(),
            Default::default(),
        ))),
    };
    Env {
        app: groundtruth_api::router(state),
        store,
        t,
        name: b.name(),
    }
}

impl Env {
    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(token), None).await
    }

    async fn post(&self, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(token), Some(body)).await
    }

    /// Case ids by the first account they name.
    async fn case_of(&self, account: &str) -> i64 {
        let (s, v) = self
            .get(&format!("/api/v1/cases?account={account}"), &self.t.admin)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"][0]["case_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no case for {account}: {v}"))
    }
}

#[tokio::test]
async fn every_route_works_on_sqlite_and_postgres() {
    for b in Backend::all() {
        let e = env(&b).await;
        let n = e.name;
        let t = &e.t;
        // Who am I.
        let (s, me) = e.get("/api/v1/me", &t.insp).await;
        assert_eq!(
            (s, me["role"].as_str(), me["region"].as_str()),
            (StatusCode::OK, Some("inspector"), Some("4501")),
            "{n}"
        );

        // The queue: the 4501 inspector sees the farm and the dog, highest score first.
        let (s, q) = e.get("/api/v1/cases", &t.insp).await;
        assert_eq!(s, StatusCode::OK, "{n}: {q}");
        let ids: Vec<i64> = q["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 2, "{n}: {q}");
        assert_eq!(q["items"][0]["detectors"], json!(["phone_farm"]), "{n}");
        let (_, f) = e.get("/api/v1/cases?detector=non_human_track&min_score=0.5&status=open&sort=score&order=desc&limit=10", &t.insp).await;
        assert_eq!(f["items"].as_array().unwrap().len(), 1, "{n}: {f}");
        let (_, f) = e
            .get("/api/v1/cases?q=o450102-0&region=450102", &t.insp)
            .await;
        assert_eq!(
            f["items"].as_array().unwrap().len(),
            1,
            "{n}: search by account prefix"
        );
        let (_, p1) = e.get("/api/v1/cases?limit=1", &t.admin).await;
        let cursor = p1["next_cursor"].as_str().unwrap().to_string();
        let (_, p2) = e
            .get(&format!("/api/v1/cases?limit=1&cursor={cursor}"), &t.admin)
            .await;
        assert_ne!(
            p1["items"][0]["case_id"], p2["items"][0]["case_id"],
            "{n}: cursor pages"
        );

        // Claim the best case, read it, its timeline, note, decide.
        let (s, c) = e.post("/api/v1/cases/claim-next", &t.insp, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{n}: {c}");
        let farm = c["case_id"].as_i64().unwrap();
        assert_eq!(c["assignee"], "li");
        let (s, d) = e.get(&format!("/api/v1/cases/{farm}"), &t.insp).await;
        assert_eq!(s, StatusCode::OK, "{n}");
        assert_eq!(d["findings"][0]["finding"]["detector"], "phone_farm");
        assert_eq!(d["case"]["accounts"].as_array().unwrap().len(), 5);
        let (s, tl) = e
            .get(&format!("/api/v1/cases/{farm}/timeline"), &t.insp)
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {tl}");
        assert_eq!(
            tl["events"].as_array().unwrap().len(),
            30,
            "{n}: 6 events x 5 accounts: {tl}"
        );
        assert!(tl["per_day"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["event_date"] == "2026-11-02"));
        let (s, note) = e
            .post(
                &format!("/api/v1/cases/{farm}/notes"),
                &t.insp,
                json!({"text": "five phones on one desk"}),
            )
            .await;
        assert_eq!(
            (s, note["author"].as_str()),
            (StatusCode::CREATED, Some("li")),
            "{n}"
        );
        let version = d["case"]["version"].as_i64().unwrap();
        let (s, err) = e
            .post(
                &format!("/api/v1/cases/{farm}/verdict"),
                &t.insp,
                json!({"verdict": "confirmed", "note": "x", "expected_version": version}),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::CONFLICT,
            "{n}: the note changed the version: {err}"
        );
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/verdict"),
                &t.insp,
                json!({"verdict": "confirmed", "note": "the farm worker admitted it"}),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str(), v["verdict"].as_str()),
            (StatusCode::OK, Some("closed"), Some("confirmed")),
            "{n}: {v}"
        );
        let (s, h) = e
            .get(&format!("/api/v1/cases/{farm}/history"), &t.insp)
            .await;
        assert_eq!(s, StatusCode::OK);
        let actions: Vec<&str> = h
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "case.created",
                "finding.created",
                "case.claimed",
                "note.added",
                "case.verdict"
            ],
            "{n}"
        );
        let (s, r) = e
            .post(
                &format!("/api/v1/cases/{farm}/reopen"),
                &t.insp,
                json!({"note": "new information"}),
            )
            .await;
        assert_eq!(
            (s, r["status"].as_str()),
            (StatusCode::OK, Some("open")),
            "{n}"
        );

        // Assign, bulk, a finding, precision.
        let dog = e.case_of(DOG).await;
        let (s, a) = e
            .post(
                &format!("/api/v1/cases/{dog}/assign"),
                &t.insp,
                json!({"assignee": "zhao"}),
            )
            .await;
        assert_eq!(
            (s, a["assignee"].as_str()),
            (StatusCode::OK, Some("zhao")),
            "{n}: {a}"
        );
        let (s, a) = e
            .post(
                &format!("/api/v1/cases/{dog}/verdict"),
                &t.insp,
                json!({"verdict": "dismissed"}),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{n}: only zhao decides: {a}");
        let (s, r) = e.post("/api/v1/cases/bulk", &t.insp2, json!({"case_ids": [dog, farm], "action": "close", "verdict": "dismissed", "note": "a dog, but a good dog"})).await;
        assert_eq!(s, StatusCode::OK, "{n}: {r}");
        assert_eq!(
            r.as_array()
                .unwrap()
                .iter()
                .filter(|x| x["ok"] == true)
                .count(),
            2,
            "{n}: {r}"
        );
        let (s, fr) = e.get("/api/v1/findings/dog", &t.insp).await;
        assert_eq!(
            (s, fr["finding"]["detector"].as_str()),
            (StatusCode::OK, Some("non_human_track")),
            "{n}"
        );
        let (s, p) = e.get("/api/v1/detectors/precision", &t.analyst).await;
        assert_eq!(s, StatusCode::OK);
        let track = p
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["detector"] == "non_human_track")
            .unwrap();
        assert_eq!(
            (track["dismissed"].as_i64(), track["precision"].as_f64()),
            (Some(1), Some(0.0)),
            "{n}: {p}"
        );

        // Region data return: the unit sees its own district.
        let (s, rs) = e.get("/api/v1/regions/450102/summary", &t.unit).await;
        assert_eq!(s, StatusCode::OK, "{n}: {rs}");
        assert_eq!(rs["activity"][0]["active_accounts"], 5, "{n}: {rs}");
        assert_eq!(rs["cases"]["dismissed"], 1, "{n}: {rs}");
        let (s, _) = e.get("/api/v1/regions/450103/summary", &t.unit).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{n}: a unit sees only its own region"
        );

        // Admin: audit log, tokens.
        let (s, log) = e
            .get("/api/v1/audit?action=case.&limit=100", &t.admin)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(log["items"].as_array().unwrap().len() >= 8, "{n}: {log}");
        let (s, nt) = e
            .post(
                "/api/v1/tokens",
                &t.admin,
                json!({"subject": "sun", "role": "inspector", "region": "4503", "ttl_s": 3600}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {nt}");
        let secret = nt["token"].as_str().unwrap().to_string();
        let (s, _) = e.get("/api/v1/me", &secret).await;
        assert_eq!(s, StatusCode::OK);
        let (s, list) = e.get("/api/v1/tokens", &t.admin).await;
        assert_eq!(
            (s, list.as_array().unwrap().len()),
            (StatusCode::OK, 7),
            "{n}"
        );
        let id = nt["info"]["token_id"].as_str().unwrap();
        let (s, _) = e
            .call(
                "DELETE",
                &format!("/api/v1/tokens/{id}"),
                Some(&t.admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = e.get("/api/v1/me", &secret).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{n}: revoked");

        // Health.
        let (s, _) = e.call("GET", "/healthz", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, ready) = e.call("GET", "/readyz", None, None).await;
        assert_eq!(
            (s, ready["store"].as_str()),
            (StatusCode::OK, Some("ok")),
            "{n}"
        );
        let (s, _) = e.call("GET", "/metrics", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "no recorder in this test");
        // Claim until empty: 204.
        loop {
            let (s, _) = e
                .post("/api/v1/cases/claim-next", &t.guilin, json!({}))
                .await;
            if s == StatusCode::NO_CONTENT {
                break;
            }
            assert_eq!(s, StatusCode::OK, "{n}");
        }
    }
}

/// Every way a 4501 inspector could reach a 4503 case: all answer as if
/// it did not exist, and no 4503 account appears in any response.
#[tokio::test]
async fn a_city_inspector_never_sees_another_citys_cases() {
    for b in Backend::all() {
        let e = env(&b).await;
        let n = e.name;
        let t = &e.t;
        let far = e.case_of(FAR[0]).await;
        let churn = e.case_of(CHURN).await;
        let mut bodies = Vec::new();
        for id in [far, churn] {
            for (m, path, body) in [
                ("GET", format!("/api/v1/cases/{id}"), None),
                ("GET", format!("/api/v1/cases/{id}/timeline"), None),
                ("GET", format!("/api/v1/cases/{id}/history"), None),
                (
                    "POST",
                    format!("/api/v1/cases/{id}/verdict"),
                    Some(json!({"verdict": "confirmed"})),
                ),
                (
                    "POST",
                    format!("/api/v1/cases/{id}/notes"),
                    Some(json!({"text": "peek"})),
                ),
                (
                    "POST",
                    format!("/api/v1/cases/{id}/assign"),
                    Some(json!({"assignee": "li"})),
                ),
                (
                    "POST",
                    format!("/api/v1/cases/{id}/reopen"),
                    Some(json!({})),
                ),
            ] {
                let (s, v) = e.call(m, &path, Some(&t.insp), body).await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{n}: {m} {path}: {v}");
                bodies.push(v);
            }
        }
        for path in [
            "/api/v1/findings/far".to_string(),
            "/api/v1/findings/churn".to_string(),
            "/api/v1/regions/4503/summary".to_string(),
            "/api/v1/regions/450302/summary".to_string(),
        ] {
            let (s, v) = e.get(&path, &t.insp).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{n}: {path}: {v}");
            // (The message names the region asked for: that is no leak.)
            let asked = path.split('/').nth(4).unwrap_or_default();
            bodies.push(Value::String(v.to_string().replace(asked, "<asked>")));
        }
        for path in [
            "/api/v1/cases?limit=500".to_string(),
            "/api/v1/cases?region=4503".to_string(),
            format!("/api/v1/cases?account={}", FAR[0]),
            "/api/v1/cases?q=o4503".to_string(),
            "/api/v1/cases?detector=bulk_check_in,record_churn".to_string(),
            "/api/v1/cases?status=open,needs_info,closed".to_string(),
            "/api/v1/detectors/precision".to_string(),
            "/api/v1/regions/4501/summary".to_string(),
        ] {
            let (s, v) = e.get(&path, &t.insp).await;
            assert_eq!(s, StatusCode::OK, "{n}: {path}: {v}");
            bodies.push(v);
        }
        let (s, v) = e
            .post(
                "/api/v1/cases/bulk",
                &t.insp,
                json!({"case_ids": [far, churn], "action": "assign", "assignee": "li"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            v.as_array().unwrap().iter().all(|r| r["ok"] == false),
            "{n}: {v}"
        );
        bodies.push(v);
        // Claim everything the inspector can: never a 4503 case.
        loop {
            let (s, v) = e
                .post(
                    "/api/v1/cases/claim-next",
                    &t.insp,
                    json!({"region": "4503"}),
                )
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{n}: {v}");
            let (s, v) = e.post("/api/v1/cases/claim-next", &t.insp, json!({})).await;
            if s == StatusCode::NO_CONTENT {
                break;
            }
            bodies.push(v);
        }
        let text = serde_json::to_string(&bodies).unwrap();
        for a in FAR.iter().chain([&CHURN]) {
            assert!(!text.contains(a), "{n}: {a} leaked in {text}");
        }
        assert!(!text.contains("450302"), "{n}: the 4503 unit leaked");
        // The cases are untouched.
        let (_, d) = e.get(&format!("/api/v1/cases/{far}"), &t.guilin).await;
        assert_eq!(
            (
                d["case"]["status"].as_str(),
                d["case"]["assignee"].as_str(),
                d["notes"].as_array().map(Vec::len)
            ),
            (Some("open"), None, Some(0)),
            "{n}"
        );
    }
}

#[tokio::test]
async fn tokens_and_roles_are_enforced() {
    let b = Backend::Sqlite(tempfile::tempdir().unwrap());
    let e = env(&b).await;
    let t = &e.t;
    for (token, what) in [
        (None, "missing"),
        (Some("garbage"), "malformed"),
        (Some(&*format!("gt_{}", "a".repeat(64))), "unknown"),
    ] {
        let resp = e
            .app
            .clone()
            .oneshot({
                let mut r = Request::builder().uri("/api/v1/cases");
                if let Some(tok) = token {
                    r = r.header("authorization", format!("Bearer {tok}"));
                }
                r.body(Body::empty()).unwrap()
            })
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(resp.headers().get("www-authenticate").is_some(), "{what}");
    }
    let (s, v) = e.call("GET", "/api/v1/cases", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    let (s, v) = e
        .raw(
            Request::builder()
                .uri("/api/v1/me")
                .header("authorization", "Basic dXNlcjpwdw==")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // An expired token.
    let (secret, _) = e
        .store
        .create_token(
            &Principal::system(),
            &NewToken {
                subject: "old".into(),
                role: Role::Inspector,
                region: Scope::parse("45").unwrap(),
                ttl_s: Some(60),
            },
        )
        .await
        .unwrap();
    let (s, _) = e.get("/api/v1/me", &secret).await;
    assert_eq!(s, StatusCode::OK);
    // Roles.
    let farm = e.case_of(FARM[0]).await;
    for (token, method, path, body) in [
        (
            &t.analyst,
            "POST",
            format!("/api/v1/cases/{farm}/verdict"),
            Some(json!({"verdict": "confirmed"})),
        ),
        (
            &t.unit,
            "POST",
            "/api/v1/cases/claim-next".to_string(),
            Some(json!({})),
        ),
        (
            &t.unit,
            "POST",
            "/api/v1/cases/bulk".to_string(),
            Some(json!({"case_ids": [farm], "action": "unassign"})),
        ),
        (&t.insp, "GET", "/api/v1/audit".to_string(), None),
        (
            &t.insp,
            "POST",
            "/api/v1/tokens".to_string(),
            Some(json!({"subject": "me2", "role": "admin", "region": ""})),
        ),
        (&t.analyst, "GET", "/api/v1/tokens".to_string(), None),
        (
            &t.unit,
            "GET",
            "/api/v1/detectors/precision".to_string(),
            None,
        ),
    ] {
        let (s, v) = e.call(method, &path, Some(token), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("cannot"),
            "{v}"
        );
    }
    // A regional admin cannot mint a wider token.
    let region_admin = token(&e.store, "boss45", Role::Admin, "45").await;
    let (s, v) = e
        .post(
            "/api/v1/tokens",
            &region_admin,
            json!({"subject": "x", "role": "admin", "region": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

/// Malformed and hostile requests: a clear 4xx with the JSON error shape,
/// never a 5xx, and the server keeps answering.
#[tokio::test]
async fn malformed_requests_get_clear_4xx() {
    let b = Backend::Sqlite(tempfile::tempdir().unwrap());
    let e = env(&b).await;
    let t = &e.t.insp;
    let farm = e.case_of(FARM[0]).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let big = format!("{{\"text\": \"{}\"}}", "x".repeat(2 << 20));
    // (method, path, body, content type)
    type Probe<'a> = (&'a str, String, Option<Vec<u8>>, Option<&'a str>);
    let cases: Vec<Probe<'_>> = vec![
        ("POST", format!("/api/v1/cases/{farm}/verdict"), Some(b"{not json".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/verdict"), Some(b"{\"verdict\": \"maybe\"}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/verdict"), Some(b"{\"verdict\": 3}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/verdict"), Some(b"{\"verdict\": \"confirmed\", \"sneaky\": 1}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/verdict"), Some(b"[]".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/verdict"), Some(b"{\"verdict\": \"confirmed\"}".to_vec()), Some("text/plain")),
        ("POST", format!("/api/v1/cases/{farm}/notes"), Some(b"{\"text\": \"\xff\xfe\"}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/notes"), Some(b"{\"text\": \"   \"}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/notes"), Some(b"{\"text\": \"a\\u0000b\"}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/notes"), Some(big.into_bytes()), None),
        ("POST", format!("/api/v1/cases/{farm}/notes"), Some(nested.into_bytes()), None),
        ("POST", "/api/v1/cases/bulk".into(), Some(b"{\"case_ids\": [], \"action\": \"unassign\"}".to_vec()), None),
        ("POST", "/api/v1/cases/bulk".into(), Some(json!({"case_ids": (0..501).collect::<Vec<i64>>(), "action": "unassign"}).to_string().into_bytes()), None),
        ("POST", "/api/v1/cases/bulk".into(), Some(b"{\"case_ids\": [1], \"action\": \"explode\"}".to_vec()), None),
        ("POST", "/api/v1/cases/bulk".into(), Some(b"{\"case_ids\": [1], \"action\": \"close\", \"verdict\": \"needs_info\", \"note\": \"\"}".to_vec()), None),
        ("POST", format!("/api/v1/cases/{farm}/assign"), Some(b"{\"assignee\": \"nobody-known\"}".to_vec()), None),
        ("GET", "/api/v1/cases/abc".into(), None, None),
        ("GET", "/api/v1/cases/99999999999999999999999".into(), None, None),
        ("GET", "/api/v1/cases?limit=0".into(), None, None),
        ("GET", "/api/v1/cases?limit=100000".into(), None, None),
        ("GET", "/api/v1/cases?limt=5".into(), None, None),
        ("GET", "/api/v1/cases?detector=dogs".into(), None, None),
        ("GET", "/api/v1/cases?status=lost".into(), None, None),
        ("GET", "/api/v1/cases?region=45%25".into(), None, None),
        ("GET", "/api/v1/cases?min_score=2".into(), None, None),
        ("GET", "/api/v1/cases?min_score=NaN".into(), None, None),
        ("GET", "/api/v1/cases?min_score=abc".into(), None, None),
        ("GET", "/api/v1/cases?from=yesterday".into(), None, None),
        ("GET", "/api/v1/cases?cursor=AAAA".into(), None, None),
        ("GET", "/api/v1/cases?sort=random".into(), None, None),
        ("GET", format!("/api/v1/cases?q={}", "x".repeat(300)), None, None),
        ("GET", format!("/api/v1/cases/{farm}/timeline?from=2026-11-01&to=2026-12-30"), None, None),
        ("GET", format!("/api/v1/cases/{farm}/timeline?from=2026-11-03&to=2026-11-01"), None, None),
        ("GET", format!("/api/v1/cases/{farm}/timeline?limit=0"), None, None),
        ("GET", "/api/v1/regions/4x01/summary".into(), None, None),
        ("GET", "/api/v1/audit?since=never".into(), None, None),
        ("DELETE", "/api/v1/cases".into(), None, None),
        ("GET", "/api/v1/nothing-here".into(), None, None),
    ];
    for (method, path, body, ctype) in cases {
        let mut r = Request::builder()
            .method(method)
            .uri(&path)
            .header("authorization", format!("Bearer {t}"));
        if body.is_some() {
            r = r.header("content-type", ctype.unwrap_or("application/json"));
        }
        let req = r
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let (s, v) = e.raw(req).await;
        assert!(s.is_client_error(), "{method} {path}: {s} {v}");
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no JSON error: {v}"));
        assert!(!msg.is_empty());
    }
    // Still serving, nothing changed.
    let (s, d) = e.get(&format!("/api/v1/cases/{farm}"), t).await;
    assert_eq!(
        (s, d["notes"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
}

/// Twenty inspectors claim over real HTTP at once: no case twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_claims_over_http_never_share_a_case() {
    for b in Backend::all() {
        let store = ReviewStore::open(&b.url(), &StoreOptions::default())
            .await
            .unwrap();
        let many: Vec<Finding> = (0..60)
            .map(|i| {
                finding(
                    &format!("c{i}"),
                    "record_churn",
                    &[&format!("o450102-{i:03}")],
                    &[],
                    0.5 + (i % 5) as f64 / 10.0,
                    2,
                )
            })
            .collect();
        store.upsert_findings(1, &many).await.unwrap();
        let mut tokens = Vec::new();
        for i in 0..20 {
            tokens.push(token(&store, &format!("insp{i}"), Role::Inspector, "45").await);
        }
        let app = groundtruth_api::router(ApiState {
            store,
            lake: None,
            metrics: None,
            limits: ApiLimits::default(),
            query: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(groundtruth_api::serve(listener, app, async move {
            let _ = rx.await;
        }));
        let mut threads = Vec::new();
        for tok in tokens {
            threads.push(std::thread::spawn(move || -> Result<Vec<i64>> {
                let mut mine = Vec::new();
                loop {
                    let r = groundtruth_tests::http::request(
                        addr,
                        "POST",
                        "/api/v1/cases/claim-next",
                        Some(&tok),
                        Some(b"{}"),
                    )?;
                    match r.status {
                        204 => return Ok(mine),
                        200 => mine.push(r.json()["case_id"].as_i64().unwrap()),
                        s => anyhow::bail!("claim answered {s}: {}", r.text()),
                    }
                }
            }));
        }
        let mut all = Vec::new();
        for t in threads {
            all.extend(t.join().unwrap().unwrap());
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(
            (all.len(), unique.len()),
            (60, 60),
            "{}: every case claimed exactly once",
            b.name()
        );
        let _ = tx.send(());
        server.await.unwrap().unwrap();
    }
}

/// Every change through the API leaves one audit line with its actor and
/// the state before and after.
#[tokio::test]
async fn the_audit_log_holds_every_change() {
    let b = Backend::Postgres(postgres().database().unwrap());
    let e = env(&b).await;
    let t = &e.t;
    let dog = e.case_of(DOG).await;
    let farm = e.case_of(FARM[0]).await;
    let changes: Vec<(&str, String, Value, &str)> = vec![
        (
            &t.insp,
            format!("/api/v1/cases/{dog}/assign"),
            json!({"assignee": "li"}),
            "case.assigned",
        ),
        (
            &t.insp,
            format!("/api/v1/cases/{dog}/notes"),
            json!({"text": "the track circles a yard"}),
            "note.added",
        ),
        (
            &t.insp,
            format!("/api/v1/cases/{dog}/verdict"),
            json!({"verdict": "needs_info", "note": "ask the town"}),
            "case.verdict",
        ),
        (
            &t.insp,
            format!("/api/v1/cases/{dog}/verdict"),
            json!({"verdict": "confirmed", "note": "the town confirmed"}),
            "case.verdict",
        ),
        (
            &t.admin,
            format!("/api/v1/cases/{dog}/reopen"),
            json!({"note": "appeal"}),
            "case.reopened",
        ),
        (
            &t.insp2,
            format!("/api/v1/cases/{farm}/assign"),
            json!({"assignee": "zhao"}),
            "case.assigned",
        ),
        (
            &t.insp2,
            format!("/api/v1/cases/{farm}/assign"),
            json!({"assignee": null}),
            "case.unassigned",
        ),
    ];
    let before = e
        .store
        .audit_log(
            &Scope::nationwide(),
            &groundtruth_store::AuditQuery {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .len();
    for (tok, path, body, _) in &changes {
        let (s, v) = e.post(path, tok, body.clone()).await;
        assert!(s.is_success(), "{path}: {v}");
    }
    let (_, log) = e.get("/api/v1/audit?limit=500", &t.admin).await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), before + changes.len());
    let newest: Vec<&Value> = items.iter().take(changes.len()).rev().collect();
    for ((_, _, _, action), entry) in changes.iter().zip(newest) {
        assert_eq!(entry["action"], *action, "{entry}");
        assert!(entry["actor"].as_str().is_some_and(|a| !a.is_empty()));
        assert!(entry["at"].as_str().is_some());
        if *action != "note.added" {
            assert!(
                entry["before"].is_object() && entry["after"].is_object(),
                "{entry}"
            );
        }
    }
    let (_, h) = e
        .get(&format!("/api/v1/cases/{dog}/history"), &t.insp)
        .await;
    let verdicts: Vec<&Value> = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["action"] == "case.verdict")
        .collect();
    assert_eq!(verdicts[1]["before"]["verdict"], "needs_info");
    assert_eq!(verdicts[1]["after"]["verdict"], "confirmed");
    assert_eq!(verdicts[1]["actor"], "li");
}

/// The OpenAPI document is valid (every reference resolves, every path
/// parameter is declared, every operation answers) and lists exactly the
/// routes the server has.
#[tokio::test]
async fn the_openapi_document_lists_every_route_and_validates() {
    let b = Backend::Sqlite(tempfile::tempdir().unwrap());
    let e = env(&b).await;
    let (s, doc) = e.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            ops.insert(format!("{} {path}", method.to_uppercase()));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // Path parameters declared.
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let templated: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(String::from)
                .collect();
            assert_eq!(declared, templated, "{method} {path}");
            // The route exists: without a token it is 401 (or public), never 404/405.
            let concrete = path
                .replace("{case_id}", "1")
                .replace("{finding_id}", "x")
                .replace("{region}", "45")
                .replace("{token_id}", "tok_x");
            let body = (method == "post").then(|| json!({}));
            let (st, _) = e.call(&method.to_uppercase(), &concrete, None, body).await;
            assert!(
                st != StatusCode::NOT_FOUND && st != StatusCode::METHOD_NOT_ALLOWED
                    || path == "/metrics",
                "{method} {path}: {st}"
            );
        }
    }
    let expected: BTreeSet<String> = [
        "GET /api/v1/me",
        "GET /api/v1/cases",
        "POST /api/v1/cases/claim-next",
        "POST /api/v1/cases/bulk",
        "GET /api/v1/cases/{case_id}",
        "GET /api/v1/cases/{case_id}/timeline",
        "GET /api/v1/cases/{case_id}/history",
        "POST /api/v1/cases/{case_id}/verdict",
        "POST /api/v1/cases/{case_id}/reopen",
        "POST /api/v1/cases/{case_id}/replies",
        "POST /api/v1/cases/{case_id}/notes",
        "POST /api/v1/cases/{case_id}/assign",
        "GET /api/v1/findings/{finding_id}",
        "GET /api/v1/detectors/precision",
        "GET /api/v1/regions/{region}/summary",
        "GET /api/v1/regions/{region}/report",
        "GET /api/v1/audit",
        "POST /api/v1/tokens",
        "POST /api/v1/sql",
        "GET /api/v1/tokens",
        "DELETE /api/v1/tokens/{token_id}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(ops, expected);
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// Feedback: a dismissed finding's evidence is not raised again; new
/// evidence reopens the case.
#[tokio::test]
async fn dismissed_evidence_is_not_raised_again() {
    let b = Backend::Postgres(postgres().database().unwrap());
    let e = env(&b).await;
    let t = &e.t;
    let dog = e.case_of(DOG).await;
    let (s, _) = e
        .post(
            &format!("/api/v1/cases/{dog}/verdict"),
            &t.insp,
            json!({"verdict": "dismissed", "note": "a shepherd"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // The same finding again (a re-run): still closed.
    let mut again = fixture_findings()
        .into_iter()
        .find(|f| f.finding_id == "dog")
        .unwrap();
    e.store
        .upsert_findings(2, std::slice::from_ref(&again))
        .await
        .unwrap();
    let (_, c) = e.get(&format!("/api/v1/cases/{dog}"), &t.insp).await;
    assert_eq!(c["case"]["status"], "closed");
    // A new patrol is new evidence: back in the queue.
    again.finding_id = "dog2".into();
    again.patrol_ids = vec!["p-other".into()];
    let out = e.store.upsert_findings(3, &[again]).await.unwrap();
    assert_eq!(out.cases_reopened, 1);
    let (_, c) = e.get(&format!("/api/v1/cases/{dog}"), &t.insp).await;
    assert_eq!(c["case"]["status"], "open");
}

#[tokio::test]
async fn a_city_inspector_sees_only_the_citys_part_of_a_case_across_regions() {
    for b in Backend::all() {
        let e = env(&b).await;
        let n = e.name;
        // One bulk check-in reaching both cities: two Nanning accounts, two Guilin ones.
        let across = finding(
            "across",
            "bulk_check_in",
            &[FARM[0], FARM[1], FAR[0], FAR[1]],
            &["d-across"],
            0.95,
            3,
        );
        e.store.upsert_findings(2, &[across]).await.unwrap();
        let id = e.case_of(FAR[1]).await;
        let (s, whole) = e.get(&format!("/api/v1/cases/{id}"), &e.t.admin).await;
        assert_eq!(s, StatusCode::OK, "{n}: {whole}");
        assert_eq!(
            whole["case"]["accounts"].as_array().unwrap().len(),
            4,
            "{n}"
        );
        for (token, own, other) in [
            (&e.t.insp, [FARM[0], FARM[1]], [FAR[0], FAR[1]]),
            (&e.t.guilin, [FAR[0], FAR[1]], [FARM[0], FARM[1]]),
        ] {
            let (s, v) = e.get(&format!("/api/v1/cases/{id}"), token).await;
            assert_eq!(s, StatusCode::OK, "{n}: {v}");
            let (_, q) = e.get("/api/v1/cases?status=open&limit=100", token).await;
            let (_, f) = e.get("/api/v1/findings/across", token).await;
            for shown in [v.to_string(), q.to_string(), f.to_string()] {
                for a in other {
                    assert!(
                        !shown.contains(a),
                        "{n}: {a} shown to the other city: {shown}"
                    );
                }
                assert!(
                    !shown.contains("d-across"),
                    "{n}: the device shown: {shown}"
                );
            }
            let accounts: Vec<&str> = v["case"]["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(accounts, own, "{n}");
            assert_eq!(v["case"]["outside_scope"]["hidden_accounts"], 2, "{n}: {v}");
            let rec = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["finding"]["finding_id"] == "across")
                .unwrap();
            assert!(
                rec["finding"]["evidence"]["withheld"].is_object(),
                "{n}: {rec}"
            );
        }
    }
}

/// Units are the people cases are about: an open case is not shown to them
/// (it would tip off a farm's operator), only counted; once decided they
/// see it, without the inspectors' working notes, and can reply. The reply
/// is evidence on the case for its inspectors, and audited.
#[tokio::test]
async fn a_unit_sees_decided_cases_only_and_replies_to_them() {
    for b in Backend::all() {
        let e = env(&b).await;
        let n = e.name;
        let t = &e.t;
        let farm = e.case_of(FARM[0]).await;
        let (_, d) = e.get(&format!("/api/v1/cases/{farm}"), &t.admin).await;
        let finding = d["findings"][0]["finding"]["finding_id"]
            .as_str()
            .unwrap()
            .to_string();

        // Open: not listed, not readable, not answerable; counted.
        for q in ["/api/v1/cases", "/api/v1/cases?status=open"] {
            let (s, v) = e.get(q, &t.unit).await;
            assert_eq!(s, StatusCode::OK, "{n}: {v}");
            assert_eq!(v["items"], json!([]), "{n}: {q}: {v}");
        }
        for path in [
            format!("/api/v1/cases/{farm}"),
            format!("/api/v1/cases/{farm}/timeline"),
            format!("/api/v1/cases/{farm}/history"),
            format!("/api/v1/findings/{finding}"),
        ] {
            let (s, v) = e.get(&path, &t.unit).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{n}: {path}: {v}");
        }
        let reply = json!({"text": "这些账号是我们网格员的"});
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/replies"),
                &t.unit,
                reply.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{n}: {v}");
        let (s, rs) = e.get("/api/v1/regions/450102/summary", &t.unit).await;
        assert_eq!(s, StatusCode::OK, "{n}: {rs}");
        assert_eq!(rs["top_open_cases"], json!([]), "{n}: {rs}");
        assert!(rs["cases"]["open"].as_i64().unwrap() >= 1, "{n}: {rs}");
        assert_eq!(rs["decided_cases"], json!([]), "{n}: {rs}");

        // The inspector decides, with a working note.
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/notes"),
                &t.insp,
                json!({"text": "called the township office"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/verdict"),
                &t.insp,
                json!({"verdict": "confirmed", "note": "five accounts worked from one phone"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");

        // Now the unit sees it, without the working note, and answers.
        let (_, v) = e.get("/api/v1/cases", &t.unit).await;
        let ids: Vec<i64> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [farm], "{n}: {v}");
        let (s, d) = e.get(&format!("/api/v1/cases/{farm}"), &t.unit).await;
        assert_eq!(s, StatusCode::OK, "{n}: {d}");
        assert_eq!(d["notes"], json!([]), "{n}: {d}");
        assert_eq!(
            d["verdicts"][0]["note"], "five accounts worked from one phone",
            "{n}"
        );
        let (s, h) = e
            .get(&format!("/api/v1/cases/{farm}/history"), &t.unit)
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {h}");
        assert!(!h.to_string().contains("township"), "{n}: {h}");
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/replies"),
                &t.unit,
                reply.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        assert_eq!(
            (v["author"].as_str(), v["region"].as_str()),
            (Some("unit-450102"), Some("450102")),
            "{n}: {v}"
        );
        // Not empty; not from an inspector.
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/replies"),
                &t.unit,
                json!({"text": "  "}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}: {v}");
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{farm}/replies"),
                &t.insp,
                reply.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}: {v}");

        // Evidence on the case for its inspector, and audited.
        let (_, d) = e.get(&format!("/api/v1/cases/{farm}"), &t.insp).await;
        assert_eq!(d["replies"][0]["text"], reply["text"], "{n}: {d}");
        assert_eq!(d["notes"].as_array().unwrap().len(), 1, "{n}: {d}");
        let (s, log) = e
            .get("/api/v1/audit?action=case.reply&limit=10", &t.admin)
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {log}");
        assert_eq!(log["items"].as_array().unwrap().len(), 1, "{n}: {log}");
        let (_, rs) = e.get("/api/v1/regions/450102/summary", &t.unit).await;
        assert_eq!(rs["decided_cases"][0]["case_id"], farm, "{n}: {rs}");
    }
}

/// Four eyes (store.four_eyes): where a detector needs it, a confirmation
/// is a proposal until another inspector signs it off; the proposer cannot
/// sign their own; a colleague can send it back with a reason; it counts
/// (precision, the case closed) only once signed. Other detectors' cases
/// close at once.
#[tokio::test]
async fn a_confirmation_needs_a_second_inspector_where_configured() {
    for b in Backend::all() {
        let opts = StoreOptions {
            four_eyes: vec!["phone_farm".into()],
            ..StoreOptions::default()
        };
        let e = env_with(&b, opts).await;
        let n = e.name;
        let t = &e.t;
        let farm = e.case_of(FARM[0]).await;
        let dog = e.case_of(DOG).await;
        let verdict = |v: &str, note: &str| json!({"verdict": v, "note": note});
        let path = format!("/api/v1/cases/{farm}/verdict");
        let confirmed = |p: &Value| {
            p.as_array()
                .unwrap()
                .iter()
                .find(|x| x["detector"] == "phone_farm")
                .map_or(0, |x| x["confirmed"].as_i64().unwrap())
        };

        let (s, v) = e
            .post(
                &path,
                &t.insp,
                verdict("confirmed", "one operator, eight phones"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(
            (v["status"].as_str(), v["proposal"]["by"].as_str()),
            (Some("open"), Some("li")),
            "{n}: {v}"
        );
        assert!(v["verdict"].is_null(), "{n}: {v}");
        let (_, p) = e.get("/api/v1/detectors/precision", &t.analyst).await;
        assert_eq!(confirmed(&p), 0, "{n}: a proposal does not count: {p}");
        let (s, v) = e
            .post(&path, &t.insp, verdict("confirmed", "I am sure"))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("another inspector"),
            "{n}: {v}"
        );

        // A colleague sends it back; the case stays open, without it.
        let (s, v) = e
            .post(&path, &t.insp2, verdict("dismissed", "a shift handover"))
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["status"], "open", "{n}: {v}");
        assert!(v.get("proposal").is_none(), "{n}: {v}");

        // Proposed again and signed off by the colleague: closed, confirmed,
        // the verdict naming both.
        let (s, _) = e
            .post(
                &path,
                &t.insp,
                verdict("confirmed", "the same network, five mornings"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let (s, v) = e
            .post(&path, &t.insp2, verdict("confirmed", "checked the devices"))
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(
            (v["status"].as_str(), v["verdict"].as_str()),
            (Some("closed"), Some("confirmed")),
            "{n}: {v}"
        );
        let (_, d) = e.get(&format!("/api/v1/cases/{farm}"), &t.admin).await;
        let last = d["verdicts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["author"].as_str(), last["countersigned_by"].as_str()),
            (Some("li"), Some("zhao")),
            "{n}: {d}"
        );
        let (_, p) = e.get("/api/v1/detectors/precision", &t.analyst).await;
        assert_eq!(confirmed(&p), 1, "{n}: {p}");

        // A detector without four eyes: one inspector decides.
        let (s, v) = e
            .post(
                &format!("/api/v1/cases/{dog}/verdict"),
                &t.insp,
                verdict("confirmed", "a dog's track"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["status"], "closed", "{n}: {v}");

        let (_, log) = e
            .get("/api/v1/audit?action=case.confirmation&limit=10", &t.admin)
            .await;
        let actions: Vec<&str> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == "case.confirmation_proposed")
                .count(),
            2,
            "{n}: {log}"
        );
        assert!(
            actions.contains(&"case.confirmation_sent_back"),
            "{n}: {log}"
        );
    }
}

/// Data back to units: a unit's month (its apps' reported and real
/// activity, what the apps cost its people, its cases) as JSON and as an
/// xlsx workbook, in its own region only.
#[tokio::test]
async fn a_unit_gets_its_month_back_as_figures_and_a_workbook() {
    for b in Backend::all() {
        let e = env(&b).await;
        let (t, n) = (&e.t, e.name);
        let (s, r) = e
            .get("/api/v1/regions/450102/report?month=2026-11", &t.unit)
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {r}");
        assert_eq!(
            (
                r["region"].as_str(),
                r["first_day"].as_str(),
                r["last_day"].as_str()
            ),
            (Some("450102"), Some("2026-11-01"), Some("2026-11-30")),
            "{n}: {r}"
        );
        // The district's five accounts used one app on one day, and a
        // phone-farm finding (not dismissed) covers that day for all five.
        let app = &r["apps"][0];
        assert_eq!(app["app_id"], APP, "{n}: {r}");
        assert_eq!(app["active_accounts"], 5, "{n}: {r}");
        assert_eq!(app["real_active_accounts"], 0, "{n}: {r}");
        assert_eq!(app["events"], 30, "{n}: {r}");
        assert_eq!(app["faked_share"], 1.0, "{n}: {r}");
        assert_eq!(r["burden"]["people"], 5, "{n}: {r}");
        assert_eq!(r["burden"]["median_apps_used"], 1.0, "{n}: {r}");
        let people = r["people"].as_array().unwrap();
        assert_eq!(people.len(), 5, "{n}: {r}");
        for p in people {
            assert!(
                p["account_id"].as_str().unwrap().starts_with("o450102"),
                "{n}: {p}"
            );
            assert_eq!(
                (p["days_active"].as_i64(), p["flagged_days"].as_i64()),
                (Some(1), Some(1)),
                "{n}: {p}"
            );
            // What the app asked of each: three check-ins, no reports.
            assert_eq!(
                (p["check_ins"].as_i64(), p["reports"].as_i64()),
                (Some(3), Some(0)),
                "{n}: {p}"
            );
        }
        // Another month has nothing; the default is the lake's latest month.
        let (s, oct) = e
            .get("/api/v1/regions/450102/report?month=2026-10", &t.unit)
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {oct}");
        assert_eq!(
            oct["people"].as_array().map(Vec::len),
            Some(0),
            "{n}: {oct}"
        );
        let (_, latest) = e.get("/api/v1/regions/450102/report", &t.unit).await;
        assert_eq!(latest["month"], "2026-11", "{n}: {latest}");

        // The workbook: an xlsx (a zip) named for the region and month.
        let req = Request::builder()
            .uri("/api/v1/regions/450102/report?month=2026-11&format=xlsx")
            .header("authorization", format!("Bearer {}", t.unit))
            .header("accept-language", "en-GB,en;q=0.9")
            .body(Body::empty())
            .unwrap();
        let resp = e.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{n}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("groundtruth-450102-2026-11.xlsx"),
            "{n}"
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            bytes.starts_with(b"PK\x03\x04") && bytes.len() > 1000,
            "{n}: not an xlsx"
        );

        // Only its own region, only real months and formats.
        let (s, _) = e.get("/api/v1/regions/450103/report", &t.unit).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{n}: a unit reads only its own region"
        );
        let (s, _) = e.get("/api/v1/regions/4501/report", &t.guilin).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{n}: a 4503 inspector cannot read 4501"
        );
        let (s, v) = e
            .get("/api/v1/regions/450102/report?month=2026-13", &t.unit)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("YYYY-MM"),
            "{n}: {v}"
        );
        let (s, v) = e
            .get("/api/v1/regions/450102/report?format=pdf", &t.unit)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("json or xlsx"),
            "{n}: {v}"
        );
    }
}
