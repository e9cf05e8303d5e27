//! The review store on SQLite (the same suite runs on PostgreSQL through
//! the API tests in `tests/tests/api.rs`).

use std::collections::BTreeSet;

use groundtruth_finding::Finding;
use groundtruth_store::*;
use serde_json::json;

fn finding(
    id: &str,
    detector: &str,
    accounts: &[&str],
    region: &str,
    score: f64,
    day: u32,
) -> Finding {
    Finding {
        finding_id: id.into(),
        detector: detector.into(),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        devices: vec![format!("dev-{}", accounts[0])],
        patrol_ids: Vec::new(),
        window_start: format!("2026-11-{day:02}T00:00:00.000Z"),
        window_end: format!("2026-11-{day:02}T08:00:00.000Z"),
        score,
        reason: format!("{detector} on {accounts:?}"),
        evidence: json!({"app_id": "zhiguitong", "scope": {"apps": ["zhiguitong"], "regions": {region: accounts.len()}}})
            .as_object()
            .unwrap()
            .clone(),
    }
}

async fn open() -> (tempfile::TempDir, ReviewStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("review.db").display().to_string();
    let store = ReviewStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    (dir, store)
}

async fn token(store: &ReviewStore, subject: &str, role: Role, region: &str) -> Principal {
    let region = Scope::parse(region).unwrap();
    let secret = store.system_token(subject, role, region).await.unwrap();
    store.authenticate(&secret).await.unwrap()
}

fn day_us(day: u32) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T16:00:00Z"))
        .unwrap()
        .timestamp_micros()
}

#[tokio::test]
async fn findings_upsert_by_id_and_group_into_cases() {
    let (_d, s) = open().await;
    let a = finding("f1", "phone_farm", &["a1", "a2", "a3"], "450102", 0.9, 2);
    let b = finding("f2", "bulk_check_in", &["a3", "a2", "a1"], "450102", 0.7, 2);
    let c = finding("f3", "record_churn", &["x9"], "450201", 0.6, 2);
    let out = s
        .upsert_findings(day_us(2), &[a.clone(), b, c])
        .await
        .unwrap();
    assert_eq!(out.stored, vec![0, 1, 2]);
    assert_eq!(out.cases_opened, 2, "same app and accounts share a case");
    let all = s
        .list_cases(
            &Scope::nationwide(),
            &CaseQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let farm = &all.items[0];
    assert_eq!(farm.score, 0.9);
    assert_eq!(farm.detectors, vec!["bulk_check_in", "phone_farm"]);
    assert_eq!(farm.accounts, vec!["a1", "a2", "a3"]);
    assert_eq!(farm.region, "450102");

    // A later window's version replaces, an older one never does.
    let mut grown = a.clone();
    grown.score = 0.95;
    assert_eq!(
        s.upsert_findings(day_us(3), &[grown]).await.unwrap().stored,
        vec![0]
    );
    let mut stale = a.clone();
    stale.score = 0.1;
    assert!(s
        .upsert_findings(day_us(2), &[stale])
        .await
        .unwrap()
        .stored
        .is_empty());
    let current = s.current_findings(&[]).await.unwrap();
    assert_eq!(current.len(), 3);
    assert_eq!(
        current.iter().find(|f| f.finding_id == "f1").unwrap().score,
        0.95
    );
    assert_eq!(
        s.current_findings(&["record_churn".into()])
            .await
            .unwrap()
            .len(),
        1
    );

    // Re-running a window stores the same version without a new audit line.
    let before = s
        .audit_log(
            &Scope::nationwide(),
            &AuditQuery {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .len();
    let again = s.current_findings(&[]).await.unwrap();
    s.upsert_findings(day_us(3), &again).await.unwrap();
    let after = s
        .audit_log(
            &Scope::nationwide(),
            &AuditQuery {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(before, after);
    assert_eq!(s.finding_count().await.unwrap(), 3);
}

#[tokio::test]
async fn nothing_outside_the_scope_is_visible_or_changeable() {
    let (_d, s) = open().await;
    s.upsert_findings(
        day_us(2),
        &[
            finding("in", "phone_farm", &["a1"], "450102", 0.9, 2),
            finding("out", "phone_farm", &["b1"], "450201", 0.9, 2),
        ],
    )
    .await
    .unwrap();
    let nanning = token(&s, "li", Role::Inspector, "4501").await;
    let everyone = s
        .list_cases(
            &Scope::nationwide(),
            &CaseQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let outside = everyone
        .items
        .iter()
        .find(|c| c.region == "450201")
        .unwrap()
        .case_id;
    let page = s
        .list_cases(
            &nanning.scope,
            &CaseQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.items.iter().all(|c| c.region.starts_with("4501")));
    let nf = |e: StoreError| assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    nf(s.case(&nanning.scope, outside).await.unwrap_err());
    nf(s.case_detail(&nanning.scope, outside).await.unwrap_err());
    nf(s.history(&nanning.scope, outside).await.unwrap_err());
    nf(s.finding(&nanning.scope, "out").await.unwrap_err());
    nf(s.add_note(&nanning, outside, "x").await.unwrap_err());
    nf(
        s.record_verdict(&nanning, outside, Verdict::Confirmed, "", None)
            .await
            .unwrap_err(),
    );
    nf(s.assign(&nanning, outside, None, None).await.unwrap_err());
    nf(s.reopen(&nanning, outside, "").await.unwrap_err());
    let bulk = s
        .bulk(&nanning, &[outside], &BulkAction::Unassign)
        .await
        .unwrap();
    assert!(!bulk[0].ok);
    assert_eq!(
        bulk[0].error.as_deref(),
        Some(format!("case {outside} not found").as_str())
    );
    // Searching by the other region's account finds nothing either.
    let q = CaseQuery {
        account: Some("b1".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(s
        .list_cases(&nanning.scope, &q)
        .await
        .unwrap()
        .items
        .is_empty());
    let claimed = s
        .claim_next(&nanning, &CaseQuery::default())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(claimed.case_id, outside);
    assert!(s
        .claim_next(&nanning, &CaseQuery::default())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn cursor_pages_visit_every_case_once_in_order() {
    let (_d, s) = open().await;
    let mut fs = Vec::new();
    for i in 0..137 {
        // Ties in score, to exercise the id tie-break.
        fs.push(finding(
            &format!("f{i}"),
            "record_churn",
            &[&format!("acc{i}")],
            "450102",
            (i % 7) as f64 / 10.0,
            2,
        ));
    }
    s.upsert_findings(day_us(2), &fs).await.unwrap();
    for sort in [Sort::Score, Sort::Created, Sort::WindowEnd, Sort::Updated] {
        for order in [Order::Desc, Order::Asc] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let q = CaseQuery {
                    sort,
                    order,
                    cursor: cursor.clone(),
                    limit: 20,
                    ..Default::default()
                };
                let page = s
                    .list_cases(&Scope::parse("45").unwrap(), &q)
                    .await
                    .unwrap();
                seen.extend(page.items.iter().map(|c| (c.score, c.case_id)));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen.len(), 137, "{sort:?} {order:?}");
            let ids: BTreeSet<i64> = seen.iter().map(|x| x.1).collect();
            assert_eq!(ids.len(), 137);
            if sort == Sort::Score {
                let mut sorted = seen.clone();
                sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                if order == Order::Desc {
                    sorted.reverse();
                }
                assert_eq!(seen, sorted);
            }
        }
    }
    let bad = CaseQuery {
        cursor: Some("garbage".into()),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(
        s.list_cases(&Scope::nationwide(), &bad)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
}

#[tokio::test]
async fn queue_filters() {
    let (_d, s) = open().await;
    s.upsert_findings(
        day_us(2),
        &[
            finding("f1", "phone_farm", &["a1", "a2"], "450102", 0.9, 2),
            finding("f2", "bulk_check_in", &["b1"], "450103", 0.5, 3),
            finding("f3", "record_churn", &["c1"], "450201", 0.3, 4),
        ],
    )
    .await
    .unwrap();
    let n = |q: CaseQuery| {
        let s = s.clone();
        async move {
            s.list_cases(&Scope::nationwide(), &CaseQuery { limit: 50, ..q })
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(
        n(CaseQuery {
            detectors: vec!["phone_farm".into()],
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        n(CaseQuery {
            region: Some(Scope::parse("4501").unwrap()),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        n(CaseQuery {
            min_score: Some(0.5),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        n(CaseQuery {
            max_score: Some(0.4),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        n(CaseQuery {
            app: Some("zhiguitong".into()),
            ..Default::default()
        })
        .await,
        3
    );
    assert_eq!(
        n(CaseQuery {
            app: Some("other".into()),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        n(CaseQuery {
            search: Some("a".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        n(CaseQuery {
            search: Some("%".into()),
            ..Default::default()
        })
        .await,
        0,
        "LIKE wildcards are literal"
    );
    assert_eq!(
        n(CaseQuery {
            status: vec![Status::Open],
            ..Default::default()
        })
        .await,
        3
    );
    assert_eq!(
        n(CaseQuery {
            assignee: Some(AssigneeFilter::Unassigned),
            ..Default::default()
        })
        .await,
        3
    );
    let from = day_us(3) - 16 * 3_600_000_000;
    assert_eq!(
        n(CaseQuery {
            from_us: Some(from),
            ..Default::default()
        })
        .await,
        2
    );
}

#[tokio::test]
async fn twenty_concurrent_claims_never_share_a_case() {
    let (_d, s) = open().await;
    let fs: Vec<Finding> = (0..30)
        .map(|i| {
            finding(
                &format!("f{i}"),
                "record_churn",
                &[&format!("acc{i}")],
                "450102",
                0.5,
                2,
            )
        })
        .collect();
    s.upsert_findings(day_us(2), &fs).await.unwrap();
    let mut inspectors = Vec::new();
    for i in 0..20 {
        inspectors.push(token(&s, &format!("insp{i}"), Role::Inspector, "45").await);
    }
    let mut tasks = Vec::new();
    for p in inspectors {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = s.claim_next(&p, &CaseQuery::default()).await.unwrap() {
                assert_eq!(c.assignee.as_deref(), Some(p.subject.as_str()));
                got.push(c.case_id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 30);
    assert_eq!(unique.len(), 30);
}

#[tokio::test]
async fn a_decided_evidence_is_not_raised_again_but_new_evidence_is() {
    let (_d, s) = open().await;
    let li = token(&s, "li", Role::Inspector, "4501").await;
    let wang = token(&s, "wang", Role::Inspector, "4501").await;
    s.upsert_findings(
        day_us(2),
        &[finding(
            "d2",
            "bulk_check_in",
            &["m1", "m2", "m3"],
            "450102",
            0.8,
            2,
        )],
    )
    .await
    .unwrap();
    let case = s
        .claim_next(&li, &CaseQuery::default())
        .await
        .unwrap()
        .unwrap();
    // Only the assignee decides.
    let e = s
        .record_verdict(&wang, case.case_id, Verdict::Dismissed, "", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // A stale version is refused.
    let e = s
        .record_verdict(
            &li,
            case.case_id,
            Verdict::Dismissed,
            "",
            Some(case.version - 1),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("changed since you loaded it"), "{e}");
    // A verdict without its reason is refused (blank counts as none).
    let e = s
        .record_verdict(&li, case.case_id, Verdict::Dismissed, "  \n", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("note"), "{e}");
    let closed = s
        .record_verdict(
            &li,
            case.case_id,
            Verdict::Dismissed,
            "a family sharing one phone",
            Some(case.version),
        )
        .await
        .unwrap();
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(closed.verdict, Some(Verdict::Dismissed));

    // The next day: the same family, the same phone: stored, not raised.
    let out = s
        .upsert_findings(
            day_us(3),
            &[finding(
                "d3",
                "bulk_check_in",
                &["m1", "m2", "m3"],
                "450102",
                0.8,
                3,
            )],
        )
        .await
        .unwrap();
    assert_eq!((out.raised, out.suppressed, out.cases_reopened), (0, 1, 0));
    let c = s.case(&li.scope, case.case_id).await.unwrap();
    assert_eq!(c.status, Status::Closed);
    assert_eq!(c.n_findings, 2);
    let rec = s.finding(&li.scope, "d3").await.unwrap();
    assert!(!rec.raised);
    assert!(rec.decided_by.is_some());

    // A fourth account joins: new evidence, back in the queue.
    let mut grown = finding("d4", "bulk_check_in", &["m1", "m2", "m3"], "450102", 0.9, 4);
    grown.devices.push("dev-new".into());
    let out = s.upsert_findings(day_us(4), &[grown]).await.unwrap();
    assert_eq!((out.raised, out.cases_reopened), (1, 1));
    let c = s.case(&li.scope, case.case_id).await.unwrap();
    assert_eq!(c.status, Status::Open);
    assert_eq!(c.assignee, None);
    let h = s.history(&li.scope, case.case_id).await.unwrap();
    let actions: Vec<&str> = h.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "case.created",
            "finding.created",
            "case.claimed",
            "case.verdict",
            "finding.suppressed",
            "finding.created",
            "case.reopened"
        ]
    );
    let verdict = &h[3];
    assert_eq!(verdict.actor, "li");
    assert_eq!(verdict.before.as_ref().unwrap()["status"], "open");
    assert_eq!(verdict.after.as_ref().unwrap()["verdict"], "dismissed");

    // Precision from verdicts: one dismissed bulk_check_in case.
    let p = s.precision(&Scope::nationwide()).await.unwrap();
    let b = p.iter().find(|d| d.detector == "bulk_check_in").unwrap();
    assert_eq!(
        (b.confirmed, b.dismissed, b.precision),
        (0, 0, None),
        "the reopened case is not decided any more"
    );
    let case2 = s
        .claim_next(&wang, &CaseQuery::default())
        .await
        .unwrap()
        .unwrap();
    s.record_verdict(
        &wang,
        case2.case_id,
        Verdict::Confirmed,
        "the phone clocked in four people at 06:00",
        None,
    )
    .await
    .unwrap();
    let p = s.precision(&Scope::nationwide()).await.unwrap();
    let b = p.iter().find(|d| d.detector == "bulk_check_in").unwrap();
    assert_eq!((b.confirmed, b.dismissed, b.precision), (1, 0, Some(1.0)));
}

#[tokio::test]
async fn reopening_withdraws_the_decision() {
    let (_d, s) = open().await;
    let li = token(&s, "li", Role::Inspector, "45").await;
    s.upsert_findings(
        day_us(2),
        &[finding("r1", "record_churn", &["z1"], "450102", 0.8, 2)],
    )
    .await
    .unwrap();
    let c = s
        .claim_next(&li, &CaseQuery::default())
        .await
        .unwrap()
        .unwrap();
    s.record_verdict(&li, c.case_id, Verdict::Dismissed, "census clean-up", None)
        .await
        .unwrap();
    assert!(
        s.record_verdict(&li, c.case_id, Verdict::Confirmed, "", None)
            .await
            .is_err(),
        "closed"
    );
    let reopened = s
        .reopen(&li, c.case_id, "the clean-up story did not hold")
        .await
        .unwrap();
    assert_eq!(reopened.status, Status::Open);
    // The same evidence is raised again now.
    let out = s
        .upsert_findings(
            day_us(3),
            &[finding("r2", "record_churn", &["z1"], "450102", 0.8, 3)],
        )
        .await
        .unwrap();
    assert_eq!(out.raised, 1);
    assert!(s.reopen(&li, c.case_id, "").await.is_err(), "already open");
}

#[tokio::test]
async fn notes_assignments_and_bulk() {
    let (_d, s) = open().await;
    let admin = token(&s, "boss", Role::Admin, "45").await;
    let li = token(&s, "li", Role::Inspector, "45").await;
    let fs: Vec<Finding> = (0..5)
        .map(|i| {
            finding(
                &format!("f{i}"),
                "report_inflation",
                &[&format!("r{i}")],
                "450102",
                0.6,
                2,
            )
        })
        .collect();
    s.upsert_findings(day_us(2), &fs).await.unwrap();
    let ids: Vec<i64> = s
        .list_cases(
            &admin.scope,
            &CaseQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.case_id)
        .collect();
    let e = s
        .assign(&admin, ids[0], Some("nobody"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an inspector"), "{e}");
    let r = s
        .bulk(
            &admin,
            &[ids[0], ids[1], 99999, ids[0]],
            &BulkAction::Assign {
                assignee: "li".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 3);
    assert!(r[0].ok && r[1].ok && !r[2].ok);
    let mine = CaseQuery {
        assignee: Some(AssigneeFilter::Named("li".into())),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.list_cases(&li.scope, &mine).await.unwrap().items.len(), 2);
    let n = s
        .add_note(&li, ids[0], "  called the unit  ")
        .await
        .unwrap();
    assert_eq!(n.text, "called the unit");
    assert!(s.add_note(&li, ids[0], "   ").await.is_err());
    assert!(s.add_note(&li, ids[0], &"x".repeat(20_000)).await.is_err());
    let closed = s
        .bulk(
            &li,
            &ids,
            &BulkAction::Close {
                verdict: Verdict::Confirmed,
                note: "copied reports".into(),
            },
        )
        .await
        .unwrap();
    assert!(closed.iter().all(|r| r.ok), "{closed:?}");
    assert!(s
        .bulk(
            &li,
            &ids,
            &BulkAction::Close {
                verdict: Verdict::NeedsInfo,
                note: String::new()
            }
        )
        .await
        .is_err());
    let d = s.case_detail(&li.scope, ids[0]).await.unwrap();
    assert_eq!(d.notes.len(), 1);
    assert_eq!(d.verdicts.len(), 1);
    assert_eq!(d.findings.len(), 1);
    let rc = s
        .region_cases(&li.scope, &Scope::parse("450102").unwrap())
        .await
        .unwrap();
    assert_eq!(rc.confirmed, 5);
    assert_eq!(rc.flagged_accounts, 5);
}

#[tokio::test]
async fn tokens_authenticate_expire_and_revoke() {
    let (_d, s) = open().await;
    let (secret, info) = s
        .create_token(
            &Principal::system(),
            &NewToken {
                subject: "li".into(),
                role: Role::Inspector,
                region: Scope::parse("4501").unwrap(),
                ttl_s: Some(3600),
            },
        )
        .await
        .unwrap();
    assert!(info.expires_at.is_some());
    let p = s.authenticate(&secret).await.unwrap();
    assert_eq!((p.role, p.scope.as_str()), (Role::Inspector, "4501"));
    assert_eq!(
        s.authenticate("Bearer nonsense").await.unwrap_err(),
        AuthError::Malformed
    );
    assert_eq!(
        s.authenticate(&format!("gt_{}", "0".repeat(64)))
            .await
            .unwrap_err(),
        AuthError::Unknown
    );
    let admin = token(&s, "boss", Role::Admin, "45").await;
    // A regional admin cannot mint a nationwide token.
    let e = s
        .create_token(
            &admin,
            &NewToken {
                subject: "x".into(),
                role: Role::Admin,
                region: Scope::nationwide(),
                ttl_s: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = s
        .create_token(
            &p,
            &NewToken {
                subject: "x".into(),
                role: Role::Admin,
                region: Scope::parse("4501").unwrap(),
                ttl_s: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    s.revoke_token(&admin, &info.token_id).await.unwrap();
    assert!(matches!(
        s.authenticate(&secret).await.unwrap_err(),
        AuthError::Revoked { .. }
    ));
    assert_eq!(
        s.list_tokens(&Scope::parse("4501").unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
    // The secret is never stored or logged.
    let log = s
        .audit_log(
            &Scope::nationwide(),
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(log
        .items
        .iter()
        .all(|e| !format!("{:?}", e).contains(&secret[3..])));
    assert!(log.items.iter().any(|e| e.action == "token.revoked"));
}

#[tokio::test]
async fn reopening_the_store_keeps_everything_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("r.db").display().to_string();
    let s = ReviewStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    s.upsert_findings(
        day_us(2),
        &[finding("f", "phone_farm", &["a"], "450102", 0.5, 2)],
    )
    .await
    .unwrap();
    s.close().await;
    let s = ReviewStore::open(&format!("sqlite://{url}"), &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(s.finding_count().await.unwrap(), 1);
    let e = ReviewStore::open("mysql://h/db", &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown scheme"), "{e}");
}

/// Every page of `scope`'s queue (status `status`, by score, descending).
async fn scoped_pages(s: &ReviewStore, scope: &str, status: Status) -> Vec<(f64, i64)> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let q = CaseQuery {
            status: vec![status],
            cursor: cursor.clone(),
            limit: 7,
            ..Default::default()
        };
        let page = s
            .list_cases(&Scope::parse(scope).unwrap(), &q)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|c| (c.score, c.case_id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

/// The same as [`scoped_pages`], from the nationwide list filtered here.
async fn expected_pages(s: &ReviewStore, scope: &str, status: Status) -> Vec<(f64, i64)> {
    let q = CaseQuery {
        status: vec![status],
        limit: 500,
        ..Default::default()
    };
    s.list_cases(&Scope::nationwide(), &q)
        .await
        .unwrap()
        .items
        .iter()
        .filter(|c| c.regions.iter().any(|r| r.starts_with(scope)))
        .map(|c| (c.score, c.case_id))
        .collect()
}

/// A region-scoped queue by score walks case_regions (migration 3): it must
/// list what the nationwide queue lists for the region, once per case,
/// and follow verdicts and new scores.
#[tokio::test]
async fn scoped_pages_by_score_match_the_region_and_follow_changes() {
    let (_d, s) = open().await;
    let mut fs = Vec::new();
    for i in 0..60 {
        let region = if i % 2 == 0 { "450102" } else { "450201" };
        let score = ((i * 37) % 100) as f64 / 100.0;
        fs.push(finding(
            &format!("f{i}"),
            "record_churn",
            &[&format!("acc{i}")],
            region,
            score,
            2,
        ));
    }
    // One case in both cities.
    let mut both = finding("both", "phone_farm", &["x1", "x2"], "450102", 0.77, 2);
    both.evidence["scope"] = json!({"apps": ["zhiguitong"], "regions": {"450102": 1, "450201": 1}});
    fs.push(both);
    s.upsert_findings(day_us(2), &fs).await.unwrap();
    for scope in ["45", "4501", "4502", "450102"] {
        let got = scoped_pages(&s, scope, Status::Open).await;
        assert_eq!(
            got,
            expected_pages(&s, scope, Status::Open).await,
            "{scope}"
        );
        let ids: BTreeSet<i64> = got.iter().map(|x| x.1).collect();
        assert_eq!(ids.len(), got.len(), "{scope}: a case listed twice");
    }
    assert_eq!(scoped_pages(&s, "4501", Status::Open).await.len(), 31);
    assert_eq!(scoped_pages(&s, "4502", Status::Open).await.len(), 31);
    // A verdict closes the top case of 4501: it leaves the open queue.
    let top = scoped_pages(&s, "4501", Status::Open).await[0].1;
    s.record_verdict(&Principal::system(), top, Verdict::Confirmed, "seen", None)
        .await
        .unwrap();
    let open = scoped_pages(&s, "4501", Status::Open).await;
    assert!(!open.iter().any(|x| x.1 == top));
    assert_eq!(open, expected_pages(&s, "4501", Status::Open).await);
    assert_eq!(
        scoped_pages(&s, "4501", Status::Closed).await,
        expected_pages(&s, "4501", Status::Closed).await
    );
    // A new, higher-scored finding moves its case to the top.
    let last = *open.last().unwrap();
    let account = s
        .case_detail(&Scope::nationwide(), last.1)
        .await
        .unwrap()
        .case
        .accounts[0]
        .clone();
    s.upsert_findings(
        day_us(3),
        &[finding(
            "later",
            "record_churn",
            &[&account],
            "450102",
            0.995,
            3,
        )],
    )
    .await
    .unwrap();
    let open = scoped_pages(&s, "4501", Status::Open).await;
    assert_eq!(open[0].1, last.1, "{open:?}");
    assert_eq!(open, expected_pages(&s, "4501", Status::Open).await);
}

/// A case that reaches two cities is decided (or reopened) only by someone
/// whose scope covers both: either city's inspector sees it, may note on
/// it, and is refused a verdict with the regions named.
#[tokio::test]
async fn a_case_across_regions_is_decided_only_by_a_scope_covering_all_of_them() {
    let (_d, s) = open().await;
    let mut both = finding(
        "both",
        "bulk_check_in",
        &["x1", "x2", "x3"],
        "450102",
        0.9,
        2,
    );
    both.evidence["scope"] = json!({"apps": ["zhiguitong"], "regions": {"450102": 2, "450302": 1}});
    let alone = finding("alone", "bulk_check_in", &["y1"], "450302", 0.8, 2);
    s.upsert_findings(day_us(2), &[both, alone]).await.unwrap();
    let nanning = token(&s, "nanning", Role::Inspector, "4501").await;
    let guilin = token(&s, "guilin", Role::Inspector, "4503").await;
    let province = token(&s, "province", Role::Inspector, "45").await;
    let cases = s
        .list_cases(
            &Scope::nationwide(),
            &CaseQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    let id = |account: &str| {
        cases
            .iter()
            .find(|c| c.accounts.iter().any(|a| a == account))
            .unwrap()
            .case_id
    };
    let (shared, own) = (id("x1"), id("y1"));
    for who in [&nanning, &guilin] {
        // Visible to each city, and open to notes.
        s.case_detail(&who.scope, shared).await.unwrap();
        s.add_note(who, shared, "seen").await.unwrap();
        let e = s
            .record_verdict(who, shared, Verdict::Dismissed, "not ours", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
        let text = e.to_string();
        assert!(text.contains("450102") && text.contains("450302"), "{text}");
    }
    // A city's own case is its own to decide.
    s.record_verdict(&guilin, own, Verdict::Confirmed, "seen on site", None)
        .await
        .unwrap();
    // The province decides the shared one; a city cannot reopen it.
    s.record_verdict(&province, shared, Verdict::Confirmed, "both cities", None)
        .await
        .unwrap();
    let e = s.reopen(&nanning, shared, "again").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
    s.reopen(&province, shared, "again").await.unwrap();
}

#[tokio::test]
async fn a_regional_admin_sees_the_queries_tokens_and_sign_ins_of_the_region_only() {
    let (_d, s) = open().await;
    let nanning = token(&s, "nanning-analyst", Role::Analyst, "4501").await;
    let district = token(&s, "district-analyst", Role::Analyst, "450102").await;
    let liuzhou = token(&s, "liuzhou-analyst", Role::Analyst, "4502").await;
    let national = token(&s, "national-analyst", Role::Analyst, "").await;
    for (p, sql) in [
        (&nanning, "SELECT 1 -- nanning"),
        (&district, "SELECT 1 -- district"),
        (&liuzhou, "SELECT 1 -- liuzhou"),
        (&national, "SELECT 1 -- national"),
    ] {
        s.record_query(p, "http", sql, json!("ok")).await.unwrap();
    }
    // A revoked token of each city tries again; an unknown one too.
    let (secret, info) = s
        .create_token(
            &Principal::system(),
            &NewToken {
                subject: "left-4501".into(),
                role: Role::Inspector,
                region: Scope::parse("4501").unwrap(),
                ttl_s: None,
            },
        )
        .await
        .unwrap();
    s.revoke_token(&Principal::system(), &info.token_id)
        .await
        .unwrap();
    let refused = s.authenticate(&secret).await.unwrap_err();
    assert_eq!(refused.region().map(Scope::as_str), Some("4501"));
    s.record_signin_failure("pgwire", "left-4501", &refused)
        .await;
    s.record_signin_failure("http", "nobody", &AuthError::Unknown)
        .await;

    let seen = |scope: &'static str| {
        let s = &s;
        async move {
            let page = s
                .audit_log(
                    &Scope::parse(scope).unwrap(),
                    &AuditQuery {
                        limit: 100,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            page.items
                .iter()
                .map(|e| {
                    let what = match e.action.as_str() {
                        "sql.query" => e.after.as_ref().unwrap()["sql"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                        _ => e.actor.clone(),
                    };
                    format!("{} {what}", e.action)
                })
                .collect::<BTreeSet<String>>()
        }
    };
    let city = seen("4501").await;
    assert_eq!(
        city,
        BTreeSet::from([
            "sql.query SELECT 1 -- nanning".to_string(),
            "sql.query SELECT 1 -- district".to_string(),
            "token.created system".to_string(),
            "token.revoked system".to_string(),
            "auth.failed unknown (left-4501)".to_string(),
        ]),
        "the city's admin sees its own and its districts' entries, nothing of 4502 or nationwide"
    );
    let district_seen = seen("450102").await;
    assert_eq!(
        district_seen,
        BTreeSet::from([
            "sql.query SELECT 1 -- district".to_string(),
            "token.created system".to_string(),
        ]),
        "the district's admin sees its own analyst's token and query only"
    );
    let all = seen("").await;
    assert!(all.contains("sql.query SELECT 1 -- liuzhou"), "{all:?}");
    assert!(all.contains("sql.query SELECT 1 -- national"), "{all:?}");
    assert!(all.contains("auth.failed unknown (nobody)"), "{all:?}");
}

#[tokio::test]
async fn a_city_sees_only_its_own_accounts_and_evidence_of_a_case_across_regions() {
    let (_d, s) = open().await;
    let mut both = finding(
        "both",
        "bulk_check_in",
        &["nn-1", "nn-2", "gl-1", "gl-2", "unknown-1"],
        "450102",
        0.9,
        2,
    );
    both.evidence["scope"] = json!({
        "apps": ["zhiguitong"],
        "regions": {"450102": 2, "450302": 2},
        "accounts": {"nn-1": "450102", "nn-2": "450102", "gl-1": "450302", "gl-2": "450302"}
    });
    both.evidence
        .insert("duty_point".into(), json!([25.27, 110.29]));
    both.reason = "5 accounts at 25.27N 110.29E (gl-1's post) within 7 s".into();
    s.upsert_findings(day_us(2), &[both]).await.unwrap();
    let nationwide = Scope::nationwide();
    let all = s
        .list_cases(
            &nationwide,
            &CaseQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 1);
    let id = all[0].case_id;
    assert_eq!(all[0].accounts.len(), 5);
    assert!(all[0].outside_scope.is_none());

    let foreign = ["gl-1", "gl-2", "unknown-1", "25.27", "110.29", "dev-"];
    let nanning = Scope::parse("4501").unwrap();
    // Every way a city reads the case: the queue, the case, its detail, the exports.
    let page = s
        .list_cases(
            &nanning,
            &CaseQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let summary = s.case(&nanning, id).await.unwrap();
    let detail = s.case_detail(&nanning, id).await.unwrap();
    let cases = s.export_cases(&nanning).await.unwrap();
    let findings = s.export_findings(&nanning).await.unwrap();
    let one = s.finding(&nanning, "both").await.unwrap();
    for shown in [
        serde_json::to_string(&page).unwrap(),
        serde_json::to_string(&summary).unwrap(),
        serde_json::to_string(&detail).unwrap(),
        serde_json::to_string(&cases).unwrap(),
        serde_json::to_string(&findings.iter().map(|f| &f.finding).collect::<Vec<_>>()).unwrap(),
        serde_json::to_string(&one).unwrap(),
    ] {
        for f in foreign {
            assert!(!shown.contains(f), "{f} shown to 4501: {shown}");
        }
        assert!(shown.contains("nn-1") && shown.contains("nn-2"), "{shown}");
    }
    assert_eq!(summary.accounts, vec!["nn-1", "nn-2"]);
    assert_eq!(
        summary.outside_scope,
        Some(OutsideScope {
            regions: vec!["450302".into()],
            hidden_accounts: 3
        })
    );
    assert!(is_withheld(&detail.findings[0].finding));
    assert_eq!(detail.findings[0].finding.accounts, vec!["nn-1", "nn-2"]);

    // The other city sees its own two; the province sees everything.
    let guilin = s.case(&Scope::parse("4503").unwrap(), id).await.unwrap();
    assert_eq!(guilin.accounts, vec!["gl-1", "gl-2"]);
    let province = s
        .case_detail(&Scope::parse("45").unwrap(), id)
        .await
        .unwrap();
    assert_eq!(province.case.accounts.len(), 5);
    assert!(province.case.outside_scope.is_none());
    assert!(!is_withheld(&province.findings[0].finding));
    assert!(province.findings[0].finding.reason.contains("110.29"));

    // Looking a foreign account up finds nothing; an own account finds the case.
    for (account, found) in [("gl-1", 0), ("gl", 0), ("nn-1", 1), ("nn", 1)] {
        let q = if account.len() > 2 {
            CaseQuery {
                account: Some(account.into()),
                limit: 10,
                ..Default::default()
            }
        } else {
            CaseQuery {
                search: Some(account.into()),
                limit: 10,
                ..Default::default()
            }
        };
        let n = s.list_cases(&nanning, &q).await.unwrap().items.len();
        assert_eq!(n, found, "4501 looking for {account}");
        let all = s.list_cases(&nationwide, &q).await.unwrap().items.len();
        assert_eq!(all, 1, "nationwide looking for {account}");
    }

    // A claim by a city's inspector answers with the city's view too.
    let li = token(&s, "li", Role::Inspector, "4501").await;
    let claimed = s
        .claim_next(&li, &CaseQuery::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.accounts, vec!["nn-1", "nn-2"]);
}

/// A proposal (four eyes) that is sent back or signed off leaves nothing
/// of itself on the case: not its author, note or time.
#[tokio::test]
async fn a_decided_proposal_leaves_no_time_behind() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("review.db").display().to_string();
    let opts = StoreOptions {
        four_eyes: vec!["phone_farm".into()],
        ..StoreOptions::default()
    };
    let s = ReviewStore::open(&url, &opts).await.unwrap();
    let f = finding("f1", "phone_farm", &["a1", "a2", "a3"], "450102", 0.9, 2);
    s.upsert_findings(day_us(2), &[f]).await.unwrap();
    let case_id = s
        .list_cases(
            &Scope::nationwide(),
            &CaseQuery {
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items[0]
        .case_id;
    let li = token(&s, "li", Role::Inspector, "45").await;
    let wang = token(&s, "wang", Role::Inspector, "45").await;
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&format!("sqlite:{url}"))
        .await
        .unwrap();
    let proposed_us = || async {
        let row = sqlx::query("SELECT proposed_us FROM cases WHERE case_id = $1")
            .bind(case_id)
            .fetch_one(&raw)
            .await
            .unwrap();
        sqlx::Row::try_get::<Option<i64>, _>(&row, "proposed_us").unwrap()
    };

    let c = s
        .record_verdict(&li, case_id, Verdict::Confirmed, "eight phones", None)
        .await
        .unwrap();
    assert!(c.proposal.is_some() && proposed_us().await.is_some());
    let c = s
        .record_verdict(&wang, case_id, Verdict::Dismissed, "a handover", None)
        .await
        .unwrap();
    assert!(c.proposal.is_none(), "{c:?}");
    assert_eq!(proposed_us().await, None, "sent back");

    s.record_verdict(&li, case_id, Verdict::Confirmed, "five mornings", None)
        .await
        .unwrap();
    let c = s
        .record_verdict(&wang, case_id, Verdict::Confirmed, "agreed", None)
        .await
        .unwrap();
    assert_eq!(c.verdict, Some(Verdict::Confirmed), "{c:?}");
    assert_eq!(proposed_us().await, None, "signed off");
}
