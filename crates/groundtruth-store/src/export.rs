//! Whole tables for the analysts' SQL (`groundtruth-query`): every finding,
//! case and verdict in a scope, with what the review made of each finding.

use serde::Serialize;
use sqlx::Row;

use crate::access::Scope;
use crate::case_regions::visible;
use crate::db::Params;
use crate::error::{db, StoreError};
use crate::findings::parse_body;
use crate::model::CaseSummary;
use crate::ReviewStore;

/// A finding with its case and its review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub finding: groundtruth_finding::Finding,
    pub case_id: i64,
    /// The case's app and unit.
    pub app_id: String,
    pub region: String,
    pub raised: bool,
    /// `pending` (waiting for review), `needs_info`, `confirmed` or
    /// `dismissed`: the decision that covers this finding's evidence.
    pub review: String,
}

/// A verdict as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictRow {
    pub verdict_id: i64,
    pub case_id: i64,
    pub verdict: String,
    pub note: String,
    pub author: String,
    pub at_us: i64,
    pub detectors: Vec<String>,
    pub region: String,
}

impl ReviewStore {
    /// Every finding whose case is in `scope`.
    pub async fn export_findings(&self, scope: &Scope) -> Result<Vec<FindingRow>, StoreError> {
        let mut p = Params::default();
        let vis = visible("c.case_id", scope, &mut p);
        let sql = format!(
            "SELECT f.case_id, f.raised, f.body, c.app_id, c.region, c.status, c.verdict, v.verdict AS decided \
             FROM findings f JOIN cases c ON c.case_id = f.case_id LEFT JOIN verdicts v ON v.verdict_id = f.decided_by \
             WHERE 1 = 1{vis} ORDER BY f.finding_id"
        );
        let get = db("export findings");
        let rows = p.query(&sql).fetch_all(&self.read).await.map_err(&get)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let raised = r.try_get::<i64, _>("raised").map_err(&get)? != 0;
            let status: String = r.try_get("status").map_err(&get)?;
            let verdict: Option<String> = r.try_get("verdict").map_err(&get)?;
            let decided: Option<String> = r.try_get("decided").map_err(&get)?;
            let review = match (raised, status.as_str()) {
                (false, _) => decided.unwrap_or_else(|| "pending".into()),
                (true, "closed") => verdict.unwrap_or_else(|| "pending".into()),
                (true, "needs_info") => "needs_info".into(),
                _ => "pending".into(),
            };
            let body: String = r.try_get("body").map_err(&get)?;
            let mut finding = parse_body(&body)?;
            crate::mask::mask_finding(scope, &mut finding);
            out.push(FindingRow {
                finding,
                case_id: r.try_get("case_id").map_err(&get)?,
                app_id: r.try_get("app_id").map_err(&get)?,
                region: r.try_get("region").map_err(&get)?,
                raised,
                review,
            });
        }
        Ok(out)
    }

    /// Every case in `scope` (all its accounts), by id.
    pub async fn export_cases(&self, scope: &Scope) -> Result<Vec<CaseSummary>, StoreError> {
        let mut p = Params::default();
        let vis = visible("c.case_id", scope, &mut p);
        let sql = format!(
            "SELECT {} FROM cases c WHERE 1 = 1{vis} ORDER BY c.case_id",
            crate::cases::CASE_COLUMNS
        );
        let rows = p
            .query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(db("export cases"))?;
        let mut cases = rows
            .iter()
            .map(|r| crate::cases::case_summary(r, usize::MAX))
            .collect::<Result<Vec<_>, _>>()?;
        self.mask_cases(scope, &mut cases).await?;
        Ok(cases)
    }

    /// Every verdict on a case in `scope`, oldest first.
    pub async fn export_verdicts(&self, scope: &Scope) -> Result<Vec<VerdictRow>, StoreError> {
        let mut p = Params::default();
        let vis = visible("c.case_id", scope, &mut p);
        let sql = format!(
            "SELECT v.verdict_id, v.case_id, v.verdict, v.note, v.author, v.at_us, v.detectors, c.region \
             FROM verdicts v JOIN cases c ON c.case_id = v.case_id WHERE 1 = 1{vis} ORDER BY v.verdict_id"
        );
        let get = db("export verdicts");
        let rows = p.query(&sql).fetch_all(&self.read).await.map_err(&get)?;
        rows.iter()
            .map(|r| {
                let d: String = r.try_get("detectors").map_err(&get)?;
                Ok(VerdictRow {
                    verdict_id: r.try_get("verdict_id").map_err(&get)?,
                    case_id: r.try_get("case_id").map_err(&get)?,
                    verdict: r.try_get("verdict").map_err(&get)?,
                    note: r.try_get("note").map_err(&get)?,
                    author: r.try_get("author").map_err(&get)?,
                    at_us: r.try_get("at_us").map_err(&get)?,
                    detectors: d
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                    region: r.try_get("region").map_err(&get)?,
                })
            })
            .collect()
    }

    /// Writes an analyst's query to the audit log (text cut at 4 KiB).
    pub async fn record_query(
        &self,
        actor: &crate::Principal,
        channel: &'static str,
        sql: &str,
        outcome: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut text: String = sql.chars().take(4096).collect();
        if text.len() < sql.len() {
            text.push_str(" …");
        }
        let mut conn = self.write.acquire().await.map_err(db("log a query"))?;
        crate::audit::record(
            &mut conn,
            crate::now_us(),
            crate::audit::Change {
                actor,
                action: "sql.query",
                entity: "query",
                entity_id: channel.to_string(),
                case_id: None,
                region: Some(actor.scope.as_str()),
                before: None,
                after: Some(serde_json::json!({"sql": text, "outcome": outcome})),
            },
        )
        .await
    }

    /// Writes a failed sign-in (`channel`: `http` or `pgwire`) to the audit
    /// log under the name the client claimed, seen by the admin of the
    /// refused token's region when the token was found (revoked, expired)
    /// and nationwide only otherwise; a failure to write is logged.
    pub async fn record_signin_failure(
        &self,
        channel: &'static str,
        claimed: &str,
        refused: &crate::AuthError,
    ) {
        let why = refused.to_string();
        let claimed: String = claimed.chars().take(128).collect();
        let actor = crate::Principal {
            subject: format!("unknown ({claimed})"),
            ..crate::Principal::system()
        };
        let write = async {
            let mut conn = self.write.acquire().await.map_err(db("log a sign-in"))?;
            crate::audit::record(
                &mut conn,
                crate::now_us(),
                crate::audit::Change {
                    actor: &actor,
                    action: "auth.failed",
                    entity: "signin",
                    entity_id: channel.to_string(),
                    case_id: None,
                    region: refused.region().map(Scope::as_str),
                    before: None,
                    after: Some(serde_json::json!({"claimed": claimed, "why": why})),
                },
            )
            .await
        };
        if let Err(e) = write.await {
            tracing::error!(error = %e, channel, "cannot write a failed sign-in to the audit log");
        }
    }
}
