//! The physical node of the [`DictionaryKeys`](crate::rules::dictionary_keys::DictionaryKeys)
//! rule: a partial aggregate whose group keys arrive as Parquet
//! dictionaries (or integers) and are grouped by dictionary index, feeding
//! DataFusion's own group accumulators. What it computes and where it may
//! stand is the rule's [module documentation](crate::rules::dictionary_keys).

use foldhash::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Date32Type, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// How a group key column arrives in the new plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeyKind {
    /// A string column read as `Dictionary(Int32, Utf8)`.
    Dictionary,
    /// `Date32`, `Int32` or `Int64`, kept as it is.
    Integer,
}

/// One group key: its column in the scan's output and how it is read.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) input: usize,
    pub(crate) kind: KeyKind,
    /// The type the partial aggregate outputs for it.
    pub(crate) output: DataType,
    /// A key computed from one dictionary column (`coalesce(region, '')`):
    /// the expression over that column alone (column 0), evaluated once
    /// per dictionary over its values.
    pub(crate) map: Option<Arc<dyn PhysicalExpr>>,
}

/// The parts of aggregate arguments computed per dictionary (see
/// `rewrite`), and their fields after a batch's columns.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) derived: Vec<Derived>,
    pub(crate) fields: Vec<arrow::datatypes::FieldRef>,
}

/// One part: the input column it reads and the expression, over that
/// column as column 0 (once built).
#[derive(Debug, Clone)]
pub(crate) struct Derived {
    pub(crate) input: usize,
    pub(crate) part: Arc<dyn PhysicalExpr>,
}

/// `expr` (over one string column as column 0) over a dictionary's values
/// and then a null: what it gives for each index, and for a null.
pub(crate) fn through_dictionary(
    expr: &Arc<dyn PhysicalExpr>,
    values: &StringArray,
) -> Result<ArrayRef> {
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
pub(crate) fn dictionary_of(
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
pub(crate) fn dictionary_codes(
    dict: &arrow::array::Int32DictionaryArray,
    values: &StringArray,
) -> Vec<u32> {
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
pub(crate) fn same_dictionary(a: &StringArray, b: &StringArray) -> bool {
    a.len() == b.len()
        && a.value_offsets().as_ptr() == b.value_offsets().as_ptr()
        && a.values().as_ptr() == b.values().as_ptr()
}

/// A partial aggregate over group keys that arrive as dictionaries or
/// integers (see the [rule's documentation](crate::rules::dictionary_keys)).
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
    pub(crate) fn new(
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
            crate::plan::only_child(children, "DictionaryKeyAggregateExec")?,
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
        Ok(crate::plan::stream_of_batches(
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
    use super::local_integers;

    #[test]
    fn integer_keys_get_codes_per_distinct_value() {
        let (codes, distinct) = local_integers(&[Some(3), Some(3), None, Some(4), Some(3), None]);
        assert_eq!(codes, [0, 0, 1, 2, 0, 1]);
        assert_eq!(distinct, [Some(3), None, Some(4)]);
    }
}
