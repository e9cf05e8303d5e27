//! A physical optimizer rule: partial aggregates grouped by the lake's
//! low-cardinality string columns read those columns as Parquet's own
//! dictionaries and group by dictionary index, not by string.
//!
//! The lake's Parquet files store `app_id`, `kind`, `region`, `account_id`
//! and the other key-like strings dictionary-encoded (a few to a few
//! thousand distinct values per column chunk). DataFusion's scan expands
//! every value into a string buffer, and its hash aggregate then hashes
//! and compares each row's strings: for "events per app and kind" over
//! 10M rows that is most of the time. DuckDB keeps the dictionaries.
//!
//! ```text
//! AggregateExec: mode=Partial, gby=[app_id, kind], aggr=[count(1)]
//!   DataSourceExec: <files>, projection=[app_id, kind]
//! =>
//! DictionaryKeyAggregateExec: gby=[app_id, kind], aggr=[count(1)]
//!   DataSourceExec: <files, app_id and kind read as Dictionary(Int32, Utf8)>
//! ```
//!
//! [`DictionaryKeyAggregateExec`] maps each column chunk's dictionary to
//! global key numbers once (the reader hands the same dictionary to every
//! batch of a chunk), numbers each row's key combination through a small
//! dense table per batch (one hash lookup per distinct combination, not per
//! row), and feeds DataFusion's own group accumulators (`count`, `sum`,
//! `min`, ... exactly as the hash aggregate would). Its output is the
//! partial aggregate's: the same schema, the keys as strings, the
//! accumulators' states, so the final aggregate above is unchanged. Its
//! group state is reserved in the session's memory pool, so the analysts'
//! memory limit holds.
//!
//! It applies only where it cannot change an answer: a `Partial` aggregate
//! with plain-column keys, each one of [`DICTIONARY_COLUMNS`] or an integer
//! or date column, at least one of them a string; aggregates with group
//! accumulators, no DISTINCT, ORDER BY or FILTER, none reading a key string
//! column; over a Parquet scan of the lake's `events` (the event schema, no
//! limit), directly or through a filter that reads the key strings only to
//! test them for null (`WHERE kind = 'report_submit'` grouped by
//! `account_id` qualifies, `WHERE app_id <> 'x'` grouped by `app_id` does
//! not). Anything else (a region scope's filter over a repartition, a
//! computed key, a single aggregate on one partition) is planned as before.
//!
//! `SET groundtruth.dictionary_keys = false` turns the rule off for a session
//! (to compare plans and timings).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::{Column, IsNotNullExpr, IsNullExpr};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::InputOrderMode;

use groundtruth_event::DICTIONARY_COLUMNS;

use crate::exec::dictionary_key_aggregate::{
    Derived, DictionaryKeyAggregateExec, Key, KeyKind, Parts,
};

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub struct DictionaryKeys;

impl PhysicalOptimizerRule for DictionaryKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::options::rule_options(config).dictionary_keys {
            return Ok(plan);
        }
        crate::plan::rewrite_nodes(plan, rewrite)
    }

    fn name(&self) -> &str {
        "groundtruth_dictionary_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The aggregate `node` over a dictionary-reading scan, or `None` when the
/// rule does not apply to it.
fn rewrite(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(agg) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if *agg.mode() != AggregateMode::Partial
        || !agg.group_expr().is_single()
        || agg.group_expr().expr().is_empty()
        || agg.limit_options().is_some()
        || agg.filter_expr().iter().any(Option::is_some)
        || *agg.input_order_mode() != InputOrderMode::Linear
    {
        return Ok(None);
    }
    if agg
        .aggr_expr()
        .iter()
        .any(|a| a.is_distinct() || !a.order_bys().is_empty() || !a.groups_accumulator_supported())
    {
        return Ok(None);
    }
    // A filter between is fine when it reads the key strings only to test
    // them for null (`WHERE device_id IS NOT NULL`); see `filter_keeps`.
    // `below[i]`: the scan's output column behind the aggregate's input
    // column `i` (a filter may project).
    let (filter, scan_node, below) = match agg.input().downcast_ref::<FilterExec>() {
        Some(f) if f.fetch().is_none() => {
            let below: Vec<usize> = match f.projection() {
                Some(p) => p.to_vec(),
                None => (0..f.input().schema().fields().len()).collect(),
            };
            let filter = (Arc::clone(agg.input()), Arc::clone(f.predicate()));
            (Some(filter), Arc::clone(f.input()), below)
        }
        Some(_) => return Ok(None),
        None => {
            let n = agg.input().schema().fields().len();
            (None, Arc::clone(agg.input()), (0..n).collect())
        }
    };
    let Some(scan) = scan_node.downcast_ref::<DataSourceExec>() else {
        return Ok(None);
    };
    let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
        return Ok(None);
    };
    let source = config.file_source();
    let Some(parquet) = source.downcast_ref::<ParquetSource>() else {
        return Ok(None);
    };
    let file_schema = config.file_schema();
    // Whether the scan filters rows with its predicate (else the predicate
    // only skips row groups and pages, and what reads the rows filters
    // them again: a filter above, or the hash join that pushed it down).
    let row_filtering = parquet.table_parquet_options().global.pushdown_filters;
    // The per-file read schema below must be each file's own: only the
    // lake's `events`, whose every file the lake writer writes with the
    // event schema.
    if config.limit.is_some()
        || (source.filter().is_some() && filter.is_none() && row_filtering)
        || !config.table_partition_cols().is_empty()
        || file_schema.fields() != groundtruth_event::event_schema().fields()
    {
        return Ok(None);
    }
    // The table column behind each of the scan's output columns.
    let scanned: Vec<usize> = match source.projection() {
        Some(p) => {
            let Some(cols) = p
                .iter()
                .map(|e| e.expr.downcast_ref::<Column>().map(Column::index))
                .collect::<Option<Vec<_>>>()
            else {
                return Ok(None);
            };
            cols
        }
        None => (0..file_schema.fields().len()).collect(),
    };

    let out_schema = agg.schema();
    let Some((keys, mut as_dictionary)) = group_keys(agg, &below, &scanned, file_schema)? else {
        return Ok(None);
    };
    if as_dictionary.is_empty() {
        return Ok(None);
    }
    let predicate = filter.as_ref().map(|(_, p)| p);
    let Some(derivable) = derivable(
        agg,
        predicate,
        &below,
        &scanned,
        file_schema,
        &as_dictionary,
    ) else {
        return Ok(None);
    };
    let Some((aggregates, parts)) =
        moved_aggregates(agg, &derivable, &below, &scanned, &mut as_dictionary)?
    else {
        return Ok(None);
    };
    let is_dictionary = |c: &Column| {
        scanned
            .get(c.index())
            .is_none_or(|t| as_dictionary.contains(t))
    };
    if filter
        .as_ref()
        .is_some_and(|(_, predicate)| !filter_keeps(predicate, &is_dictionary))
    {
        return Ok(None);
    }
    // The scan's predicate (a copy of the filter, or a join's dynamic
    // filter) is over the table's columns. One that reads a dictionary
    // column other than to test it for null is left out when it only
    // skips row groups (fewer skipped, same rows), and refuses the rule
    // when it filters rows.
    let table_is_dictionary = |c: &Column| as_dictionary.contains(&c.index());
    let predicate = match source.filter() {
        Some(p) if filter_keeps(&p, &table_is_dictionary) => Some(p),
        Some(_) if row_filtering => return Ok(None),
        _ => None,
    };

    let new_scan = dictionary_scan(config, parquet, &as_dictionary, predicate, scanned)?;
    let input = match filter {
        Some((f, _)) => f.replace_children(
            vec![new_scan],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?,
        None => new_scan,
    };
    Ok(Some(Arc::new(DictionaryKeyAggregateExec::new(
        input,
        keys,
        aggregates,
        parts,
        out_schema,
        agg.group_expr()
            .expr()
            .iter()
            .map(|(_, name)| name.clone())
            .collect(),
    ))))
}

/// The aggregate's group keys as the node keys them: a dictionary column
/// (or a key computed from one), or an integer column; and the table
/// columns to read as dictionaries. `None` when a key is neither.
fn group_keys(
    agg: &AggregateExec,
    below: &[usize],
    scanned: &[usize],
    file_schema: &SchemaRef,
) -> Result<Option<(Vec<Key>, HashSet<usize>)>> {
    let out_schema = agg.schema();
    let mut keys = Vec::new();
    let mut as_dictionary = HashSet::new();
    for (i, (expr, _)) in agg.group_expr().expr().iter().enumerate() {
        let output = out_schema.field(i).data_type().clone();
        if expr.downcast_ref::<Column>().is_none() {
            // A key computed from one dictionary column.
            let Some((input, map)) = mapped_key(expr, &output, below, scanned, file_schema)? else {
                return Ok(None);
            };
            as_dictionary.insert(scanned[below[input]]);
            keys.push(Key {
                input,
                kind: KeyKind::Dictionary,
                output,
                map: Some(map),
            });
            continue;
        }
        let Some(c) = expr.downcast_ref::<Column>() else {
            return Ok(None);
        };
        let Some(&table) = below.get(c.index()).and_then(|&b| scanned.get(b)) else {
            return Ok(None);
        };
        let field = file_schema.field(table);
        let kind = match field.data_type() {
            DataType::Utf8 if DICTIONARY_COLUMNS.contains(&field.name().as_str()) => {
                as_dictionary.insert(table);
                KeyKind::Dictionary
            }
            DataType::Date32 | DataType::Int32 | DataType::Int64 => KeyKind::Integer,
            _ => return Ok(None),
        };
        if output != *field.data_type() {
            return Ok(None);
        }
        keys.push(Key {
            input: c.index(),
            kind,
            output,
            map: None,
        });
    }
    Ok(Some((keys, as_dictionary)))
}

/// The aggregates' input columns whose parts can be computed per
/// dictionary value: read inside a part of one dictionary column, never
/// whole, and not read by the filter `predicate`. `None` when an aggregate
/// reads a key column whole.
fn derivable(
    agg: &AggregateExec,
    predicate: Option<&Arc<dyn PhysicalExpr>>,
    below: &[usize],
    scanned: &[usize],
    file_schema: &SchemaRef,
    as_dictionary: &HashSet<usize>,
) -> Option<HashSet<usize>> {
    // The aggregates' arguments: a part that reads one dictionary column
    // alone (`kind = 'session_end'` in `sum(CASE WHEN kind = 'session_end'
    // THEN ... END)`) is computed once per dictionary and taken per row
    // (the column is then read as a dictionary); a column read whole (as
    // `max(kind)` does) must stay a string, so it cannot be a key.
    let table_of = |i: usize| below.get(i).and_then(|&b| scanned.get(b)).copied();
    let mut whole = HashSet::new();
    let mut parts_of = HashSet::new();
    for a in agg.aggr_expr() {
        for e in a.expressions() {
            classify(&e, &mut whole, &mut parts_of);
        }
    }
    if whole
        .iter()
        .any(|&i| table_of(i).is_none_or(|t| as_dictionary.contains(&t)))
    {
        return None;
    }
    let filter_reads = |i: usize| {
        predicate
            .is_some_and(|predicate| !filter_keeps(predicate, &|c: &Column| c.index() == below[i]))
    };
    let derivable: HashSet<usize> = parts_of
        .into_iter()
        .filter(|&i| {
            !whole.contains(&i)
                && !filter_reads(i)
                && table_of(i).is_some_and(|t| {
                    let field = file_schema.field(t);
                    *field.data_type() == DataType::Utf8
                        && DICTIONARY_COLUMNS.contains(&field.name().as_str())
                })
        })
        .collect();
    Some(derivable)
}

/// The aggregates with their parts taken out, and the parts.
type MovedAggregates = (Vec<Arc<AggregateFunctionExpr>>, Arc<Parts>);

/// The aggregates with their dictionary parts taken out (computed once per
/// dictionary value, see [`derive`]), and those parts; the columns the
/// parts read join `as_dictionary`. `None` when an aggregate cannot take
/// its new arguments.
fn moved_aggregates(
    agg: &AggregateExec,
    derivable: &HashSet<usize>,
    below: &[usize],
    scanned: &[usize],
    as_dictionary: &mut HashSet<usize>,
) -> Result<Option<MovedAggregates>> {
    let table_of = |i: usize| below.get(i).and_then(|&b| scanned.get(b)).copied();
    let input_schema = agg.input().schema();
    let mut derived = Vec::new();
    let mut aggregates = Vec::new();
    for a in agg.aggr_expr() {
        let args = a
            .expressions()
            .iter()
            .map(|e| derive(e, derivable, &mut derived, input_schema.fields().len()))
            .collect::<Result<Vec<_>>>()?;
        let Some(moved) = a.with_new_expressions(args, Vec::new()) else {
            return Ok(None);
        };
        aggregates.push(Arc::new(moved));
    }
    let mut fields = Vec::new();
    for (k, d) in derived.iter().enumerate() {
        fields.push(Arc::new(arrow::datatypes::Field::new(
            format!("__dictionary_part_{k}"),
            d.part.data_type(&input_schema)?,
            true,
        )));
        if let Some(t) = table_of(d.input) {
            as_dictionary.insert(t);
        }
    }
    for d in &mut derived {
        d.part = at_column_zero(&d.part, d.input)?;
    }
    let parts = Arc::new(Parts { derived, fields });

    Ok(Some((aggregates, parts)))
}

/// The scan again, reading the `as_dictionary` columns as dictionaries
/// (each file's read schema too), with `predicate`.
fn dictionary_scan(
    config: &FileScanConfig,
    parquet: &ParquetSource,
    as_dictionary: &HashSet<usize>,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    scanned: Vec<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let file_schema = config.file_schema();
    let read_schema: SchemaRef = Arc::new(Schema::new_with_metadata(
        file_schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if as_dictionary.contains(&i) {
                    Arc::new(f.as_ref().clone().with_data_type(dictionary_type()))
                } else {
                    Arc::clone(f)
                }
            })
            .collect::<Vec<_>>(),
        file_schema.metadata().clone(),
    ));
    let mut new_source = ParquetSource::new(Arc::clone(&read_schema))
        .with_table_parquet_options(parquet.table_parquet_options().clone());
    if let Some(predicate) = predicate {
        new_source = new_source.with_predicate(predicate);
    }
    if let Some(factory) = parquet.parquet_file_reader_factory() {
        new_source = new_source.with_parquet_file_reader_factory(Arc::clone(factory));
    }
    let groups: Vec<FileGroup> = config
        .file_groups
        .iter()
        .map(|g| {
            let files = g
                .iter()
                .map(|f| f.clone().with_arrow_schema(Arc::clone(&read_schema)))
                .collect();
            let mut group = FileGroup::new(files);
            if let Some(stats) = g.file_statistics(None) {
                group = group.with_statistics(Arc::new(stats.clone()));
            }
            group
        })
        .collect();
    let new_config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(new_source))
        .with_projection_indices(Some(scanned))?
        .with_file_groups(groups)
        .build();
    Ok(DataSourceExec::from_data_source(new_config))
}

/// Notes in `whole` the columns `expr` reads as they are, in `parts_of`
/// those it reads only inside a part of one column (not the column alone,
/// nothing volatile).
fn classify(
    expr: &Arc<dyn PhysicalExpr>,
    whole: &mut HashSet<usize>,
    parts_of: &mut HashSet<usize>,
) {
    if let Some(c) = expr.downcast_ref::<Column>() {
        whole.insert(c.index());
        return;
    }
    let columns = collect_columns(expr);
    if columns.len() == 1 && !is_volatile(expr) {
        parts_of.extend(columns.iter().map(Column::index));
        return;
    }
    for child in expr.children() {
        classify(child, whole, parts_of);
    }
}

/// `expr` with each part that reads one of `derivable` alone replaced by a
/// column after the input's `width` columns (its part noted in `derived`).
fn derive(
    expr: &Arc<dyn PhysicalExpr>,
    derivable: &HashSet<usize>,
    derived: &mut Vec<Derived>,
    width: usize,
) -> Result<Arc<dyn PhysicalExpr>> {
    if expr.downcast_ref::<Column>().is_some() {
        return Ok(Arc::clone(expr));
    }
    let columns = collect_columns(expr);
    if let [only] = columns.iter().collect::<Vec<_>>()[..] {
        if derivable.contains(&only.index()) && !is_volatile(expr) {
            let at = width + derived.len();
            derived.push(Derived {
                input: only.index(),
                part: Arc::clone(expr),
            });
            return Ok(Arc::new(Column::new(
                &format!("__dictionary_part_{}", at - width),
                at,
            )));
        }
    }
    let children = expr
        .children()
        .into_iter()
        .map(|c| derive(c, derivable, derived, width))
        .collect::<Result<Vec<_>>>()?;
    Arc::clone(expr).with_new_children(children)
}

/// `expr` reading its one column `index` as column 0.
fn at_column_zero(expr: &Arc<dyn PhysicalExpr>, index: usize) -> Result<Arc<dyn PhysicalExpr>> {
    Ok(Arc::clone(expr)
        .transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) if c.index() == index => {
                    Transformed::yes(Arc::new(Column::new(c.name(), 0)) as Arc<dyn PhysicalExpr>)
                }
                _ => Transformed::no(e),
            })
        })?
        .data)
}

/// A group key `expr` computed from exactly one of the dictionary columns
/// (a string, e.g. `coalesce(region, '')`), nothing volatile: the
/// aggregate's input column it reads and the expression rewritten to read
/// that column as column 0 of a one-column batch.
fn mapped_key(
    expr: &Arc<dyn PhysicalExpr>,
    output: &DataType,
    below: &[usize],
    scanned: &[usize],
    file_schema: &SchemaRef,
) -> Result<Option<(usize, Arc<dyn PhysicalExpr>)>> {
    let columns = collect_columns(expr);
    let [only] = columns.iter().collect::<Vec<_>>()[..] else {
        return Ok(None);
    };
    let Some(&table) = below.get(only.index()).and_then(|&b| scanned.get(b)) else {
        return Ok(None);
    };
    let field = file_schema.field(table);
    if *output != DataType::Utf8
        || *field.data_type() != DataType::Utf8
        || !DICTIONARY_COLUMNS.contains(&field.name().as_str())
        || is_volatile(expr)
    {
        return Ok(None);
    }
    let index = only.index();
    Ok(Some((index, at_column_zero(expr, index)?)))
}

/// Whether `predicate` evaluates the same over dictionary-read columns
/// (`is_dictionary`): it reads them only as the operand of `IS NULL` /
/// `IS NOT NULL`.
fn filter_keeps(
    predicate: &Arc<dyn PhysicalExpr>,
    is_dictionary: &dyn Fn(&Column) -> bool,
) -> bool {
    if predicate.downcast_ref::<IsNullExpr>().is_some()
        || predicate.downcast_ref::<IsNotNullExpr>().is_some()
    {
        let children = predicate.children();
        if let [only] = children.as_slice() {
            if only.downcast_ref::<Column>().is_some() {
                return true;
            }
        }
    }
    if let Some(c) = predicate.downcast_ref::<Column>() {
        return !is_dictionary(c);
    }
    predicate
        .children()
        .into_iter()
        .all(|child| filter_keeps(child, is_dictionary))
}

#[cfg(test)]
mod tests {
    use crate::testlake::{lake, sessions};
    use arrow::array::RecordBatch;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// The rule tested here.
    const RULE: &str = "groundtruth_dictionary_keys";

    async fn answer(ctx: &SessionContext, sql: &str) -> (String, bool) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        let batches = df.collect().await.unwrap();
        (
            pretty_format_batches(&batches).unwrap().to_string(),
            shown.contains("DictionaryKeyAggregateExec"),
        )
    }

    #[tokio::test]
    async fn answers_equal_the_hash_aggregate() {
        let dir = lake();
        let applies = [
            "SELECT app_id, kind, count(*) AS n FROM events GROUP BY app_id, kind ORDER BY app_id, kind",
            "SELECT region, count(*), count(device_id), sum(duration_s), min(ts), max(lat), avg(duration_s) \
             FROM events GROUP BY region ORDER BY region NULLS FIRST",
            "SELECT app_id, event_date, account_id FROM events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT account_id, count(DISTINCT event_date) AS days, count(*) FROM events \
             GROUP BY account_id ORDER BY account_id",
            "SELECT kind, changed_fields, count(*) FROM events GROUP BY kind, changed_fields \
             ORDER BY kind, changed_fields NULLS FIRST",
            "SELECT device_id, min(kind), count(lat) FROM events GROUP BY device_id \
             ORDER BY device_id NULLS FIRST",
            "SELECT app_id, count(*) FROM events GROUP BY app_id HAVING count(*) > 10 ORDER BY app_id",
            "SELECT device_id, count(DISTINCT account_id), count(*) FROM events \
             WHERE device_id IS NOT NULL GROUP BY device_id ORDER BY device_id",
            "SELECT account_id, count(*) FROM events WHERE kind = 'report_submit' AND lat > 22.8 \
             GROUP BY account_id ORDER BY account_id",
            "SELECT region, count(*) FROM events WHERE region IS NULL OR duration_s > 3 \
             GROUP BY region ORDER BY region NULLS FIRST",
            // Planned as a group by (kind, account_id) first.
            "SELECT kind, count(DISTINCT account_id) FROM events GROUP BY kind ORDER BY kind",
            // Keys computed from one dictionary column: nulls mapped, and
            // different values mapped to one key.
            "SELECT app_id, coalesce(region, '') AS r, event_date, count(*) FROM events \
             GROUP BY app_id, coalesce(region, ''), event_date ORDER BY 1, 2, 3",
            "SELECT lower(kind), count(*) FROM events GROUP BY lower(kind) ORDER BY 1",
            "SELECT CASE WHEN kind IN ('login', 'check_in') THEN 'in' ELSE kind END AS k, \
             substr(account_id, 1, 6) AS a, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT CASE WHEN device_id IS NULL THEN 'none' END AS d, count(*) FROM events \
             GROUP BY 1 ORDER BY 1 NULLS FIRST",
            // Aggregate arguments with parts of one dictionary column,
            // computed per dictionary (nulls included).
            "SELECT app_id, sum(CASE WHEN kind = 'login' THEN 1 ELSE 0 END), \
             sum(CASE WHEN kind = 'check_in' THEN coalesce(duration_s, 0) ELSE 0 END), \
             count(CASE WHEN device_id IS NULL THEN 1 END), max(upper(kind)), \
             sum(CASE WHEN region IS NULL THEN 1 ELSE 0 END), min(coalesce(region, '-')) \
             FROM events GROUP BY app_id ORDER BY app_id",
            "SELECT account_id, event_date, sum(CASE WHEN kind IN ('login', 'report_submit') \
             THEN 1 ELSE 0 END) FROM events GROUP BY 1, 2 ORDER BY 1, 2",
            // A column read whole, or by the filter, stays a string.
            "SELECT app_id, max(kind), sum(CASE WHEN kind = 'login' THEN 1 ELSE 0 END) \
             FROM events GROUP BY app_id ORDER BY app_id",
            "SELECT app_id, sum(CASE WHEN kind = 'login' THEN 1 ELSE 0 END) FROM events \
             WHERE kind <> 'check_in' GROUP BY app_id ORDER BY app_id",
            // More key combinations than a dense table takes (the groups
            // seen by local key codes instead).
            "SELECT app_id, account_id, device_id, kind, region, changed_fields, count(*), \
             sum(duration_s) FROM events GROUP BY 1, 2, 3, 4, 5, 6 \
             ORDER BY 1, 2, 3 NULLS FIRST, 4, 5 NULLS FIRST, 6 NULLS FIRST",
        ];
        let refused = [
            "SELECT kind, max(kind) FROM events GROUP BY kind ORDER BY kind",
            "SELECT app_id || kind, count(*) FROM events GROUP BY app_id || kind ORDER BY 1",
            "SELECT CASE WHEN random() < 2 THEN kind END, count(*) FROM events GROUP BY 1 ORDER BY 1",
            "SELECT length(kind), count(*) FROM events GROUP BY length(kind) ORDER BY 1",
            "SELECT event_id, count(*) FROM events GROUP BY event_id ORDER BY event_id LIMIT 5",
            "SELECT event_date, count(*) FROM events GROUP BY event_date ORDER BY event_date",
            "SELECT session_id, count(*) FROM events GROUP BY session_id ORDER BY 1",
            "SELECT app_id, count(*) FROM events WHERE app_id <> 'attendance' GROUP BY app_id ORDER BY 1",
            "SELECT kind, count(*) FROM events WHERE lower(kind) IS NOT NULL GROUP BY kind ORDER BY 1",
        ];
        for partitions in [1, 2, 4] {
            let (with, without) = sessions(dir.path(), partitions, RULE).await;
            for (sql, expect) in applies
                .iter()
                .map(|s| (s, true))
                .chain(refused.iter().map(|s| (s, false)))
            {
                let (got, used) = answer(&with, sql).await;
                let (want, unused) = answer(&without, sql).await;
                assert!(!unused, "{sql}: the rule is off");
                assert_eq!(got, want, "{sql} over {partitions} partitions");
                // Never where it must not; where it may, over two
                // partitions (one plans a single aggregate, four put a
                // round-robin repartition under some filters).
                if !expect || partitions == 2 {
                    assert_eq!(used, expect, "{sql} over {partitions} partitions: {got}");
                }
                if partitions == 2 && sql.contains("max(upper(kind))") {
                    let plan = datafusion::physical_plan::displayable(
                        crate::testlake::physical_plan(&with, sql).await.as_ref(),
                    )
                    .indent(false)
                    .to_string();
                    assert!(plan.contains("per_dictionary=["), "{plan}");
                }
            }
        }
    }

    #[tokio::test]
    async fn an_empty_lake_gives_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (with, _) = sessions(dir.path(), 2, RULE).await;
        let sql = "SELECT app_id, kind, count(*) FROM events GROUP BY 1, 2";
        let batches = with.sql(sql).await.unwrap().collect().await.unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    }

    #[tokio::test]
    async fn its_groups_count_against_the_memory_limit() {
        let dir = lake();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(4 * 1024, 1.0)
            .build_arc()
            .unwrap();
        let with = crate::open_session(dir.path()).await.unwrap();
        let state = SessionStateBuilder::new_from_existing(with.state())
            .with_runtime_env(runtime)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let err = ctx
            .sql("SELECT app_id, event_date, account_id, count(*) FROM events GROUP BY 1, 2, 3")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Resources exhausted") && err.contains("DictionaryKeyAggregateExec"),
            "{err}"
        );
    }
}
