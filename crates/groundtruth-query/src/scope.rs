//! The region scope as a wall under the query.
//!
//! A regional caller's `events` is [`ScopedEvents`]: its scan reads the
//! lake and keeps only the rows of the caller's regions inside one leaf
//! operator, [`ScopedEventsExec`], before any expression the caller wrote
//! sees a row. A filter on a view would not do: the optimizer merges the
//! scope's predicate and the caller's into one conjunction (evaluated on
//! every row, in any order), so `CAST(CASE WHEN region LIKE '4503%' THEN
//! account_id END AS INT)` failed on another region's row and the error
//! quoted it.
//!
//! * The caller's filters never reach the lake's scan, except plain
//!   comparisons of a column with constants ([`harmless`]: they cannot
//!   fail or call anything), which prune files and row groups; all of them
//!   are still applied above the wall.
//! * The leaf has no children in the plan: no optimizer rule can push a
//!   filter, projection or dynamic join filter through it, nor swap it.
//! * `EXPLAIN` shows `ScopedEventsExec: scope=4501` and the scoped row
//!   counts, not the lake's files or nationwide figures.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion::prelude::{col, lit};
use futures::StreamExt;
use groundtruth_store::Scope;

/// The lake's events as one region scope sees them.
#[derive(Debug)]
pub struct ScopedEvents {
    inner: Arc<dyn TableProvider>,
    scope: Scope,
}

impl ScopedEvents {
    /// `inner`: the lake's whole `events` (it must have a `region` column).
    pub fn new(inner: Arc<dyn TableProvider>, scope: Scope) -> ScopedEvents {
        ScopedEvents { inner, scope }
    }
}

/// Whether `e` can be evaluated on any row without failing or calling a
/// function: a column compared with constants (`=`, `<`, `IN`, `BETWEEN`,
/// `LIKE` a constant pattern, `IS NULL`), and `AND`/`OR`/`NOT` of those.
/// Only these are handed to the lake's scan (to prune files by their
/// statistics).
pub fn harmless(e: &Expr) -> bool {
    let column = |e: &Expr| matches!(e, Expr::Column(_));
    let constant = |e: &Expr| matches!(e, Expr::Literal(..));
    match e {
        Expr::BinaryExpr(b) => match b.op {
            Operator::And | Operator::Or => harmless(&b.left) && harmless(&b.right),
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom => {
                (column(&b.left) && constant(&b.right)) || (constant(&b.left) && column(&b.right))
            }
            _ => false,
        },
        Expr::Not(inner) => harmless(inner),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => column(inner),
        Expr::InList(l) => column(&l.expr) && l.list.iter().all(constant),
        Expr::Between(b) => column(&b.expr) && constant(&b.low) && constant(&b.high),
        Expr::Like(l) => column(&l.expr) && constant(&l.pattern) && l.escape_char.is_none(),
        _ => false,
    }
}

#[async_trait]
impl TableProvider for ScopedEvents {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: every filter is also applied above the wall.
        Ok(filters
            .iter()
            .map(|f| {
                if harmless(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.inner.schema();
        let region = schema.index_of("region")?;
        // Read the asked columns and the region; the wall drops the region
        // again when it was not asked for.
        let mut read: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let keep: Vec<usize> = (0..read.len()).collect();
        let region_at = match read.iter().position(|&i| i == region) {
            Some(at) => at,
            None => {
                read.push(region);
                read.len() - 1
            }
        };
        let mut pruning: Vec<Expr> = filters.iter().filter(|f| harmless(f)).cloned().collect();
        if !self.scope.is_nationwide() {
            pruning.push(col("region").like(lit(self.scope.like_pattern())));
        }
        let inner = self.inner.scan(state, Some(&read), &pruning, None).await?;
        Ok(Arc::new(ScopedEventsExec::new(
            inner,
            self.scope.clone(),
            region_at,
            keep,
        )))
    }
}

/// Reads the lake's events and passes on only the rows of one scope (see
/// the [module documentation](self)). A leaf: the scan it runs is not a
/// child in the plan.
#[derive(Debug)]
pub struct ScopedEventsExec {
    inner: Arc<dyn ExecutionPlan>,
    scope: Scope,
    /// Position of `region` in the inner scan's output.
    region_at: usize,
    /// The inner scan's columns passed on.
    keep: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ScopedEventsExec {
    fn new(
        inner: Arc<dyn ExecutionPlan>,
        scope: Scope,
        region_at: usize,
        keep: Vec<usize>,
    ) -> ScopedEventsExec {
        let schema = Arc::new(
            inner
                .schema()
                .project(&keep)
                .unwrap_or_else(|_| inner.schema().as_ref().clone()),
        );
        let partitions = inner.output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ScopedEventsExec {
            inner,
            scope,
            region_at,
            keep,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl DisplayAs for ScopedEventsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "ScopedEventsExec: scope={}, projection=[{}]",
            self.scope,
            names.join(", ")
        )
    }
}

/// The rows of `batch` whose region starts with `prefix` (an empty prefix:
/// every row with a region).
fn in_scope(batch: &RecordBatch, region_at: usize, prefix: &str) -> Result<BooleanArray> {
    let region = cast(batch.column(region_at), &DataType::Utf8)?;
    let region = region.as_string::<i32>();
    Ok((0..region.len())
        .map(|i| Some(region.is_valid(i) && region.value(i).starts_with(prefix)))
        .collect())
}

impl ExecutionPlan for ScopedEventsExec {
    fn name(&self) -> &str {
        "ScopedEventsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "ScopedEventsExec is a leaf: it takes no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let input = self.inner.execute(partition, context)?;
        let prefix = self.scope.to_string();
        let prefix = if self.scope.is_nationwide() {
            String::new()
        } else {
            prefix
        };
        let (region_at, keep) = (self.region_at, self.keep.clone());
        let scoped = input.map(move |batch| {
            let batch = batch?;
            let timer = baseline.elapsed_compute().timer();
            let mask = in_scope(&batch, region_at, &prefix)?;
            let kept = filter_record_batch(&batch, &mask)?.project(&keep)?;
            timer.done();
            baseline.record_output(kept.num_rows());
            Ok(kept)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            scoped,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
