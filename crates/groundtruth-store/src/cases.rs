//! Cases: the queue, a case with its findings, and the changes inspectors
//! make (claim, assign, verdict, reopen, note, bulk). Every statement is
//! filtered by the caller's scope; every change is audited in its own
//! transaction.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::access::{Principal, Role, Scope};
use crate::audit::{like_escape, record, Change};
use crate::case_regions::{sync_case_regions, visible};
use crate::db::{Backend, Params};
use crate::error::{db, StoreError};
use crate::findings::{finding_record, refresh_case};
use crate::model::*;
use crate::{now_us, ReviewStore};

pub(crate) const CASE_COLUMNS: &str = "c.case_id, c.app_id, c.accounts, c.n_accounts, c.region, c.regions, c.status, c.verdict, c.assignee, \
     c.score, c.detectors, c.n_findings, c.n_raised, c.window_start_us, c.window_end_us, c.created_us, c.updated_us, c.version, \
     c.proposed_by, c.proposed_note, c.proposed_us";

pub(crate) fn case_summary(row: &AnyRow, accounts_cap: usize) -> Result<CaseSummary, StoreError> {
    let get = db("read a case");
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        let s: String = row.try_get(col).map_err(&get)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt {
            what: format!("case column {col}"),
            problem: e.to_string(),
        })
    };
    let mut accounts = list("accounts")?;
    accounts.truncate(accounts_cap);
    let detectors: String = row.try_get("detectors").map_err(&get)?;
    let status: String = row.try_get("status").map_err(&get)?;
    let verdict: Option<String> = row.try_get("verdict").map_err(&get)?;
    Ok(CaseSummary {
        case_id: row.try_get("case_id").map_err(&get)?,
        app_id: row.try_get("app_id").map_err(&get)?,
        accounts,
        n_accounts: row.try_get("n_accounts").map_err(&get)?,
        region: row.try_get("region").map_err(&get)?,
        regions: list("regions")?,
        status: Status::parse(&status)?,
        verdict: verdict.as_deref().map(Verdict::parse).transpose()?,
        assignee: row.try_get("assignee").map_err(&get)?,
        score: row.try_get("score").map_err(&get)?,
        detectors: detectors
            .split(',')
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect(),
        n_findings: row.try_get("n_findings").map_err(&get)?,
        n_raised: row.try_get("n_raised").map_err(&get)?,
        window_start: rfc3339_us(row.try_get("window_start_us").map_err(&get)?),
        window_end: rfc3339_us(row.try_get("window_end_us").map_err(&get)?),
        created_at: rfc3339_us(row.try_get("created_us").map_err(&get)?),
        updated_at: rfc3339_us(row.try_get("updated_us").map_err(&get)?),
        version: row.try_get("version").map_err(&get)?,
        outside_scope: None,
        proposal: match row
            .try_get::<Option<String>, _>("proposed_by")
            .map_err(&get)?
        {
            Some(by) => Some(Proposal {
                by,
                note: row
                    .try_get::<Option<String>, _>("proposed_note")
                    .map_err(&get)?
                    .unwrap_or_default(),
                at: rfc3339_us(
                    row.try_get::<Option<i64>, _>("proposed_us")
                        .map_err(&get)?
                        .unwrap_or_default(),
                ),
            }),
            None => None,
        },
    })
}

/// Keyset cursor of the queue: the last row's sort value and id.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    k: Sort,
    o: Order,
    v: f64,
    id: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str) -> Result<Cursor, StoreError> {
        let bad = || {
            StoreError::invalid(
                "cursor",
                "is not a cursor this API gave; start from the first page",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// The queue's filters as SQL conditions on `c`.
fn filters(q: &CaseQuery, scope: &Scope, p: &mut Params, wh: &mut Vec<String>) {
    if let Some(r) = &q.region {
        if !r.is_nationwide() {
            let like = p.text(r.like_pattern());
            wh.push(format!("EXISTS (SELECT 1 FROM case_regions r2 WHERE r2.case_id = c.case_id AND r2.region LIKE {like})"));
        }
    }
    if !q.detectors.is_empty() {
        let list: Vec<String> = q.detectors.iter().map(|d| p.text(d.clone())).collect();
        wh.push(format!(
            "EXISTS (SELECT 1 FROM findings f WHERE f.case_id = c.case_id AND f.raised = 1 AND f.detector IN ({}))",
            list.join(", ")
        ));
    }
    if let Some(a) = &q.app {
        wh.push(format!("c.app_id = {}", p.text(a.clone())));
    }
    if let Some(s) = q.min_score {
        wh.push(format!("c.score >= {}", p.float(s)));
    }
    if let Some(s) = q.max_score {
        wh.push(format!("c.score <= {}", p.float(s)));
    }
    if !q.status.is_empty() {
        let list: Vec<String> = q.status.iter().map(|s| p.text(s.as_str())).collect();
        wh.push(format!("c.status IN ({})", list.join(", ")));
    }
    match &q.assignee {
        Some(AssigneeFilter::Unassigned) => wh.push("c.assignee IS NULL".into()),
        Some(AssigneeFilter::Named(n)) => wh.push(format!("c.assignee = {}", p.text(n.clone()))),
        None => {}
    }
    // An account matches where the caller may see it: in a case wholly
    // inside the scope, or itself inside it (crate::mask hides the rest).
    let seen = |p: &mut Params, alias: &str| {
        if scope.is_nationwide() {
            return String::new();
        }
        let like = p.text(scope.like_pattern());
        format!(
            " AND ({alias}.region LIKE {like} OR NOT EXISTS (SELECT 1 FROM case_regions o WHERE o.case_id = c.case_id AND o.region NOT LIKE {like}))"
        )
    };
    if let Some(a) = &q.account {
        let a = p.text(a.clone());
        let seen = seen(p, "a");
        wh.push(format!("EXISTS (SELECT 1 FROM case_accounts a WHERE a.case_id = c.case_id AND a.account_id = {a}{seen})"));
    }
    if let Some(s) = &q.search {
        let pat = p.text(format!("{}%", like_escape(s)));
        let seen = seen(p, "a2");
        wh.push(format!("EXISTS (SELECT 1 FROM case_accounts a2 WHERE a2.case_id = c.case_id AND a2.account_id LIKE {pat} ESCAPE '\\'{seen})"));
    }
    if let Some(t) = q.from_us {
        wh.push(format!("c.window_end_us >= {}", p.int(t)));
    }
    if let Some(t) = q.to_us {
        wh.push(format!("c.window_start_us < {}", p.int(t)));
    }
}

fn where_clause(wh: &[String]) -> String {
    if wh.is_empty() {
        "1 = 1".into()
    } else {
        wh.join(" AND ")
    }
}

impl ReviewStore {
    /// Fails with NotFound unless the case exists inside `scope`.
    pub(crate) async fn case_visible(&self, scope: &Scope, case_id: i64) -> Result<(), StoreError> {
        // Only whether it is there: nothing of it is shown, so no masking.
        load_case(&self.read, scope, case_id).await.map(|_| ())
    }

    /// One case's summary (all its accounts), if in scope.
    pub async fn case(&self, scope: &Scope, case_id: i64) -> Result<CaseSummary, StoreError> {
        let case = load_case(&self.read, scope, case_id).await?;
        self.masked(scope, case).await
    }

    /// `case` as `scope` sees it ([`crate::mask`]).
    async fn masked(
        &self,
        scope: &Scope,
        mut case: CaseSummary,
    ) -> Result<CaseSummary, StoreError> {
        self.mask_case(scope, &mut case).await?;
        Ok(case)
    }

    /// The queue: cases in `scope` matching `q`, one page.
    pub async fn list_cases(&self, scope: &Scope, q: &CaseQuery) -> Result<CasePage, StoreError> {
        let mut p = Params::default();
        let mut wh = Vec::new();
        // A scoped caller's page by score in one status walks case_regions
        // (see migration 3); anything else walks cases.
        let scoped_walk = !scope.is_nationwide() && q.sort == Sort::Score && q.status.len() == 1;
        let vis = if scoped_walk {
            let like = p.text(scope.like_pattern());
            let status = p.text(q.status[0].as_str());
            // One row per case: the smallest of its regions in scope.
            wh.push(format!(
                "r.status = {status} AND r.region LIKE {like} AND NOT EXISTS (SELECT 1 FROM case_regions r2 \
                 WHERE r2.case_id = r.case_id AND r2.region < r.region AND r2.region LIKE {like})"
            ));
            // Score bounds on the walked index too.
            if let Some(v) = q.min_score {
                wh.push(format!("r.score >= {}", p.float(v)));
            }
            if let Some(v) = q.max_score {
                wh.push(format!("r.score <= {}", p.float(v)));
            }
            String::new()
        } else {
            visible("c.case_id", scope, &mut p)
        };
        filters(q, scope, &mut p, &mut wh);
        let (col, id_col) = if scoped_walk {
            ("r.score", "r.case_id")
        } else {
            (q.sort.column(), "c.case_id")
        };
        let (cmp, dir) = match q.order {
            Order::Desc => ("<", "DESC"),
            Order::Asc => (">", "ASC"),
        };
        if let Some(c) = &q.cursor {
            let c = Cursor::decode(c)?;
            if c.k != q.sort || c.o != q.order {
                return Err(StoreError::invalid(
                    "cursor",
                    "belongs to another sort order; start from the first page",
                ));
            }
            let v = if q.sort == Sort::Score {
                p.float(c.v)
            } else {
                p.int(c.v as i64)
            };
            let id = p.int(c.id);
            wh.push(format!(
                "({col} {cmp} {v} OR ({col} = {v} AND {id_col} {cmp} {id}))"
            ));
        }
        let limit = q.limit.clamp(1, MAX_PAGE) as i64;
        let lim = p.int(limit + 1);
        let sql = if scoped_walk {
            // Walk case_regions (status, score, case_id, region) in order:
            // the region is checked in the index entry, the case row read
            // only for matches.
            format!(
                "SELECT {CASE_COLUMNS}, r.score AS sort_key FROM case_regions r JOIN cases c ON c.case_id = r.case_id \
                 WHERE {} ORDER BY r.score {dir}, r.case_id {dir} LIMIT {lim}",
                where_clause(&wh)
            )
        } else {
            format!(
                "SELECT {CASE_COLUMNS}, {col} AS sort_key FROM cases c WHERE {}{vis} ORDER BY {col} {dir}, c.case_id {dir} LIMIT {lim}",
                where_clause(&wh)
            )
        };
        let rows = p
            .query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(db("list cases"))?;
        let mut items = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for r in &rows {
            items.push(case_summary(r, QUEUE_ACCOUNTS)?);
            // The exact stored value, so the next page starts right after.
            keys.push(
                match q.sort {
                    Sort::Score => r.try_get::<f64, _>("sort_key"),
                    _ => r.try_get::<i64, _>("sort_key").map(|v| v as f64),
                }
                .map_err(db("list cases"))?,
            );
        }
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|c| {
                Cursor {
                    k: q.sort,
                    o: q.order,
                    v: keys[limit as usize - 1],
                    id: c.case_id,
                }
                .encode()
            })
        } else {
            None
        };
        self.mask_cases(scope, &mut items).await?;
        Ok(CasePage { items, next_cursor })
    }

    /// A case with its findings, verdicts and notes.
    pub async fn case_detail(&self, scope: &Scope, case_id: i64) -> Result<CaseDetail, StoreError> {
        let case = self.case(scope, case_id).await?;
        let findings = sqlx::query(
            "SELECT f.case_id, f.raised, f.decided_by, f.body, f.first_seen_us, f.updated_us FROM findings f \
             WHERE f.case_id = $1 ORDER BY f.window_end_us DESC, f.finding_id",
        )
        .bind(case_id)
        .fetch_all(&self.read)
        .await
        .map_err(db("read a case's findings"))?
        .iter()
        .map(|r| {
            let mut rec = finding_record(r)?;
            crate::mask::mask_finding(scope, &mut rec.finding);
            Ok(rec)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let get = db("read a case's verdicts");
        let verdicts = sqlx::query(
            "SELECT verdict_id, verdict, note, author, detectors, at_us, countersigned_by FROM verdicts WHERE case_id = $1 ORDER BY verdict_id",
        )
        .bind(case_id)
        .fetch_all(&self.read)
        .await
        .map_err(&get)?
        .iter()
        .map(|r| {
            let v: String = r.try_get("verdict").map_err(&get)?;
            let d: String = r.try_get("detectors").map_err(&get)?;
            Ok(VerdictRecord {
                verdict_id: r.try_get("verdict_id").map_err(&get)?,
                verdict: Verdict::parse(&v)?,
                note: r.try_get("note").map_err(&get)?,
                author: r.try_get("author").map_err(&get)?,
                at: rfc3339_us(r.try_get("at_us").map_err(&get)?),
                detectors: d.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
                countersigned_by: r.try_get("countersigned_by").map_err(&get)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let get = db("read a case's notes");
        let notes = sqlx::query(
            "SELECT note_id, author, text, at_us FROM notes WHERE case_id = $1 ORDER BY note_id",
        )
        .bind(case_id)
        .fetch_all(&self.read)
        .await
        .map_err(&get)?
        .iter()
        .map(|r| {
            Ok(Note {
                note_id: r.try_get("note_id").map_err(&get)?,
                author: r.try_get("author").map_err(&get)?,
                text: r.try_get("text").map_err(&get)?,
                at: rfc3339_us(r.try_get("at_us").map_err(&get)?),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let replies = self.replies(case_id).await?;
        Ok(CaseDetail {
            case,
            findings,
            verdicts,
            notes,
            replies,
        })
    }

    async fn replies(&self, case_id: i64) -> Result<Vec<Reply>, StoreError> {
        let get = db("read a case's replies");
        sqlx::query(
            "SELECT reply_id, author, region, text, at_us FROM replies WHERE case_id = $1 ORDER BY reply_id",
        )
        .bind(case_id)
        .fetch_all(&self.read)
        .await
        .map_err(&get)?
        .iter()
        .map(|r| {
            Ok(Reply {
                reply_id: r.try_get("reply_id").map_err(&get)?,
                author: r.try_get("author").map_err(&get)?,
                region: r.try_get("region").map_err(&get)?,
                text: r.try_get("text").map_err(&get)?,
                at: rfc3339_us(r.try_get("at_us").map_err(&get)?),
            })
        })
        .collect()
    }

    /// Files a unit's reply to a decided case in its scope (the right of
    /// reply). An open case cannot be answered: it is not shown to the
    /// people it is about until it is decided.
    pub async fn add_reply(
        &self,
        actor: &Principal,
        case_id: i64,
        text: &str,
    ) -> Result<Reply, StoreError> {
        let text = check_text("text", text, 1)?;
        let mut tx = self.write.begin().await.map_err(db("begin a reply"))?;
        let before = load_case(&mut *tx, &actor.scope, case_id).await?;
        if before.status != Status::Closed {
            return Err(StoreError::Conflict(format!(
                "case {case_id} is not decided yet; a reply answers a decision"
            )));
        }
        let now = now_us();
        let region = actor.scope.as_str().to_string();
        let reply_id: i64 = sqlx::query(
            "INSERT INTO replies (case_id, author, region, text, at_us) VALUES ($1, $2, $3, $4, $5) RETURNING reply_id",
        )
        .bind(case_id)
        .bind(actor.subject.as_str())
        .bind(region.as_str())
        .bind(text.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("reply_id"))
        .map_err(db("add a reply"))?;
        let added = Added {
            action: "case.reply",
            entity: "reply",
            id: reply_id,
            text: &text,
        };
        added.finish(tx, actor, &before, now).await?;
        Ok(Reply {
            reply_id,
            author: actor.subject.clone(),
            region,
            text,
            at: rfc3339_us(now),
        })
    }

    /// Gives the caller the highest-scoring open, unassigned case in its
    /// scope (and `q`'s filters), atomically: two callers never get the
    /// same case. `None` when the queue is empty.
    pub async fn claim_next(
        &self,
        actor: &Principal,
        q: &CaseQuery,
    ) -> Result<Option<CaseSummary>, StoreError> {
        for _attempt in 0..20 {
            let mut p = Params::default();
            let who = p.text(actor.subject.clone());
            let now = p.int(now_us());
            let mut wh = vec![
                "c.status = 'open'".to_string(),
                "c.assignee IS NULL".to_string(),
            ];
            let vis = visible("c.case_id", &actor.scope, &mut p);
            filters(q, &actor.scope, &mut p, &mut wh);
            let lock = match self.backend {
                Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            let pick = format!(
                "SELECT c.case_id FROM cases c WHERE {}{vis} ORDER BY c.score DESC, c.case_id ASC LIMIT 1{lock}",
                where_clause(&wh)
            );
            let sql = format!(
                "UPDATE cases SET assignee = {who}, updated_us = {now}, version = version + 1 \
                 WHERE case_id = ({pick}) AND assignee IS NULL AND status = 'open' RETURNING case_id"
            );
            let mut tx = self.write.begin().await.map_err(db("begin a claim"))?;
            let claimed = p
                .query(&sql)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("claim a case"))?;
            let Some(row) = claimed else {
                tx.rollback().await.map_err(db("end a claim"))?;
                // Another claimer may hold the only candidates right now.
                if self.any_claimable(actor, q).await? {
                    continue;
                }
                return Ok(None);
            };
            let id: i64 = row.try_get("case_id").map_err(db("claim a case"))?;
            let before = Some(json!({"assignee": null}));
            let after = Some(json!({"assignee": actor.subject}));
            let case = finish(
                tx,
                actor,
                now_us(),
                id,
                "case.claimed",
                before,
                after,
                "commit a claim",
            )
            .await?;
            return Ok(Some(self.masked(&actor.scope, case).await?));
        }
        Err(StoreError::Conflict(
            "the queue is busy: every candidate case was being claimed by someone else; try again"
                .into(),
        ))
    }

    async fn any_claimable(&self, actor: &Principal, q: &CaseQuery) -> Result<bool, StoreError> {
        let mut p = Params::default();
        let mut wh = vec![
            "c.status = 'open'".to_string(),
            "c.assignee IS NULL".to_string(),
        ];
        let vis = visible("c.case_id", &actor.scope, &mut p);
        filters(q, &actor.scope, &mut p, &mut wh);
        let sql = format!(
            "SELECT c.case_id FROM cases c WHERE {}{vis} LIMIT 1",
            where_clause(&wh)
        );
        Ok(p.query(&sql)
            .fetch_optional(&self.read)
            .await
            .map_err(db("look for a claimable case"))?
            .is_some())
    }

    /// Assigns a case to `assignee` (a known inspector or admin), or back to
    /// the queue (`None`).
    pub async fn assign(
        &self,
        actor: &Principal,
        case_id: i64,
        assignee: Option<&str>,
        expected_version: Option<i64>,
    ) -> Result<CaseSummary, StoreError> {
        if let Some(a) = assignee {
            self.check_assignee(a).await?;
        }
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(db("begin an assignment"))?;
        let before = load_case(&mut *tx, &actor.scope, case_id).await?;
        check_version(&before, expected_version)?;
        if before.status == Status::Closed {
            return Err(StoreError::Conflict(format!(
                "case {case_id} is closed ({}); reopen it before assigning it",
                before.verdict.map(Verdict::as_str).unwrap_or("decided")
            )));
        }
        let now = now_us();
        update_case(
            &mut tx,
            case_id,
            before.version,
            &[("assignee", assignee.map(String::from))],
            now,
        )
        .await?;
        let case = finish(
            tx,
            actor,
            now,
            case_id,
            if assignee.is_some() {
                "case.assigned"
            } else {
                "case.unassigned"
            },
            Some(json!({"assignee": before.assignee})),
            Some(json!({"assignee": assignee})),
            "commit an assignment",
        )
        .await?;
        self.masked(&actor.scope, case).await
    }

    async fn check_assignee(&self, subject: &str) -> Result<(), StoreError> {
        let found = sqlx::query(
            "SELECT subject FROM tokens WHERE subject = $1 AND role IN ('inspector', 'admin') AND revoked_us IS NULL LIMIT 1",
        )
        .bind(subject)
        .fetch_optional(&self.read)
        .await
        .map_err(db("look up an inspector"))?;
        if found.is_none() {
            return Err(StoreError::invalid(
                "assignee",
                format!("`{subject}` is not an inspector or admin holding a valid token"),
            ));
        }
        Ok(())
    }

    /// Records a verdict with its note. Only the assignee (or anyone, when
    /// unassigned; an admin always) may decide; the case is then assigned
    /// to the decider. A final verdict closes the case and remembers its
    /// evidence, which is then not raised again.
    pub async fn record_verdict(
        &self,
        actor: &Principal,
        case_id: i64,
        verdict: Verdict,
        note: &str,
        expected_version: Option<i64>,
    ) -> Result<CaseSummary, StoreError> {
        let mut tx = self.write.begin().await.map_err(db("begin a verdict"))?;
        let before = load_case(&mut *tx, &actor.scope, case_id).await?;
        whole_case_in_scope(actor, &before, "decide")?;
        check_version(&before, expected_version)?;
        if before.status == Status::Closed {
            return Err(StoreError::Conflict(format!(
                "case {case_id} is already closed ({}); reopen it to decide again",
                before.verdict.map(Verdict::as_str).unwrap_or("decided")
            )));
        }
        // A confirmation proposed by a colleague is signed off (or sent
        // back) by any other inspector whose scope covers the case.
        let proposal = before.proposal.clone();
        let signing_off = proposal.as_ref().is_some_and(|p| p.by != actor.subject);
        if let Some(a) = before.assignee.as_ref().filter(|_| !signing_off) {
            if a != &actor.subject && actor.role != Role::Admin {
                return Err(StoreError::Conflict(format!(
                    "case {case_id} is assigned to {a}; only they or an admin can decide it (or have it reassigned)"
                )));
            }
        }
        // A decision holds up only with its reason: what was found, for
        // the record and for the unit's reply.
        let note = check_text("note", note, 1)?;
        let now = now_us();
        if verdict == Verdict::Confirmed {
            if let Some(p) = proposal.as_ref().filter(|p| p.by == actor.subject) {
                return Err(StoreError::Forbidden(format!(
                    "case {case_id}: you proposed this confirmation ({}); four eyes: another inspector must sign it off",
                    p.at
                )));
            }
            if proposal.is_none() && self.needs_four_eyes(&before) {
                return self.propose(tx, actor, before, &note, now).await;
            }
        } else if signing_off {
            return self.send_back(tx, actor, before, &note, now).await;
        }
        let (author, countersigned_by) = match proposal.as_ref().filter(|_| signing_off) {
            Some(p) => (p.by.clone(), Some(actor.subject.clone())),
            None => (actor.subject.clone(), None),
        };
        let detectors = before.detectors.join(",");
        let verdict_id: i64 = sqlx::query(
            "INSERT INTO verdicts (case_id, verdict, note, author, detectors, at_us, countersigned_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING verdict_id",
        )
        .bind(case_id)
        .bind(verdict.as_str())
        .bind(match &proposal {
            Some(p) if signing_off => format!("{} / {}: {note}", p.note, actor.subject),
            _ => note.clone(),
        })
        .bind(author.as_str())
        .bind(detectors.as_str())
        .bind(now)
        .bind(countersigned_by.as_deref())
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("verdict_id"))
        .map_err(db("record a verdict"))?;
        let assignee = decider(&before, actor);
        update_case(
            &mut tx,
            case_id,
            before.version,
            &[
                ("status", Some(verdict.status().as_str().to_string())),
                ("verdict", Some(verdict.as_str().to_string())),
                ("assignee", Some(assignee.clone())),
                ("proposed_by", None),
                ("proposed_note", None),
            ],
            now,
        )
        .await?;
        clear_proposal_time(&mut tx, case_id).await?;
        if verdict.is_final() {
            sqlx::query(
                "INSERT INTO decided_evidence (evidence_key, verdict, verdict_id, case_id, at_us) \
                 SELECT DISTINCT evidence_key, $1, $2, $3, $4 FROM findings WHERE case_id = $3 AND raised = 1 \
                 ON CONFLICT (evidence_key) DO UPDATE SET verdict = excluded.verdict, verdict_id = excluded.verdict_id, case_id = excluded.case_id, at_us = excluded.at_us",
            )
            .bind(verdict.as_str())
            .bind(verdict_id)
            .bind(case_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("remember decided evidence"))?;
        }
        let case = finish(tx, actor, now, case_id, "case.verdict", Some(json!({"status": before.status, "verdict": before.verdict, "assignee": before.assignee})), Some(json!({"status": verdict.status(), "verdict": verdict, "assignee": assignee, "verdict_id": verdict_id, "note": note, "countersigned": countersigned_by.is_some()})), "commit a verdict").await?;
        self.masked(&actor.scope, case).await
    }

    /// Whether confirming `case` needs a second inspector
    /// ([`crate::StoreOptions::four_eyes`]).
    fn needs_four_eyes(&self, case: &CaseSummary) -> bool {
        self.four_eyes
            .iter()
            .any(|d| d == "all" || case.detectors.iter().any(|c| c == d))
    }

    /// Records a confirmation as proposed: the case stays open, with the
    /// proposal, until another inspector signs it off.
    async fn propose(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        actor: &Principal,
        before: CaseSummary,
        note: &str,
        now: i64,
    ) -> Result<CaseSummary, StoreError> {
        let case_id = before.case_id;
        sqlx::query("UPDATE cases SET proposed_us = $1 WHERE case_id = $2")
            .bind(now)
            .bind(case_id)
            .execute(&mut *tx)
            .await
            .map_err(db("propose a confirmation"))?;
        let assignee = decider(&before, actor);
        update_case(
            &mut tx,
            case_id,
            before.version,
            &[
                ("proposed_by", Some(actor.subject.clone())),
                ("proposed_note", Some(note.to_string())),
                ("assignee", Some(assignee)),
            ],
            now,
        )
        .await?;
        let case = finish(
            tx,
            actor,
            now,
            case_id,
            "case.confirmation_proposed",
            None,
            Some(json!({"verdict": Verdict::Confirmed, "note": note})),
            "commit a proposal",
        )
        .await?;
        self.masked(&actor.scope, case).await
    }

    /// A second inspector does not sign off a proposed confirmation: the
    /// proposal is withdrawn with their reason and the case stays open.
    async fn send_back(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        actor: &Principal,
        before: CaseSummary,
        note: &str,
        now: i64,
    ) -> Result<CaseSummary, StoreError> {
        let case_id = before.case_id;
        update_case(
            &mut tx,
            case_id,
            before.version,
            &[("proposed_by", None), ("proposed_note", None)],
            now,
        )
        .await?;
        clear_proposal_time(&mut tx, case_id).await?;
        let case = finish(
            tx,
            actor,
            now,
            case_id,
            "case.confirmation_sent_back",
            Some(json!({"proposed_by": before.proposal.as_ref().map(|p| p.by.clone())})),
            Some(json!({"note": note})),
            "commit a sign-off refused",
        )
        .await?;
        self.masked(&actor.scope, case).await
    }

    /// Puts a decided (or waiting) case back in the queue; its decision no
    /// longer holds back the same evidence.
    pub async fn reopen(
        &self,
        actor: &Principal,
        case_id: i64,
        note: &str,
    ) -> Result<CaseSummary, StoreError> {
        let note = check_text("note", note, 0)?;
        let mut tx = self.write.begin().await.map_err(db("begin a reopen"))?;
        let before = load_case(&mut *tx, &actor.scope, case_id).await?;
        whole_case_in_scope(actor, &before, "reopen")?;
        if before.status == Status::Open {
            return Err(StoreError::Conflict(format!(
                "case {case_id} is already open"
            )));
        }
        let now = now_us();
        update_case(
            &mut tx,
            case_id,
            before.version,
            &[
                ("status", Some(Status::Open.as_str().to_string())),
                ("assignee", None),
            ],
            now,
        )
        .await?;
        // Findings held back by this case's decisions are raised again.
        let affected: Vec<i64> = sqlx::query(
            "SELECT DISTINCT f.case_id FROM findings f WHERE f.decided_by IN (SELECT v.verdict_id FROM verdicts v WHERE v.case_id = $1)",
        )
        .bind(case_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("find held-back findings"))?
        .iter()
        .map(|r| r.try_get::<i64, _>("case_id"))
        .collect::<Result<_, _>>()
        .map_err(db("find held-back findings"))?;
        sqlx::query(
            "UPDATE findings SET raised = 1, decided_by = NULL WHERE decided_by IN (SELECT v.verdict_id FROM verdicts v WHERE v.case_id = $1)",
        )
        .bind(case_id)
        .execute(&mut *tx)
        .await
        .map_err(db("raise held-back findings"))?;
        sqlx::query("DELETE FROM decided_evidence WHERE case_id = $1")
            .bind(case_id)
            .execute(&mut *tx)
            .await
            .map_err(db("withdraw a decision"))?;
        for other in affected {
            refresh_case(&mut tx, other, now, &[]).await?;
        }
        let case = finish(tx, actor, now, case_id, "case.reopened", Some(json!({"status": before.status, "verdict": before.verdict, "assignee": before.assignee})), Some(json!({"status": "open", "assignee": null, "note": note})), "commit a reopen").await?;
        self.masked(&actor.scope, case).await
    }

    /// Adds a note to a case.
    pub async fn add_note(
        &self,
        actor: &Principal,
        case_id: i64,
        text: &str,
    ) -> Result<Note, StoreError> {
        let text = check_text("text", text, 1)?;
        let mut tx = self.write.begin().await.map_err(db("begin a note"))?;
        let before = load_case(&mut *tx, &actor.scope, case_id).await?;
        let now = now_us();
        let note_id: i64 = sqlx::query(
            "INSERT INTO notes (case_id, author, text, at_us) VALUES ($1, $2, $3, $4) RETURNING note_id",
        )
        .bind(case_id)
        .bind(actor.subject.as_str())
        .bind(text.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("note_id"))
        .map_err(db("add a note"))?;
        let added = Added {
            action: "note.added",
            entity: "note",
            id: note_id,
            text: &text,
        };
        added.finish(tx, actor, &before, now).await?;
        Ok(Note {
            note_id,
            author: actor.subject.clone(),
            text,
            at: rfc3339_us(now),
        })
    }

    /// Applies `action` to each case (each in its own transaction); a case
    /// out of scope is reported exactly like a missing one.
    pub async fn bulk(
        &self,
        actor: &Principal,
        case_ids: &[i64],
        action: &BulkAction,
    ) -> Result<Vec<BulkResult>, StoreError> {
        if case_ids.is_empty() {
            return Err(StoreError::invalid(
                "case_ids",
                "is empty; name at least one case",
            ));
        }
        if case_ids.len() > MAX_BULK {
            return Err(StoreError::invalid(
                "case_ids",
                format!("{} cases; at most {MAX_BULK} per request", case_ids.len()),
            ));
        }
        match action {
            BulkAction::Assign { assignee } => self.check_assignee(assignee).await?,
            BulkAction::Close { verdict, .. } if !verdict.is_final() => {
                return Err(StoreError::invalid(
                    "verdict",
                    "closing takes confirmed or dismissed; record needs_info per case",
                ))
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(case_ids.len());
        for &id in case_ids {
            if !seen.insert(id) {
                continue;
            }
            let r = match action {
                BulkAction::Assign { assignee } => {
                    self.assign(actor, id, Some(assignee), None).await
                }
                BulkAction::Unassign => self.assign(actor, id, None, None).await,
                BulkAction::Close { verdict, note } => {
                    self.record_verdict(actor, id, *verdict, note, None).await
                }
            };
            out.push(match r {
                Ok(c) => BulkResult {
                    case_id: id,
                    ok: true,
                    error: None,
                    version: Some(c.version),
                },
                Err(e) if e.kind() == crate::ErrorKind::Backend => return Err(e),
                Err(e) => BulkResult {
                    case_id: id,
                    ok: false,
                    error: Some(e.to_string()),
                    version: None,
                },
            });
        }
        Ok(out)
    }

    /// Per detector, the verdicts on its cases in `scope`.
    pub async fn precision(&self, scope: &Scope) -> Result<Vec<DetectorPrecision>, StoreError> {
        let mut p = Params::default();
        let vis = visible("c.case_id", scope, &mut p);
        let sql = format!(
            "SELECT c.detectors, c.verdict, COUNT(*) AS n FROM cases c \
             WHERE c.verdict IS NOT NULL AND c.status <> 'open'{vis} GROUP BY c.detectors, c.verdict"
        );
        let rows = p
            .query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(db("count verdicts"))?;
        let mut by: std::collections::BTreeMap<String, DetectorPrecision> =
            groundtruth_finding::DETECTORS
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        DetectorPrecision {
                            detector: d.to_string(),
                            confirmed: 0,
                            dismissed: 0,
                            needs_info: 0,
                            precision: None,
                        },
                    )
                })
                .collect();
        let get = db("count verdicts");
        for r in &rows {
            let detectors: String = r.try_get("detectors").map_err(&get)?;
            let verdict: String = r.try_get("verdict").map_err(&get)?;
            let n: i64 = r.try_get("n").map_err(&get)?;
            for d in detectors.split(',').filter(|d| !d.is_empty()) {
                let e = by
                    .entry(d.to_string())
                    .or_insert_with(|| DetectorPrecision {
                        detector: d.to_string(),
                        confirmed: 0,
                        dismissed: 0,
                        needs_info: 0,
                        precision: None,
                    });
                match Verdict::parse(&verdict)? {
                    Verdict::Confirmed => e.confirmed += n,
                    Verdict::Dismissed => e.dismissed += n,
                    Verdict::NeedsInfo => e.needs_info += n,
                }
            }
        }
        Ok(by
            .into_values()
            .map(|mut e| {
                let decided = e.confirmed + e.dismissed;
                e.precision = (decided > 0).then(|| e.confirmed as f64 / decided as f64);
                e
            })
            .collect())
    }

    /// The review side of a region's data return: case counts and flagged
    /// accounts in `region` (which must lie inside `scope`).
    pub async fn region_cases(
        &self,
        scope: &Scope,
        region: &Scope,
    ) -> Result<RegionCases, StoreError> {
        let region = if scope.contains(region) {
            region
        } else {
            scope
        };
        let mut p = Params::default();
        let vis = visible("c.case_id", region, &mut p);
        let sql = format!(
            "SELECT c.status, c.verdict, COUNT(*) AS n FROM cases c WHERE 1 = 1{vis} GROUP BY c.status, c.verdict"
        );
        let get = db("count a region's cases");
        let rows = p.query(&sql).fetch_all(&self.read).await.map_err(&get)?;
        let mut out = RegionCases {
            open: 0,
            needs_info: 0,
            confirmed: 0,
            dismissed: 0,
            flagged_accounts: 0,
            by_detector: Vec::new(),
        };
        for r in &rows {
            let status: String = r.try_get("status").map_err(&get)?;
            let verdict: Option<String> = r.try_get("verdict").map_err(&get)?;
            let n: i64 = r.try_get("n").map_err(&get)?;
            match (status.as_str(), verdict.as_deref()) {
                ("open", _) => out.open += n,
                ("needs_info", _) => out.needs_info += n,
                ("closed", Some("confirmed")) => out.confirmed += n,
                ("closed", Some("dismissed")) => out.dismissed += n,
                _ => {}
            }
        }
        let mut p = Params::default();
        let vis = visible("c.case_id", region, &mut p);
        let sql = format!(
            "SELECT COUNT(DISTINCT a.account_id) AS n FROM case_accounts a JOIN cases c ON c.case_id = a.case_id \
             WHERE NOT (c.status = 'closed' AND c.verdict = 'dismissed') AND c.n_raised > 0{vis}"
        );
        out.flagged_accounts = p
            .query(&sql)
            .fetch_one(&self.read)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(&get)?;
        let mut p = Params::default();
        let vis = visible("c.case_id", region, &mut p);
        let sql = format!(
            "SELECT f.detector, COUNT(DISTINCT f.case_id) AS n FROM findings f JOIN cases c ON c.case_id = f.case_id \
             WHERE f.raised = 1{vis} GROUP BY f.detector ORDER BY f.detector"
        );
        for r in p.query(&sql).fetch_all(&self.read).await.map_err(&get)? {
            out.by_detector.push(DetectorCount {
                detector: r.try_get("detector").map_err(&get)?,
                cases: r.try_get("n").map_err(&get)?,
            });
        }
        Ok(out)
    }
}

async fn load_case<'e, E>(conn: E, scope: &Scope, case_id: i64) -> Result<CaseSummary, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut p = Params::default();
    let id = p.int(case_id);
    let vis = visible("c.case_id", scope, &mut p);
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases c WHERE c.case_id = {id}{vis}");
    let row = p
        .query(&sql)
        .fetch_optional(conn)
        .await
        .map_err(db("read a case"))?
        .ok_or_else(|| StoreError::not_found(format!("case {case_id}")))?;
    case_summary(&row, usize::MAX)
}

/// Ends a change to a case: its audit line, the case as it is now, commit.
#[allow(clippy::too_many_arguments)]
async fn finish(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    actor: &Principal,
    now: i64,
    case_id: i64,
    action: &'static str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    what: &'static str,
) -> Result<CaseSummary, StoreError> {
    record(
        &mut tx,
        now,
        Change {
            actor,
            action,
            entity: "case",
            entity_id: case_id.to_string(),
            case_id: Some(case_id),
            region: None,
            before,
            after,
        },
    )
    .await?;
    let case = load_case(&mut *tx, &actor.scope, case_id).await?;
    tx.commit().await.map_err(db(what))?;
    Ok(case)
}

fn check_version(case: &CaseSummary, expected: Option<i64>) -> Result<(), StoreError> {
    match expected {
        Some(v) if v != case.version => Err(StoreError::Conflict(format!(
            "case {} changed since you loaded it (your version {v}, now {}): reload it and try again",
            case.case_id, case.version
        ))),
        _ => Ok(()),
    }
}

/// Most characters in a note.
pub const MAX_NOTE_CHARS: usize = 10_000;

/// A decision on a case (verdict, reopening) is for a caller whose scope
/// covers every region the case reaches: an inspector of one city cannot
/// close a case about another city's people, nor take it out of the
/// nationwide figures and the detectors' precision.
fn whole_case_in_scope(actor: &Principal, case: &CaseSummary, to: &str) -> Result<(), StoreError> {
    let outside: Vec<&str> = case
        .regions
        .iter()
        .filter(|r| !actor.scope.covers(r))
        .map(String::as_str)
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(StoreError::Forbidden(format!(
        "case {} reaches regions outside your scope {} ({}); only someone whose scope covers all of {} can {to} it: add a note, or pass it to them",
        case.case_id,
        actor.scope,
        outside.join(", "),
        case.regions.join(", ")
    )))
}

fn check_text(field: &str, text: &str, min: usize) -> Result<String, StoreError> {
    let t = text.trim();
    let n = t.chars().count();
    if n < min {
        return Err(StoreError::invalid(field, "is empty; write what you found"));
    }
    if n > MAX_NOTE_CHARS {
        return Err(StoreError::invalid(
            field,
            format!("has {n} characters; at most {MAX_NOTE_CHARS}"),
        ));
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(StoreError::invalid(field, "contains control characters"));
    }
    Ok(t.to_string())
}

/// Sets columns of a case (text or NULL), bumps its version and time, if
/// it is still at `version` (else someone changed it meanwhile).
/// A text just added to a case (a note, a reply): what finishes it.
struct Added<'a> {
    action: &'static str,
    entity: &'static str,
    id: i64,
    text: &'a str,
}

impl Added<'_> {
    /// Marks the case changed (its version moves on), audits the text and
    /// commits.
    async fn finish(
        self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        actor: &Principal,
        case: &CaseSummary,
        now: i64,
    ) -> Result<(), StoreError> {
        update_case(&mut tx, case.case_id, case.version, &[], now).await?;
        record(
            &mut tx,
            now,
            Change {
                actor,
                action: self.action,
                entity: self.entity,
                entity_id: self.id.to_string(),
                case_id: Some(case.case_id),
                region: None,
                before: None,
                after: Some(json!({"text": self.text})),
            },
        )
        .await?;
        tx.commit().await.map_err(db("commit a case's text"))
    }
}

async fn update_case(
    conn: &mut AnyConnection,
    case_id: i64,
    version: i64,
    set: &[(&str, Option<String>)],
    now: i64,
) -> Result<(), StoreError> {
    let mut p = Params::default();
    let mut cols = Vec::new();
    for (col, v) in set {
        let ph = match v {
            Some(v) => p.text(v.clone()),
            None => p.push(crate::db::Param::NullText),
        };
        cols.push(format!("{col} = {ph}"));
    }
    cols.push(format!("updated_us = {}", p.int(now)));
    cols.push("version = version + 1".into());
    let sql = format!(
        "UPDATE cases SET {} WHERE case_id = {} AND version = {}",
        cols.join(", "),
        p.int(case_id),
        p.int(version)
    );
    let done = p
        .query(&sql)
        .execute(&mut *conn)
        .await
        .map_err(db("update a case"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "case {case_id} was changed by someone else at the same moment: reload it and try again"
        )));
    }
    sync_case_regions(conn, case_id).await
}

/// A proposal decided (signed off, refused or overtaken by a verdict)
/// leaves no time behind: `proposed_us` goes with `proposed_by`.
async fn clear_proposal_time(conn: &mut AnyConnection, case_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE cases SET proposed_us = NULL WHERE case_id = $1")
        .bind(case_id)
        .execute(&mut *conn)
        .await
        .map_err(db("clear a decided proposal"))?;
    Ok(())
}

/// Who a decision leaves the case with: its assignee, or the inspector
/// deciding it when nobody had claimed it.
fn decider(before: &CaseSummary, actor: &Principal) -> String {
    before
        .assignee
        .clone()
        .unwrap_or_else(|| actor.subject.clone())
}
