//! Helpers the rules and the plan nodes share: rewriting a physical plan
//! bottom up, rebuilding a one-child node, streaming a result computed
//! whole. (Apart from the session, which registers the rules: no module
//! here imports the one that imports it.)

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// `plan` with every node that `rewrite` answers (bottom up) replaced by
/// its answer: the body of groundtruth's physical optimizer rules.
pub fn rewrite_nodes(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    rewrite: impl Fn(
        &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> datafusion::common::Result<
        Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    >,
) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    plan.transform_up(|node| {
        Ok(match rewrite(&node)? {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// The one child of a one-input plan node being rebuilt (`name` says
/// which node in the error when there is not exactly one).
pub(crate) fn only_child(
    mut children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    name: &str,
) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(input), true) => Ok(input),
        _ => Err(datafusion::common::DataFusionError::Internal(format!(
            "{name} needs one child"
        ))),
    }
}

/// A stream of the batches `batches` resolves to (or of its error), for
/// a node that computes its whole output before giving any of it.
pub(crate) fn stream_of_batches(
    schema: SchemaRef,
    batches: impl std::future::Future<Output = datafusion::common::Result<Vec<RecordBatch>>>
        + Send
        + 'static,
) -> datafusion::execution::SendableRecordBatchStream {
    use futures::StreamExt;
    let out = futures::stream::once(batches)
        .map(|r| match r {
            Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).left_stream(),
            Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten();
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, out))
}
