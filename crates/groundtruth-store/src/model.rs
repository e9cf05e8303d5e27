//! What the store returns and takes. Times are RFC 3339 strings (UTC,
//! milliseconds) at this edge; the tables keep epoch microseconds.

use groundtruth_finding::Finding;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Scope;
use crate::error::StoreError;

/// Where a case is in the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for (or under) review.
    Open,
    /// An inspector asked for more information; stays with its assignee.
    NeedsInfo,
    /// Decided: confirmed or dismissed.
    Closed,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Open, Status::NeedsInfo, Status::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::NeedsInfo => "needs_info",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Result<Status, StoreError> {
        Status::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                StoreError::invalid(
                    "status",
                    format!("`{s}` is not a status; use open, needs_info or closed"),
                )
            })
    }
}

/// An inspector's decision on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The activity was faked.
    Confirmed,
    /// It was genuine (a false alarm); the same evidence is not raised again.
    Dismissed,
    /// Cannot decide yet; the case waits with its assignee.
    NeedsInfo,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Confirmed, Verdict::Dismissed, Verdict::NeedsInfo];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Dismissed => "dismissed",
            Verdict::NeedsInfo => "needs_info",
        }
    }

    pub fn parse(s: &str) -> Result<Verdict, StoreError> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                StoreError::invalid(
                    "verdict",
                    format!("`{s}` is not a verdict; use confirmed, dismissed or needs_info"),
                )
            })
    }

    /// The status a case takes with this verdict.
    pub fn status(self) -> Status {
        match self {
            Verdict::NeedsInfo => Status::NeedsInfo,
            _ => Status::Closed,
        }
    }

    /// A final decision (the evidence is not raised again).
    pub fn is_final(self) -> bool {
        self != Verdict::NeedsInfo
    }
}

/// A case as the queue shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseSummary {
    pub case_id: i64,
    pub app_id: String,
    /// The accounts its findings name (in queue pages the first
    /// [`QUEUE_ACCOUNTS`]; `n_accounts` counts all).
    pub accounts: Vec<String>,
    pub n_accounts: i64,
    /// The unit most of its accounts belong to ("" when unknown).
    pub region: String,
    /// Every unit its accounts belong to.
    pub regions: Vec<String>,
    pub status: Status,
    /// The last verdict, if any.
    pub verdict: Option<Verdict>,
    pub assignee: Option<String>,
    /// Highest score of its raised findings.
    pub score: f64,
    /// Detectors of its raised findings.
    pub detectors: Vec<String>,
    pub n_findings: i64,
    /// Findings in the queue (not covered by an earlier decision).
    pub n_raised: i64,
    pub window_start: String,
    pub window_end: String,
    pub created_at: String,
    pub updated_at: String,
    /// Changes with every update; send it back as `expected_version` to
    /// refuse a change made on a stale view.
    pub version: i64,
    /// What is not shown to a caller whose scope covers only some of the
    /// case's regions (absent when the scope covers them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_scope: Option<OutsideScope>,
    /// A confirmation waiting for a second inspector's sign-off (four
    /// eyes); the case stays open until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Proposal>,
}

/// A confirmation proposed by one inspector, to be signed off by another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Proposal {
    pub by: String,
    pub note: String,
    pub at: String,
}

/// Accounts listed per case in a queue page.
pub const QUEUE_ACCOUNTS: usize = 20;

/// A stored finding with its place in the review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FindingRecord {
    /// The finding in the contract's format.
    #[schema(value_type = Object)]
    pub finding: Finding,
    pub case_id: i64,
    /// In the queue; false when the same evidence was already decided.
    pub raised: bool,
    /// The verdict that decided this evidence, when not raised.
    pub decided_by: Option<i64>,
    pub first_seen_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerdictRecord {
    pub verdict_id: i64,
    pub verdict: Verdict,
    pub note: String,
    pub author: String,
    pub at: String,
    /// The detectors whose findings were decided.
    pub detectors: Vec<String>,
    /// The second inspector who signed off this confirmation (four eyes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countersigned_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Note {
    pub note_id: i64,
    pub author: String,
    pub text: String,
    pub at: String,
}

/// A unit's answer to a decided case about its people (the right of
/// reply): evidence on the case for its inspectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reply {
    pub reply_id: i64,
    /// The replying token's subject.
    pub author: String,
    /// The replying token's region.
    pub region: String,
    pub text: String,
    pub at: String,
}

/// Everything about one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseDetail {
    pub case: CaseSummary,
    pub findings: Vec<FindingRecord>,
    pub verdicts: Vec<VerdictRecord>,
    /// Inspectors' working notes (not shown to units).
    pub notes: Vec<Note>,
    /// Units' replies to the decision, oldest first.
    #[serde(default)]
    pub replies: Vec<Reply>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub audit_id: i64,
    pub at: String,
    /// Token subject, or `system` for the pipeline.
    pub actor: String,
    pub role: String,
    /// e.g. `case.verdict`, `case.claimed`, `finding.created`, `token.created`.
    pub action: String,
    /// `case`, `finding`, `note` or `token`.
    pub entity: String,
    pub entity_id: String,
    pub case_id: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// One page of the queue, and the cursor of the next (absent on the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CasePage {
    pub items: Vec<CaseSummary>,
    pub next_cursor: Option<String>,
}

/// One page of the audit log (newest first), and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// Queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Score,
    Updated,
    Created,
    WindowEnd,
}

impl Sort {
    pub(crate) fn column(self) -> &'static str {
        match self {
            Sort::Score => "c.score",
            Sort::Updated => "c.updated_us",
            Sort::Created => "c.created_us",
            Sort::WindowEnd => "c.window_end_us",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Score => "score",
            Sort::Updated => "updated",
            Sort::Created => "created",
            Sort::WindowEnd => "window_end",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Desc,
    Asc,
}

/// Whose cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeFilter {
    Unassigned,
    Named(String),
}

/// Filters, order and page of the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseQuery {
    /// Cases with a raised finding of any of these detectors.
    pub detectors: Vec<String>,
    /// Only this region (within the caller's scope).
    pub region: Option<Scope>,
    pub app: Option<String>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    pub status: Vec<Status>,
    pub assignee: Option<AssigneeFilter>,
    /// Cases naming exactly this account.
    pub account: Option<String>,
    /// Cases naming an account that starts with this text.
    pub search: Option<String>,
    /// Evidence overlapping `[from_us, to_us)`.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub sort: Sort,
    pub order: Order,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// Largest page.
pub const MAX_PAGE: u32 = 500;

/// Per detector, what inspectors decided about its cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetectorPrecision {
    pub detector: String,
    pub confirmed: i64,
    pub dismissed: i64,
    /// Cases waiting for information (not counted in the precision).
    pub needs_info: i64,
    /// confirmed / (confirmed + dismissed); absent before any decision.
    pub precision: Option<f64>,
}

/// A bulk operation on many cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BulkAction {
    /// Give the cases to one inspector.
    Assign { assignee: String },
    /// Put the cases back in the queue.
    Unassign,
    /// Decide the cases (confirmed or dismissed) with one note.
    Close { verdict: Verdict, note: String },
}

/// What happened to one case of a bulk operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    pub case_id: i64,
    pub ok: bool,
    pub error: Option<String>,
    pub version: Option<i64>,
}

/// Most cases in one bulk request.
pub const MAX_BULK: usize = 500;

/// What storing a window's findings did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpsertOutcome {
    /// Indices of the findings stored (new, or a version at least as new as
    /// the stored one).
    pub stored: Vec<usize>,
    /// Of those, raised for review.
    pub raised: usize,
    /// Of those, not raised: the same evidence was decided before.
    pub suppressed: usize,
    pub cases_opened: usize,
    /// Closed cases back in the queue because of new evidence.
    pub cases_reopened: usize,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub token_id: String,
    pub subject: String,
    pub role: crate::access::Role,
    /// Division-code prefix it may see ("" = nationwide).
    #[schema(value_type = String)]
    pub region: Scope,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The review side of a region's data return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionCases {
    pub open: i64,
    pub needs_info: i64,
    pub confirmed: i64,
    pub dismissed: i64,
    /// Accounts in cases not dismissed.
    pub flagged_accounts: i64,
    /// Cases per detector (of raised findings).
    pub by_detector: Vec<DetectorCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetectorCount {
    pub detector: String,
    pub cases: i64,
}

/// RFC 3339 (UTC, milliseconds) of epoch microseconds.
pub fn rfc3339_us(us: i64) -> String {
    groundtruth_finding::rfc3339_ms(us.div_euclid(1000))
}

/// The part of a case outside the caller's scope, not shown to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutsideScope {
    /// The case's regions the caller's scope does not cover.
    pub regions: Vec<String>,
    /// Accounts of the case not shown (in those regions, or of no known
    /// region).
    pub hidden_accounts: i64,
}
