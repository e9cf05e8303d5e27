//! SQL over a lake the writer filled: one session following the lake
//! through flushes and compactions, read-only SQL with clear errors, the
//! distinct counts that plan joins.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use groundtruth_event::{decode, DecodeOptions};
use groundtruth_lake::{LakeOptions, LakeWriter};

fn event(i: usize, app: &str, day: u32) -> String {
    format!(
        r#"{{"event_id":"ev-{i}","ts":"2026-11-{day:02}T09:{:02}:00+08:00","app_id":"{app}","account_id":"acc-{}","kind":"check_in","lat":22.8,"lon":108.3}}"#,
        i % 60,
        i % 7
    )
}

fn append(w: &mut LakeWriter, lines: impl IntoIterator<Item = String>) {
    for l in lines {
        let e = decode(l.as_bytes(), &DecodeOptions::default()).expect("valid event");
        w.append_event(&e, l.len());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A session outlives many flushes and compactions (the API, the analysts'
/// service, a test polling the lake): each query lists the lake again, so
/// it sees new files and never reads one that compaction removed.
#[test]
fn one_session_follows_the_lake_through_flushes_and_compactions() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LakeOptions {
        target_file_rows: 1000,
        compact_min_files: 3,
        ..LakeOptions::default()
    };
    let mut w = LakeWriter::open(tmp.path(), opts).unwrap();
    let rt = runtime();
    let ctx = rt
        .block_on(groundtruth_sql::open_session(tmp.path()))
        .unwrap();
    let count_now = || {
        rt.block_on(async {
            let (_, b) = groundtruth_sql::run_sql(&ctx, "SELECT count(*) FROM events")
                .await
                .unwrap();
            b[0].column(0).as_primitive::<Int64Type>().value(0)
        })
    };
    let mut merged = 0;
    for round in 0..8 {
        append(
            &mut w,
            (round * 20..(round + 1) * 20).map(|i| event(i, "x", 2)),
        );
        merged += w.flush().unwrap().compaction.merged_files;
        assert_eq!(count_now(), (round as i64 + 1) * 20, "after round {round}");
    }
    assert!(merged > 0, "no compaction happened");
}

#[test]
fn sql_is_read_only_and_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let ctx = groundtruth_sql::open_session(tmp.path()).await.unwrap();
        // Empty lake: the tables exist and are empty.
        let (_, b) = groundtruth_sql::run_sql(&ctx, "SELECT count(*) FROM events")
            .await
            .unwrap();
        assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 0);
        for bad in [
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "INSERT INTO events SELECT * FROM events",
            "SET datafusion.execution.batch_size = 1",
            "SELEC 1",
            "SELECT nope FROM events",
        ] {
            let e = groundtruth_sql::run_sql(&ctx, bad).await.unwrap_err();
            assert!(e.to_string().starts_with("query failed"), "{bad}: {e}");
        }
    });
}

#[test]
fn distinct_counts_bound_a_grouped_key_for_join_selection() {
    use datafusion::physical_plan::operator_statistics::StatisticsRegistry;
    let tmp = tempfile::tempdir().unwrap();
    let mut w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    // 3000 events of 7 accounts in two apps over three days.
    append(
        &mut w,
        (0..3000).map(|i| event(i, if i % 2 == 0 { "x" } else { "y" }, 2 + (i % 3) as u32)),
    );
    w.flush().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let ctx = groundtruth_sql::open_session(tmp.path()).await.unwrap();
        let counts = groundtruth_sql::ndv::estimate(&ctx).await.unwrap();
        let accounts = counts.0["account_id"];
        assert_eq!(accounts, 7);
        assert_eq!(counts.0["app_id"], 2);
        assert_eq!(counts.0["kind"], 1);
        // The reporters' side of a join: without the counts DataFusion
        // takes a share of the 3000 rows; with them, at most the accounts.
        let sql = "SELECT account_id, count(*) FROM events WHERE lat > 22.0 GROUP BY account_id";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let rows = |r: &StatisticsRegistry| {
            r.compute_base(plan.as_ref())
                .unwrap()
                .num_rows
                .get_value()
                .copied()
        };
        let with = rows(&groundtruth_sql::ndv::registry(counts));
        let without = rows(&StatisticsRegistry::default_with_builtin_providers());
        assert!(with.is_some_and(|n| n <= 7), "with the counts: {with:?}");
        assert!(without.is_none_or(|n| n > 200), "without: {without:?}");
    });
}
