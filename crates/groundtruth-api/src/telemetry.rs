//! The API's metrics: requests by route template and status class, their
//! latency, verdicts, and the per-detector precision from verdicts.

use groundtruth_telemetry::metric;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use groundtruth_store::{Scope, Verdict};

use crate::ApiState;

/// Counts and times every request (`route` is the template, e.g.
/// `/api/v1/cases/{case_id}`: low cardinality).
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let class = format!("{}xx", status.as_u16() / 100);
    let seconds = started.elapsed().as_secs_f64();
    metrics::counter!(metric::API_REQUESTS.name, "route" => route.clone(), "method" => method.clone(), "status" => class)
        .increment(1);
    metrics::histogram!(metric::API_REQUEST.name, "route" => route.clone()).record(seconds);
    if status.is_server_error() {
        tracing::warn!(%route, %method, status = status.as_u16(), seconds, "request failed");
    } else {
        tracing::debug!(%route, %method, status = status.as_u16(), seconds, "request");
    }
    resp
}

pub fn verdict(v: Verdict) {
    metrics::counter!(metric::REVIEW_VERDICTS.name, "verdict" => v.as_str()).increment(1);
}

/// Sets `groundtruth_review_precision_ratio{detector}` (all regions).
pub async fn refresh_precision(s: &ApiState) {
    match s.store.precision(&Scope::nationwide()).await {
        Ok(rows) => {
            for r in rows {
                if let Some(p) = r.precision {
                    metrics::gauge!(metric::REVIEW_PRECISION.name, "detector" => r.detector.clone()).set(p);
                }
                metrics::gauge!(metric::REVIEW_DECIDED_CASES.name, "detector" => r.detector)
                    .set((r.confirmed + r.dismissed) as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot compute precision for the metrics"),
    }
}
