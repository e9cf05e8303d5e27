//! The handlers of `/api/v1`. Each checks the caller's role, then asks the
//! store with the caller's scope: what is out of scope answers 404, like
//! what does not exist.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use groundtruth_store::{
    AuditEntry, AuditPage, BulkResult, CaseDetail, CasePage, CaseSummary, DetectorPrecision,
    FindingRecord, NewToken, Note, Principal, RegionCases, Reply, Role, Status, TokenInfo,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::params::*;
use crate::{lake, telemetry, ApiState};

const REVIEWERS: &[Role] = &[Role::Inspector, Role::Admin];
pub(crate) const READERS: &[Role] = &[Role::Inspector, Role::Admin, Role::Analyst, Role::Unit];
const CASE_READERS: &[Role] = &[Role::Inspector, Role::Admin, Role::Analyst, Role::Unit];
const ADMINS: &[Role] = &[Role::Admin];
const REPLIERS: &[Role] = &[Role::Unit];

/// Units are the people cases are about: an open case shown to them would
/// tip off a farm's operator. They see a case once it is decided (and
/// answer it), and open ones only as counts; to them an open case does not
/// exist (404, like one outside their region).
fn shown_to(p: &Principal, case: &CaseSummary) -> Result<(), ApiError> {
    if p.role == Role::Unit && case.status != Status::Closed {
        return Err(ApiError::NotFound(format!(
            "case {} not found among your region's decided cases",
            case.case_id
        )));
    }
    Ok(())
}

/// The caller, as the server sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub subject: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// Division-code prefix you may see ("" = nationwide).
    pub region: String,
    pub token_id: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "access", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(caller: Caller) -> Json<Me> {
    let p = caller.0;
    Json(Me {
        subject: p.subject,
        role: p.role,
        region: p.scope.as_str().to_string(),
        token_id: p.token_id,
    })
}

#[utoipa::path(get, path = "/api/v1/cases", tag = "queue", security(("bearer" = [])),
    params(QueueParams),
    responses((status = 200, body = CasePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_cases(
    State(s): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<QueueParams>,
) -> Result<Json<CasePage>, ApiError> {
    let p = caller.require(CASE_READERS, "read cases")?;
    let mut q = params.to_query(&p.subject, s.zone())?;
    if p.role == Role::Unit {
        // Decided cases only (see `shown_to`).
        if !q.status.is_empty() && !q.status.contains(&Status::Closed) {
            return Ok(Json(CasePage {
                items: vec![],
                next_cursor: None,
            }));
        }
        q.status = vec![Status::Closed];
    }
    Ok(Json(s.store.list_cases(&p.scope, &q).await?))
}

#[utoipa::path(post, path = "/api/v1/cases/claim-next", tag = "queue", security(("bearer" = [])),
    request_body(content = Option<ClaimBody>, description = "optional filters"),
    responses((status = 200, body = CaseSummary, description = "the case now assigned to you"),
              (status = 204, description = "no open, unassigned case in your scope"),
              (status = 403, body = ErrorBody)))]
pub async fn claim_next(
    State(s): State<ApiState>,
    caller: Caller,
    body: Option<ApiJson<ClaimBody>>,
) -> Result<axum::response::Response, ApiError> {
    let p = caller.require(REVIEWERS, "claim cases")?;
    let q = body.map(|b| b.0).unwrap_or_default().to_query()?;
    Ok(match s.store.claim_next(p, &q).await? {
        Some(c) => Json(c).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[utoipa::path(post, path = "/api/v1/cases/bulk", tag = "queue", security(("bearer" = [])),
    request_body = BulkBody,
    responses((status = 200, body = Vec<BulkResult>, description = "one result per case; cases out of scope fail as not found"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn bulk(
    State(s): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Json<Vec<BulkResult>>, ApiError> {
    let p = caller.require(REVIEWERS, "change cases")?;
    let action = body.action()?;
    let out = s.store.bulk(p, &body.case_ids, &action).await?;
    if matches!(action, groundtruth_store::BulkAction::Close { .. }) {
        telemetry::refresh_precision(&s).await;
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/cases/{case_id}", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)),
    responses((status = 200, body = CaseDetail), (status = 404, body = ErrorBody)))]
pub async fn case_detail(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
) -> Result<Json<CaseDetail>, ApiError> {
    let p = caller.require(CASE_READERS, "read cases")?;
    let mut detail = s.store.case_detail(&p.scope, case_id).await?;
    shown_to(p, &detail.case)?;
    if p.role == Role::Unit {
        // Inspectors' working notes stay with them; the verdicts (with
        // their reasons) are what is decided.
        detail.notes.clear();
    }
    Ok(Json(detail))
}

/// A case's accounts' activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineResponse {
    pub case_id: i64,
    pub from: String,
    pub to: String,
    /// Events, oldest first (ts, account_id, kind, device, network, position...).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// More events than `limit` in the span.
    pub truncated: bool,
    /// Events per local day, account and kind.
    #[schema(value_type = Vec<Object>)]
    pub per_day: Vec<Value>,
}

/// Longest timeline span.
const MAX_SPAN_US: i64 = 31 * 86_400_000_000;

#[utoipa::path(get, path = "/api/v1/cases/{case_id}/timeline", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path), SpanParams),
    responses((status = 200, body = TimelineResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "no lake configured")))]
pub async fn timeline(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
    ApiQuery(span): ApiQuery<SpanParams>,
) -> Result<Json<TimelineResponse>, ApiError> {
    let p = caller.require(CASE_READERS, "read cases")?;
    let case = s.store.case(&p.scope, case_id).await?;
    shown_to(p, &case)?;
    let lake = s.lake()?;
    let day = 86_400_000_000;
    let ws = chrono::DateTime::parse_from_rfc3339(&case.window_start)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0);
    let we = chrono::DateTime::parse_from_rfc3339(&case.window_end)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0);
    let from = match span.from.as_deref() {
        Some(f) => parse_time("from", f, lake.zone)?,
        None => ws - day,
    };
    let to = match span.to.as_deref() {
        Some(t) => parse_time("to", t, lake.zone)?,
        None => (we + day).min(from + MAX_SPAN_US),
    };
    if to <= from {
        return Err(ApiError::bad("to", "must be after `from`"));
    }
    if to - from > MAX_SPAN_US {
        return Err(ApiError::bad(
            "to",
            "the span is longer than 31 days; ask for less",
        ));
    }
    let limit = match span.limit {
        None => 2000,
        Some(n) if (1..=5000).contains(&n) => n as usize,
        Some(n) => return Err(ApiError::bad("limit", format!("{n} is outside 1..=5000"))),
    };
    let app =
        (!case.app_id.is_empty() && !case.app_id.contains(',')).then_some(case.app_id.as_str());
    let t = lake::timeline(lake, &p.scope, app, &case.accounts, from, to, limit).await?;
    Ok(Json(TimelineResponse {
        case_id,
        from: groundtruth_store::rfc3339_us(from),
        to: groundtruth_store::rfc3339_us(to),
        events: t.events,
        truncated: t.truncated,
        per_day: t.per_day,
    }))
}

#[utoipa::path(get, path = "/api/v1/cases/{case_id}/history", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)),
    responses((status = 200, body = Vec<AuditEntry>, description = "every change to the case, oldest first"), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let p = caller.require(CASE_READERS, "read cases")?;
    if p.role == Role::Unit {
        // The store checks the scope; a unit also needs the case decided.
        shown_to(p, &s.store.case(&p.scope, case_id).await?)?;
    }
    let mut history = s.store.history(&p.scope, case_id).await?;
    if p.role == Role::Unit {
        history.retain(|e| e.entity != "note");
    }
    Ok(Json(history))
}

#[utoipa::path(post, path = "/api/v1/cases/{case_id}/verdict", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)), request_body = VerdictBody,
    responses((status = 200, body = CaseSummary), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "closed, assigned to someone else, or changed since `expected_version`")))]
pub async fn verdict(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
    ApiJson(body): ApiJson<VerdictBody>,
) -> Result<Json<CaseSummary>, ApiError> {
    let p = caller.require(REVIEWERS, "decide cases")?;
    let c = s
        .store
        .record_verdict(p, case_id, body.verdict, &body.note, body.expected_version)
        .await?;
    telemetry::verdict(body.verdict);
    telemetry::refresh_precision(&s).await;
    Ok(Json(c))
}

#[utoipa::path(post, path = "/api/v1/cases/{case_id}/reopen", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)), request_body(content = Option<ReopenBody>),
    responses((status = 200, body = CaseSummary), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reopen(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
    body: Option<ApiJson<ReopenBody>>,
) -> Result<Json<CaseSummary>, ApiError> {
    let p = caller.require(REVIEWERS, "reopen cases")?;
    let note = body.map(|b| b.0.note).unwrap_or_default();
    let c = s.store.reopen(p, case_id, &note).await?;
    telemetry::refresh_precision(&s).await;
    Ok(Json(c))
}

#[utoipa::path(post, path = "/api/v1/cases/{case_id}/notes", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)), request_body = NoteBody,
    responses((status = 201, body = Note), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_note(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let p = caller.require(REVIEWERS, "write notes")?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.add_note(p, case_id, &body.text).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/cases/{case_id}/replies", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)), request_body = NoteBody,
    responses((status = 201, body = Reply, description = "the unit's reply, now evidence on the case"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the case is not decided yet")))]
pub async fn add_reply(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<(StatusCode, Json<Reply>), ApiError> {
    let p = caller.require(REPLIERS, "reply to cases")?;
    shown_to(p, &s.store.case(&p.scope, case_id).await?)?;
    Ok((
        StatusCode::CREATED,
        Json(s.store.add_reply(p, case_id, &body.text).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/cases/{case_id}/assign", tag = "cases", security(("bearer" = [])),
    params(("case_id" = i64, Path)), request_body = AssignBody,
    responses((status = 200, body = CaseSummary), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn assign(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(case_id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Json<CaseSummary>, ApiError> {
    let p = caller.require(REVIEWERS, "assign cases")?;
    Ok(Json(
        s.store
            .assign(p, case_id, body.assignee.as_deref(), body.expected_version)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/findings/{finding_id}", tag = "cases", security(("bearer" = [])),
    params(("finding_id" = String, Path)),
    responses((status = 200, body = FindingRecord), (status = 404, body = ErrorBody)))]
pub async fn finding(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(finding_id): ApiPath<String>,
) -> Result<Json<FindingRecord>, ApiError> {
    let p = caller.require(CASE_READERS, "read findings")?;
    if finding_id.len() > 128 {
        return Err(ApiError::bad("finding_id", "longer than 128 characters"));
    }
    let record = s.store.finding(&p.scope, &finding_id).await?;
    if p.role == Role::Unit {
        shown_to(p, &s.store.case(&p.scope, record.case_id).await?)?;
    }
    Ok(Json(record))
}

#[utoipa::path(get, path = "/api/v1/detectors/precision", tag = "feedback", security(("bearer" = [])),
    responses((status = 200, body = Vec<DetectorPrecision>, description = "per detector, the verdicts on its cases in your scope")))]
pub async fn precision(
    State(s): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<DetectorPrecision>>, ApiError> {
    let p = caller.require(
        &[Role::Inspector, Role::Admin, Role::Analyst],
        "read precision",
    )?;
    Ok(Json(s.store.precision(&p.scope).await?))
}

/// What a region gets back: its own activity and the review of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionSummary {
    pub region: String,
    pub from: String,
    pub to: String,
    /// Per local day and app: events and active accounts (from the lake).
    #[schema(value_type = Vec<Object>)]
    pub activity: Vec<Value>,
    pub cases: RegionCases,
    /// The highest-scoring open cases of the region (empty for a unit:
    /// open cases are counted, not shown, to the people they are about).
    pub top_open_cases: Vec<CaseSummary>,
    /// The region's most recently decided cases.
    pub decided_cases: Vec<CaseSummary>,
}

#[utoipa::path(get, path = "/api/v1/regions/{region}/summary", tag = "data return", security(("bearer" = [])),
    params(("region" = String, Path, description = "division-code prefix inside your scope"), SpanParams),
    responses((status = 200, body = RegionSummary), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn region_summary(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(region): ApiPath<String>,
    ApiQuery(span): ApiQuery<SpanParams>,
) -> Result<Json<RegionSummary>, ApiError> {
    let p = caller.require(READERS, "read region summaries")?;
    let region = region_in_scope(&p.scope, &region)?;
    let lake = s.lake()?;
    let day = 86_400_000_000;
    let to = match span.to.as_deref() {
        Some(t) => parse_time("to", t, lake.zone)?,
        None => lake::latest_event_us(lake, &region)
            .await?
            .map_or(crate::now_us(), |t| t + 1),
    };
    let from = match span.from.as_deref() {
        Some(f) => parse_time("from", f, lake.zone)?,
        None => to - 7 * day,
    };
    if to <= from || to - from > 92 * day {
        return Err(ApiError::bad(
            "from",
            "the span must be positive and at most 92 days",
        ));
    }
    let activity = lake::region_activity(lake, &region, from, to).await?;
    let cases = s.store.region_cases(&p.scope, &region).await?;
    let q = groundtruth_store::CaseQuery {
        region: Some(region.clone()),
        status: vec![groundtruth_store::Status::Open],
        limit: 20,
        ..Default::default()
    };
    let top = if p.role == Role::Unit {
        vec![]
    } else {
        s.store.list_cases(&p.scope, &q).await?.items
    };
    let decided = groundtruth_store::CaseQuery {
        status: vec![Status::Closed],
        sort: groundtruth_store::Sort::Updated,
        ..q
    };
    let decided = s.store.list_cases(&p.scope, &decided).await?.items;
    Ok(Json(RegionSummary {
        region: region.as_str().to_string(),
        from: groundtruth_store::rfc3339_us(from),
        to: groundtruth_store::rfc3339_us(to),
        activity,
        cases,
        top_open_cases: top,
        decided_cases: decided,
    }))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", security(("bearer" = [])),
    params(AuditParams),
    responses((status = 200, body = AuditPage, description = "newest first"), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(s): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let p = caller.require(ADMINS, "read the audit log")?;
    let q = params.to_query(s.zone())?;
    Ok(Json(s.store.audit_log(&p.scope, &q).await?))
}

/// A new token: its secret is shown only here, once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", security(("bearer" = [])),
    request_body = TokenBody,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(s): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let p = caller.require(ADMINS, "create tokens")?;
    let region = parse_region("region", &body.region)?;
    let (token, info) = s
        .store
        .create_token(
            p,
            &NewToken {
                subject: body.subject,
                role: body.role,
                region,
                ttl_s: body.ttl_s,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenInfo>), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(s): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let p = caller.require(ADMINS, "list tokens")?;
    Ok(Json(s.store.list_tokens(&p.scope).await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "admin", security(("bearer" = [])),
    params(("token_id" = String, Path)),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke_token(
    State(s): State<ApiState>,
    caller: Caller,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let p: &Principal = caller.require(ADMINS, "revoke tokens")?;
    if token_id.len() > 64 {
        return Err(ApiError::bad("token_id", "longer than 64 characters"));
    }
    Ok(Json(s.store.revoke_token(p, &token_id).await?))
}

/// Readiness of the parts the API needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub store: String,
    pub lake: String,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "the process is serving")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(s): State<ApiState>) -> (StatusCode, Json<Ready>) {
    let store = match s.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: review store");
            "unreachable".to_string()
        }
    };
    let lake = match &s.lake {
        None => "not configured".to_string(),
        Some(l) if l.dir.is_dir() => "ok".to_string(),
        Some(l) => format!("missing: {}", l.dir.display()),
    };
    let ok = store == "ok" && (lake == "ok" || lake == "not configured");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Ready { store, lake }))
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format"),
        (status = 401, body = ErrorBody, description = "api.metrics_token is on and no valid token was sent"),
        (status = 403, body = ErrorBody, description = "api.metrics_token is on and the token is not an admin's"),
        (status = 404, body = ErrorBody)))]
pub async fn metrics(
    State(s): State<ApiState>,
    caller: Result<Caller, ApiError>,
) -> Result<String, ApiError> {
    if s.limits.metrics_token {
        caller?.require(&[Role::Admin], "read the metrics")?;
    }
    match &s.metrics {
        Some(h) => Ok(h.render()),
        None => Err(ApiError::NotFound(
            "metrics are not enabled in this process".into(),
        )),
    }
}

impl ApiState {
    pub(crate) fn lake(&self) -> Result<&lake::LakeAccess, ApiError> {
        self.lake.as_ref().ok_or_else(|| {
            ApiError::Unavailable("this server has no lake configured (lake.dir)".into())
        })
    }

    pub(crate) fn zone(&self) -> groundtruth_event::DayZone {
        self.lake.as_ref().map(|l| l.zone).unwrap_or_default()
    }
}
