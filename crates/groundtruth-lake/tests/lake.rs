//! The lake writer: durability, dedup across restarts, compaction and its
//! crash recovery, the writer lock; read back with the Parquet reader
//! (SQL over the lake is `groundtruth-sql`'s, tested there).

use std::path::{Path, PathBuf};

use std::collections::HashSet;

use arrow::array::AsArray;
use groundtruth_event::{decode, DeadLetter, DecodeOptions, Reject, RejectCode, SourcePosition};
use groundtruth_lake::{Appended, LakeError, LakeOptions, LakeWriter};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn event(i: usize, app: &str, day: u32) -> String {
    format!(
        r#"{{"event_id":"ev-{i}","ts":"2026-11-{day:02}T09:{:02}:00+08:00","app_id":"{app}","account_id":"acc-{}","kind":"check_in","lat":22.8,"lon":108.3}}"#,
        i % 60,
        i % 7
    )
}

/// The lake holds `n` events, each once.
fn assert_stored_once(lake: &std::path::Path, n: i64) {
    assert_eq!(count(lake, "events"), n);
    assert_eq!(distinct_ids(lake), n);
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

/// Every row of `table`'s Parquet files under the lake `dir`, as the
/// values of `column` (a string column).
fn column(dir: &Path, table: &str, column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for f in files(&dir.join(table)) {
        let file = std::fs::File::open(&f).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let values = batch.column_by_name(column).unwrap().as_string::<i32>();
            out.extend(values.iter().map(|v| v.map(str::to_string)));
        }
    }
    out
}

/// The rows of `table` in the lake `dir`.
fn count(dir: &Path, table: &str) -> i64 {
    let key = if table == "events" {
        "event_id"
    } else {
        "reason"
    };
    column(dir, table, key).len() as i64
}

/// The distinct `event_id`s of the lake `dir`.
fn distinct_ids(dir: &Path) -> i64 {
    let ids: HashSet<_> = column(dir, "events", "event_id").into_iter().collect();
    ids.len() as i64
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
    assert_eq!(count(tmp.path(), "events"), 100);
    let apps = column(tmp.path(), "events", "app_id");
    assert_eq!(
        apps.iter()
            .filter(|a| a.as_deref() == Some("a/../b"))
            .count(),
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
    assert_eq!(count(tmp.path(), "dead_letters"), 2);
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
    assert_eq!(count(tmp.path(), "events"), 300);
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
    assert_eq!(distinct_ids(tmp.path()), 210);
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
    assert_eq!(count(tmp.path(), "events"), rows);
}

#[test]
fn interrupted_compaction_without_output_rolls_back() {
    let (tmp, rows) = interrupted_compaction(false);
    let _w = LakeWriter::open(tmp.path(), LakeOptions::default()).unwrap();
    assert_eq!(files(&tmp.path().join("events")).len(), 3, "inputs kept");
    assert_eq!(count(tmp.path(), "events"), rows);
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
