//! The `groundtruth` command line, run as a user would.

use anyhow::{ensure, Context, Result};
use groundtruth_tests::{repo, run_groundtruth};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn ingest_a_file_then_query_it() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().expect("utf-8 path");
    let fixture = repo().join("tests/fixtures/lake.ndjson");
    let out = run_groundtruth(&[
        "ingest",
        "--quiet",
        "--lake",
        lake,
        fixture.to_str().expect("path"),
    ])?;
    let err = text(&out.stderr);
    ensure!(out.status.success(), "{err}");
    ensure!(
        err.contains("accepted 16, duplicates 1, rejected 5"),
        "{err}"
    );

    let out = run_groundtruth(&["sql", "--lake", lake, "SELECT count(*) AS n FROM events"])?;
    ensure!(
        out.status.success() && text(&out.stdout).contains("| 16 |"),
        "{}",
        text(&out.stdout)
    );
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--format",
        "csv",
        "SELECT app_id, count(*) AS n FROM events GROUP BY app_id ORDER BY app_id",
    ])?;
    ensure!(
        text(&out.stdout).starts_with("app_id,n\nattendance,3\n"),
        "{}",
        text(&out.stdout)
    );
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--format",
        "json",
        "SELECT reason_code FROM dead_letters WHERE field = 'lat'",
    ])?;
    ensure!(
        text(&out.stdout).trim() == r#"{"reason_code":"invalid_value"}"#,
        "{}",
        text(&out.stdout)
    );

    // Re-ingesting the same file adds nothing.
    let out = run_groundtruth(&[
        "ingest",
        "--quiet",
        "--lake",
        lake,
        fixture.to_str().expect("path"),
    ])?;
    ensure!(
        text(&out.stderr).contains("accepted 0, duplicates 17, rejected 0"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().expect("utf-8 path");
    let out = run_groundtruth(&["sql", "--lake", lake, "DROP TABLE events"])?;
    ensure!(!out.status.success());
    ensure!(
        text(&out.stderr).contains("query failed"),
        "{}",
        text(&out.stderr)
    );
    let out = run_groundtruth(&["ingest", "--lake", lake, "/no/such/file.ndjson"])?;
    ensure!(!out.status.success() && text(&out.stderr).contains("/no/such/file.ndjson"));
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--set",
        "lake.day_zone=Nowhere/City",
        "--set",
        "kafka.session_timeout_ms=1",
        "--set",
        "lake.colour=blue",
        "SELECT 1",
    ])?;
    let err = text(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("3 problem(s)"),
        "{err}"
    );
    for needle in ["Nowhere/City", "kafka.session_timeout_ms", "lake.colour"] {
        ensure!(err.contains(needle), "{needle} missing from: {err}");
    }
    Ok(())
}

#[test]
fn a_drawn_world_is_simulated_again_by_its_name() -> Result<()> {
    // `eval worlds` names a world world-SEED-INDEX; `simulate --world`
    // draws the same one (the same events twice), with or without its
    // drawn patrols, and refuses a name it cannot read.
    let tmp = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (i, extra) in [&[][..], &[][..], &["--drawn-patrols"][..]]
        .iter()
        .enumerate()
    {
        let out_file = tmp.path().join(format!("world-{i}.ndjson"));
        let mut args = vec![
            "simulate",
            "--world",
            "world-7-3",
            "--days",
            "2",
            "-o",
            out_file.to_str().expect("path"),
        ];
        args.extend_from_slice(extra);
        let out = run_groundtruth(&args)?;
        ensure!(out.status.success(), "{}", text(&out.stderr));
        files.push(std::fs::read(&out_file)?);
    }
    ensure!(
        !files[0].is_empty() && files[0] == files[1],
        "one name, one world"
    );
    ensure!(files[0] != files[2], "the drawn patrols change the world");
    for bad in ["world-7", "world-x-3", "seven"] {
        let out = run_groundtruth(&["simulate", "--world", bad, "-o", "-"])?;
        ensure!(
            !out.status.success() && text(&out.stderr).contains("world-SEED-INDEX"),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn simulate_writes_events_and_labels_and_demo_summarises() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let scenario = repo().join("pipelines/sim-small.toml");
    let scenario = scenario.to_str().expect("path");
    let events = tmp.path().join("events.ndjson.gz");
    let labels = tmp.path().join("labels");
    let out = run_groundtruth(&[
        "simulate",
        "--scenario",
        scenario,
        "-o",
        events.to_str().expect("path"),
        "--labels",
        labels.to_str().expect("path"),
    ])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let accounts = std::fs::read_to_string(labels.join("accounts.csv"))?;
    ensure!(accounts.starts_with("account_id,label,scenario\n"));
    ensure!(accounts.contains(",phone_farm,"), "no phone farm label");
    ensure!(std::fs::read_to_string(labels.join("patrols.csv"))?
        .starts_with("patrol_id,account_id,label,scenario\n"));
    // The gzip file ingests.
    let lake = tmp.path().join("lake");
    let out = run_groundtruth(&[
        "ingest",
        "--quiet",
        "--lake",
        lake.to_str().expect("path"),
        events.to_str().expect("path"),
    ])?;
    ensure!(
        out.status.success() && text(&out.stderr).contains("rejected 0"),
        "{}",
        text(&out.stderr)
    );

    let demo_lake = tmp.path().join("demo");
    let demo_state = tmp.path().join("demo-state");
    // The front door: the demo simulates, detects, stores the findings,
    // then serves the review API and prints where and with which tokens.
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let busy_addr = busy.local_addr()?;
    let mut cmd = std::process::Command::new(groundtruth_tests::groundtruth_bin());
    cmd.args([
        "demo",
        "--scenario",
        scenario,
        "--listen",
        "127.0.0.1:0",
        "--lake",
    ])
    .arg(&demo_lake)
    .arg("--state")
    .arg(&demo_state)
    // Ports already taken (here by the test itself) never stop the demo:
    // metrics stay on the API's /metrics, the wire protocol moves.
    .args(["--set", &format!("pgwire.listen=\"{busy_addr}\"")])
    .args(["--set", &format!("metrics.listen=\"{busy_addr}\"")])
    .env("RUST_LOG", "warn")
    .env_remove("GROUNDTRUTH_CONFIG")
    .stdout(std::process::Stdio::piped());
    let mut demo = groundtruth_tests::ChildGuard::spawn(cmd)?;
    let reader = std::io::BufReader::new(demo.stdout.take().context("demo stdout")?);
    let mut stdout = String::new();
    for line in std::io::BufRead::lines(reader) {
        let line = line?;
        stdout.push_str(&line);
        stdout.push('\n');
        if line.starts_with("Ctrl-C stops") {
            break;
        }
    }
    ensure!(
        stdout.contains("events per app and day") && stdout.contains("zhiguitong"),
        "{stdout}"
    );
    ensure!(
        stdout.contains("psql -h 127.0.0.1 -p ")
            && !stdout.contains(&format!("-p {} ", busy_addr.port())),
        "the wire protocol moved off the taken port: {stdout}"
    );
    drop(busy);
    ensure!(stdout.contains("2026-11-02"), "{stdout}");
    // The demo scores every detector against the simulator's ground truth:
    // on sim-small each finds exactly its labelled accounts.
    let table = stdout
        .split("against the ground truth")
        .nth(1)
        .with_context(|| format!("no ground-truth table in {stdout}"))?;
    for det in groundtruth_finding::DETECTORS {
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(det))
            .with_context(|| format!("no {det} row in {stdout}"))?;
        let cells: Vec<&str> = row.split_whitespace().collect();
        ensure!(cells[4] == "1.000" && cells[5] == "1.000", "{det}: {row}");
    }
    let addr: std::net::SocketAddr = stdout
        .split("serving at http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .with_context(|| format!("no address in {stdout}"))?
        .parse()?;
    let token_of = |role: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(role))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("gt_")))
            .map(String::from)
    };
    let admin = token_of("admin").with_context(|| format!("no admin token in {stdout}"))?;
    let inspector =
        token_of("inspector").with_context(|| format!("no inspector token in {stdout}"))?;
    let all = groundtruth_tests::http::request(
        addr,
        "GET",
        "/api/v1/cases?limit=500",
        Some(&admin),
        None,
    )?;
    ensure!(all.status == 200, "{}", all.text());
    let n_all = all.json()["items"].as_array().map_or(0, Vec::len);
    ensure!(n_all > 0, "the demo store has no cases: {}", all.text());
    let mine = groundtruth_tests::http::request(
        addr,
        "GET",
        "/api/v1/cases?limit=500",
        Some(&inspector),
        None,
    )?;
    ensure!(mine.status == 200, "{}", mine.text());
    let n_mine = mine.json()["items"].as_array().map_or(0, Vec::len);
    ensure!(
        n_mine > 0 && n_mine < n_all,
        "the scoped inspector sees {n_mine} of {n_all} cases"
    );
    let bad =
        groundtruth_tests::http::request(addr, "GET", "/api/v1/cases", Some("gt_nope"), None)?;
    ensure!(bad.status == 401, "{}", bad.text());
    // The analyst's SQL: over HTTP, and with psql on the printed port.
    let analyst = token_of("analyst").with_context(|| format!("no analyst token in {stdout}"))?;
    let health = groundtruth_tests::http::request_with(
        addr,
        "POST",
        "/api/v1/sql",
        Some(&analyst),
        "text/plain",
        Some(b"SELECT app_id, classification FROM app_health"),
    )?;
    ensure!(health.status == 200, "{}", health.text());
    // The printed curl line sends what the API accepts (without a content
    // type curl says form data, which is refused with 415).
    ensure!(
        stdout.contains("-H 'Content-Type: text/plain' --data-binary 'SELECT"),
        "{stdout}"
    );
    ensure!(
        health.json()["row_count"].as_u64().unwrap_or(0) > 0,
        "{}",
        health.text()
    );
    let pg_port = stdout
        .split(" psql -h 127.0.0.1 -p ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("no psql line in {stdout}"))?
        .to_string();
    let psql = groundtruth_tests::psql(pg_port.parse()?, &analyst)
        .args(["-c", "SELECT count(*) FROM activity_daily"])
        .output()?;
    ensure!(psql.status.success(), "psql: {}", text(&psql.stderr));
    ensure!(
        text(&psql.stdout).trim().parse::<u64>().unwrap_or(0) > 0,
        "{}",
        text(&psql.stdout)
    );
    groundtruth_tests::send_signal(demo.id(), libc::SIGTERM)?;
    let status = demo
        .wait_timeout(std::time::Duration::from_secs(20))?
        .context("the demo did not stop on SIGTERM")?;
    ensure!(status.success(), "demo exited with {status}");
    // The store outlives the demo: `groundtruth findings` reads it ...
    let out = run_groundtruth(&["findings", "--state", demo_state.to_str().expect("path")])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(
        text(&out.stdout).lines().count() >= n_all,
        "{}",
        text(&out.stdout)
    );
    // ... and `groundtruth serve` serves it alone, with the lake behind the
    // timelines; a token made with `groundtruth token create` signs in.
    let out = run_groundtruth(&[
        "token",
        "create",
        "--role",
        "inspector",
        "--region",
        "45",
        "--subject",
        "li",
        "--state",
        demo_state.to_str().expect("path"),
    ])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let li = text(&out.stdout).trim().to_string();
    // The wire protocol with TLS (a self-signed certificate made here):
    // a client that asks for TLS gets it, with an analyst's token.
    let out = run_groundtruth(&[
        "token",
        "create",
        "--role",
        "analyst",
        "--region",
        "",
        "--subject",
        "chen",
        "--state",
        demo_state.to_str().expect("path"),
    ])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let chen = text(&out.stdout).trim().to_string();
    let tls_dir = tempfile::tempdir()?;
    let (cert, key) = (
        tls_dir.path().join("cert.pem"),
        tls_dir.path().join("key.pem"),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("openssl (tests/run.sh installs it) makes the test's certificate")?;
    ensure!(made.status.success(), "{}", text(&made.stderr));
    let port = groundtruth_tests::free_port();
    let pg_port = groundtruth_tests::free_port();
    let mut cmd = std::process::Command::new(groundtruth_tests::groundtruth_bin());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--lake"])
        .arg(&demo_lake)
        .arg("--state")
        .arg(&demo_state)
        .args(["--set", "metrics.listen=\"\""])
        .args(["--set", &format!("pgwire.listen=\"127.0.0.1:{pg_port}\"")])
        .args(["--set", &format!("pgwire.tls_cert=\"{}\"", cert.display())])
        .args(["--set", &format!("pgwire.tls_key=\"{}\"", key.display())])
        .env("RUST_LOG", "warn")
        .env_remove("GROUNDTRUTH_CONFIG");
    let mut serve = groundtruth_tests::ChildGuard::spawn(cmd)?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let t = std::time::Instant::now();
    let farm = loop {
        match groundtruth_tests::http::request(
            addr,
            "GET",
            "/api/v1/cases?detector=phone_farm&limit=1",
            Some(&li),
            None,
        ) {
            Ok(r) if r.status == 200 => break r.json(),
            Ok(r) => anyhow::bail!("serve answered {}: {}", r.status, r.text()),
            Err(_) if t.elapsed() < std::time::Duration::from_secs(30) => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => return Err(e.context("serve never answered")),
        }
    };
    let id = farm["items"][0]["case_id"]
        .as_i64()
        .with_context(|| format!("no phone_farm case: {farm}"))?;
    let tl = groundtruth_tests::http::request(
        addr,
        "GET",
        &format!("/api/v1/cases/{id}/timeline"),
        Some(&li),
        None,
    )?;
    ensure!(tl.status == 200, "{}", tl.text());
    let events = tl.json()["events"].as_array().map_or(0, Vec::len);
    ensure!(events > 0, "the farm's timeline is empty: {}", tl.text());
    let tls = groundtruth_tests::psql(pg_port, &chen)
        .env("PGSSLMODE", "require")
        .args(["-c", "\\conninfo", "-c", "SELECT count(*) > 0 FROM events"])
        .output()?;
    ensure!(tls.status.success(), "psql over TLS: {}", text(&tls.stderr));
    let said = text(&tls.stdout);
    ensure!(
        said.contains("SSL connection") && said.trim_end().ends_with('t'),
        "psql over TLS: {said}"
    );
    let m = groundtruth_tests::http::request(addr, "GET", "/metrics", None, None)?;
    ensure!(
        m.text().contains("groundtruth_api_requests_total"),
        "{}",
        m.text()
    );
    let problems = groundtruth_telemetry::check_exposition(&m.text());
    ensure!(
        problems.is_empty(),
        "/metrics disagrees with the metrics table: {problems:?}"
    );
    groundtruth_tests::send_signal(serve.id(), libc::SIGTERM)?;
    let status = serve
        .wait_timeout(std::time::Duration::from_secs(20))?
        .context("serve did not stop on SIGTERM")?;
    ensure!(status.success(), "serve exited with {status}");
    Ok(())
}

/// An `app_id` the contract allows (up to 128 characters) but whose escaped
/// directory name would pass the file system's 255 bytes: 128 CJK
/// characters, 100 `!`. Each is stored, queryable under its own id, and
/// `detect` over the same file exits 0.
#[test]
fn app_ids_of_any_allowed_length_are_stored_and_detect_exits_0() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().expect("utf-8 path");
    let ids = [
        "智".repeat(128),
        "!".repeat(100),
        format!("{}b", "智".repeat(127)),
        "river-chief".to_string(),
    ];
    let mut lines = String::new();
    for (i, id) in ids.iter().enumerate() {
        for j in 0..3 {
            lines.push_str(
                &serde_json::json!({
                    "event_id": format!("long-{i}-{j}"),
                    "ts": format!("2026-11-30T09:0{j}:00+08:00"),
                    "app_id": id,
                    "account_id": format!("u{i}"),
                    "kind": "session_start",
                    "region": "450102",
                    "device_id": format!("dev-{i}"),
                })
                .to_string(),
            );
            lines.push('\n');
        }
    }
    let input = tmp.path().join("long.ndjson");
    std::fs::write(&input, lines)?;
    let input = input.to_str().expect("path");
    let out = run_groundtruth(&["ingest", "--quiet", "--lake", lake, input])?;
    let err = text(&out.stderr);
    ensure!(out.status.success(), "{err}");
    ensure!(
        err.contains("accepted 12, duplicates 0, rejected 0"),
        "{err}"
    );
    let out = run_groundtruth(&[
        "sql",
        "--lake",
        lake,
        "--format",
        "csv",
        "SELECT length(app_id) AS len, count(*) AS n FROM events GROUP BY app_id ORDER BY 1, 2",
    ])?;
    ensure!(
        text(&out.stdout) == "len,n\n11,3\n100,3\n128,3\n128,3\n",
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let findings = tmp.path().join("findings.ndjson");
    let out = run_groundtruth(&[
        "detect",
        "--input",
        input,
        "--output",
        findings.to_str().expect("path"),
    ])?;
    ensure!(out.status.success(), "detect: {}", text(&out.stderr));
    Ok(())
}
