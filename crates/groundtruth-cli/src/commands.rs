//! The commands.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use groundtruth_config::Config;
use groundtruth_finding::calibration::{Calibration, Reliability, Sample};
use groundtruth_ingest::{
    create_topics, ingest_files, ingest_kafka, ingest_simulation, KafkaOptions, KafkaProducerSink,
};
use groundtruth_sim::{simulate, NdjsonSink, Scenario, SimSummary};
use groundtruth_sql::{format_batches, open_session, run_sql, OutputFormat};

use crate::review;
use crate::runtime::{query_runtime, shutdown_flag};
use crate::setup::{ingestor, init_logging, lake_options, load_config, toml_string};
use crate::{
    Cli, Command, DemoArgs, DetectArgs, EvalBehaviourArgs, EvalCommand, EvalReliabilityArgs,
    EvalTracksArgs, EvalWorldsArgs, Format, IngestArgs, LakeCommand, RunArgs, SimulateArgs,
    SqlArgs,
};

pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => {
            let mut global = cli.global.clone();
            if global.lake.is_none() {
                global.lake = Some("data/demo-lake".into());
            }
            let cfg = load_config(&global, Vec::new())?;
            init_logging(&cfg);
            demo(&cfg, &args)
        }
        Command::Ingest(args) => {
            let mut extra = topic_overrides(&args.topic);
            if let Some(g) = &args.group {
                extra.push(format!("kafka.group_id={}", toml_string(g)));
            }
            let cfg = load_config(&cli.global, extra)?;
            init_logging(&cfg);
            ingest(&cfg, &args)
        }
        Command::Simulate(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            simulate_cmd(&cfg, &args)
        }
        Command::Sql(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            sql(&cfg, &args)
        }
        Command::Run(args) => {
            let extra = topic_overrides(&args.topic);
            let cfg = load_config(&cli.global, extra)?;
            init_logging(&cfg);
            run_service(&cfg, &args)
        }
        Command::Findings(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::findings(&cfg, &args)
        }
        Command::Serve(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::serve(&cfg, &args)
        }
        Command::Token(cmd) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::token(&cfg, &cmd)
        }
        Command::Detect(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            detect(&cfg, &args)
        }
        Command::Eval(EvalCommand::Tracks(args)) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            eval_tracks(&cfg, &args)
        }
        Command::Eval(EvalCommand::Behaviour(args)) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            eval_behaviour(&cfg, &args)
        }
        Command::Eval(EvalCommand::Worlds(args)) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            eval_worlds(&cfg, &args)
        }
        Command::Eval(EvalCommand::Reliability(args)) => eval_reliability(&args),
        Command::Calibrate(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::calibrate(&cfg, &args)
        }
        Command::Lake(LakeCommand::Compact) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            let mut lake = groundtruth_lake::LakeWriter::open(&cfg.lake.dir, lake_options(&cfg))?;
            let s = lake.compact_all()?;
            eprintln!(
                "compacted {} files into {} ({} rows)",
                s.merged_files, s.output_files, s.rows
            );
            Ok(())
        }
    }
}

/// `--topic` flags as a `kafka.topics` override.
fn topic_overrides(topics: &[String]) -> Vec<String> {
    if topics.is_empty() {
        return Vec::new();
    }
    vec![format!("kafka.topics={}", toml_string(&topics.join(",")))]
}

fn kafka_options(cfg: &Config, exit_when_idle: Option<Duration>) -> KafkaOptions {
    KafkaOptions {
        brokers: cfg.kafka.brokers.clone(),
        topics: cfg.kafka.topics.clone(),
        group_id: cfg.kafka.group_id.clone(),
        dlq: cfg.kafka.dlq,
        session_timeout_ms: cfg.kafka.session_timeout_ms,
        extra: cfg
            .kafka
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        exit_when_idle,
    }
}

fn ingest(cfg: &Config, args: &IngestArgs) -> Result<()> {
    if args.kafka {
        let mut ing = ingestor(cfg, "kafka")?;
        let idle = args.exit_when_idle.map(Duration::from_secs_f64);
        let opts = kafka_options(cfg, idle);
        let stop = shutdown_flag();
        let s = ingest_kafka(&mut ing, &opts, &stop)?;
        eprintln!(
            "ingested {} Kafka messages in {:.1}s ({:.0}/s): {}; {} to the DLQ",
            s.messages,
            s.seconds,
            s.messages as f64 / s.seconds.max(1e-9),
            s.counts.summary(),
            s.dlq_produced
        );
        return Ok(());
    }
    if let Some(path) = &args.simulate {
        let scenario = load_scenario(Some(path), None, None)?;
        let mut ing = ingestor(cfg, "simulator")?;
        let summary = ingest_simulation(&mut ing, &scenario)?;
        eprintln!(
            "simulated {} events for {} accounts: {}",
            summary.events,
            summary.accounts,
            ing.totals().summary()
        );
        return Ok(());
    }
    if args.files.is_empty() {
        bail!("nothing to ingest: give NDJSON files, --kafka or --simulate SCENARIO (see groundtruth ingest --help)");
    }
    for f in &args.files {
        if !f.is_file() {
            bail!(
                "input file `{}` does not exist or is not a file",
                f.display()
            );
        }
    }
    let mut ing = ingestor(cfg, "file")?;
    let s = ingest_files(&mut ing, &args.files, !args.quiet)?;
    let mb = s.counts.bytes as f64 / 1e6;
    eprintln!(
        "ingested {} lines from {} file(s) in {:.2}s ({:.0} events/s, {:.1} MB/s): {}",
        s.lines,
        s.files,
        s.seconds,
        s.lines as f64 / s.seconds.max(1e-9),
        mb / s.seconds.max(1e-9),
        s.counts.summary()
    );
    Ok(())
}

fn load_scenario(path: Option<&Path>, seed: Option<u64>, days: Option<u32>) -> Result<Scenario> {
    let mut scenario = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read scenario file `{}`", p.display()))?;
            Scenario::from_toml_str(&text)
                .with_context(|| format!("scenario file `{}`", p.display()))?
        }
        None => Scenario::default_week(),
    };
    if let Some(s) = seed {
        scenario.seed = s;
    }
    if let Some(d) = days {
        scenario.days = d;
    }
    scenario
        .validate()
        .context("scenario after --seed/--days overrides")?;
    Ok(scenario)
}

fn write_labels(dir: &Path, summary: &SimSummary) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create labels directory `{}`", dir.display()))?;
    let accounts = dir.join("accounts.csv");
    let patrols = dir.join("patrols.csv");
    let open = |p: &Path| -> Result<BufWriter<File>> {
        Ok(BufWriter::new(File::create(p).with_context(|| {
            format!("cannot create `{}`", p.display())
        })?))
    };
    let mut w = open(&accounts)?;
    summary.labels.write_accounts_csv(&mut w)?;
    w.flush()?;
    let mut w = open(&patrols)?;
    summary.labels.write_patrols_csv(&mut w)?;
    w.flush()?;
    Ok(())
}

fn simulate_cmd(cfg: &Config, args: &SimulateArgs) -> Result<()> {
    let scenario = load_scenario(args.scenario.as_deref(), args.seed, args.days)?;
    let started = std::time::Instant::now();
    let summary = if let Some(topic) = &args.kafka_topic {
        create_topics(&cfg.kafka.brokers, &[(topic.clone(), args.partitions)])?;
        let extra = kafka_properties(cfg);
        let mut sink = KafkaProducerSink::new(&cfg.kafka.brokers, topic, &extra)?;
        let summary = simulate(&scenario, &mut sink)?;
        sink.flush(Duration::from_secs(300))?;
        summary
    } else {
        let out = args.output.as_deref().unwrap_or(Path::new("-"));
        let writer: Box<dyn Write> = if out == Path::new("-") {
            Box::new(std::io::stdout().lock())
        } else {
            let f =
                File::create(out).with_context(|| format!("cannot create `{}`", out.display()))?;
            if out.extension().is_some_and(|x| x == "gz") {
                Box::new(flate2::write::GzEncoder::new(
                    f,
                    flate2::Compression::fast(),
                ))
            } else {
                Box::new(f)
            }
        };
        let mut sink = NdjsonSink::new(BufWriter::with_capacity(1 << 20, writer));
        let summary = simulate(&scenario, &mut sink)?;
        let mut w = sink.into_inner();
        w.flush().context("cannot write the simulated events")?;
        drop(w);
        summary
    };
    if let Some(dir) = &args.labels {
        write_labels(dir, &summary)?;
    }
    eprintln!(
        "simulated {} events ({} accounts, {} patrols) in {:.1}s",
        summary.events,
        summary.accounts,
        summary.patrols,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn sql(cfg: &Config, args: &SqlArgs) -> Result<()> {
    let rt = query_runtime()?;
    rt.block_on(async {
        let ctx = open_session(&cfg.lake.dir).await?;
        groundtruth_sql::register_event_views(&ctx).await?;
        let (schema, batches) = run_sql(&ctx, &args.query).await?;
        let format = match args.format {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        };
        let stdout = std::io::stdout().lock();
        format_batches(&schema, &batches, format, BufWriter::new(stdout))?;
        Ok(())
    })
}

fn run_service(cfg: &Config, args: &RunArgs) -> Result<()> {
    let rt = query_runtime()?;
    let state_dir = review::state_dir(cfg, args.state.as_deref());
    let stop = shutdown_flag();
    // The API stops when the service stops (signal, or a drained bounded run).
    let api_stop = Arc::new(AtomicBool::new(false));
    let (store, api) = rt.block_on(async {
        let metrics = review::install_metrics(cfg)?;
        let store = review::open_store(cfg, &state_dir).await?;
        let api = match cfg.api.listen {
            Some(addr) => Some(
                review::start_servers(
                    cfg,
                    addr,
                    cfg.pgwire.listen,
                    store.clone(),
                    Some(metrics),
                    api_stop.clone(),
                )
                .await?,
            ),
            None => None,
        };
        anyhow::Ok((store, api))
    })?;
    let mut ing = ingestor(cfg, "kafka")?.without_late_count();
    let drain = match args.drain_when_idle {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--drain-when-idle {s}: expected seconds >= 0"),
        None => None,
    };
    let opts = groundtruth_live::LiveOptions {
        kafka: kafka_options(cfg, drain),
        state_dir,
        lake_dir: cfg.lake.dir.clone(),
        zone: cfg.lake.day_zone,
        schedule: cfg.schedule(),
        calibration: cfg.detect.calibration.clone(),
        findings_topic: cfg.live.findings_topic.clone(),
        store,
        runtime: rt.handle().clone(),
        window_memory_rows: cfg.live.window_memory_rows,
    };
    tracing::info!(brokers = %opts.kafka.brokers, topics = ?opts.kafka.topics, lake = %cfg.lake.dir.display(), state = %opts.state_dir.display(), store = %opts.store.url(), "consuming");
    let result = groundtruth_live::run_live(&mut ing, &opts, &stop);
    api_stop.store(true, Ordering::Relaxed);
    if let Some(servers) = api {
        rt.block_on(servers.wait());
    }
    let s = result?;
    let mut lat = s.latencies_s.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    eprintln!(
        "{} messages in {:.1} s: {}; {} windows closed, {} re-scanned, {} findings stored ({} published), {} events late for a closed window; detection latency p50 {:.3} s, p99 {:.3} s",
        s.messages,
        s.seconds,
        s.counts.summary(),
        s.windows_closed,
        s.rescans,
        s.findings_stored,
        s.findings_published,
        s.late_for_closed,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}

fn demo(cfg: &Config, args: &DemoArgs) -> Result<()> {
    let cfg = &demo_ports(cfg, args)?;
    let scenario = load_scenario(args.scenario.as_deref(), None, None)?;
    eprintln!(
        "simulating {} day(s) from {} (seed {}) into the lake at {} ...",
        scenario.days,
        scenario.start_date,
        scenario.seed,
        cfg.lake.dir.display()
    );
    let started = std::time::Instant::now();
    let mut ing = ingestor(cfg, "simulator")?;
    let summary = ingest_simulation(&mut ing, &scenario)?;
    let compacted = ing.lake_mut().compact_all()?;
    eprintln!(
        "{} events for {} accounts and {} patrols in {:.1}s: {} ({} small files merged)",
        summary.events,
        summary.accounts,
        summary.patrols,
        started.elapsed().as_secs_f64(),
        ing.totals().summary(),
        compacted.merged_files,
    );
    drop(ing);
    let labels = cfg.lake.dir.join("labels");
    write_labels(&labels, &summary)?;

    let queries = [
        (
            "events per app and day",
            "SELECT app_id, count(*) AS events, count(DISTINCT account_id) AS accounts, \
             min(event_date) AS first_day, max(event_date) AS last_day \
             FROM events GROUP BY app_id ORDER BY events DESC",
        ),
        (
            "events per day",
            "SELECT event_date, count(*) AS events, count(DISTINCT account_id) AS active_accounts \
             FROM events GROUP BY event_date ORDER BY event_date",
        ),
        (
            "dead letters by reason",
            "SELECT reason_code, count(*) AS n FROM dead_letters GROUP BY reason_code ORDER BY n DESC",
        ),
    ];
    let rt = query_runtime()?;
    let versioned = rt.block_on(async {
        let ctx = open_session(&cfg.lake.dir).await?;
        for (title, q) in queries {
            let (schema, batches) = run_sql(&ctx, q).await?;
            println!("\n{title}:");
            format_batches(
                &schema,
                &batches,
                OutputFormat::Table,
                std::io::stdout().lock(),
            )?;
        }
        let (set, closes) = groundtruth_detect::run_all_closes(
            &cfg.lake.dir,
            &cfg.schedule(),
            cfg.lake.day_zone,
            &cfg.detect.calibration,
        )
        .await?;
        let versioned = set.versioned();
        let found = set.into_findings();
        let findings = cfg.lake.dir.join("findings.ndjson");
        groundtruth_eval::write_findings(&findings, &found)?;
        let mut by_class: std::collections::BTreeMap<String, usize> = Default::default();
        for f in &found {
            let key = match f.evidence.get("classification").and_then(|c| c.as_str()) {
                Some(class) => format!("{} / {class}", f.detector),
                None => f.detector.clone(),
            };
            *by_class.entry(key).or_default() += 1;
        }
        println!(
            "
detectors: {} findings from {} windows judged in event time, written to {}",
            found.len(),
            closes.iter().filter(|c| !c.empty).count(),
            findings.display()
        );
        for (k, n) in &by_class {
            println!("  {k}: {n}");
        }
        // One example per detector.
        let mut shown = std::collections::BTreeSet::new();
        for f in &found {
            if shown.insert(f.detector.as_str()) {
                println!("  e.g. {}: {}", f.detector, f.reason);
            }
        }
        // Against the simulator's ground truth, account by account.
        let rows = groundtruth_eval::behaviour::score_accounts(
            &scenario.name,
            &groundtruth_finding::DETECTORS,
            &summary.labels,
            &found,
        );
        println!("\nagainst the ground truth (accounts):");
        println!(
            "  {:<18} {:>9} {:>8} {:>8} {:>10} {:>7}",
            "detector", "labelled", "flagged", "correct", "precision", "recall"
        );
        for r in &rows {
            println!(
                "  {:<18} {:>9} {:>8} {:>8} {:>10.3} {:>7.3}",
                r.detector, r.positives, r.flagged, r.true_positives, r.precision, r.recall
            );
        }
        anyhow::Ok(versioned)
    })?;
    let lake = cfg.lake.dir.display();
    println!(
        "\nThe lake is at {lake} (ground truth in {}). Query it with, e.g.:\n  \
         groundtruth sql --lake {lake} \"SELECT kind, count(*) FROM events GROUP BY kind\"\n  \
         groundtruth sql --lake {lake} --format csv \"SELECT * FROM events WHERE kind = 'check_in' LIMIT 20\"",
        labels.display()
    );
    demo_review(cfg, args, &rt, versioned)
}

/// The demo's review side: the findings into a review store, a token per
/// role, and (unless --no-serve) the review API until Ctrl-C.
/// The demo's ports, settled before its work: where one is taken (another
/// demo, a service), the pages and the wire protocol move to a free port
/// (printed when they serve) and Prometheus metrics stay on the API's
/// `/metrics`, each said so. The demo never dies on a busy port.
fn demo_ports(cfg: &Config, args: &DemoArgs) -> Result<Config> {
    let mut cfg = cfg.clone();
    let api = match &args.listen {
        Some(s) => Some(review::parse_listen(s)?),
        None => cfg.api.listen,
    };
    cfg.api.listen = api;
    if args.no_serve {
        return Ok(cfg);
    }
    let taken = |addr: &std::net::SocketAddr| {
        addr.port() != 0 && std::net::TcpListener::bind(addr).is_err()
    };
    let elsewhere = |a: std::net::SocketAddr| std::net::SocketAddr::new(a.ip(), 0);
    if let Some(a) = cfg.metrics.listen.filter(taken) {
        eprintln!(
            "metrics.listen {a} is taken: Prometheus metrics are served only at the API's /metrics"
        );
        cfg.metrics.listen = None;
    }
    if let Some(a) = cfg.pgwire.listen.filter(taken) {
        eprintln!("pgwire.listen {a} is taken: the PostgreSQL wire protocol takes a free port (printed when serving)");
        cfg.pgwire.listen = Some(elsewhere(a));
    }
    if let Some(a) = cfg.api.listen.filter(taken) {
        eprintln!("{a} is taken: the pages and the API take a free port (printed when serving)");
        cfg.api.listen = Some(elsewhere(a));
    }
    Ok(cfg)
}

fn demo_review(
    cfg: &Config,
    args: &DemoArgs,
    rt: &tokio::runtime::Runtime,
    versioned: Vec<(i64, groundtruth_finding::Finding)>,
) -> Result<()> {
    use groundtruth_store::{NewToken, Principal, Role, Scope};
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| "data/demo-state".into());
    // --listen is in cfg.api.listen (demo_ports).
    let listen = cfg.api.listen;
    let stop = shutdown_flag();
    rt.block_on(async {
        let store = review::open_store(cfg, &state).await?;
        let mut by_version: std::collections::BTreeMap<i64, Vec<groundtruth_finding::Finding>> =
            Default::default();
        for (v, f) in versioned {
            by_version.entry(v).or_default().push(f);
        }
        let mut opened = 0;
        for (v, fs) in &by_version {
            opened += store.upsert_findings(*v, fs).await?.cases_opened;
        }
        let page = store
            .list_cases(
                &Scope::nationwide(),
                &groundtruth_store::CaseQuery {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?;
        // The city with the most cases, for a scoped inspector.
        let mut cities: std::collections::BTreeMap<String, usize> = Default::default();
        for c in &page.items {
            if c.region.len() >= 4 {
                *cities.entry(c.region[..4].to_string()).or_default() += 1;
            }
        }
        let city = cities
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(c, _)| c)
            .unwrap_or_default();
        let cli = Principal {
            subject: "demo".into(),
            ..Principal::system()
        };
        let mut tokens = Vec::new();
        for (role, region) in [
            (Role::Admin, String::new()),
            (Role::Inspector, city.clone()),
            (Role::Analyst, String::new()),
        ] {
            let region = Scope::parse(&region)?;
            let subject = review::default_subject(role, &region);
            let (secret, _) = store
                .create_token(
                    &cli,
                    &NewToken {
                        subject: subject.clone(),
                        role,
                        region: region.clone(),
                        ttl_s: None,
                    },
                )
                .await?;
            tokens.push((role, region, subject, secret));
        }
        println!(
            "\nreview store: {} ({} findings, {} cases, {} new)",
            store.url(),
            store.finding_count().await?,
            page.items.len(),
            opened
        );
        let Some(addr) = listen.filter(|_| !args.no_serve) else {
            println!("tokens (Authorization: Bearer ...):");
            for (role, region, subject, secret) in &tokens {
                println!("  {role:<9} {:<11} {subject:<16} {secret}", region.to_string());
            }
            return anyhow::Ok(());
        };
        let metrics = review::install_metrics(cfg)?;
        let servers =
            review::start_servers(cfg, addr, cfg.pgwire.listen, store, Some(metrics), stop)
                .await?;
        let bound = servers.api;
        println!("\nThe pages: http://{bound}/ (open in a browser and sign in with a token below).");
        println!("The review API is serving at http://{bound}/api/v1 (OpenAPI: http://{bound}/api/v1/openapi.json).");
        println!("Sign in with a token (in the pages, or as Authorization: Bearer ...):");
        for (role, region, subject, secret) in &tokens {
            println!("  {role:<9} {:<11} {subject:<16} {secret}", region.to_string());
        }
        if let Some((_, _, _, secret)) = tokens.get(1) {
            println!(
                "e.g.  curl -H 'Authorization: Bearer {secret}' 'http://{bound}/api/v1/cases?limit=5'"
            );
        }
        if let Some((_, _, _, secret)) = tokens.get(2) {
            println!(
                "analysts' SQL:  curl -H 'Authorization: Bearer {secret}' -H 'Content-Type: text/plain' --data-binary 'SELECT * FROM app_health' http://{bound}/api/v1/sql"
            );
            if let Some(pg) = servers.pgwire {
                println!(
                    "                PGPASSWORD={secret} psql -h {} -p {} -U analyst groundtruth",
                    pg.ip(),
                    pg.port()
                );
            }
        }
        println!("Ctrl-C stops.");
        let _ = std::io::stdout().flush();
        servers.wait().await;
        anyhow::Ok(())
    })
}

fn detect(cfg: &Config, args: &DetectArgs) -> Result<()> {
    for p in &args.input {
        if !p.is_file() {
            bail!("input {} is not a readable file", p.display());
        }
    }
    let dead = args.dead_letters.clone().unwrap_or_else(|| {
        let stem = args
            .output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "findings".into());
        args.output
            .with_file_name(format!("{stem}.dead-letters.ndjson"))
    });
    let scratch = tempfile::Builder::new()
        .prefix("groundtruth-detect-")
        .tempdir()
        .context("cannot create a scratch directory for the detection lake")?;
    let rt = query_runtime()?;
    let started = std::time::Instant::now();
    let s = rt.block_on(groundtruth_eval::detect_files(
        &args.input,
        &args.output,
        &dead,
        &scratch.path().join("lake"),
        lake_options(cfg),
        crate::setup::decode_options(cfg),
        &cfg.schedule(),
        &cfg.detect.calibration,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    ))?;
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &s.findings {
        *by.entry(f.detector.as_str()).or_default() += 1;
    }
    eprintln!("{}", s.counts.summary());
    eprintln!(
        "{} findings {:?} from {} windows in {:.1} s; {} bad events written to {}",
        s.findings.len(),
        by,
        s.closes.iter().filter(|c| !c.empty).count(),
        started.elapsed().as_secs_f64(),
        s.dead_letters,
        dead.display()
    );
    if let Some(topic) = &args.findings_topic {
        let n = publish_findings(cfg, topic, &s.findings)?;
        eprintln!("published {n} findings to Kafka topic {topic}");
    }
    Ok(())
}

/// The extra librdkafka properties of the config.
fn kafka_properties(cfg: &Config) -> Vec<(String, String)> {
    cfg.kafka
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Produces `findings` to `topic` (contract JSON, key = `finding_id`) and
/// waits until the broker has them all.
fn publish_findings(
    cfg: &Config,
    topic: &str,
    findings: &[groundtruth_finding::Finding],
) -> Result<usize> {
    create_topics(&cfg.kafka.brokers, &[(topic.to_string(), 3)])?;
    let extra = kafka_properties(cfg);
    let mut sink = KafkaProducerSink::new(&cfg.kafka.brokers, topic, &extra)?;
    for f in findings {
        sink.send_finding(f)?;
    }
    sink.flush(Duration::from_secs(120)).with_context(|| {
        format!(
            "not every finding reached topic {topic} at {} within 120 s; the findings file is complete, re-run to publish (ids are stable)",
            cfg.kafka.brokers
        )
    })?;
    Ok(findings.len())
}

fn read_scenario(p: &std::path::Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read scenario {}", p.display()))?;
    Scenario::from_toml_str(&text).with_context(|| format!("scenario {}", p.display()))
}

fn eval_behaviour(cfg: &Config, args: &EvalBehaviourArgs) -> Result<()> {
    let scenarios = if args.scenario.is_empty() {
        groundtruth_eval::behaviour::matrix(args.days)
    } else {
        args.scenario
            .iter()
            .map(|p| read_scenario(p))
            .collect::<Result<Vec<_>>>()?
    };
    let eval = run_behaviour(cfg, &scenarios)?;
    print!("{}", eval.table());
    write_json(args.json.as_deref(), &eval)
}

/// Validates `scenarios`, simulates and judges each in a scratch directory.
fn run_behaviour(
    cfg: &Config,
    scenarios: &[Scenario],
) -> Result<groundtruth_eval::behaviour::BehaviourEval> {
    for s in scenarios {
        s.validate()
            .with_context(|| format!("scenario {}", s.name))?;
    }
    let scratch = eval_scratch()?;
    Ok(
        query_runtime()?.block_on(groundtruth_eval::behaviour::evaluate_behaviour(
            scenarios,
            &cfg.schedule(),
            &cfg.detect.calibration,
            scratch.path(),
        ))?,
    )
}

fn eval_worlds(cfg: &Config, args: &EvalWorldsArgs) -> Result<()> {
    anyhow::ensure!(args.worlds >= 1, "--worlds must be at least 1");
    let scenarios = groundtruth_eval::behaviour::draw_worlds(args.worlds, args.seed, args.days);
    let eval = run_behaviour(cfg, &scenarios)?;
    print!("{}", eval.table());
    // non_human_track on the same worlds' patrols.
    let mut tracks = Vec::new();
    if !args.no_tracks {
        let rt = query_runtime()?;
        for s in &scenarios {
            let s = groundtruth_eval::behaviour::with_drawn_patrols(s.clone());
            s.validate()
                .with_context(|| format!("drawn world {}", s.name))?;
            let scratch = eval_scratch()?;
            let t = rt.block_on(groundtruth_eval::tracks::evaluate_tracks(
                &s,
                &cfg.schedule(),
                &cfg.detect.calibration,
                None,
                scratch.path(),
            ))?;
            tracks.push(t);
        }
    }
    if let Some(p) = &args.details {
        let rows = tracks.iter().flat_map(|t| {
            t.details.iter().map(|d| {
                let mut d = d.clone();
                d["world"] = serde_json::Value::from(t.scenario.as_str());
                d
            })
        });
        write_ndjson(p, rows)?;
    }
    let tracks_worst = groundtruth_eval::behaviour::track_worst_case(&tracks);
    if !args.no_tracks {
        println!(
            "\nnon_human_track, worst case over {} worlds:\n\n{}",
            tracks.len(),
            groundtruth_eval::behaviour::track_worst_case_table(&tracks_worst)
        );
    }
    println!(
        "\nWorst case over {} worlds (seed {}):\n\n{}",
        args.worlds,
        args.seed,
        eval.worst_case_table()
    );
    // Calibration: every finding of the worlds (the behaviour runs' own
    // patrols and the drawn patrols' track findings), labelled.
    let samples: Vec<Sample> = eval
        .samples
        .iter()
        .chain(tracks.iter().flat_map(|t| &t.samples))
        .cloned()
        .collect();
    let reliability = Reliability::table_of(&samples);
    println!(
        "\nScores as emitted ({}), over {} findings of the {} worlds:\n\n{}",
        calibration_source(cfg),
        samples.len(),
        args.worlds,
        Reliability::text(&reliability)
    );
    if let Some(path) = &args.fit_calibration {
        let fit = Calibration::fit(
            &samples,
            format!(
                "groundtruth eval worlds --worlds {} --seed {} --days {}{}: {} labelled findings",
                args.worlds,
                args.seed,
                args.days,
                if args.no_tracks { " --no-tracks" } else { "" },
                samples.len()
            ),
        );
        let refit: Vec<Sample> = samples
            .iter()
            .map(|s| Sample {
                score: fit.probability(&s.detector, s.raw).unwrap_or(s.raw),
                ..s.clone()
            })
            .collect();
        println!(
            "Refitted on these worlds (in-sample; check it on a world it was not fitted on with `eval reliability`):\n\n{}",
            Reliability::text(&Reliability::table_of(&refit))
        );
        fit.save(path)?;
        eprintln!("calibration written to {}", path.display());
    }
    write_json(
        args.json.as_deref(),
        &serde_json::json!({
            "eval": eval,
            "worst_case": eval.worst_case(),
            "tracks": tracks,
            "tracks_worst_case": tracks_worst,
            "reliability": reliability,
        }),
    )
}

/// Where the scores' calibration came from, in words.
fn calibration_source(cfg: &Config) -> String {
    match &cfg.detect.calibration_file {
        Some(p) => format!("calibration {}", p.display()),
        None => format!("built-in calibration: {}", cfg.detect.calibration.fitted_on),
    }
}

fn eval_reliability(args: &EvalReliabilityArgs) -> Result<()> {
    let truth = groundtruth_eval::calibrate::Truth::read_csv(&args.labels)?;
    let text = std::fs::read_to_string(&args.findings)
        .with_context(|| format!("cannot read {}", args.findings.display()))?;
    let findings = groundtruth_finding::read_ndjson(&text)
        .with_context(|| args.findings.display().to_string())?;
    let rows = Reliability::table_of(&truth.samples(&findings));
    print!("{}", Reliability::text(&rows));
    write_json(args.json.as_deref(), &rows)
}

fn eval_scratch() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("groundtruth-eval-")
        .tempdir()
        .context("cannot create a scratch directory")
}

/// Writes `value` as pretty JSON to `path` when one is given.
fn write_json(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

fn eval_tracks(cfg: &Config, args: &EvalTracksArgs) -> Result<()> {
    if !args.events.is_empty() {
        return patrol_details(cfg, args);
    }
    let scenario = match &args.scenario {
        Some(p) => read_scenario(p)?,
        None => Scenario::default(),
    };
    let scratch = eval_scratch()?;
    let rt = query_runtime()?;
    let eval = rt.block_on(groundtruth_eval::tracks::evaluate_tracks(
        &scenario,
        &cfg.schedule(),
        &cfg.detect.calibration,
        args.geolife.as_deref(),
        scratch.path(),
    ))?;
    print!("{}", eval.table());
    write_json(args.json.as_deref(), &eval)?;
    if let Some(p) = &args.details {
        let geo = eval.geolife.iter().flat_map(|g| g.details.iter());
        write_ndjson(p, eval.details.iter().chain(geo))?;
    }
    Ok(())
}

/// `eval tracks --events F... --details OUT`: each patrol of the files,
/// judged, with its features.
fn patrol_details(cfg: &Config, args: &EvalTracksArgs) -> Result<()> {
    let Some(out) = &args.details else {
        bail!("--events needs --details FILE to write the patrols to");
    };
    let scratch = eval_scratch()?;
    let rt = query_runtime()?;
    let details = rt.block_on(groundtruth_eval::tracks::patrol_details_of_files(
        &args.events,
        scratch.path(),
        &cfg.schedule(),
        &cfg.detect.calibration,
    ))?;
    let flagged = details
        .iter()
        .filter(|d| d["verdicts"].as_array().is_some_and(|v| !v.is_empty()))
        .count();
    println!(
        "{} patrols judged, {flagged} flagged; each one's verdicts and features in {}",
        details.len(),
        out.display()
    );
    write_ndjson(out, details.iter())
}

fn write_ndjson(
    path: &Path,
    rows: impl IntoIterator<Item = impl std::borrow::Borrow<serde_json::Value>>,
) -> Result<()> {
    let mut out = String::new();
    for d in rows {
        out.push_str(&d.borrow().to_string());
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}
