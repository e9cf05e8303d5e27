//! The review side of the CLI: the store, the API server, tokens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use groundtruth_api::{ApiLimits, ApiState, LakeAccess};
use groundtruth_config::Config;
use groundtruth_query::{AppCatalog, Limits, QueryService};
use groundtruth_store::{NewToken, Principal, ReviewStore, Role, Scope, StoreOptions};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{CalibrateArgs, FindingsArgs, FindingsFormat, ServeArgs, TokenCommand};

/// The state directory: the flag, else `live.state_dir`.
pub(crate) fn state_dir(cfg: &Config, flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| cfg.live.state_dir.clone())
}

/// Opens (creating and migrating if needed) the review store.
pub(crate) async fn open_store(cfg: &Config, state_dir: &Path) -> Result<ReviewStore> {
    let url = cfg.store_url(state_dir);
    let opts = StoreOptions {
        max_connections: cfg.store.max_connections,
        four_eyes: cfg.store.four_eyes.clone(),
        ..StoreOptions::default()
    };
    ReviewStore::open(&url, &opts).await.with_context(|| {
        "opening the review store (store.url, or review.db in the state directory)"
    })
}

/// Installs the Prometheus recorder (with its own listener when
/// `metrics.listen` is set); the handle serves the API's `/metrics`. Call
/// inside the runtime.
pub(crate) fn install_metrics(cfg: &Config) -> Result<PrometheusHandle> {
    let recorder = match cfg.metrics.listen {
        Some(addr) => {
            let (recorder, exporter) = PrometheusBuilder::new()
                .with_http_listener(addr)
                .build()
                .with_context(|| format!("cannot serve metrics on {addr} (metrics.listen)"))?;
            tokio::spawn(async move {
                if let Err(e) = exporter.await {
                    tracing::error!(error = ?e, "the metrics listener stopped");
                }
            });
            tracing::info!(%addr, "Prometheus metrics at http://{addr}/metrics");
            recorder
        }
        // The recorder alone: the API serves /metrics.
        None => PrometheusBuilder::new().build_recorder(),
    };
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("a metrics recorder is already installed")?;
    groundtruth_telemetry::describe();
    // Histograms are drained by upkeep; without the exporter's own task
    // (no metrics.listen) it runs here.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The analysts' SQL service over the lake and `store` (with `pg_catalog`
/// for the wire protocol's clients).
pub(crate) fn query_service(cfg: &Config, store: ReviewStore) -> Result<Arc<QueryService>> {
    let catalog = match &cfg.query.catalog {
        Some(path) => AppCatalog::load(path).map_err(|errors| {
            anyhow::anyhow!(
                "the app catalog {} (query.catalog) has {} problem(s):\n  - {}",
                path.display(),
                errors.len(),
                errors.join("\n  - ")
            )
        })?,
        None => AppCatalog::default(),
    };
    let limits = Limits {
        max_sql_bytes: cfg.query.max_sql_bytes,
        timeout: Duration::from_millis(cfg.query.timeout_ms),
        memory_bytes: cfg.query.memory_mb << 20,
        server_memory_bytes: cfg.query.server_memory_mb << 20,
        max_concurrent: cfg.query.max_concurrent,
        max_rows: cfg.query.max_rows,
        ..Limits::default()
    };
    let service = QueryService::new(
        cfg.lake.dir.clone(),
        cfg.lake.day_zone,
        store,
        catalog,
        limits,
    );
    let service = if cfg.query.join_statistics {
        service
    } else {
        service.without_join_statistics()
    };
    Ok(Arc::new(groundtruth_pgwire::with_pg_catalog(service)))
}

pub(crate) fn api_state(
    cfg: &Config,
    store: ReviewStore,
    metrics: Option<PrometheusHandle>,
    query: Arc<QueryService>,
) -> ApiState {
    ApiState {
        query: Some(query),
        store,
        lake: Some(LakeAccess {
            dir: cfg.lake.dir.clone(),
            zone: cfg.lake.day_zone,
        }),
        metrics,
        limits: ApiLimits {
            max_body_bytes: cfg.api.max_body_bytes,
            request_timeout: Duration::from_millis(cfg.api.request_timeout_ms),
            metrics_token: cfg.api.metrics_token,
        },
    }
}

/// Binds `addr` and serves the API on the current runtime until `stop` is
/// set. Returns the address actually bound (port 0 picks one).
pub(crate) async fn start_api(
    addr: SocketAddr,
    state: ApiState,
    stop: Arc<AtomicBool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} for the review API (api.listen): is another process using it?"
        )
    })?;
    let bound = listener.local_addr()?;
    let app = groundtruth_api::router(state);
    let task = tokio::spawn(async move {
        let until = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if let Err(e) = groundtruth_api::serve(listener, app, until).await {
            tracing::error!(error = %e, "the review API stopped");
        }
    });
    tracing::info!(addr = %bound, "pages at http://{bound}/, review API at http://{bound}/api/v1 (OpenAPI at /api/v1/openapi.json)");
    Ok((bound, task))
}

/// Binds `addr` and serves the PostgreSQL wire protocol until `stop` is
/// set. Returns the address actually bound.
pub(crate) async fn start_pgwire(
    addr: SocketAddr,
    service: Arc<QueryService>,
    tls: Option<&groundtruth_config::TlsFiles>,
    stop: Arc<AtomicBool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let tls = tls
        .map(|f| groundtruth_pgwire::tls::acceptor(&f.cert, &f.key))
        .transpose()?;
    let with_tls = tls.is_some();
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the PostgreSQL wire protocol (pgwire.listen; \"\" turns it off): is another process using it?")
    })?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let until = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if let Err(e) = groundtruth_pgwire::serve(listener, service, 64, tls, until).await {
            tracing::error!(error = %e, "the PostgreSQL wire protocol server stopped");
        }
    });
    tracing::info!(addr = %bound, tls = with_tls, "PostgreSQL wire protocol at {bound} (password: an analyst token; TLS: {})", if with_tls { "to clients that ask" } else { "off, pgwire.tls_cert and pgwire.tls_key turn it on" });
    Ok((bound, task))
}

/// Starts the API at `api` and, when set, the wire protocol at `pg`; the
/// tasks end when `stop` is set.
pub(crate) async fn start_servers(
    cfg: &Config,
    api: SocketAddr,
    pg: Option<SocketAddr>,
    store: ReviewStore,
    metrics: Option<PrometheusHandle>,
    stop: Arc<AtomicBool>,
) -> Result<Servers> {
    let query = query_service(cfg, store.clone())?;
    let (api_addr, api_task) = start_api(
        api,
        api_state(cfg, store, metrics, query.clone()),
        stop.clone(),
    )
    .await?;
    let pg = match pg {
        Some(addr) => Some(start_pgwire(addr, query, cfg.pgwire.tls.as_ref(), stop).await?),
        None => None,
    };
    Ok(Servers {
        api: api_addr,
        pgwire: pg.as_ref().map(|(a, _)| *a),
        tasks: std::iter::once(api_task)
            .chain(pg.map(|(_, t)| t))
            .collect(),
    })
}

/// Running servers.
pub(crate) struct Servers {
    pub api: SocketAddr,
    pub pgwire: Option<SocketAddr>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Servers {
    pub(crate) async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("--listen {s}: expected an address like 127.0.0.1:8080"))
}

/// `groundtruth serve`.
pub(crate) fn serve(cfg: &Config, args: &ServeArgs) -> Result<()> {
    let addr = match &args.listen {
        Some(s) => parse_listen(s)?,
        None => cfg
            .api
            .listen
            .context("no address to serve on: set api.listen or --listen")?,
    };
    let state = state_dir(cfg, args.state.as_deref());
    let rt = crate::runtime::query_runtime()?;
    let stop = crate::runtime::shutdown_flag();
    rt.block_on(async {
        let metrics = install_metrics(cfg)?;
        let store = open_store(cfg, &state).await?;
        let url = store.url().to_string();
        let servers =
            start_servers(cfg, addr, cfg.pgwire.listen, store, Some(metrics), stop).await?;
        eprintln!(
            "serving the review API on http://{}/api/v1{} over the store {url} and the lake {} (Ctrl-C stops)",
            servers.api,
            servers
                .pgwire
                .map(|a| format!(" and SQL on postgresql://{a}"))
                .unwrap_or_default(),
            cfg.lake.dir.display()
        );
        servers.wait().await;
        anyhow::Ok(())
    })
}

/// `groundtruth token ...`.
pub(crate) fn token(cfg: &Config, cmd: &TokenCommand) -> Result<()> {
    let rt = crate::runtime::query_runtime()?;
    rt.block_on(async {
        match cmd {
            TokenCommand::Create(a) => {
                let store = open_store(cfg, &state_dir(cfg, a.store.state.as_deref())).await?;
                let role = Role::parse(&a.role)?;
                let region = Scope::parse(&a.region)?;
                let subject = a
                    .subject
                    .clone()
                    .unwrap_or_else(|| default_subject(role, &region));
                let (secret, info) = store
                    .create_token(
                        &Principal {
                            subject: "cli".into(),
                            ..Principal::system()
                        },
                        &NewToken {
                            subject,
                            role,
                            region,
                            ttl_s: a.ttl,
                        },
                    )
                    .await?;
                eprintln!(
                    "created {} for {} ({} of {}{}); the secret is shown only now:",
                    info.token_id,
                    info.subject,
                    info.role,
                    info.region,
                    info.expires_at
                        .as_deref()
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default()
                );
                println!("{secret}");
            }
            TokenCommand::List(a) => {
                let store = open_store(cfg, &state_dir(cfg, a.state.as_deref())).await?;
                let mut out = std::io::stdout().lock();
                for t in store.list_tokens(&Scope::nationwide()).await? {
                    writeln!(
                        out,
                        "{}  {:<10} {:<10} {:<20} created {} by {}{}",
                        t.token_id,
                        t.role.as_str(),
                        t.region.to_string(),
                        t.subject,
                        t.created_at,
                        t.created_by,
                        match (&t.revoked_at, &t.expires_at) {
                            (Some(r), _) => format!("  REVOKED {r}"),
                            (None, Some(e)) => format!("  expires {e}"),
                            _ => String::new(),
                        }
                    )?;
                }
            }
            TokenCommand::Revoke(a) => {
                let store = open_store(cfg, &state_dir(cfg, a.store.state.as_deref())).await?;
                let t = store
                    .revoke_token(
                        &Principal {
                            subject: "cli".into(),
                            ..Principal::system()
                        },
                        &a.token_id,
                    )
                    .await?;
                eprintln!("revoked {} ({})", t.token_id, t.subject);
            }
        }
        anyhow::Ok(())
    })
}

pub(crate) fn default_subject(role: Role, region: &Scope) -> String {
    if region.is_nationwide() {
        format!("{role}-all")
    } else {
        format!("{role}-{}", region.as_str())
    }
}

/// `groundtruth findings`.
/// The state directory, checked to hold a review store unless
/// `store.url` names one elsewhere.
fn existing_store_dir(cfg: &Config, flag: Option<&Path>) -> Result<PathBuf> {
    let state = state_dir(cfg, flag);
    if cfg.store.url.is_none() && !state.join("review.db").is_file() {
        bail!(
            "{} holds no review store (review.db); give the state directory of `groundtruth run` (--state or live.state_dir) or set store.url",
            state.display()
        );
    }
    Ok(state)
}

/// `groundtruth calibrate`: the detectors' calibration refitted to the
/// inspectors' verdicts (a finding whose case was confirmed was real, one
/// dismissed was not); detectors with too few decided findings keep the
/// curve in use.
pub(crate) fn calibrate(cfg: &Config, args: &CalibrateArgs) -> Result<()> {
    use groundtruth_finding::calibration::{Calibration, Reliability, Sample, MIN_SAMPLES};
    let state = existing_store_dir(cfg, args.state.as_deref())?;
    let rows = crate::runtime::query_runtime()?.block_on(async {
        let store = open_store(cfg, &state).await?;
        anyhow::Ok(store.export_findings(&Scope::nationwide()).await?)
    })?;
    let samples: Vec<Sample> = rows
        .iter()
        .filter_map(|r| match r.review.as_str() {
            "confirmed" => Some(Sample::of(&r.finding, true)),
            "dismissed" => Some(Sample::of(&r.finding, false)),
            _ => None,
        })
        .collect();
    println!(
        "{} findings in the store, {} decided (confirmed or dismissed).\n\nScores as emitted against the verdicts:\n\n{}",
        rows.len(),
        samples.len(),
        Reliability::text(&Reliability::table_of(&samples))
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let when = groundtruth_finding::rfc3339_ms(now_ms);
    let fit = Calibration::fit(
        &samples,
        format!("inspectors' verdicts in the review store at {when}"),
    );
    for d in groundtruth_finding::DETECTORS {
        let n = samples.iter().filter(|s| s.detector == d).count();
        match fit.detectors.get(d) {
            Some(c) => println!(
                "{d}: refitted on {} verdicts ({} confirmed)",
                c.samples, c.confirmed
            ),
            None => println!("{d}: {n} verdicts, fewer than {MIN_SAMPLES}: keeps the curve in use"),
        }
    }
    cfg.detect
        .calibration
        .clone()
        .overlaid(fit)
        .save(&args.out)?;
    eprintln!(
        "calibration written to {}; use it with --set detect.calibration={}",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

pub(crate) fn findings(cfg: &Config, args: &FindingsArgs) -> Result<()> {
    let state = existing_store_dir(cfg, args.state.as_deref())?;
    for d in &args.detector {
        if !groundtruth_finding::DETECTORS.contains(&d.as_str()) {
            bail!(
                "--detector {d}: unknown; the detectors are {:?}",
                groundtruth_finding::DETECTORS
            );
        }
    }
    let rt = crate::runtime::query_runtime()?;
    let (all, shown) = rt.block_on(async {
        let store = open_store(cfg, &state).await?;
        let all = store.finding_count().await?;
        let shown = store.current_findings(&args.detector).await?;
        anyhow::Ok((all, shown))
    })?;
    let mut out = std::io::stdout().lock();
    for f in &shown {
        match args.format {
            FindingsFormat::Json => f.write_ndjson(&mut out)?,
            FindingsFormat::Table => writeln!(
                out,
                "{}  {:<18} {:.2}  {} .. {}  {} account(s)  {}",
                f.finding_id,
                f.detector,
                f.score,
                f.window_start,
                f.window_end,
                f.accounts.len(),
                f.reason
            )?,
        }
    }
    eprintln!("{} of {} findings in {}", shown.len(), all, state.display());
    Ok(())
}
