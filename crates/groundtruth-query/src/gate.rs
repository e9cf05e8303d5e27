//! A node that passes its input's batches through a check: the shape of
//! the query limits that live inside a plan ([`crate::deadline`],
//! [`crate::sortcopies`]). It changes no row and no property of its input.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// The check one partition's batches go through, made when its stream
/// starts: the batch passed on, or the error that ends the query.
pub type Check = Box<dyn FnMut(RecordBatch) -> Result<RecordBatch> + Send>;

/// What a [`GateExec`] checks.
pub trait Gate: fmt::Debug + Send + Sync + 'static {
    /// The node's name in plans.
    const NAME: &'static str;

    /// How `EXPLAIN` shows the node.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    fn open(&self, partition: usize, context: &Arc<TaskContext>) -> Check;
}

/// Passes `input`'s batches through `gate`'s check.
#[derive(Debug)]
pub struct GateExec<G> {
    input: Arc<dyn ExecutionPlan>,
    gate: Arc<G>,
}

impl<G: Gate> GateExec<G> {
    pub fn new(input: Arc<dyn ExecutionPlan>, gate: Arc<G>) -> GateExec<G> {
        GateExec { input, gate }
    }
}

impl<G: Gate> DisplayAs for GateExec<G> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.gate.describe(f)
    }
}

impl<G: Gate> ExecutionPlan for GateExec<G> {
    fn name(&self) -> &str {
        G::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(GateExec {
                input,
                gate: Arc::clone(&self.gate),
            })),
            _ => Err(DataFusionError::Internal(format!(
                "{} needs one child",
                G::NAME
            ))),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let mut check = self.gate.open(partition, &context);
        let input = self.input.execute(partition, context)?;
        let checked = input.map(move |batch| batch.and_then(&mut check));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, checked)))
    }
}
