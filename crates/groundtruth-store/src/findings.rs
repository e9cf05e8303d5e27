//! Findings into the store: upsert by `finding_id`, each into its case,
//! with feedback from earlier verdicts (evidence already decided is stored
//! but not raised again).

use std::collections::{BTreeMap, BTreeSet};

use groundtruth_finding::{sort_findings, Finding};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::access::{Principal, Scope};
use crate::audit::{record, Change};
use crate::error::{db, StoreError};
pub use crate::finding_scope::FindingScope;
use crate::model::{rfc3339_us, FindingRecord, Status, UpsertOutcome};
use crate::{now_us, ReviewStore};

fn hash_parts(parts: &[&str]) -> String {
    let mut buf = Vec::with_capacity(64);
    for part in parts {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&buf))
}

fn sorted(v: &[String]) -> Vec<&str> {
    let mut s: Vec<&str> = v.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// "The same evidence": the detector with the same accounts, devices and
/// patrols (whatever the window or the score).
pub fn evidence_key(f: &Finding) -> String {
    let mut parts = vec![f.detector.as_str(), "accounts"];
    parts.extend(sorted(&f.accounts));
    parts.push("devices");
    parts.extend(sorted(&f.devices));
    parts.push("patrols");
    parts.extend(sorted(&f.patrol_ids));
    hash_parts(&parts)
}

/// The case of a new finding: its app and its sorted accounts.
pub fn case_key(app_id: &str, accounts: &[String]) -> String {
    let mut parts = vec![app_id];
    parts.extend(sorted(accounts));
    hash_parts(&parts)
}

fn micros(field: &str, rfc3339: &str) -> Result<i64, StoreError> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_micros())
        .map_err(|_| StoreError::invalid(field, format!("`{rfc3339}` is not an RFC 3339 time")))
}

/// The stored version of a finding.
struct Existing {
    case_id: i64,
    version_us: i64,
    evidence_key: String,
    raised: bool,
    decided_by: Option<i64>,
    body: String,
    score: f64,
    window_end_us: i64,
}

impl ReviewStore {
    /// Stores a detection window's findings in one transaction. A finding
    /// is stored when new or when `version_us` (the end of the window that
    /// produced it) is at least its stored version's; a re-scan of an older
    /// window never replaces a newer version. A new finding joins the case
    /// of its app and accounts (opened if none). Evidence an inspector
    /// already decided is stored but not raised; new evidence on a closed
    /// case puts it back in the queue.
    pub async fn upsert_findings(
        &self,
        version_us: i64,
        findings: &[Finding],
    ) -> Result<UpsertOutcome, StoreError> {
        for f in findings {
            f.validate()
                .map_err(|e| StoreError::invalid("finding", e.to_string()))?;
        }
        let now = now_us();
        let mut out = UpsertOutcome::default();
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(db("begin storing findings"))?;
        let mut touched: BTreeSet<i64> = BTreeSet::new();
        let mut new_evidence: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (i, f) in findings.iter().enumerate() {
            let existing = load_existing(&mut tx, &f.finding_id).await?;
            if existing.as_ref().is_some_and(|e| e.version_us > version_us) {
                continue;
            }
            let ws = micros("window_start", &f.window_start)?;
            let we = micros("window_end", &f.window_end)?;
            let key = evidence_key(f);
            let scope = FindingScope::of(f);
            let body = serde_json::to_string(f).map_err(|e| StoreError::Corrupt {
                what: format!("finding {}", f.finding_id),
                problem: e.to_string(),
            })?;
            let same_evidence = existing.as_ref().is_some_and(|e| e.evidence_key == key);
            // The decision on stored evidence stands; new evidence is
            // checked against what inspectors decided.
            let (raised, decided_by) = match &existing {
                Some(e) if same_evidence => (e.raised, e.decided_by),
                _ => match decided(&mut tx, &key).await? {
                    Some(v) => (false, Some(v)),
                    None => (true, None),
                },
            };
            let case_id = match &existing {
                Some(e) => e.case_id,
                None => {
                    let (id, opened) = case_for(&mut tx, f, &scope, ws, we, now).await?;
                    out.cases_opened += usize::from(opened);
                    id
                }
            };
            let row = FindingRow {
                case_id,
                ws,
                we,
                key: &key,
                raised,
                decided_by,
                version_us,
                body: &body,
            };
            write_row(&mut tx, f, existing.as_ref(), &row, now).await?;
            record_scope(&mut tx, case_id, f, &scope).await?;
            let fresh = existing.is_none() || !same_evidence;
            if raised && fresh {
                new_evidence
                    .entry(case_id)
                    .or_default()
                    .push(f.finding_id.clone());
            }
            touched.insert(case_id);
            out.stored.push(i);
            if raised {
                out.raised += 1;
            } else {
                out.suppressed += 1;
            }
        }
        for case_id in touched {
            let fresh = new_evidence.get(&case_id).map(Vec::as_slice).unwrap_or(&[]);
            if refresh_case(&mut tx, case_id, now, fresh).await? {
                out.cases_reopened += 1;
            }
        }
        tx.commit().await.map_err(db("commit findings"))?;
        Ok(out)
    }

    /// How many findings are stored.
    pub async fn finding_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM findings")
            .fetch_one(&self.read)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(db("count findings"))?;
        Ok(n as u64)
    }

    /// Every stored finding (optionally of some detectors), in canonical
    /// order: what the pipeline found, whatever the review made of it.
    pub async fn current_findings(&self, detectors: &[String]) -> Result<Vec<Finding>, StoreError> {
        let mut p = crate::db::Params::default();
        let sql = if detectors.is_empty() {
            "SELECT body FROM findings".to_string()
        } else {
            let list: Vec<String> = detectors.iter().map(|d| p.text(d.clone())).collect();
            format!(
                "SELECT body FROM findings WHERE detector IN ({})",
                list.join(", ")
            )
        };
        let rows = p
            .query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(db("read findings"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let body: String = r.try_get("body").map_err(db("read findings"))?;
            out.push(parse_body(&body)?);
        }
        sort_findings(&mut out);
        Ok(out)
    }

    /// One finding, if its case is in `scope`.
    pub async fn finding(
        &self,
        scope: &Scope,
        finding_id: &str,
    ) -> Result<FindingRecord, StoreError> {
        let mut p = crate::db::Params::default();
        let id = p.text(finding_id);
        let vis = crate::case_regions::visible("f.case_id", scope, &mut p);
        let sql = format!(
            "SELECT f.case_id, f.raised, f.decided_by, f.body, f.first_seen_us, f.updated_us FROM findings f WHERE f.finding_id = {id}{vis}"
        );
        let row = p
            .query(&sql)
            .fetch_optional(&self.read)
            .await
            .map_err(db("read a finding"))?
            .ok_or_else(|| StoreError::not_found(format!("finding {finding_id}")))?;
        let mut rec = finding_record(&row)?;
        crate::mask::mask_finding(scope, &mut rec.finding);
        Ok(rec)
    }
}

pub(crate) fn parse_body(body: &str) -> Result<Finding, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        what: "finding".into(),
        problem: e.to_string(),
    })
}

pub(crate) fn finding_record(row: &AnyRow) -> Result<FindingRecord, StoreError> {
    let get = db("read a finding");
    let body: String = row.try_get("body").map_err(&get)?;
    Ok(FindingRecord {
        finding: parse_body(&body)?,
        case_id: row.try_get("case_id").map_err(&get)?,
        raised: row.try_get::<i64, _>("raised").map_err(&get)? != 0,
        decided_by: row.try_get("decided_by").map_err(&get)?,
        first_seen_at: rfc3339_us(row.try_get("first_seen_us").map_err(&get)?),
        updated_at: rfc3339_us(row.try_get("updated_us").map_err(&get)?),
    })
}

async fn load_existing(conn: &mut AnyConnection, id: &str) -> Result<Option<Existing>, StoreError> {
    let row = sqlx::query(
        "SELECT case_id, version_us, evidence_key, raised, decided_by, body, score, window_end_us FROM findings WHERE finding_id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db("read a stored finding"))?;
    let Some(r) = row else { return Ok(None) };
    let get = db("read a stored finding");
    Ok(Some(Existing {
        case_id: r.try_get("case_id").map_err(&get)?,
        version_us: r.try_get("version_us").map_err(&get)?,
        evidence_key: r.try_get("evidence_key").map_err(&get)?,
        raised: r.try_get::<i64, _>("raised").map_err(&get)? != 0,
        decided_by: r.try_get("decided_by").map_err(&get)?,
        body: r.try_get("body").map_err(&get)?,
        score: r.try_get("score").map_err(&get)?,
        window_end_us: r.try_get("window_end_us").map_err(&get)?,
    }))
}

/// The verdict that decided this evidence, if any.
async fn decided(conn: &mut AnyConnection, key: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT verdict_id FROM decided_evidence WHERE evidence_key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(db("read decided evidence"))?;
    row.map(|r| r.try_get("verdict_id"))
        .transpose()
        .map_err(db("read decided evidence"))
}

/// The case for a new finding: the one of its app and accounts, or a new
/// one. Returns (case_id, opened now).
async fn case_for(
    conn: &mut AnyConnection,
    f: &Finding,
    scope: &FindingScope,
    ws: i64,
    we: i64,
    now: i64,
) -> Result<(i64, bool), StoreError> {
    let key = case_key(&scope.app_id, &f.accounts);
    let accounts = sorted(&f.accounts);
    let regions: Vec<&String> = scope.regions.keys().collect();
    let inserted = sqlx::query(
        "INSERT INTO cases (case_key, app_id, accounts, n_accounts, region, regions, status, verdict, assignee, score, detectors, n_findings, n_raised, window_start_us, window_end_us, created_us, updated_us, version) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', NULL, NULL, $7, '', 0, 0, $8, $9, $10, $10, 0) \
         ON CONFLICT (case_key) DO NOTHING RETURNING case_id",
    )
    .bind(key.as_str())
    .bind(scope.app_id.as_str())
    .bind(json!(accounts).to_string())
    .bind(accounts.len() as i64)
    .bind(scope.primary())
    .bind(json!(regions).to_string())
    .bind(f.score)
    .bind(ws)
    .bind(we)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("open a case"))?;
    if let Some(r) = inserted {
        let id: i64 = r.try_get("case_id").map_err(db("open a case"))?;
        record(
            conn,
            now,
            Change {
                actor: &Principal::system(),
                action: "case.created",
                entity: "case",
                entity_id: id.to_string(),
                case_id: Some(id),
                region: None,
                before: None,
                after: Some(json!({"app_id": scope.app_id, "accounts": accounts.len(), "region": scope.primary(), "status": "open"})),
            },
        )
        .await?;
        return Ok((id, true));
    }
    let id: i64 = sqlx::query("SELECT case_id FROM cases WHERE case_key = $1")
        .bind(key.as_str())
        .fetch_one(conn)
        .await
        .and_then(|r| r.try_get("case_id"))
        .map_err(db("find a case"))?;
    Ok((id, false))
}

/// Recomputes a case's figures from its findings; a closed case with new
/// raised evidence goes back to the queue (returns true then).
pub(crate) async fn refresh_case(
    conn: &mut AnyConnection,
    case_id: i64,
    now: i64,
    new_evidence: &[String],
) -> Result<bool, StoreError> {
    let get = db("recompute a case");
    let agg = sqlx::query(
        "SELECT COALESCE(MAX(CASE WHEN raised = 1 THEN score END), MAX(score)) AS score, COUNT(*) AS n, \
         CAST(COALESCE(SUM(raised), 0) AS BIGINT) AS n_raised, MIN(window_start_us) AS ws, MAX(window_end_us) AS we \
         FROM findings WHERE case_id = $1",
    )
    .bind(case_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(&get)?;
    let score: Option<f64> = agg.try_get("score").map_err(&get)?;
    let n: i64 = agg.try_get("n").map_err(&get)?;
    let n_raised: i64 = agg.try_get("n_raised").map_err(&get)?;
    let ws: Option<i64> = agg.try_get("ws").map_err(&get)?;
    let we: Option<i64> = agg.try_get("we").map_err(&get)?;
    let detectors: Vec<String> = sqlx::query(
        "SELECT DISTINCT detector FROM findings WHERE case_id = $1 AND raised = 1 ORDER BY detector",
    )
    .bind(case_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(&get)?
    .iter()
    .map(|r| r.try_get::<String, _>("detector"))
    .collect::<Result<_, _>>()
    .map_err(&get)?;
    let accounts: Vec<String> =
        sqlx::query("SELECT account_id FROM case_accounts WHERE case_id = $1 ORDER BY account_id")
            .bind(case_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(&get)?
            .iter()
            .map(|r| r.try_get::<String, _>("account_id"))
            .collect::<Result<_, _>>()
            .map_err(&get)?;
    let regions: Vec<(String, i64)> = sqlx::query(
        "SELECT region, accounts FROM case_regions WHERE case_id = $1 ORDER BY accounts DESC, region",
    )
    .bind(case_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(&get)?
    .iter()
    .map(|r| Ok((r.try_get::<String, _>("region")?, r.try_get::<i64, _>("accounts")?)))
    .collect::<Result<_, sqlx::Error>>()
    .map_err(&get)?;
    let primary = regions.first().map(|r| r.0.clone()).unwrap_or_default();
    let mut region_list: Vec<&str> = regions.iter().map(|r| r.0.as_str()).collect();
    region_list.sort_unstable();
    let state = sqlx::query("SELECT status, assignee FROM cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(&get)?;
    let status: String = state.try_get("status").map_err(&get)?;
    let assignee: Option<String> = state.try_get("assignee").map_err(&get)?;
    let reopen = status == Status::Closed.as_str() && !new_evidence.is_empty();
    sqlx::query(
        "UPDATE cases SET score = $1, n_findings = $2, n_raised = $3, window_start_us = $4, window_end_us = $5, detectors = $6, \
         accounts = $7, n_accounts = $8, region = $9, regions = $10, status = $11, assignee = $12, updated_us = $13, version = version + 1 \
         WHERE case_id = $14",
    )
    .bind(score.unwrap_or(0.0))
    .bind(n)
    .bind(n_raised)
    .bind(ws.unwrap_or(0))
    .bind(we.unwrap_or(0))
    .bind(detectors.join(","))
    .bind(json!(accounts).to_string())
    .bind(accounts.len() as i64)
    .bind(primary)
    .bind(json!(region_list).to_string())
    .bind(if reopen { Status::Open.as_str().to_string() } else { status.clone() })
    .bind(if reopen { None } else { assignee.clone() })
    .bind(now)
    .bind(case_id)
    .execute(&mut *conn)
    .await
    .map_err(&get)?;
    crate::case_regions::sync_case_regions(conn, case_id).await?;
    if reopen {
        record(
            conn,
            now,
            Change {
                actor: &Principal::system(),
                action: "case.reopened",
                entity: "case",
                entity_id: case_id.to_string(),
                case_id: Some(case_id),
                region: None,
                before: Some(json!({"status": status, "assignee": assignee})),
                after: Some(
                    json!({"status": "open", "assignee": null, "new_findings": new_evidence}),
                ),
            },
        )
        .await?;
    }
    Ok(reopen)
}
/// What a finding's row is set to.
struct FindingRow<'a> {
    case_id: i64,
    ws: i64,
    we: i64,
    key: &'a str,
    raised: bool,
    decided_by: Option<i64>,
    version_us: i64,
    body: &'a str,
}

/// The audit summary of a finding's row.
fn summary(f: &Finding, raised: bool, score: f64, we: i64) -> serde_json::Value {
    json!({"detector": f.detector, "score": score, "window_end": rfc3339_us(we), "accounts": f.accounts.len(), "raised": raised})
}

/// Inserts or updates finding `f`'s row (`existing`: what is stored), with
/// its audit record; the same version again only moves `version_us`.
async fn write_row(
    tx: &mut AnyConnection,
    f: &Finding,
    existing: Option<&Existing>,
    row: &FindingRow<'_>,
    now: i64,
) -> Result<(), StoreError> {
    // What the audit log says of it: the action and the row before.
    let (action, before) = match existing {
        None => {
            sqlx::query(
                "INSERT INTO findings (finding_id, case_id, detector, score, window_start_us, window_end_us, evidence_key, raised, decided_by, version_us, body, first_seen_us, updated_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(f.finding_id.as_str())
            .bind(row.case_id)
            .bind(f.detector.as_str())
            .bind(f.score)
            .bind(row.ws)
            .bind(row.we)
            .bind(row.key)
            .bind(i64::from(row.raised))
            .bind(row.decided_by)
            .bind(row.version_us)
            .bind(row.body)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("insert a finding"))?;
            let action = if row.raised {
                "finding.created"
            } else {
                "finding.suppressed"
            };
            (action, None)
        }
        Some(e) if e.body == row.body => {
            // The same version again (a window re-run after a crash).
            sqlx::query("UPDATE findings SET version_us = $1 WHERE finding_id = $2")
                .bind(row.version_us)
                .bind(f.finding_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db("update a finding"))?;
            return Ok(());
        }
        Some(e) => {
            sqlx::query(
                "UPDATE findings SET detector = $1, score = $2, window_start_us = $3, window_end_us = $4, evidence_key = $5, raised = $6, decided_by = $7, version_us = $8, body = $9, updated_us = $10 \
                 WHERE finding_id = $11",
            )
            .bind(f.detector.as_str())
            .bind(f.score)
            .bind(row.ws)
            .bind(row.we)
            .bind(row.key)
            .bind(i64::from(row.raised))
            .bind(row.decided_by)
            .bind(row.version_us)
            .bind(row.body)
            .bind(now)
            .bind(f.finding_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db("update a finding"))?;
            (
                "finding.updated",
                Some(summary(f, e.raised, e.score, e.window_end_us)),
            )
        }
    };
    record(
        tx,
        now,
        Change {
            actor: &Principal::system(),
            action,
            entity: "finding",
            entity_id: f.finding_id.clone(),
            case_id: Some(row.case_id),
            region: None,
            before,
            after: Some(summary(f, row.raised, f.score, row.we)),
        },
    )
    .await
}

/// Records the case's accounts (with their regions) and regions.
async fn record_scope(
    tx: &mut AnyConnection,
    case_id: i64,
    f: &Finding,
    scope: &FindingScope,
) -> Result<(), StoreError> {
    for a in &f.accounts {
        sqlx::query(
            "INSERT INTO case_accounts (case_id, account_id, region) VALUES ($1, $2, $3) \
             ON CONFLICT (case_id, account_id) DO UPDATE SET region = COALESCE(case_accounts.region, excluded.region)",
        )
            .bind(case_id)
            .bind(a.as_str())
            .bind(scope.accounts.get(a).map(String::as_str))
            .execute(&mut *tx)
            .await
            .map_err(db("record a case's accounts"))?;
    }
    for (r, n) in &scope.regions {
        sqlx::query(
            "INSERT INTO case_regions (case_id, region, accounts) VALUES ($1, $2, $3) \
             ON CONFLICT (case_id, region) DO UPDATE SET accounts = CASE WHEN excluded.accounts > case_regions.accounts THEN excluded.accounts ELSE case_regions.accounts END",
        )
        .bind(case_id)
        .bind(r.as_str())
        .bind(*n)
        .execute(&mut *tx)
        .await
        .map_err(db("record a case's regions"))?;
    }
    Ok(())
}
