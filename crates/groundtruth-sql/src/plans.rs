//! Whole-plan snapshots: for each of groundtruth's rules, a query it
//! rewrites, planned over the test lake with every rule on and with that
//! rule off, both stored under `src/snapshots/`. A change to a rule (or to
//! DataFusion's planning) shows as a diff of the whole plan, not as a
//! substring that happens to still be there. Answers are held equal by
//! the differential test; these hold the shape.
//!
//! `cargo insta review` (or `INSTA_UPDATE=always`) accepts a new plan after
//! reading it.

use datafusion::prelude::SessionContext;
use groundtruth_event::{decode, DecodeOptions};
use groundtruth_lake::{LakeOptions, LakeWriter};

use crate::testlake::{plan_text, sessions};

/// A lake as the writer lays it out: 600 events over three days and two
/// apps, so `event_date` and `app_id` hold one value per file.
fn lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LakeWriter::open(dir.path(), LakeOptions::default()).unwrap();
    for i in 0..600 {
        let line = format!(
            r#"{{"event_id":"e{i}","ts":"2026-11-0{}T0{}:{:02}:00+08:00","app_id":"{}","account_id":"a{}","kind":"{}","region":"45010{}","lat":22.{i},"lon":108.3}}"#,
            2 + i % 3,
            i % 9,
            i % 60,
            ["river-chief", "attendance"][i % 2],
            i % 37,
            ["check_in", "report_submit", "session_start"][i % 3],
            i % 4
        );
        let e = decode(line.as_bytes(), &DecodeOptions::default()).unwrap();
        w.append_event(&e, line.len());
    }
    w.flush().unwrap();
    dir
}

/// The plan of `sql` in `ctx`, with the lake's temporary path named
/// `<lake>` so that the text is the same on every machine.
async fn plan(ctx: &SessionContext, dir: &std::path::Path, sql: &str) -> String {
    let text = plan_text(ctx, sql).await;
    let lake = dir.display().to_string();
    let text = text
        .replace(&lake, "<lake>")
        .replace(lake.trim_start_matches('/'), "<lake>");
    // A file's name holds the time it was written: `part-*.parquet`.
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("/part-") {
        out.push_str(&rest[..at]);
        out.push_str("/part-*.parquet");
        let tail = &rest[at..];
        rest = tail.find(".parquet").map_or("", |end| &tail[end + 8..]);
    }
    out.push_str(rest);
    out
}

/// The plans of `sql` with all rules and without `rule`, two partitions.
async fn both(rule: &str, sql: &str) -> String {
    let dir = lake();
    let (with, without) = sessions(dir.path(), 2, rule).await;
    format!(
        "-- {sql}\n-- with {rule}:\n{}\n-- without it:\n{}",
        plan(&with, dir.path(), sql).await,
        plan(&without, dir.path(), sql).await
    )
}

#[tokio::test]
async fn mixed_distinct_to_group_by() {
    insta::assert_snapshot!(
        both(
            "groundtruth_mixed_distinct_to_group_by",
            "SELECT app_id, count(*) AS events, count(DISTINCT account_id) AS accounts \
             FROM events GROUP BY app_id"
        )
        .await
    );
}

#[tokio::test]
async fn counts_from_footers() {
    insta::assert_snapshot!(
        both(
            "groundtruth_counts_from_footers",
            "SELECT event_date, app_id, count(*) AS events FROM events GROUP BY event_date, app_id"
        )
        .await
    );
}

#[tokio::test]
async fn dictionary_keys() {
    insta::assert_snapshot!(
        both(
            "groundtruth_dictionary_keys",
            "SELECT kind, region, count(*) AS events, max(lat) AS north \
             FROM events WHERE account_id IS NOT NULL GROUP BY kind, region"
        )
        .await
    );
}

#[tokio::test]
async fn aggregate_below_join() {
    insta::assert_snapshot!(
        both(
            "groundtruth_aggregate_below_join",
            "WITH reporters AS (SELECT account_id, count(*) AS reports FROM events \
             WHERE kind = 'report_submit' GROUP BY account_id) \
             SELECT e.account_id, count(*) AS events FROM events e \
             JOIN reporters r ON r.account_id = e.account_id GROUP BY e.account_id"
        )
        .await
    );
}

#[tokio::test]
async fn shared_subplans() {
    insta::assert_snapshot!(
        both(
            "groundtruth_shared_subplans",
            "WITH per_account AS (SELECT app_id, account_id, count(*) AS n FROM events \
             GROUP BY app_id, account_id) \
             SELECT a.app_id, b.app_id AS other, count(*) AS shared \
             FROM per_account a JOIN per_account b \
             ON a.account_id = b.account_id AND a.app_id < b.app_id GROUP BY 1, 2"
        )
        .await
    );
}
