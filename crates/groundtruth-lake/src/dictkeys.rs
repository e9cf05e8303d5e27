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

use foldhash::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Date32Type, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::{Column, IsNotNullExpr, IsNullExpr};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::InputOrderMode;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// The `events` string columns read as dictionaries when an aggregate
/// groups by them: the ones the lake's Parquet files hold with few distinct
/// values per column chunk (not `event_id`, `session_id`, `attrs`, ...).
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "app_id",
    "account_id",
    "kind",
    "region",
    "device_id",
    "device_model",
    "os_version",
    "app_version",
    "network_id",
    "integrity",
    "module",
    "referrer",
    "claimed_region",
    "registry",
    "category",
];

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub struct DictionaryKeys;

impl PhysicalOptimizerRule for DictionaryKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::rule_options(config).dictionary_keys {
            return Ok(plan);
        }
        crate::rewrite_nodes(plan, rewrite)
    }

    fn name(&self) -> &str {
        "groundtruth_dictionary_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How a group key column arrives in the new plan.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    /// A string column read as `Dictionary(Int32, Utf8)`.
    Dictionary,
    /// `Date32`, `Int32` or `Int64`, kept as it is.
    Integer,
}

/// One group key: its column in the scan's output and how it is read.
#[derive(Debug, Clone)]
struct Key {
    input: usize,
    kind: KeyKind,
    /// The type the partial aggregate outputs for it.
    output: DataType,
    /// A key computed from one dictionary column (`coalesce(region, '')`):
    /// the expression over that column alone (column 0), evaluated once
    /// per dictionary over its values.
    map: Option<Arc<dyn PhysicalExpr>>,
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
    let mut keys = Vec::new();
    let mut as_dictionary = HashSet::new();
    for (i, (expr, _)) in agg.group_expr().expr().iter().enumerate() {
        let output = out_schema.field(i).data_type().clone();
        if expr.downcast_ref::<Column>().is_none() {
            // A key computed from one dictionary column.
            let Some((input, map)) = mapped_key(expr, &output, &below, &scanned, file_schema)?
            else {
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
    if as_dictionary.is_empty() {
        return Ok(None);
    }
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
        return Ok(None);
    }
    let filter_reads = |i: usize| {
        filter.as_ref().is_some_and(|(_, predicate)| {
            !filter_keeps(predicate, &|c: &Column| c.index() == below[i])
        })
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
    let input_schema = agg.input().schema();
    let mut derived = Vec::new();
    let mut aggregates = Vec::new();
    for a in agg.aggr_expr() {
        let args = a
            .expressions()
            .iter()
            .map(|e| derive(e, &derivable, &mut derived, input_schema.fields().len()))
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
    let new_scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(new_config);
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

/// The parts of aggregate arguments computed per dictionary (see
/// `rewrite`), and their fields after a batch's columns.
#[derive(Debug)]
struct Parts {
    derived: Vec<Derived>,
    fields: Vec<arrow::datatypes::FieldRef>,
}

/// One part: the input column it reads and the expression, over that
/// column as column 0 (once built).
#[derive(Debug, Clone)]
struct Derived {
    input: usize,
    part: Arc<dyn PhysicalExpr>,
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

/// `expr` (over one string column as column 0) over a dictionary's values
/// and then a null: what it gives for each index, and for a null.
fn through_dictionary(expr: &Arc<dyn PhysicalExpr>, values: &StringArray) -> Result<ArrayRef> {
    let with_null = arrow::compute::concat(&[values as &dyn Array, &StringArray::new_null(1)])?;
    let schema = Arc::new(Schema::new(vec![arrow::datatypes::Field::new(
        "v",
        DataType::Utf8,
        true,
    )]));
    let batch = RecordBatch::try_new(schema, vec![with_null])?;
    expr.evaluate(&batch)?.into_array(batch.num_rows())
}

/// A column read as a dictionary (input column `input`): its keys and its
/// string values.
fn dictionary_of(
    column: &ArrayRef,
    input: usize,
) -> Result<(&arrow::array::Int32DictionaryArray, &StringArray)> {
    let Some(dict) = column.as_dictionary_opt::<Int32Type>() else {
        return Err(DataFusionError::Internal(format!(
            "DictionaryKeyAggregateExec: column {input} arrived as {}, not a dictionary",
            column.data_type()
        )));
    };
    let Some(strings) = dict.values().as_string_opt::<i32>() else {
        return Err(DataFusionError::Internal(format!(
            "DictionaryKeyAggregateExec: dictionary of {} values",
            dict.values().data_type()
        )));
    };
    Ok((dict, strings))
}

/// Each row's index into the dictionary `values`, a null's after them
/// (where `through_dictionary` and the key numbers put a null).
fn dictionary_codes(dict: &arrow::array::Int32DictionaryArray, values: &StringArray) -> Vec<u32> {
    let keys = dict.keys();
    if keys.null_count() == 0 {
        return keys.values().iter().map(|&v| v as u32).collect();
    }
    let null_code = values.len() as u32;
    keys.iter()
        .map(|k| k.map_or(null_code, |k| k as u32))
        .collect()
}

/// Whether `a` and `b` are the same dictionary (the reader hands the same
/// buffers to every batch of a column chunk).
fn same_dictionary(a: &StringArray, b: &StringArray) -> bool {
    a.len() == b.len()
        && a.value_offsets().as_ptr() == b.value_offsets().as_ptr()
        && a.values().as_ptr() == b.values().as_ptr()
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

/// A partial aggregate over group keys that arrive as dictionaries or
/// integers (see the [module documentation](self)).
#[derive(Debug)]
pub struct DictionaryKeyAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    keys: Vec<Key>,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    parts: Arc<Parts>,
    schema: SchemaRef,
    names: Vec<String>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DictionaryKeyAggregateExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        keys: Vec<Key>,
        aggregates: Vec<Arc<AggregateFunctionExpr>>,
        parts: Arc<Parts>,
        schema: SchemaRef,
        names: Vec<String>,
    ) -> Self {
        let partitions = input.properties().output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DictionaryKeyAggregateExec {
            input,
            keys,
            aggregates,
            parts,
            schema,
            names,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DictionaryKeyAggregateExec {
    /// The input columns it groups by, in the order of its output's keys.
    pub fn key_inputs(&self) -> Vec<usize> {
        self.keys.iter().map(|k| k.input).collect()
    }
}

impl DisplayAs for DictionaryKeyAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let aggr: Vec<&str> = self.aggregates.iter().map(|a| a.name()).collect();
        write!(
            f,
            "DictionaryKeyAggregateExec: gby=[{}], aggr=[{}]",
            self.names.join(", "),
            aggr.join(", ")
        )?;
        if !self.parts.derived.is_empty() {
            let parts: Vec<String> = self
                .parts
                .derived
                .iter()
                .map(|d| format!("{} of #{}", d.part, d.input))
                .collect();
            write!(f, ", per_dictionary=[{}]", parts.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DictionaryKeyAggregateExec {
    fn name(&self) -> &str {
        "DictionaryKeyAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for a in &self.aggregates {
            for e in a.expressions() {
                if f(&e)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(DictionaryKeyAggregateExec::new(
            crate::query::only_child(children, "DictionaryKeyAggregateExec")?,
            self.keys.clone(),
            self.aggregates.clone(),
            Arc::clone(&self.parts),
            Arc::clone(&self.schema),
            self.names.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, Arc::clone(&context))?;
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let reservation = MemoryConsumer::new(format!("DictionaryKeyAggregateExec[{partition}]"))
            .register(context.memory_pool());
        let mut state = Grouping::new(
            self.keys.clone(),
            &self.aggregates,
            Arc::clone(&self.parts),
            reservation,
        )?;
        let schema = Arc::clone(&self.schema);
        let batch_size = context.session_config().batch_size();
        Ok(crate::query::stream_of_batches(
            Arc::clone(&self.schema),
            async move {
                while let Some(batch) = input.next().await {
                    let batch = batch?;
                    let _timer = metrics.elapsed_compute().timer();
                    state.update(&batch)?;
                }
                let _timer = metrics.elapsed_compute().timer();
                let out = state.emit(&schema, batch_size)?;
                metrics.record_output(out.iter().map(RecordBatch::num_rows).sum());
                Ok(out)
            },
        ))
    }
}

/// The global numbering of one key column's values.
#[derive(Default)]
struct KeyValues {
    strings: HashMap<Box<str>, u32>,
    integers: HashMap<i64, u32>,
    /// Value of each number: `None` is null.
    string_of: Vec<Option<Box<str>>>,
    integer_of: Vec<Option<i64>>,
    null: Option<u32>,
    /// The dictionary last mapped (kept alive, so that its buffers' address
    /// identifies it) and its values' numbers, then the number of the key
    /// a null gives; shared by the batches of its column chunk.
    cached: Option<(StringArray, Arc<[u32]>)>,
    bytes: usize,
}

impl KeyValues {
    fn count(&self) -> usize {
        self.string_of.len().max(self.integer_of.len())
    }

    fn null_id(&mut self, kind: KeyKind) -> u32 {
        if let Some(n) = self.null {
            return n;
        }
        let n = self.count() as u32;
        match kind {
            KeyKind::Dictionary => self.string_of.push(None),
            KeyKind::Integer => self.integer_of.push(None),
        }
        self.null = Some(n);
        n
    }

    fn string_id(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.strings.get(s) {
            return n;
        }
        let n = self.count() as u32;
        let boxed: Box<str> = s.into();
        self.bytes += 2 * s.len() + 48;
        self.string_of.push(Some(boxed.clone()));
        self.strings.insert(boxed, n);
        n
    }

    fn integer_id(&mut self, v: i64) -> u32 {
        if let Some(&n) = self.integers.get(&v) {
            return n;
        }
        let n = self.count() as u32;
        self.bytes += 40;
        self.integer_of.push(Some(v));
        self.integers.insert(v, n);
        n
    }

    /// The numbers of `dict`'s values (through `map`, for a computed key,
    /// with the number of what `map` makes of a null), computed once per
    /// dictionary.
    fn dictionary_ids(
        &mut self,
        values: &StringArray,
        map: Option<&Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<[u32]>> {
        if !self
            .cached
            .as_ref()
            .is_some_and(|(c, _)| same_dictionary(c, values))
        {
            let ids = match map {
                None => {
                    let mut ids = self.string_ids(values);
                    ids.push(self.null_id(KeyKind::Dictionary));
                    ids
                }
                Some(map) => {
                    let mapped = through_dictionary(map, values)?;
                    let Some(mapped) = mapped.as_string_opt::<i32>() else {
                        return Err(DataFusionError::Internal(format!(
                            "DictionaryKeyAggregateExec: a computed key gave {}",
                            mapped.data_type()
                        )));
                    };
                    self.string_ids(mapped)
                }
            };
            self.cached = Some((values.clone(), ids.into()));
        }
        let (_, ids) = self.cached.as_ref().expect("set above");
        Ok(Arc::clone(ids))
    }

    fn string_ids(&mut self, values: &StringArray) -> Vec<u32> {
        (0..values.len())
            .map(|i| {
                if values.is_null(i) {
                    self.null_id(KeyKind::Dictionary)
                } else {
                    self.string_id(values.value(i))
                }
            })
            .collect()
    }
}

/// One batch's key column as local codes `0..len` and each code's global
/// number.
struct LocalKey {
    codes: Vec<u32>,
    globals: Arc<[u32]>,
}

/// Local codes `0..` of a batch's integer key values, and the value of
/// each code (runs are cheap: `event_date` is one value per lake file).
fn local_integers(raw: &[Option<i64>]) -> (Vec<u32>, Vec<Option<i64>>) {
    let mut codes = Vec::with_capacity(raw.len());
    let mut distinct = Vec::new();
    let mut seen: HashMap<Option<i64>, u32> = HashMap::default();
    let mut last: Option<(Option<i64>, u32)> = None;
    for &v in raw {
        let code = match last {
            Some((lv, c)) if lv == v => c,
            _ => {
                let c = *seen.entry(v).or_insert_with(|| {
                    distinct.push(v);
                    (distinct.len() - 1) as u32
                });
                last = Some((v, c));
                c
            }
        };
        codes.push(code);
    }
    (codes, distinct)
}

/// The groups seen so far and their accumulators.
struct Grouping {
    keys: Vec<Key>,
    values: Vec<KeyValues>,
    /// Each aggregate's argument expressions and its accumulator.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// The parts computed per dictionary, and each one's values for the
    /// dictionary it last saw.
    parts: Arc<Parts>,
    part_values: Vec<Option<(StringArray, ArrayRef)>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Each group's global key numbers, `keys.len()` per group.
    group_keys: Vec<u32>,
    groups: GroupIndex,
    reservation: MemoryReservation,
    /// Scratch: each row's group.
    rows: Vec<usize>,
    /// The dense table of the last batch (group by local key codes) and
    /// the global numbers of each key's local codes it was built for.
    table: Vec<u32>,
    table_keys: Vec<Arc<[u32]>>,
    /// Where the key combinations are too many for a dense table (two keys
    /// of a few thousand values each, `device_id` and `account_id`): the
    /// groups of the combinations seen, by local key codes, for the same
    /// dictionaries as `table_keys`.
    sparse: HashMap<u64, u32>,
}

/// Group numbers by the key numbers of a group: up to four keys packed
/// into one integer.
enum GroupIndex {
    Packed(HashMap<u128, u32>),
    Wide(HashMap<Box<[u32]>, u32>),
}

/// Above this many key combinations per batch (relative to its rows), a
/// batch's rows are numbered by hashing each row's key numbers instead of
/// through a dense table.
const DENSE_LIMIT: usize = 1 << 16;

impl Grouping {
    fn new(
        keys: Vec<Key>,
        aggregates: &[Arc<AggregateFunctionExpr>],
        parts: Arc<Parts>,
        reservation: MemoryReservation,
    ) -> Result<Self> {
        let values = keys.iter().map(|_| KeyValues::default()).collect();
        let keys_len = keys.len();
        Ok(Grouping {
            keys,
            values,
            arguments: aggregates.iter().map(|a| a.expressions()).collect(),
            part_values: vec![None; parts.derived.len()],
            parts,
            accumulators: aggregates
                .iter()
                .map(|a| a.create_groups_accumulator())
                .collect::<Result<_>>()?,
            group_keys: Vec::new(),
            groups: if keys_len <= 4 {
                GroupIndex::Packed(HashMap::default())
            } else {
                GroupIndex::Wide(HashMap::default())
            },
            reservation,
            rows: Vec::new(),
            table: Vec::new(),
            table_keys: Vec::new(),
            sparse: HashMap::default(),
        })
    }

    fn local_key(&mut self, k: usize, batch: &RecordBatch) -> Result<LocalKey> {
        let key = &self.keys[k];
        let column = batch.column(key.input);
        let values = &mut self.values[k];
        match key.kind {
            KeyKind::Dictionary => {
                let (dict, strings) = dictionary_of(column, key.input)?;
                // The dictionary's numbers, then a null's.
                let globals = values.dictionary_ids(strings, key.map.as_ref())?;
                Ok(LocalKey {
                    codes: dictionary_codes(dict, strings),
                    globals,
                })
            }
            KeyKind::Integer => {
                let raw: Vec<Option<i64>> = match column.data_type() {
                    DataType::Date32 => column
                        .as_primitive::<Date32Type>()
                        .iter()
                        .map(|v| v.map(i64::from))
                        .collect(),
                    DataType::Int32 => column
                        .as_primitive::<Int32Type>()
                        .iter()
                        .map(|v| v.map(i64::from))
                        .collect(),
                    DataType::Int64 => column.as_primitive::<Int64Type>().iter().collect(),
                    other => {
                        return Err(DataFusionError::Internal(format!(
                            "DictionaryKeyAggregateExec: integer key of type {other}"
                        )))
                    }
                };
                let (codes, distinct) = local_integers(&raw);
                let globals = distinct
                    .into_iter()
                    .map(|v| match v {
                        Some(v) => values.integer_id(v),
                        None => values.null_id(KeyKind::Integer),
                    })
                    .collect();
                Ok(LocalKey { codes, globals })
            }
        }
    }

    fn group_of(&mut self, key: &[u32]) -> u32 {
        let next = (self.group_keys.len() / key.len().max(1)) as u32;
        let g = match &mut self.groups {
            GroupIndex::Packed(map) => {
                let packed = key.iter().fold(0u128, |p, &k| (p << 32) | u128::from(k));
                *map.entry(packed).or_insert(next)
            }
            GroupIndex::Wide(map) => {
                if let Some(&g) = map.get(key) {
                    g
                } else {
                    map.insert(key.into(), next);
                    next
                }
            }
        };
        if g == next {
            self.group_keys.extend_from_slice(key);
        }
        g
    }

    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let locals = (0..self.keys.len())
            .map(|k| self.local_key(k, batch))
            .collect::<Result<Vec<_>>>()?;
        let combinations = locals
            .iter()
            .try_fold(1usize, |n, l| n.checked_mul(l.globals.len().max(1)));
        self.rows.clear();
        self.rows.reserve(rows);
        let mut key = vec![0u32; locals.len()];
        // The previous batch's tables still hold when every key's local
        // codes mean the same global numbers (batches of one column chunk
        // share its dictionary).
        let same = self.table_keys.len() == locals.len()
            && self
                .table_keys
                .iter()
                .zip(&locals)
                .all(|(t, l)| Arc::ptr_eq(t, &l.globals) || **t == *l.globals);
        if !same {
            self.table.clear();
            self.sparse.clear();
            self.table_keys = locals.iter().map(|l| Arc::clone(&l.globals)).collect();
        }
        match combinations {
            Some(n) if n <= DENSE_LIMIT.max(rows) => {
                let mut table = std::mem::take(&mut self.table);
                if table.len() != n {
                    table.clear();
                    table.resize(n, u32::MAX);
                }
                for i in 0..rows {
                    let mut at = 0usize;
                    for l in &locals {
                        at = at * l.globals.len() + l.codes[i] as usize;
                    }
                    let mut g = table[at];
                    if g == u32::MAX {
                        for (k, l) in locals.iter().enumerate() {
                            key[k] = l.globals[l.codes[i] as usize];
                        }
                        g = self.group_of(&key);
                        table[at] = g;
                    }
                    self.rows.push(g as usize);
                }
                self.table = table;
            }
            Some(_) => {
                let mut sparse = std::mem::take(&mut self.sparse);
                for i in 0..rows {
                    let mut at = 0u64;
                    for l in &locals {
                        at = at * l.globals.len() as u64 + u64::from(l.codes[i]);
                    }
                    let g = match sparse.get(&at) {
                        Some(&g) => g,
                        None => {
                            for (k, l) in locals.iter().enumerate() {
                                key[k] = l.globals[l.codes[i] as usize];
                            }
                            let g = self.group_of(&key);
                            sparse.insert(at, g);
                            g
                        }
                    };
                    self.rows.push(g as usize);
                }
                self.sparse = sparse;
            }
            None => {
                for i in 0..rows {
                    for (k, l) in locals.iter().enumerate() {
                        key[k] = l.globals[l.codes[i] as usize];
                    }
                    let g = self.group_of(&key);
                    self.rows.push(g as usize);
                }
            }
        }
        let total = self.group_count();
        let augmented = self.with_parts(batch)?;
        let batch = augmented.as_ref().unwrap_or(batch);
        for (exprs, acc) in self.arguments.iter().zip(self.accumulators.iter_mut()) {
            let args = exprs
                .iter()
                .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
                .collect::<Result<Vec<_>>>()?;
            acc.update_batch(&args, &self.rows, None, total)?;
        }
        self.reservation.try_resize(self.size())?;
        Ok(())
    }

    /// `batch` with the parts computed per dictionary after its columns
    /// (`None` when there are none).
    fn with_parts(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        if self.parts.derived.is_empty() {
            return Ok(None);
        }
        let mut columns = batch.columns().to_vec();
        for (d, cached) in self.parts.derived.iter().zip(self.part_values.iter_mut()) {
            let (dict, strings) = dictionary_of(batch.column(d.input), d.input)?;
            if !cached
                .as_ref()
                .is_some_and(|(c, _)| same_dictionary(c, strings))
            {
                *cached = Some((strings.clone(), through_dictionary(&d.part, strings)?));
            }
            let (_, per_value) = cached.as_ref().expect("set above");
            let indices = arrow::array::UInt32Array::from(dictionary_codes(dict, strings));
            columns.push(arrow::compute::take(per_value.as_ref(), &indices, None)?);
        }
        let fields: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .chain(&self.parts.fields)
            .cloned()
            .collect();
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?))
    }

    fn group_count(&self) -> usize {
        self.group_keys.len() / self.keys.len().max(1)
    }

    /// Bytes held: the key numbering, the groups and the accumulators.
    fn size(&self) -> usize {
        let keys: usize = self.values.iter().map(|v| v.bytes).sum();
        let groups = self.group_count() * (self.keys.len() * 8 + 32) + self.group_keys.len() * 4;
        let accs: usize = self.accumulators.iter().map(|a| a.size()).sum();
        keys + groups
            + accs
            + self.rows.capacity() * 8
            + self.table.capacity() * 4
            + self.sparse.capacity() * 16
    }

    /// The partial aggregate's output: keys as `schema` has them, then the
    /// accumulators' states, in batches of `batch_size` rows.
    fn emit(mut self, schema: &SchemaRef, batch_size: usize) -> Result<Vec<RecordBatch>> {
        let groups = self.group_count();
        if groups == 0 {
            return Ok(Vec::new());
        }
        let n = self.keys.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (k, key) in self.keys.iter().enumerate() {
            let values = &self.values[k];
            let ids = (0..groups).map(|g| self.group_keys[g * n + k] as usize);
            let array: ArrayRef = match (&key.kind, &key.output) {
                (KeyKind::Dictionary, _) => {
                    let mut b = StringBuilder::with_capacity(groups, groups * 8);
                    for id in ids {
                        b.append_option(values.string_of[id].as_deref());
                    }
                    Arc::new(b.finish())
                }
                (KeyKind::Integer, DataType::Date32) => Arc::new(Date32Array::from_iter(
                    ids.map(|id| values.integer_of[id].map(|v| v as i32)),
                )),
                (KeyKind::Integer, DataType::Int32) => Arc::new(Int32Array::from_iter(
                    ids.map(|id| values.integer_of[id].map(|v| v as i32)),
                )),
                (KeyKind::Integer, _) => {
                    Arc::new(Int64Array::from_iter(ids.map(|id| values.integer_of[id])))
                }
            };
            columns.push(array);
        }
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(schema), columns)?;
        self.reservation.free();
        let step = batch_size.max(1);
        Ok((0..groups)
            .step_by(step)
            .map(|at| batch.slice(at, step.min(groups - at)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testlake::{lake, sessions};
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

    #[test]
    fn integer_keys_get_codes_per_distinct_value() {
        let (codes, distinct) = local_integers(&[Some(3), Some(3), None, Some(4), Some(3), None]);
        assert_eq!(codes, [0, 0, 1, 2, 0, 1]);
        assert_eq!(distinct, [Some(3), None, Some(4)]);
    }
}
