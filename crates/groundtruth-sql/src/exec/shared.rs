//! The nodes of the [`SharedSubplans`](crate::rules::shared_subplans::SharedSubplans)
//! rule: [`SharedNode`] (a logical subtree computed once for every place
//! that names it), [`SharingQueryPlanner`] (plans each as a [`SharedExec`])
//! and [`SharedExec`] (the first copy asked for a partition runs it and keeps
//! its batches until every copy has read them). The why and the limits are
//! the rule's [module documentation](crate::rules::shared_subplans).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, DataFusionError, Result, Statistics};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

/// A subtree computed once for every place that names it (see the
/// [module documentation](self)); `id` tells the copies of one subtree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct SharedNode {
    pub(crate) id: usize,
    pub(crate) input: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for SharedNode {
    fn name(&self) -> &str {
        "Shared"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shared: id={}", self.id)
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        match (exprs.is_empty(), inputs.pop(), inputs.is_empty()) {
            (true, Some(input), true) => Ok(SharedNode { id: self.id, input }),
            _ => Err(DataFusionError::Internal(
                "a Shared node has one input and no expressions".into(),
            )),
        }
    }
}

/// The query planner of lake sessions: DataFusion's, with [`SharedNode`]s
/// planned as [`SharedExec`]s (see the [module documentation](self)).
#[derive(Debug, Default)]
pub struct SharingQueryPlanner;

#[async_trait]
impl QueryPlanner for SharingQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Each id's readers: its copies that run (the copies inside a copy
        // that is read, not run, do not).
        let mut readers: HashMap<usize, usize> = HashMap::new();
        logical_plan.apply(|node| {
            if let Some(shared) = as_shared(node) {
                let n = readers.entry(shared.id).or_insert(0);
                *n += 1;
                if *n > 1 {
                    return Ok(TreeNodeRecursion::Jump);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let runtimes = readers
            .into_iter()
            .map(|(id, readers)| (id, Arc::new(SharedRuntime::new(id, readers))))
            .collect();
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(SharedPlanner { runtimes })])
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

pub(crate) fn as_shared(node: &LogicalPlan) -> Option<&SharedNode> {
    match node {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<SharedNode>(),
        _ => None,
    }
}

/// Plans [`SharedNode`]s for one query: `runtimes` by id.
struct SharedPlanner {
    runtimes: HashMap<usize, Arc<SharedRuntime>>,
}

#[async_trait]
impl ExtensionPlanner for SharedPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(shared) = node.as_any().downcast_ref::<SharedNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "a Shared node has one input".into(),
            ));
        };
        let runtime = match self.runtimes.get(&shared.id) {
            Some(r) => Arc::clone(r),
            None => Arc::new(SharedRuntime::new(shared.id, 1)),
        };
        Ok(Some(Arc::new(SharedExec::new(Arc::clone(input), runtime))))
    }
}

/// What the copies of one shared subtree share in one query's execution.
struct SharedRuntime {
    id: usize,
    /// How many copies read it.
    readers: usize,
    /// The physical plan every copy runs: the first copy's to run.
    plan: OnceLock<Arc<dyn ExecutionPlan>>,
    partitions: Mutex<Vec<Arc<tokio::sync::Mutex<Partition>>>>,
}

/// One output partition of a shared subtree.
enum Partition {
    /// Not run yet (or read by every copy, and let go).
    Waiting,
    /// Its run on the shared plan was given up (the reader running it was
    /// dropped, or it failed): a plan's partition runs once, so the other
    /// copies run their own.
    Abandoned,
    /// Run: its batches, and how many copies are still to read them.
    Kept {
        batches: Vec<RecordBatch>,
        unread: usize,
        _reservation: datafusion::execution::memory_pool::MemoryReservation,
    },
}

impl SharedRuntime {
    fn new(id: usize, readers: usize) -> Self {
        SharedRuntime {
            id,
            readers,
            plan: OnceLock::new(),
            partitions: Mutex::new(Vec::new()),
        }
    }

    fn partition(&self, partition: usize) -> Arc<tokio::sync::Mutex<Partition>> {
        let mut all = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if all.len() <= partition {
            all.resize_with(partition + 1, || {
                Arc::new(tokio::sync::Mutex::new(Partition::Waiting))
            });
        }
        Arc::clone(&all[partition])
    }
}

impl fmt::Debug for SharedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRuntime")
            .field("id", &self.id)
            .field("readers", &self.readers)
            .finish_non_exhaustive()
    }
}

/// One copy of a shared subtree (see the [module documentation](self)).
#[derive(Debug)]
pub struct SharedExec {
    input: Arc<dyn ExecutionPlan>,
    runtime: Arc<SharedRuntime>,
}

impl SharedExec {
    fn new(input: Arc<dyn ExecutionPlan>, runtime: Arc<SharedRuntime>) -> Self {
        SharedExec { input, runtime }
    }
}

impl DisplayAs for SharedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedExec: id={}, readers={}",
            self.runtime.id, self.runtime.readers
        )
    }
}

impl ExecutionPlan for SharedExec {
    fn name(&self) -> &str {
        "SharedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // Every copy's input must stay as planned: one computation.
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SharedExec::new(
            crate::plan::only_child(children, "SharedExec")?,
            Arc::clone(&self.runtime),
        )))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match input_stats.first() {
            Some(s) => Ok(Arc::clone(s)),
            None => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let runtime = &self.runtime;
        if runtime.readers < 2 {
            return self.input.execute(partition, context);
        }
        let plan = Arc::clone(runtime.plan.get_or_init(|| Arc::clone(&self.input)));
        if plan.properties().output_partitioning().partition_count()
            != self
                .input
                .properties()
                .output_partitioning()
                .partition_count()
            || plan.schema() != self.input.schema()
        {
            // The optimizer planned this copy differently: run it as it is.
            return self.input.execute(partition, context);
        }
        let slot = runtime.partition(partition);
        let own = Arc::clone(&self.input);
        let readers = runtime.readers;
        let name = format!("SharedExec[{}]", runtime.id);
        let schema = self.schema();
        Ok(crate::plan::stream_of_batches(schema, async move {
            let mut slot = slot.lock().await;
            match &mut *slot {
                Partition::Kept {
                    batches, unread, ..
                } => {
                    let out = batches.clone();
                    *unread -= 1;
                    if *unread == 0 {
                        *slot = Partition::Waiting;
                    }
                    return Ok(out);
                }
                Partition::Abandoned => {
                    drop(slot);
                    if Arc::ptr_eq(&own, &plan) {
                        return Err(DataFusionError::Execution(format!(
                            "{name}: partition {partition} was run and given up already"
                        )));
                    }
                    return datafusion::physical_plan::common::collect(
                        own.execute(partition, context)?,
                    )
                    .await;
                }
                Partition::Waiting => {}
            }
            // Until it is kept, a dropped or failed run leaves it abandoned.
            *slot = Partition::Abandoned;
            let reservation = MemoryConsumer::new(name).register(context.memory_pool());
            let mut stream = plan.execute(partition, context)?;
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
            *slot = Partition::Kept {
                batches: batches.clone(),
                unread: readers - 1,
                _reservation: reservation,
            };
            Ok(batches)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn a_run_given_up_leaves_the_other_copies_their_own() {
        use arrow::array::Int64Array;
        use datafusion::physical_plan::test::exec::{BlockingExec, MockExec};
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let runtime = Arc::new(SharedRuntime::new(7, 2));
        // The first copy's run never ends; its reader is dropped mid-run.
        let first = SharedExec::new(
            Arc::new(BlockingExec::new(Arc::clone(&schema), 1)),
            Arc::clone(&runtime),
        );
        let second = SharedExec::new(
            Arc::new(MockExec::new(vec![Ok(batch)], Arc::clone(&schema))),
            Arc::clone(&runtime),
        );
        let ctx = SessionContext::new();
        let mut stream = first.execute(0, ctx.task_ctx()).unwrap();
        assert!(futures::poll!(stream.next()).is_pending());
        drop(stream);
        let batches = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            collect(Arc::new(second), ctx.task_ctx()),
        )
        .await
        .expect("the second copy runs its own plan, not the given-up one")
        .unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    }
}
