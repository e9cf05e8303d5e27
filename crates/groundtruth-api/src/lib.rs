//! `groundtruth-api`: the inspectors' review API over the review store
//! ([`groundtruth_store`]) and the lake.
//!
//! [`router`] builds the whole axum application (tests call it with
//! `oneshot`, no socket); [`serve`] runs it on a listener until shutdown.
//! The OpenAPI document at `/api/v1/openapi.json` is generated from the
//! same handler annotations that register the routes, so it lists exactly
//! the routes served.

mod error;
mod extract;
pub mod lake;
mod params;
mod report;
mod routes;
mod sql;
mod telemetry;
mod workbook;

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use groundtruth_store::ReviewStore;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
pub use lake::LakeAccess;
pub use sql::{SqlFormat, SqlRequest, SqlResult};

/// Limits on what a request may cost.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// A request taking longer is answered 408.
    pub request_timeout: Duration,
    /// `/metrics` needs an admin's bearer token.
    pub metrics_token: bool,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            metrics_token: false,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: ReviewStore,
    /// The lake (timelines, region summaries); `None`: those answer 503.
    pub lake: Option<LakeAccess>,
    /// The process's Prometheus recorder, served at `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    pub limits: ApiLimits,
    /// The analysts' SQL (`POST /api/v1/sql`); `None`: that answers 503.
    pub query: Option<std::sync::Arc<groundtruth_query::QueryService>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "groundtruth review API",
        description = "Oversight inspectors review flagged accounts: a queue of cases, the evidence, verdicts; every change is audited. Access is by bearer token with a role (inspector, analyst, admin, unit) and a region scope (a division-code prefix); anything outside the scope answers 404.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "queue", description = "Find and take cases"),
        (name = "cases", description = "One case: findings, evidence, timeline, verdict, notes, a unit's reply, history"),
        (name = "feedback", description = "What verdicts say about the detectors"),
        (name = "data return", description = "A region's own activity and findings"),
        (name = "analysis", description = "Analysts' SQL over the activity, the findings and the metrics views, in the caller's region"),
        (name = "access", description = "Who you are"),
        (name = "admin", description = "Tokens and the audit log"),
        (name = "health", description = "Liveness, readiness, metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("gt_ + 64 hex digits")
                    .build(),
            ),
        );
    }
}

/// The routes and the OpenAPI document that describes exactly them.
pub fn routes_and_spec() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::me))
        .routes(routes!(routes::list_cases))
        .routes(routes!(routes::claim_next))
        .routes(routes!(routes::bulk))
        .routes(routes!(routes::case_detail))
        .routes(routes!(routes::timeline))
        .routes(routes!(routes::history))
        .routes(routes!(routes::verdict))
        .routes(routes!(routes::reopen))
        .routes(routes!(routes::add_note))
        .routes(routes!(routes::add_reply))
        .routes(routes!(routes::assign))
        .routes(routes!(routes::finding))
        .routes(routes!(routes::precision))
        .routes(routes!(routes::region_summary))
        .routes(routes!(report::region_report))
        .routes(routes!(sql::sql))
        .routes(routes!(routes::audit))
        .routes(routes!(routes::create_token, routes::list_tokens))
        .routes(routes!(routes::revoke_token))
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .routes(routes!(routes::metrics))
        .routes(routes!(openapi_json))
        .split_for_parts()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "the OpenAPI 3.1 document of this API")))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    static SPEC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    axum::Json(SPEC.get_or_init(openapi).clone())
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes_and_spec().1
}

/// The whole application: routes, `/api/v1/openapi.json`, the pages at `/`
/// ([`groundtruth_web`]), limits (body
/// size, time), panics turned into 500s, request metrics, and a JSON 404
/// for unknown paths.
pub fn router(state: ApiState) -> Router {
    let (routes, _) = routes_and_spec();
    let limits = state.limits.clone();
    routes
        .merge(groundtruth_web::routes())
        .fallback(|| async { ApiError::NotFound("no such route; see /api/v1/openapi.json".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::Rejected {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "this route does not take that method; see /api/v1/openapi.json".into(),
            }
        })
        .layer(axum::middleware::from_fn(telemetry::track))
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(state)
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("a request handler panicked; the server keeps serving");
    ApiError::Internal("the server hit a bug answering this request; it is logged".into())
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeLimits::default(), shutdown).await
}

/// What one HTTP connection may hold.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// A request's headers must arrive within this; a client that sends
    /// half a request and waits is cut off.
    pub header_read_timeout: std::time::Duration,
    /// Connections open at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// [`serve`] with its connection limits: HTTP/1 over hyper with a
/// header-read timeout (axum's own loop has none) and at most
/// `max_connections` open at once; on `shutdown`, stops accepting and lets
/// the requests in flight finish.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "api: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "api connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Now, epoch microseconds.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
