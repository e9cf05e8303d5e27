//! Query parameters and bodies: parsed strictly (unknown parameters are
//! refused, so a typo does not silently widen a filter), validated with
//! messages that name the parameter.

use groundtruth_event::DayZone;
use groundtruth_store::{AssigneeFilter, CaseQuery, Order, Scope, Sort, Status, Verdict, MAX_PAGE};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Default page size of lists.
pub const DEFAULT_PAGE: u32 = 50;

/// Filters, order and page of the queue. Lists are comma-separated.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// Detectors, e.g. `phone_farm,bulk_check_in`.
    pub detector: Option<String>,
    /// A division-code prefix inside your scope, e.g. `450102`.
    pub region: Option<String>,
    pub app: Option<String>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    /// `open`, `needs_info`, `closed` (comma-separated).
    pub status: Option<String>,
    /// `me`, `none` (unassigned) or an inspector's name.
    pub assignee: Option<String>,
    /// Cases naming exactly this account.
    pub account: Option<String>,
    /// Cases naming an account that starts with this.
    pub q: Option<String>,
    /// Evidence ending at or after this (RFC 3339 or YYYY-MM-DD, local day).
    pub from: Option<String>,
    /// Evidence starting before this.
    pub to: Option<String>,
    #[param(value_type = Option<String>)]
    pub sort: Option<Sort>,
    #[param(value_type = Option<String>)]
    pub order: Option<Order>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
}

fn list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn short_text(field: &str, v: &Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > max => Err(ApiError::bad(
            field,
            format!("longer than {max} characters"),
        )),
        Some(s) if s.chars().any(char::is_control) => {
            Err(ApiError::bad(field, "contains control characters"))
        }
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// An instant: RFC 3339, or a date (its local midnight in `zone`).
pub fn parse_time(field: &str, s: &str, zone: DayZone) -> Result<i64, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    if let Some(days) = groundtruth_event::string_to_date32(s) {
        return Ok(i64::from(days) * 86_400_000_000 - zone.utc_offset_s() * 1_000_000);
    }
    Err(ApiError::bad(
        field,
        format!("`{s}` is not an RFC 3339 time or a YYYY-MM-DD date"),
    ))
}

pub fn parse_region(field: &str, s: &str) -> Result<Scope, ApiError> {
    Scope::parse(s).map_err(|_| {
        ApiError::bad(
            field,
            format!("`{s}` is not a division code prefix (2, 4 or 6 digits)"),
        )
    })
}

/// The region of a path, which must lie inside the caller's `scope`; one
/// outside it answers as if it did not exist.
pub fn region_in_scope(scope: &Scope, s: &str) -> Result<Scope, ApiError> {
    let region = parse_region("region", s)?;
    if !scope.contains(&region) {
        return Err(ApiError::NotFound(format!("region {region} not found")));
    }
    Ok(region)
}

pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad(
            "limit",
            format!("{n} is outside 1..={MAX_PAGE}"),
        )),
    }
}

fn score(field: &str, v: Option<f64>) -> Result<Option<f64>, ApiError> {
    match v {
        Some(s) if !(0.0..=1.0).contains(&s) => {
            Err(ApiError::bad(field, format!("{s} is outside 0..1")))
        }
        v => Ok(v),
    }
}

impl QueueParams {
    /// The store's query; `me` is the caller's subject.
    pub fn to_query(&self, me: &str, zone: DayZone) -> Result<CaseQuery, ApiError> {
        let detectors = list(&self.detector);
        for d in &detectors {
            if !groundtruth_finding::DETECTORS.contains(&d.as_str()) {
                return Err(ApiError::bad(
                    "detector",
                    format!(
                        "`{d}` is not a detector; use {}",
                        groundtruth_finding::DETECTORS.join(", ")
                    ),
                ));
            }
        }
        let status = list(&self.status)
            .iter()
            .map(|s| Status::parse(s).map_err(|e| ApiError::BadRequest(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let assignee = match short_text("assignee", &self.assignee, 64)?.as_deref() {
            None => None,
            Some("none") => Some(AssigneeFilter::Unassigned),
            Some("me") => Some(AssigneeFilter::Named(me.to_string())),
            Some(n) => Some(AssigneeFilter::Named(n.to_string())),
        };
        let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_time(field, s, zone))
                .transpose()
        };
        Ok(CaseQuery {
            detectors,
            region: self
                .region
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|r| parse_region("region", r))
                .transpose()?,
            app: short_text("app", &self.app, 128)?,
            min_score: score("min_score", self.min_score)?,
            max_score: score("max_score", self.max_score)?,
            status,
            assignee,
            account: short_text("account", &self.account, 128)?,
            search: short_text("q", &self.q, 128)?,
            from_us: time("from", &self.from)?,
            to_us: time("to", &self.to)?,
            sort: self.sort.unwrap_or_default(),
            order: self.order.unwrap_or_default(),
            cursor: short_text("cursor", &self.cursor, 512)?,
            limit: page_limit(self.limit)?,
        })
    }
}

/// Which cases claim-next may give (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Only cases with a finding of one of these detectors.
    pub detectors: Option<Vec<String>>,
    /// Only this region (inside your scope).
    pub region: Option<String>,
    pub app: Option<String>,
}

impl ClaimBody {
    pub fn to_query(&self) -> Result<CaseQuery, ApiError> {
        let detectors = self.detectors.clone().unwrap_or_default();
        for d in &detectors {
            if !groundtruth_finding::DETECTORS.contains(&d.as_str()) {
                return Err(ApiError::bad(
                    "detectors",
                    format!("`{d}` is not a detector"),
                ));
            }
        }
        Ok(CaseQuery {
            detectors,
            region: self
                .region
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|r| parse_region("region", r))
                .transpose()?,
            app: short_text("app", &self.app, 128)?,
            ..Default::default()
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictBody {
    pub verdict: Verdict,
    /// Why: what was found (required, 1 to 10,000 characters; a verdict
    /// without its reason is refused with 400).
    #[serde(default)]
    pub note: String,
    /// The case's `version` you decided on: refused (409) if it changed since.
    pub expected_version: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub text: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenBody {
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// An inspector's name, or null to put the case back in the queue.
    pub assignee: Option<String>,
    pub expected_version: Option<i64>,
}

/// What a bulk request does.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkKind {
    /// Give the cases to `assignee`.
    Assign,
    /// Put the cases back in the queue.
    Unassign,
    /// Decide the cases with `verdict` (confirmed or dismissed) and `note`.
    Close,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// Up to 500 case ids.
    pub case_ids: Vec<i64>,
    pub action: BulkKind,
    /// With `assign`: an inspector's name.
    pub assignee: Option<String>,
    /// With `close`: `confirmed` or `dismissed`.
    pub verdict: Option<Verdict>,
    /// With `close`: why.
    pub note: Option<String>,
}

impl BulkBody {
    pub fn action(&self) -> Result<groundtruth_store::BulkAction, ApiError> {
        use groundtruth_store::BulkAction;
        Ok(match self.action {
            BulkKind::Assign => BulkAction::Assign {
                assignee: self
                    .assignee
                    .clone()
                    .ok_or_else(|| ApiError::bad("assignee", "`assign` needs an assignee"))?,
            },
            BulkKind::Unassign => BulkAction::Unassign,
            BulkKind::Close => BulkAction::Close {
                verdict: self.verdict.ok_or_else(|| {
                    ApiError::bad("verdict", "`close` needs a verdict: confirmed or dismissed")
                })?,
                note: self.note.clone().unwrap_or_default(),
            },
        })
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SpanParams {
    /// Start (RFC 3339 or YYYY-MM-DD).
    pub from: Option<String>,
    /// End, exclusive.
    pub to: Option<String>,
    /// Most events listed (1-5000, default 2000).
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub case_id: Option<i64>,
    pub actor: Option<String>,
    /// Actions starting with this, e.g. `case.` or `token.created`.
    pub action: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

impl AuditParams {
    pub fn to_query(&self, zone: DayZone) -> Result<groundtruth_store::AuditQuery, ApiError> {
        let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_time(field, s, zone))
                .transpose()
        };
        Ok(groundtruth_store::AuditQuery {
            case_id: self.case_id,
            actor: short_text("actor", &self.actor, 64)?,
            action: short_text("action", &self.action, 64)?,
            since_us: time("since", &self.since)?,
            until_us: time("until", &self.until)?,
            cursor: short_text("cursor", &self.cursor, 32)?,
            limit: page_limit(self.limit)?,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// Who will hold it (letters, digits, `.`, `_`, `-`, `@`).
    pub subject: String,
    #[schema(value_type = String)]
    pub role: groundtruth_store::Role,
    /// Division-code prefix ("" = nationwide; must lie inside yours).
    pub region: String,
    /// Lifetime in seconds (default: until revoked).
    pub ttl_s: Option<i64>,
}
