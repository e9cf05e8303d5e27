//! A physical optimizer rule: counts grouped by columns that are constant
//! in every file are answered from the Parquet footers, without reading a
//! page.
//!
//! The lake writes one directory per local date and app
//! (`<date>/<app>/part-*.parquet`), so in every file `event_date` and
//! `app_id` hold one value: the footer's statistics say so (minimum equal
//! to maximum, exact, no nulls) and give the file's exact row count. The
//! analysts' commonest question, "events per app and day" (a dashboard
//! panel refreshed all day), is then a sum of row counts:
//!
//! ```text
//! AggregateExec: mode=Partial, gby=[app_id, event_date], aggr=[count(1)]
//!   DataSourceExec: <files>, projection=[app_id, event_date]
//! =>
//! DataSourceExec: <one in-memory batch: app_id, event_date, count per group>
//! ```
//!
//! It applies only when it cannot change an answer: the aggregate's keys
//! are plain columns and its aggregates are `count(*)` (or `count` of a
//! literal) or `count(column)` (row count minus the footer's exact null
//! count), without DISTINCT or FILTER, over a file scan with no predicate
//! and no limit (a projection of columns in between is fine); every file
//! has exact statistics, and in every file each key column is either one
//! value (minimum = maximum, no nulls) or all nulls. Anything else leaves
//! the plan as it was, so a query over a file mixing apps, a `WHERE`, or a
//! lake written without statistics scans as before. A file that DataFusion
//! splits into several byte ranges (to scan it in parallel) appears once
//! per range, each carrying the whole file's statistics; it is counted
//! once. DataFusion's own `AggregateStatistics` does this for aggregates
//! without GROUP BY.
//!
//! `SET groundtruth.footer_counts = false` turns the rule off for a session
//! (to compare plans and timings).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::{Result, ScalarValue, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::ExecutionPlan;

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub struct CountsFromFooters;

impl PhysicalOptimizerRule for CountsFromFooters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::options::rule_options(config).footer_counts {
            return Ok(plan);
        }
        crate::plan::rewrite_nodes(plan, from_footers)
    }

    fn name(&self) -> &str {
        "groundtruth_counts_from_footers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What one aggregate counts, per file.
enum Count {
    /// Every row (`count(*)`, `count(<non-null literal>)`).
    Rows,
    /// Rows where this table column is not null.
    NonNull(usize),
}

/// The aggregate `node` answered from its files' statistics, or `None`
/// when the rule does not apply to it.
fn from_footers(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(agg) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if !matches!(agg.mode(), AggregateMode::Partial | AggregateMode::Single)
        || !agg.group_expr().is_single()
        || agg.group_expr().expr().is_empty()
        || agg.limit_options().is_some()
        || agg.filter_expr().iter().any(Option::is_some)
    {
        return Ok(None);
    }
    // Follow plain column projections down to the file scan: `table[i]` is
    // the table column behind the aggregate input's column `i`.
    let mut input = Arc::clone(agg.input());
    let mut table: Vec<usize> = (0..input.schema().fields().len()).collect();
    let config = loop {
        if let Some(p) = input.downcast_ref::<ProjectionExec>() {
            let Some(below) = through(&table, p.expr()) else {
                return Ok(None);
            };
            table = below;
            input = Arc::clone(p.input());
            continue;
        }
        let Some(scan) = input.downcast_ref::<DataSourceExec>() else {
            return Ok(None);
        };
        let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(None);
        };
        break config;
    };
    let source = config.file_source();
    if config.limit.is_some() || source.filter().is_some() || source.file_type() != "parquet" {
        return Ok(None);
    }
    if let Some(projection) = source.projection() {
        let exprs: Vec<ProjectionExpr> = projection.iter().cloned().collect();
        let Some(mapped) = through(&table, &exprs) else {
            return Ok(None);
        };
        table = mapped;
    }

    let mut keys = Vec::new();
    for (expr, _) in agg.group_expr().expr() {
        let Some(c) = expr.downcast_ref::<Column>() else {
            return Ok(None);
        };
        keys.push(table[c.index()]);
    }
    let mut counts = Vec::new();
    for a in agg.aggr_expr() {
        if a.fun().name() != "count" || a.is_distinct() {
            return Ok(None);
        }
        let args = a.expressions();
        let [arg] = args.as_slice() else {
            return Ok(None);
        };
        if let Some(l) = arg.downcast_ref::<Literal>() {
            if l.value().is_null() {
                return Ok(None);
            }
            counts.push(Count::Rows);
        } else if let Some(c) = arg.downcast_ref::<Column>() {
            counts.push(Count::NonNull(table[c.index()]));
        } else {
            return Ok(None);
        }
    }
    let schema = agg.schema();
    // The output: the keys, then one Int64 per count (the partial state of
    // a count is its value).
    let key_types: Vec<_> = schema.fields()[..keys.len()]
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    if schema.fields().len() != keys.len() + counts.len()
        || schema.fields()[keys.len()..]
            .iter()
            .any(|f| f.data_type() != &arrow::datatypes::DataType::Int64)
    {
        return Ok(None);
    }

    let mut groups: HashMap<Vec<ScalarValue>, usize> = HashMap::new();
    let mut rows: Vec<(Vec<ScalarValue>, Vec<i64>)> = Vec::new();
    // A large file is scanned as several byte ranges, each listed as a file
    // of its own with the whole file's statistics: count each file once.
    let mut seen: HashSet<&str> = HashSet::new();
    for file in config.file_groups.iter().flat_map(|g| g.files()) {
        if !seen.insert(file.object_meta.location.as_ref()) {
            continue;
        }
        let Some(stats) = file.statistics.as_deref() else {
            return Ok(None);
        };
        let (key, n) = match file_answer(stats, &keys, &key_types, &counts)? {
            FileAnswer::Group(key, n) => (key, n),
            FileAnswer::Empty => continue,
            FileAnswer::Unknown => return Ok(None),
        };
        match groups.get(&key) {
            Some(&at) => rows[at].1.iter_mut().zip(&n).for_each(|(s, n)| *s += n),
            None => {
                groups.insert(key.clone(), rows.len());
                rows.push((key, n));
            }
        }
    }

    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (k, dtype) in key_types.iter().enumerate() {
        columns.push(if rows.is_empty() {
            arrow::array::new_empty_array(dtype)
        } else {
            ScalarValue::iter_to_array(rows.iter().map(|(key, _)| key[k].clone()))?
        });
    }
    for c in 0..counts.len() {
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, n)| n[c]),
        )));
    }
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    // As many partitions as the aggregate had (the rows in the first), so
    // that what reads it above is planned as before.
    let partitions = agg.properties().output_partitioning().partition_count();
    let mut data = vec![Vec::new(); partitions.max(1)];
    data[0].push(batch);
    Ok(Some(MemorySourceConfig::try_new_exec(&data, schema, None)?))
}

/// The columns below a projection behind `columns` (the projection's
/// output positions), if each is a plain column there.
fn through(columns: &[usize], projection: &[ProjectionExpr]) -> Option<Vec<usize>> {
    columns
        .iter()
        .map(|&i| {
            projection
                .get(i)
                .and_then(|e| e.expr.downcast_ref::<Column>().map(Column::index))
        })
        .collect()
}

/// What one file's statistics say about the aggregate.
enum FileAnswer {
    /// The file's one group key and its counts.
    Group(Vec<ScalarValue>, Vec<i64>),
    /// The file has no rows.
    Empty,
    /// The statistics cannot answer (a key not constant in the file, or a
    /// figure not exact).
    Unknown,
}

/// One file's group key and counts from its statistics.
fn file_answer(
    stats: &Statistics,
    keys: &[usize],
    key_types: &[arrow::datatypes::DataType],
    counts: &[Count],
) -> Result<FileAnswer> {
    let Precision::Exact(n) = stats.num_rows else {
        return Ok(FileAnswer::Unknown);
    };
    if n == 0 {
        return Ok(FileAnswer::Empty);
    }
    let mut key = Vec::with_capacity(keys.len());
    for (&k, dtype) in keys.iter().zip(key_types) {
        let Some(col) = stats.column_statistics.get(k) else {
            return Ok(FileAnswer::Unknown);
        };
        match (&col.null_count, &col.min_value, &col.max_value) {
            (Precision::Exact(0), Precision::Exact(lo), Precision::Exact(hi))
                if lo == hi && !lo.is_null() =>
            {
                key.push(lo.cast_to(dtype)?)
            }
            (Precision::Exact(nulls), _, _) if *nulls == n => {
                key.push(ScalarValue::try_from(dtype)?)
            }
            _ => return Ok(FileAnswer::Unknown),
        }
    }
    let mut out = Vec::with_capacity(counts.len());
    for c in counts {
        out.push(match c {
            Count::Rows => n as i64,
            Count::NonNull(k) => match stats.column_statistics.get(*k).map(|s| &s.null_count) {
                Some(Precision::Exact(nulls)) if *nulls <= n => (n - nulls) as i64,
                _ => return Ok(FileAnswer::Unknown),
            },
        });
    }
    Ok(FileAnswer::Group(key, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::tree_node::TreeNode;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("app", DataType::Utf8, true),
            Field::new("day", DataType::Date32, false),
            Field::new("x", DataType::Int64, true),
            Field::new("k", DataType::Utf8, false),
        ]))
    }

    /// One Parquet file of `rows` rows: (app, day, x, k).
    fn write(dir: &std::path::Path, name: &str, rows: &[(Option<&str>, i32, Option<i64>, &str)]) {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .unwrap();
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    async fn context(dir: &std::path::Path, rule: bool, partitions: usize) -> SessionContext {
        let mut b = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(partitions))
            .with_default_features();
        if rule {
            b = b.with_physical_optimizer_rule(Arc::new(CountsFromFooters));
        }
        let ctx = SessionContext::new_with_state(b.build());
        ctx.register_parquet(
            "t",
            dir.to_str().unwrap(),
            ParquetReadOptions::default().schema(&schema()),
        )
        .await
        .unwrap();
        ctx
    }

    /// The query's rows, sorted (as text), and whether its plan still
    /// scans files.
    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<String>, bool) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let mut scans = false;
        plan.apply(|p| {
            if let Some(s) = p.downcast_ref::<DataSourceExec>() {
                scans |= s.data_source().downcast_ref::<FileScanConfig>().is_some();
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        let batches = df.collect().await.unwrap();
        (crate::testlake::sorted_rows(&batches).unwrap(), scans)
    }

    /// Files as the lake writes them: one app and day each (two of one
    /// group, one without an app, one with a column of nulls).
    fn lake() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "a1.parquet",
            &[
                (Some("a"), 1, Some(1), "p"),
                (Some("a"), 1, None, "q"),
                (Some("a"), 1, Some(3), "p"),
            ],
        );
        write(d, "a2.parquet", &[(Some("a"), 1, Some(5), "q")]);
        write(
            d,
            "b1.parquet",
            &[(Some("b"), 1, None, "p"), (Some("b"), 1, None, "p")],
        );
        write(d, "b2.parquet", &[(Some("b"), 2, Some(7), "r")]);
        write(
            d,
            "n2.parquet",
            &[(None, 2, Some(8), "r"), (None, 2, Some(9), "p")],
        );
        dir
    }

    const ANSWERED: &[&str] = &[
        "SELECT app, day, count(*) FROM t GROUP BY app, day",
        "SELECT app, count(*) AS n, count(x) AS xs FROM t GROUP BY app ORDER BY n",
        "SELECT day, count(1), count(app) FROM t GROUP BY day",
        "SELECT count(*) AS n, app FROM t GROUP BY app HAVING count(*) > 2",
        "SELECT app FROM t GROUP BY app",
    ];

    const SCANNED: &[&str] = &[
        // a key not constant in a file
        "SELECT k, count(*) FROM t GROUP BY k",
        "SELECT app, k, count(*) FROM t GROUP BY app, k",
        // a predicate, a distinct count, another aggregate, an expression
        "SELECT app, count(*) FROM t WHERE x > 1 GROUP BY app",
        "SELECT app, count(DISTINCT x) FROM t GROUP BY app",
        "SELECT app, count(*), sum(x) FROM t GROUP BY app",
        "SELECT upper(app), count(*) FROM t GROUP BY upper(app)",
        "SELECT app, count(x + 1) FROM t GROUP BY app",
    ];

    #[tokio::test]
    async fn counts_by_constant_columns_come_from_the_footers_with_the_same_answer() {
        let dir = lake();
        for partitions in [1, 2, 4] {
            let plain = context(dir.path(), false, partitions).await;
            let ruled = context(dir.path(), true, partitions).await;
            for sql in ANSWERED {
                let (want, _) = run(&plain, sql).await;
                let (got, scans) = run(&ruled, sql).await;
                assert!(!scans, "{sql}: still scans files ({partitions} partitions)");
                assert_eq!(got, want, "{sql} ({partitions} partitions)");
                assert!(!got.is_empty(), "{sql}");
            }
            for sql in SCANNED {
                let (want, _) = run(&plain, sql).await;
                let (got, scans) = run(&ruled, sql).await;
                assert!(scans, "{sql}: answered from footers, it must scan");
                assert_eq!(got, want, "{sql} ({partitions} partitions)");
            }
        }
        let ruled = context(dir.path(), true, 2).await;
        let (rows, _) = run(
            &ruled,
            "SELECT app, count(*) AS n, count(x) AS xs FROM t GROUP BY app",
        )
        .await;
        assert_eq!(
            rows,
            ["|     | 2 | 2  |", "| a   | 4 | 3  |", "| b   | 3 | 1  |",]
        );
    }

    #[tokio::test]
    async fn a_file_mixing_groups_makes_the_whole_query_scan() {
        let dir = lake();
        write(
            dir.path(),
            "mixed.parquet",
            &[(Some("a"), 3, None, "p"), (Some("c"), 3, Some(1), "p")],
        );
        let plain = context(dir.path(), false, 2).await;
        let ruled = context(dir.path(), true, 2).await;
        let sql = "SELECT app, day, count(*) FROM t GROUP BY app, day";
        let (want, _) = run(&plain, sql).await;
        let (got, scans) = run(&ruled, sql).await;
        assert!(scans);
        assert_eq!(got, want);
        // Grouped by the day alone, every file is constant again.
        let sql = "SELECT day, count(*) FROM t GROUP BY day";
        let (want, _) = run(&plain, sql).await;
        let (got, scans) = run(&ruled, sql).await;
        assert!(!scans);
        assert_eq!(got, want);
    }

    /// One large file, split into byte ranges scanned in parallel: each
    /// range carries the file's statistics, and the file is counted once
    /// (it was counted once per range: issue 27's doubled day counts).
    #[tokio::test]
    async fn a_file_split_into_ranges_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(Option<&str>, i32, Option<i64>, &str)> = (0..20_000)
            .map(|i| (Some("a"), 7, (i % 3 != 0).then_some(i), "p"))
            .collect();
        write(dir.path(), "big.parquet", &rows);
        write(dir.path(), "small.parquet", &[(Some("b"), 7, Some(1), "q")]);
        for rule in [false, true] {
            let state = SessionStateBuilder::new()
                .with_config(
                    SessionConfig::new()
                        .with_target_partitions(4)
                        .with_repartition_file_scans(true)
                        .with_repartition_file_min_size(1),
                )
                .with_default_features();
            let state = if rule {
                state.with_physical_optimizer_rule(Arc::new(CountsFromFooters))
            } else {
                state
            };
            let ctx = SessionContext::new_with_state(state.build());
            ctx.register_parquet(
                "t",
                dir.path().to_str().unwrap(),
                ParquetReadOptions::default().schema(&schema()),
            )
            .await
            .unwrap();
            // The file is really split (more scan ranges than files).
            let plan = ctx
                .sql("SELECT app FROM t")
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap();
            let shown = datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string();
            assert!(shown.contains("big.parquet:"), "not split: {shown}");
            let (got, scans) = run(
                &ctx,
                "SELECT app, day, count(*) AS n, count(x) AS xs FROM t GROUP BY app, day",
            )
            .await;
            assert_eq!(scans, !rule);
            assert_eq!(
                got,
                [
                    "| a   | 1970-01-08 | 20000 | 13333 |",
                    "| b   | 1970-01-08 | 1     | 1     |"
                ],
                "rule {rule}"
            );
        }
    }

    #[tokio::test]
    async fn an_empty_table_gives_no_groups() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "empty.parquet", &[]);
        let ruled = context(dir.path(), true, 2).await;
        let (rows, _) = run(&ruled, "SELECT app, count(*) FROM t GROUP BY app").await;
        assert!(rows.is_empty(), "{rows:?}");
    }
}
