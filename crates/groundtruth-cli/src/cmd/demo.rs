//! `groundtruth demo`: everything on one machine, no set-up.

use std::io::Write;

use anyhow::Result;
use groundtruth_config::Config;
use groundtruth_ingest::ingest_simulation;
use groundtruth_sql::{format_batches, open_session, run_sql, OutputFormat};

use crate::cmd::review;
use crate::cmd::simulate::{load_scenario, write_labels};
use crate::runtime::{query_runtime, shutdown_flag};
use crate::setup::ingestor;
use crate::DemoArgs;

pub(crate) fn demo(cfg: &Config, args: &DemoArgs) -> Result<()> {
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
            &crate::setup::close_cache(cfg),
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
pub(crate) fn demo_ports(cfg: &Config, args: &DemoArgs) -> Result<Config> {
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

pub(crate) fn demo_review(
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
