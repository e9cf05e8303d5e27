//! The lake writer: durability, dedup across restarts, compaction and its
//! crash recovery, the writer lock; read back through DataFusion.

use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use groundtruth_event::{decode, DeadLetter, DecodeOptions, Reject, RejectCode, SourcePosition};
use groundtruth_lake::{Appended, LakeError, LakeOptions, LakeWriter};

fn event(i: usize, app: &str, day: u32) -> String {
    format!(
        r#"{{"event_id":"ev-{i}","ts":"2026-11-{day:02}T09:{:02}:00+08:00","app_id":"{app}","account_id":"acc-{}","kind":"check_in","lat":22.8,"lon":108.3}}"#,
        i % 60,
        i % 7
    )
}

/// The lake holds `n` events, each once.
fn assert_stored_once(lake: &std::path::Path, n: i64) {
    assert_eq!(count(lake, "SELECT count(*) FROM events"), n);
    assert_eq!(
        count(lake, "SELECT count(DISTINCT event_id) FROM events"),
        n
    );
}

fn append(w: &mut LakeWriter, lines: impl IntoIterator<Item = String>) -> (usize, usize) {
    let (mut new, mut dup) = (0, 0);
    for l in lines {
        let e = decode(l.as_bytes(), &DecodeOptions::default()).expect("valid event");
        match w.append_event(&e, l.len()) {
            Appended::New => new += 1,
            Appended::Duplicate => dup += 1,
        }
    }
    (new, dup)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn count(dir: &Path, sql: &str) -> i64 {
    let rt = runtime();
    rt.block_on(async {
        let ctx = groundtruth_lake::open_session(dir).await.unwrap();
        let (_, b) = groundtruth_lake::run_sql(&ctx, sql).await.unwrap();
        b[0].column(0).as_primitive::<Int64Type>().value(0)
    })
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn events_are_partitioned_by_local_date_and_app() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    append(
        &mut w,
        (0..100).map(|i| {
            event(
                i,
                if i % 2 == 0 { "river-chief" } else { "a/../b" },
                2 + (i % 3) as u32,
            )
        }),
    );
    let s = w.flush().unwrap();
    assert_eq!(s.events, 100);
    assert_eq!(s.files, 6);
    let f = files(&tmp.path().join("events"));
    assert_eq!(f.len(), 6);
    assert!(f.iter().any(|p| p
        .to_string_lossy()
        .contains("events/2026-11-03/river-chief/")));
    // The hostile app id stays inside its partition directory.
    assert!(f.iter().all(|p| p.starts_with(tmp.path().join("events"))));
    assert!(f.iter().any(|p| p.to_string_lossy().contains("a%2F..%2Fb")));
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM events"), 100);
    assert_eq!(
        count(
            tmp.path(),
            "SELECT count(*) FROM events WHERE app_id = 'a/../b'"
        ),
        50
    );
}

#[test]
fn event_ids_are_stored_once_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
        assert_eq!(append(&mut w, (0..500).map(|i| event(i, "x", 2))), (500, 0));
        // Duplicates inside one buffer.
        assert_eq!(append(&mut w, (0..10).map(|i| event(i, "x", 2))), (0, 10));
        w.flush().unwrap();
    }
    let mut w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    assert_eq!(w.known_events(), 500);
    // Redelivery after a restart, even with another app or day: still dropped.
    assert_eq!(append(&mut w, (0..500).map(|i| event(i, "y", 3))), (0, 500));
    assert_eq!(
        append(&mut w, (500..600).map(|i| event(i, "x", 2))),
        (100, 0)
    );
    w.flush().unwrap();
    assert_stored_once(tmp.path(), 600);
}

#[test]
fn dead_letters_are_kept_once_per_source_position() {
    let tmp = tempfile::tempdir().unwrap();
    let reject = Reject {
        code: RejectCode::InvalidJson,
        field: None,
        detail: "not valid JSON".into(),
    };
    let pos = SourcePosition::Kafka {
        topic: "app-events".into(),
        partition: 1,
        offset: 42,
    };
    let dl = DeadLetter {
        position: &pos,
        raw: b"{",
        raw_len: 1,
        reject: &reject,
        received_at_micros: 1_793_581_805_000_000,
    };
    {
        let mut w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
        assert_eq!(w.append_dead_letter(&dl), Appended::New);
        assert_eq!(w.append_dead_letter(&dl), Appended::Duplicate);
        w.flush().unwrap();
    }
    let mut w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    assert_eq!(w.append_dead_letter(&dl), Appended::Duplicate);
    let other = SourcePosition::Kafka {
        topic: "app-events".into(),
        partition: 2,
        offset: 42,
    };
    assert_eq!(
        w.append_dead_letter(&DeadLetter {
            position: &other,
            ..dl.clone()
        }),
        Appended::New
    );
    w.flush().unwrap();
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM dead_letters"), 2);
}

#[test]
fn small_files_are_compacted_without_losing_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LakeOptions {
        target_file_rows: 1000,
        compact_min_files: 4,
        ..LakeOptions::default()
    };
    let mut w = LakeWriter::open(tmp.path(), opts).unwrap();
    let mut merged = 0;
    for round in 0..10 {
        append(
            &mut w,
            (round * 30..(round + 1) * 30).map(|i| event(i, "x", 2)),
        );
        merged += w.flush().unwrap().compaction.merged_files;
    }
    assert!(merged >= 8, "merged {merged}");
    let n = files(&tmp.path().join("events")).len();
    assert!(n <= 4, "{n} files left");
    assert_stored_once(tmp.path(), 300);
    // Force: everything small merges into one file.
    w.compact_all().unwrap();
    assert_eq!(files(&tmp.path().join("events")).len(), 1);
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM events"), 300);
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
        .block_on(groundtruth_lake::open_session(tmp.path()))
        .unwrap();
    let count_now = || {
        rt.block_on(async {
            let (_, b) = groundtruth_lake::run_sql(&ctx, "SELECT count(*) FROM events")
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
fn dedup_memory_follows_recent_days_and_old_days_are_still_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LakeOptions {
        dedup_days: 2,
        ..LakeOptions::default()
    };
    let mut w = LakeWriter::open(tmp.path(), opts.clone()).unwrap();
    // Ten days of 100 events each, flushed day by day.
    for day in 1..=10u32 {
        let ids = (day as usize * 100)..(day as usize + 1) * 100;
        assert_eq!(append(&mut w, ids.map(|i| event(i, "x", day))).0, 100);
        w.flush().unwrap();
        assert!(w.known_events() <= 200, "day {day}: {}", w.known_events());
    }
    // A phone re-sends events of day 3 (long evicted): still duplicates.
    assert_eq!(
        append(&mut w, (300..400).map(|i| event(i, "x", 3))),
        (0, 100)
    );
    // New events of an old day are new.
    assert_eq!(
        append(&mut w, (5000..5010).map(|i| event(i, "x", 3))),
        (10, 0)
    );
    w.flush().unwrap();
    assert!(w.known_events() <= 200);
    drop(w);
    // A restart loads only the recent days, and still drops old re-sends.
    let mut w = LakeWriter::open(tmp.path(), opts).unwrap();
    assert_eq!(w.known_events(), 200);
    assert_eq!(
        append(&mut w, (100..200).map(|i| event(i, "y", 1))),
        (0, 100)
    );
    assert_eq!(
        append(&mut w, (1000..1100).map(|i| event(i, "x", 10))),
        (0, 100)
    );
    w.flush().unwrap();
    assert_stored_once(tmp.path(), 1010);
}

#[test]
fn compaction_waits_while_a_reader_holds_the_gate() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LakeOptions {
        target_file_rows: 1000,
        compact_min_files: 4,
        ..LakeOptions::default()
    };
    let mut w = LakeWriter::open(tmp.path(), opts).unwrap();
    let gate = w.read_gate();
    {
        // A window close is reading the lake: files only accumulate.
        let _reading = gate.read().unwrap();
        for round in 0..6 {
            append(
                &mut w,
                (round * 30..(round + 1) * 30).map(|i| event(i, "x", 2)),
            );
            assert_eq!(w.flush().unwrap().compaction.merged_files, 0);
        }
        assert_eq!(files(&tmp.path().join("events")).len(), 6);
    }
    // The reader is done: the next flush compacts what was put off.
    append(&mut w, (180..210).map(|i| event(i, "x", 2)));
    assert!(w.flush().unwrap().compaction.merged_files >= 4);
    assert!(files(&tmp.path().join("events")).len() <= 2);
    assert_eq!(
        count(tmp.path(), "SELECT count(DISTINCT event_id) FROM events"),
        210
    );
}

/// Builds the state a crash leaves mid-compaction: inputs, a merged output
/// (or not), and the intent naming them.
fn interrupted_compaction(output_in_place: bool) -> (tempfile::TempDir, i64) {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = LakeWriter::open(
        tmp.path(),
        LakeOptions {
            compact_min_files: 1000,
            ..LakeOptions::default()
        },
    )
    .unwrap();
    for round in 0..3 {
        append(
            &mut w,
            (round * 10..(round + 1) * 10).map(|i| event(i, "x", 2)),
        );
        w.flush().unwrap();
    }
    drop(w);
    let inputs = files(&tmp.path().join("events"));
    assert_eq!(inputs.len(), 3);
    // The merged file: what compaction would have written (copy the rows
    // through a second lake and take its single compacted file).
    let side = tempfile::tempdir().unwrap();
    let mut w2 = LakeWriter::open(side.path(), LakeOptions::default()).unwrap();
    append(&mut w2, (0..30).map(|i| event(i, "x", 2)));
    w2.flush().unwrap();
    let merged_src = files(&side.path().join("events")).remove(0);
    let part = inputs[0].parent().unwrap().to_path_buf();
    let output = part.join("part-merged-c0.parquet");
    if output_in_place {
        std::fs::copy(&merged_src, &output).unwrap();
    }
    let intent = serde_json::json!({ "output": output, "inputs": inputs });
    std::fs::write(
        tmp.path().join("_compactions/part-merged-c0.parquet.json"),
        intent.to_string(),
    )
    .unwrap();
    // A half-written temp file, too.
    std::fs::write(tmp.path().join("_tmp/part-x.parquet.tmp"), b"PAR1 half").unwrap();
    (tmp, 30)
}

#[test]
fn interrupted_compaction_with_output_in_place_completes() {
    let (tmp, rows) = interrupted_compaction(true);
    let w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    assert_eq!(w.known_events(), rows as usize);
    assert_eq!(files(&tmp.path().join("events")).len(), 1, "inputs deleted");
    assert_eq!(
        std::fs::read_dir(tmp.path().join("_compactions"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("_tmp")).unwrap().count(),
        0
    );
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM events"), rows);
}

#[test]
fn interrupted_compaction_without_output_rolls_back() {
    let (tmp, rows) = interrupted_compaction(false);
    let _w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    assert_eq!(files(&tmp.path().join("events")).len(), 3, "inputs kept");
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM events"), rows);
}

#[test]
fn one_writer_per_lake() {
    let tmp = tempfile::tempdir().unwrap();
    let _w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    match LakeWriter::open(tmp.path(), LakeOptions::default()) {
        Err(e @ LakeError::Locked { .. }) => {
            assert!(e.to_string().contains("another groundtruth process"))
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("two writers on one lake"),
    }
}

#[test]
fn sql_is_read_only_and_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let ctx = groundtruth_lake::open_session(tmp.path()).await.unwrap();
        // Empty lake: the tables exist and are empty.
        let (_, b) = groundtruth_lake::run_sql(&ctx, "SELECT count(*) FROM events")
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
            let e = groundtruth_lake::run_sql(&ctx, bad).await.unwrap_err();
            assert!(e.to_string().starts_with("query failed"), "{bad}: {e}");
        }
    });
}

fn member(name: &str) -> LakeOptions {
    LakeOptions {
        member: Some(name.to_string()),
        compact_min_files: 2,
        ..LakeOptions::default()
    }
}

#[test]
fn members_share_a_lake_and_compact_only_their_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = LakeWriter::open(tmp.path(), member("gt-a")).unwrap();
    let mut b = LakeWriter::open(tmp.path(), member("gt-b")).unwrap();
    // The same member twice, a sole writer beside members, a bad name.
    for (opts, what) in [
        (member("gt-a"), "LOCK.gt-a"),
        (LakeOptions::default(), "LOCK"),
    ] {
        match LakeWriter::open(tmp.path(), opts) {
            Err(e @ LakeError::Locked { .. }) => assert!(e.to_string().contains(what), "{e}"),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("a second writer opened as {what}"),
        }
    }
    match LakeWriter::open(tmp.path(), member("../x")) {
        Err(e @ LakeError::Member { .. }) => assert!(e.to_string().contains("../x")),
        other => panic!("bad member name accepted: {:?}", other.err()),
    }
    // Interleaved flushes into the same partitions: each compaction merges
    // only its writer's files, so no row is merged twice.
    for round in 0..4 {
        append(
            &mut a,
            (0..10).map(|i| event(round * 100 + i, "river-chief", 3)),
        );
        a.flush().unwrap();
        append(
            &mut b,
            (50..60).map(|i| event(round * 100 + i, "river-chief", 3)),
        );
        b.flush().unwrap();
    }
    let names: Vec<String> = files(&tmp.path().join("events"))
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names
        .iter()
        .all(|n| n.starts_with("part-gt-a-") || n.starts_with("part-gt-b-")));
    assert!(names.len() < 8, "compacted: {names:?}");
    assert_stored_once(tmp.path(), 80);

    // A buffered event is dropped by resync (it will be read again), and
    // what the other member stored meanwhile is now known.
    append(&mut a, [event(900, "river-chief", 3)]);
    append(&mut b, [event(901, "river-chief", 3)]);
    b.flush().unwrap();
    a.resync().unwrap();
    assert_eq!(a.buffered_rows(), 0);
    assert_eq!(
        append(&mut a, [event(901, "river-chief", 3)]),
        (0, 1),
        "b's event known"
    );
    assert_eq!(
        append(&mut a, [event(900, "river-chief", 3)]),
        (1, 0),
        "own dropped event new again"
    );
    a.flush().unwrap();
    assert_stored_once(tmp.path(), 82);
    drop(a);
    // Reopening a member recovers only its own temporary files.
    std::fs::write(tmp.path().join("_tmp/gt-a/stale.tmp"), b"x").unwrap();
    std::fs::write(tmp.path().join("_tmp/gt-b/inflight.tmp"), b"x").unwrap();
    let _a = LakeWriter::open(tmp.path(), member("gt-a")).unwrap();
    assert!(!tmp.path().join("_tmp/gt-a/stale.tmp").exists());
    assert!(tmp.path().join("_tmp/gt-b/inflight.tmp").exists());
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
        let ctx = groundtruth_lake::open_session(tmp.path()).await.unwrap();
        let counts = groundtruth_lake::ndv::estimate(&ctx).await.unwrap();
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
        let with = rows(&groundtruth_lake::ndv::registry(counts));
        let without = rows(&StatisticsRegistry::default_with_builtin_providers());
        assert!(with.is_some_and(|n| n <= 7), "with the counts: {with:?}");
        assert!(without.is_none_or(|n| n > 200), "without: {without:?}");
    });
}
