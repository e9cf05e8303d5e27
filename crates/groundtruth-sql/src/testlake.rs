//! A small lake for the crate's tests: the event schema, values that vary
//! with a seed, files written with different Parquet options.

use std::sync::Arc;

use arrow::array::{
    new_null_array, ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

pub(crate) const KINDS: [&str; 5] = [
    "login",
    "check_in",
    "report_submit",
    "session_start",
    "patrol_point",
];

/// `rows` events of the event schema; `seed` varies the values.
pub(crate) fn events(rows: usize, seed: usize) -> RecordBatch {
    let schema = groundtruth_event::event_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            let at = |i: usize| i + seed;
            match f.name().as_str() {
                "event_id" => Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("e{seed}-{i}")),
                )),
                "ts" => arrow::compute::cast(
                    &Int64Array::from_iter_values(
                        (0..rows).map(|i| 1_780_000_000_000_000 + at(i) as i64 * 1_000_000),
                    ),
                    f.data_type(),
                )
                .unwrap(),
                "event_date" => Arc::new(Date32Array::from_iter_values(
                    (0..rows).map(|i| 20_400 + (at(i) / 97 % 3) as i32),
                )),
                "app_id" => {
                    Arc::new(StringArray::from_iter_values((0..rows).map(|i| {
                        ["river-chief", "attendance", "zhiguitong"][at(i) * 7 % 3]
                    })))
                }
                "account_id" => Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("acct-{:03}", at(i) * 31 % 53)),
                )),
                "kind" => Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| KINDS[at(i) * 3 % 5]),
                )),
                "region" => Arc::new(StringArray::from_iter((0..rows).map(|i| {
                    (at(i) % 11 != 0).then_some(["450102", "450203", "330501"][at(i) % 3])
                }))),
                "device_id" => {
                    Arc::new(StringArray::from_iter((0..rows).map(|i| {
                        (at(i) % 4 != 0).then(|| format!("dev-{}", at(i) % 17))
                    })))
                }
                "lat" => Arc::new(Float64Array::from_iter(
                    (0..rows).map(|i| (at(i) % 5 != 0).then_some(22.8 + at(i) as f64 * 1e-4)),
                )),
                "duration_s" => Arc::new(Float64Array::from_iter_values(
                    (0..rows).map(|i| (at(i) % 13) as f64),
                )),
                "changed_fields" => Arc::new(Int64Array::from_iter(
                    (0..rows).map(|i| (at(i) % 3 != 0).then_some((at(i) % 4) as i64)),
                )),
                _ => new_null_array(f.data_type(), rows),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

pub(crate) fn write(path: &std::path::Path, batch: &RecordBatch, props: WriterProperties) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// A lake of three files: small row groups (a dictionary per chunk), a
/// file written without dictionary encoding, one with a single row.
pub(crate) fn lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let events_dir = groundtruth_lake::LakeLayout::new(dir.path()).events_dir();
    write(
        &events_dir.join("2026-11-02/river-chief/part-1.parquet"),
        &events(5_000, 0),
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(700))
            .build(),
    );
    write(
        &events_dir.join("2026-11-03/attendance/part-2.parquet"),
        &events(3_000, 11),
        WriterProperties::builder()
            .set_dictionary_enabled(false)
            .build(),
    );
    write(
        &events_dir.join("2026-11-04/zhiguitong/part-3.parquet"),
        &events(1, 5),
        WriterProperties::builder().build(),
    );
    dir
}

/// Sessions over the lake `dir` with groundtruth's rules and without the
/// rule `rule`, `partitions` each, in small batches (a row group spans
/// several, a file ends mid-batch).
pub(crate) async fn sessions(
    dir: &std::path::Path,
    partitions: usize,
    rule: &str,
) -> (
    datafusion::prelude::SessionContext,
    datafusion::prelude::SessionContext,
) {
    let with = crate::open_session(dir).await.unwrap();
    let without = datafusion::prelude::SessionContext::new_with_state(crate::without_rules(
        with.state(),
        &[rule],
    ));
    for ctx in [&with, &without] {
        for set in [
            format!("SET datafusion.execution.target_partitions = {partitions}"),
            "SET datafusion.execution.batch_size = 256".to_string(),
        ] {
            ctx.sql(&set).await.unwrap().collect().await.unwrap();
        }
    }
    (with, without)
}

/// The physical plan of `sql` in `ctx`.
pub(crate) async fn physical_plan(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

/// The physical plan of `sql` in `ctx` as text.
pub(crate) async fn plan_text(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    let plan = physical_plan(ctx, sql).await;
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    shown
}

/// The rows of `batches` as table lines, sorted: an unordered answer
/// compared as a multiset.
pub(crate) fn sorted_rows(
    batches: &[RecordBatch],
) -> Result<Vec<String>, arrow::error::ArrowError> {
    let text = arrow::util::pretty::pretty_format_batches(batches)?.to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(String::from)
        .collect();
    lines.sort();
    Ok(lines)
}
