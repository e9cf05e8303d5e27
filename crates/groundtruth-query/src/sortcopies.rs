//! Counting the copies a sort makes.
//!
//! DataFusion's sort reserves memory for the batches it buffers, not for
//! the sorted copies it makes of them: when its reservation fills it
//! sorts every buffered batch into new ones before it tries to spill
//! (and, with no disk, fails), and at the end it sorts them into new ones
//! again. A sort with a 64 MB pool was measured at 173 MB over the idle
//! process when it failed. [`SortCopiesRule`] (a physical optimizer rule
//! of an analyst's session) puts a [`SortCopiesExec`] under every full
//! sort: it passes the batches through and reserves as many bytes again
//! for each, held until the query ends, so what the pool counts is what
//! the sort will need; the query fails before the sort copies anything
//! it could not hold. A sort with a limit (top-k) keeps only its k rows
//! and is left alone.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};

use crate::gate::{Check, Gate, GateExec};

/// Puts a [`SortCopiesExec`] under every sort without a limit.
#[derive(Debug, Default)]
pub struct SortCopiesRule;

impl PhysicalOptimizerRule for SortCopiesRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        groundtruth_sql::rewrite_nodes(plan, |node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(None);
            };
            if sort.fetch().is_some() || sort.input().downcast_ref::<SortCopiesExec>().is_some() {
                return Ok(None);
            }
            let counted = Arc::new(SortCopiesExec::new(
                Arc::clone(sort.input()),
                Arc::new(SortCopies),
            )) as Arc<dyn ExecutionPlan>;
            // The same properties: the node below passes its input's on.
            Arc::clone(node)
                .replace_children(
                    vec![counted],
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
                )
                .map(Some)
        })
    }

    fn name(&self) -> &str {
        "groundtruth_sort_copies"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input through, reserving each batch's bytes once more in the
/// query's pool until the query ends.
pub type SortCopiesExec = GateExec<SortCopies>;

/// The check of a [`SortCopiesExec`].
#[derive(Debug)]
pub struct SortCopies;

impl Gate for SortCopies {
    const NAME: &'static str = "SortCopiesExec";

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SortCopiesExec")
    }

    fn open(&self, partition: usize, context: &Arc<TaskContext>) -> Check {
        let copies =
            MemoryConsumer::new(format!("SortCopies[{partition}]")).register(context.memory_pool());
        Box::new(move |batch| {
            copies.try_grow(batch.get_array_memory_size())?;
            Ok(batch)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn ctx(with_rule: bool, pool_bytes: Option<usize>) -> SessionContext {
        // No spilling, as in an analyst's session.
        let mut runtime = RuntimeEnvBuilder::new().with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        );
        if let Some(b) = pool_bytes {
            runtime = runtime.with_memory_pool(Arc::new(GreedyMemoryPool::new(b)));
        }
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(
                SessionConfig::new()
                    .with_target_partitions(2)
                    .with_batch_size(1024),
            )
            .with_runtime_env(runtime.build_arc().unwrap());
        if with_rule {
            state = state.with_physical_optimizer_rule(Arc::new(SortCopiesRule));
        }
        SessionContext::new_with_state(state.build())
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn sorts_answer_as_without_the_rule() {
        let (ours, plain) = (ctx(true, None), ctx(false, None));
        for sql in [
            "SELECT value % 7 AS k, value FROM range(20000) ORDER BY 1, 2 DESC",
            "SELECT k, count(*) FROM (SELECT value % 13 AS k FROM range(5000)) GROUP BY k ORDER BY k",
            "SELECT value, row_number() OVER (PARTITION BY value % 3 ORDER BY value DESC) FROM range(300) ORDER BY 1",
            "SELECT value FROM range(1000) ORDER BY value DESC LIMIT 5",
            "SELECT md5(CAST(value AS VARCHAR)) AS h FROM range(3000) ORDER BY h",
        ] {
            assert_eq!(
                rows(&ours, sql).await.unwrap(),
                rows(&plain, sql).await.unwrap(),
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn full_sorts_are_counted_twice_and_top_k_is_left_alone() {
        let ctx = ctx(true, None);
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let df = ctx.sql(sql).await.unwrap();
                let plan = df.create_physical_plan().await.unwrap();
                let shown = datafusion::physical_plan::displayable(plan.as_ref())
                    .indent(false)
                    .to_string();
                shown
            }
        };
        let full = plan("SELECT value FROM range(1000) ORDER BY value DESC").await;
        assert_eq!(full.matches("SortCopiesExec").count(), 1, "{full}");
        let pos = |s: &str| full.find(s).unwrap();
        assert!(
            pos("SortExec") < pos("SortCopiesExec"),
            "under the sort: {full}"
        );
        let top = plan("SELECT value FROM range(1000) ORDER BY value DESC LIMIT 5").await;
        assert!(!top.contains("SortCopiesExec"), "{top}");
    }

    #[tokio::test]
    async fn a_sort_too_big_for_its_pool_fails_with_a_memory_error() {
        // 1.3 MB of strings, counted twice, does not fit 2 MB; it fits 64.
        let sql = "SELECT repeat(md5(CAST(value AS VARCHAR)), 2) AS s FROM range(20000) ORDER BY s";
        let e = rows(&ctx(true, Some(2 << 20)), sql).await.unwrap_err();
        assert!(
            matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)),
            "{e}"
        );
        let big = rows(&ctx(true, Some(64 << 20)), sql).await.unwrap();
        assert_eq!(big, rows(&ctx(false, None), sql).await.unwrap());
    }
}
