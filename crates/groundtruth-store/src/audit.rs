//! The append-only audit log: every change to a case, a finding or a token
//! is written in the same transaction as the change itself, so the log is
//! complete by construction.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::access::{Principal, Scope};
use crate::db::Params;
use crate::error::{db, StoreError};
use crate::model::{rfc3339_us, AuditEntry, AuditPage, MAX_PAGE};
use crate::ReviewStore;

/// One change, about to be logged.
pub(crate) struct Change<'a> {
    pub actor: &'a Principal,
    pub action: &'static str,
    pub entity: &'static str,
    pub entity_id: String,
    pub case_id: Option<i64>,
    /// The region an entry about no case concerns (an analyst's scope, a
    /// token's scope), so that region's admin sees it; entries about a case
    /// go by the case's regions.
    pub region: Option<&'a str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Writes `change` on `conn` (inside the caller's transaction).
pub(crate) async fn record(
    conn: &mut AnyConnection,
    at_us: i64,
    change: Change<'_>,
) -> Result<(), StoreError> {
    let text = |v: Option<Value>| v.map(|v| v.to_string());
    sqlx::query(
        "INSERT INTO audit (at_us, actor, role, action, entity, entity_id, case_id, region, before_json, after_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(at_us)
    .bind(change.actor.subject.as_str())
    .bind(change.actor.role.as_str())
    .bind(change.action)
    .bind(change.entity)
    .bind(change.entity_id)
    .bind(change.case_id)
    .bind(change.region)
    .bind(text(change.before))
    .bind(text(change.after))
    .execute(conn)
    .await
    .map_err(db("write the audit log"))?;
    Ok(())
}

const COLUMNS: &str =
    "a.audit_id, a.at_us, a.actor, a.role, a.action, a.entity, a.entity_id, a.case_id, a.before_json, a.after_json";

fn entry(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let get = db("read the audit log");
    let json = |s: Option<String>| -> Result<Option<Value>, StoreError> {
        s.map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Corrupt {
                what: "audit entry".into(),
                problem: e.to_string(),
            })
        })
        .transpose()
    };
    Ok(AuditEntry {
        audit_id: row.try_get("audit_id").map_err(&get)?,
        at: rfc3339_us(row.try_get("at_us").map_err(&get)?),
        actor: row.try_get("actor").map_err(&get)?,
        role: row.try_get("role").map_err(&get)?,
        action: row.try_get("action").map_err(&get)?,
        entity: row.try_get("entity").map_err(&get)?,
        entity_id: row.try_get("entity_id").map_err(&get)?,
        case_id: row.try_get("case_id").map_err(&get)?,
        before: json(row.try_get("before_json").map_err(&get)?)?,
        after: json(row.try_get("after_json").map_err(&get)?)?,
    })
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub case_id: Option<i64>,
    pub actor: Option<String>,
    /// Actions starting with this (`case.`, `token.created`).
    pub action: Option<String>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: u32,
}

impl ReviewStore {
    /// A case's history, oldest first (after checking it is in scope).
    pub async fn history(
        &self,
        scope: &Scope,
        case_id: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.case_visible(scope, case_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit a WHERE a.case_id = $1 ORDER BY a.audit_id"
        ))
        .bind(case_id)
        .fetch_all(&self.read)
        .await
        .map_err(db("read a case's history"))?;
        rows.iter().map(entry).collect()
    }

    /// The audit log, newest first. Outside a nationwide scope only the
    /// entries about cases in the scope and those about the scope's own
    /// queries and tokens are listed.
    pub async fn audit_log(&self, scope: &Scope, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let mut p = Params::default();
        let mut wh: Vec<String> = Vec::new();
        if !scope.is_nationwide() {
            let like = p.text(scope.like_pattern());
            wh.push(format!(
                "(a.case_id IN (SELECT r.case_id FROM case_regions r WHERE r.region LIKE {like}) OR a.region LIKE {like})"
            ));
        }
        if let Some(c) = q.case_id {
            wh.push(format!("a.case_id = {}", p.int(c)));
        }
        if let Some(a) = &q.actor {
            wh.push(format!("a.actor = {}", p.text(a.clone())));
        }
        if let Some(a) = &q.action {
            let pat = p.text(format!("{}%", like_escape(a)));
            wh.push(format!("a.action LIKE {pat} ESCAPE '\\'"));
        }
        if let Some(t) = q.since_us {
            wh.push(format!("a.at_us >= {}", p.int(t)));
        }
        if let Some(t) = q.until_us {
            wh.push(format!("a.at_us < {}", p.int(t)));
        }
        if let Some(c) = &q.cursor {
            let id: i64 = c.parse().map_err(|_| {
                StoreError::invalid(
                    "cursor",
                    "is not a cursor this API gave; start from the first page",
                )
            })?;
            wh.push(format!("a.audit_id < {}", p.int(id)));
        }
        let limit = q.limit.clamp(1, MAX_PAGE) as i64;
        let lim = p.int(limit + 1);
        let where_sql = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit a {where_sql} ORDER BY a.audit_id DESC LIMIT {lim}"
        );
        let rows = p
            .query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(db("read the audit log"))?;
        let mut items = rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| e.audit_id.to_string())
        } else {
            None
        };
        Ok(AuditPage { items, next_cursor })
    }
}

/// Escapes `\`, `%` and `_` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
