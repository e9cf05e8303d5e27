//! Subqueries a query names more than once, computed once.
//!
//! DataFusion plans a CTE or a view once per place that names it: the
//! `app_health` view names `account_days` (a grouping of every event)
//! through `recent` and again through `app_overlap`'s `users`, which a
//! self-join names twice, so the same scan and the same aggregate ran four
//! times. DuckDB materializes such a CTE once. Here:
//!
//! - [`SharedSubplans`], an analyzer rule that runs after the SQL planner
//!   has inlined the CTEs and views, finds each subtree that occurs at
//!   least twice (not counting copies inside a subtree that is itself
//!   shared) and *reduces* what it reads: below its projections, filters,
//!   aliases, sorts and windows it is a grouping (`GROUP BY`, `DISTINCT`)
//!   over a table, with nothing volatile (`random()`) in it. It wraps each
//!   copy in a [`SharedNode`], the same id for identical subtrees. The
//!   optimizer still optimizes inside the node, but pushes no filter,
//!   projection or limit through it, so the copies stay one computation.
//! - [`SharingQueryPlanner`] counts the shared nodes of the optimized plan
//!   and plans each as a [`SharedExec`] over its copy's physical plan. The
//!   copies of one id share one runtime: the first copy asked for a
//!   partition runs it (always on the plan of the copy that ran first, so
//!   the repartitioning inside is executed once, as a whole), keeps its
//!   batches, reserved in the session's memory pool (an analyst's memory
//!   limit holds, and says `SharedExec` when it is exceeded), until every
//!   copy has read them; the other copies read them.
//!
//! The shared result is one computation whoever reads it: no copy's
//! filter is pushed into it (DataFusion's dynamic join filters included:
//! [`SharedExec`] accepts none), so each reader filters it above.
//!
//! `SET groundtruth.shared_subplans = false` turns the rule off for a session
//! (each copy is then computed as before).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

use crate::exec::shared::{as_shared, SharedNode};

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub struct SharedSubplans;

impl AnalyzerRule for SharedSubplans {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        if !crate::options::rule_options(config).shared_subplans {
            return Ok(plan);
        }
        let mut all = HashMap::new();
        let mut planned = false;
        plan.apply(|node| {
            planned |= as_shared(node).is_some();
            *all.entry(node.clone()).or_insert(0usize) += 1;
            Ok(TreeNodeRecursion::Continue)
        })?;
        // A plan analyzed before (its shared ids are taken) stays as it is.
        if planned || all.values().all(|&n| n < 2) {
            return Ok(plan);
        }
        // Copies inside a shared subtree run once with it: count each
        // subtree as often as it would run.
        let mut runs = HashMap::new();
        count_runs(&plan, &all, &mut runs, &mut HashSet::new());
        let mut ids = HashMap::new();
        share(&plan, &runs, &mut ids)
    }

    fn name(&self) -> &str {
        "groundtruth_shared_subplans"
    }
}

/// Whether `plan` is worth computing once and keeping: it groups what it
/// reads (see the module documentation) and holds only operators that give
/// the same rows every time they run.
fn shareable(plan: &LogicalPlan) -> bool {
    let mut top = plan;
    loop {
        top = match top {
            LogicalPlan::Projection(p) => &p.input,
            LogicalPlan::Filter(f) => &f.input,
            LogicalPlan::SubqueryAlias(a) => &a.input,
            LogicalPlan::Sort(s) => &s.input,
            LogicalPlan::Window(w) => &w.input,
            LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => break,
            _ => return false,
        };
    }
    let mut reads_table = false;
    let mut fixed = true;
    plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(_) => reads_table = true,
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::EmptyRelation(_) => {}
            _ => fixed = false,
        }
        if node.expressions().iter().any(changes) {
            fixed = false;
        }
        Ok(if fixed {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })
    .is_ok_and(|_| reads_table && fixed)
}

/// Whether `expr` may give another answer when run again (a volatile
/// function) or depends on the row of an outer query.
fn changes(expr: &Expr) -> bool {
    expr.is_volatile()
        || expr
            .exists(|e| {
                Ok(match e {
                    Expr::ScalarSubquery(s) => !s.outer_ref_columns.is_empty(),
                    Expr::Exists(s) => !s.subquery.outer_ref_columns.is_empty(),
                    Expr::InSubquery(s) => !s.subquery.outer_ref_columns.is_empty(),
                    Expr::OuterReferenceColumn(..) => true,
                    _ => false,
                })
            })
            .unwrap_or(true)
}

/// How often each subtree of `node` runs once the shareable ones that occur
/// more than once (`all`) run once: the inside of such a subtree is counted
/// at its first occurrence only.
fn count_runs(
    node: &LogicalPlan,
    all: &HashMap<LogicalPlan, usize>,
    runs: &mut HashMap<LogicalPlan, usize>,
    seen: &mut HashSet<LogicalPlan>,
) {
    *runs.entry(node.clone()).or_insert(0) += 1;
    if all.get(node).is_some_and(|&n| n >= 2) && shareable(node) && !seen.insert(node.clone()) {
        return;
    }
    for child in node.inputs() {
        count_runs(child, all, runs, seen);
    }
}

/// `node` with each subtree that would run more than once and is
/// shareable wrapped in a [`SharedNode`] (`ids`: one per distinct subtree).
fn share(
    node: &LogicalPlan,
    runs: &HashMap<LogicalPlan, usize>,
    ids: &mut HashMap<LogicalPlan, usize>,
) -> Result<LogicalPlan> {
    let rebuilt = node
        .clone()
        .map_children(|child| share(&child, runs, ids).map(Transformed::yes))?
        .data;
    if runs.get(node).is_some_and(|&n| n >= 2) && shareable(node) {
        let next = ids.len();
        let id = *ids.entry(node.clone()).or_insert(next);
        return Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(SharedNode { id, input: rebuilt }),
        }));
    }
    Ok(rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testlake::{lake, physical_plan, sessions};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;
    use std::fmt;
    use std::sync::Mutex;

    /// The rule tested here.
    const RULE: &str = "groundtruth_shared_subplans";

    /// The answer (sorted by the query), its plan, and how many scans of
    /// the lake ran.
    async fn answer(ctx: &SessionContext, sql: &str) -> (String, String, usize) {
        let plan = physical_plan(ctx, sql).await;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let mut scans = 0;
        plan.apply(|node| {
            if node.name() == "DataSourceExec"
                && node
                    .metrics()
                    .and_then(|m| m.output_rows())
                    .is_some_and(|rows| rows > 0)
            {
                scans += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        (
            pretty_format_batches(&batches).unwrap().to_string(),
            shown,
            scans,
        )
    }

    const PER_ACCOUNT: &str = "WITH per_account AS (
            SELECT app_id, account_id, count(*) AS n FROM events GROUP BY app_id, account_id
        )";

    #[tokio::test]
    async fn a_subquery_named_twice_runs_once_with_the_same_answer() {
        let dir = lake();
        let queries = [
            // A self-join of a CTE.
            format!(
                "{PER_ACCOUNT} SELECT a.app_id, b.app_id AS other, count(*) AS shared
                 FROM per_account a JOIN per_account b
                   ON a.account_id = b.account_id AND a.app_id < b.app_id
                 GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            // Named by two CTEs, each named again (shared inside shared).
            format!(
                "{PER_ACCOUNT}, busy AS (SELECT app_id, count(*) AS accounts FROM per_account
                                          WHERE n > 3 GROUP BY app_id),
                 quiet AS (SELECT app_id, count(*) AS accounts FROM per_account
                           WHERE n <= 3 GROUP BY app_id)
                 SELECT b.app_id, b.accounts, q.accounts, b2.accounts
                 FROM busy b JOIN quiet q ON q.app_id = b.app_id
                 JOIN busy b2 ON b2.app_id = b.app_id ORDER BY 1"
            ),
            // A view-like union of a CTE with itself, filtered differently.
            format!(
                "{PER_ACCOUNT} SELECT 'many' AS k, count(*) FROM per_account WHERE n > 2
                 UNION ALL SELECT 'few', count(*) FROM per_account WHERE n <= 2 ORDER BY 1"
            ),
        ];
        for partitions in [1, 2, 4] {
            let (with, without) = sessions(dir.path(), partitions, RULE).await;
            for sql in &queries {
                let (shared, plan, scans) = answer(&with, sql).await;
                let (plain, plain_plan, plain_scans) = answer(&without, sql).await;
                assert_eq!(shared, plain, "{sql} over {partitions} partitions");
                assert!(plan.contains("SharedExec"), "{plan}");
                assert!(!plain_plan.contains("SharedExec"), "{plain_plan}");
                assert!(
                    scans < plain_scans,
                    "{sql}: {scans} scans, {plain_scans} without\n{plan}"
                );
            }
        }
    }

    #[tokio::test]
    async fn only_groupings_without_volatile_functions_are_shared() {
        let dir = lake();
        let (with, without) = sessions(dir.path(), 2, RULE).await;
        for sql in [
            // Named once.
            format!("{PER_ACCOUNT} SELECT count(*) FROM per_account"),
            // Rows as stored, not a grouping: streamed twice, not kept.
            "WITH e AS (SELECT app_id, account_id FROM events WHERE kind = 'login')
             SELECT count(*) FROM e a JOIN e b ON a.account_id = b.account_id"
                .to_string(),
            // A volatile function in the grouping: each reader gets its own.
            "WITH r AS (SELECT app_id, sum(random()) AS x FROM events GROUP BY app_id)
             SELECT count(*) FROM r a JOIN r b ON a.app_id = b.app_id"
                .to_string(),
        ] {
            let (shared, plan, _) = answer(&with, &sql).await;
            assert!(!plan.contains("SharedExec"), "{sql}\n{plan}");
            assert_eq!(shared, answer(&without, &sql).await.0);
        }
    }

    /// A memory pool that remembers the most each consumer held.
    #[derive(Debug)]
    struct Recording {
        pool: datafusion::execution::memory_pool::GreedyMemoryPool,
        peaks: Mutex<HashMap<String, usize>>,
    }

    impl Recording {
        fn note(&self, r: &datafusion::execution::memory_pool::MemoryReservation, more: usize) {
            let mut peaks = self.peaks.lock().unwrap();
            let peak = peaks.entry(r.consumer().name().to_string()).or_insert(0);
            *peak = (*peak).max(r.size() + more);
        }
    }

    impl fmt::Display for Recording {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "recording")
        }
    }

    impl datafusion::execution::memory_pool::MemoryPool for Recording {
        fn name(&self) -> &str {
            "recording"
        }
        fn grow(&self, r: &datafusion::execution::memory_pool::MemoryReservation, more: usize) {
            self.note(r, more);
            self.pool.grow(r, more);
        }
        fn shrink(&self, r: &datafusion::execution::memory_pool::MemoryReservation, less: usize) {
            self.pool.shrink(r, less);
        }
        fn try_grow(
            &self,
            r: &datafusion::execution::memory_pool::MemoryReservation,
            more: usize,
        ) -> Result<()> {
            self.pool.try_grow(r, more)?;
            self.note(r, more);
            Ok(())
        }
        fn reserved(&self) -> usize {
            self.pool.reserved()
        }
    }

    #[tokio::test]
    async fn the_kept_result_counts_against_the_memory_limit() {
        let dir = lake();
        let (with, _) = sessions(dir.path(), 2, RULE).await;
        let pool = Arc::new(Recording {
            pool: datafusion::execution::memory_pool::GreedyMemoryPool::new(usize::MAX / 2),
            peaks: Mutex::default(),
        });
        let state = SessionStateBuilder::new_from_existing(with.state())
            .with_runtime_env(
                RuntimeEnvBuilder::new()
                    .with_memory_pool(Arc::clone(&pool) as _)
                    .build_arc()
                    .unwrap(),
            )
            .build();
        let ctx = SessionContext::new_with_state(state);
        let sql = format!(
            "{PER_ACCOUNT} SELECT count(*) FROM per_account a JOIN per_account b
             ON a.app_id = b.app_id AND a.account_id = b.account_id"
        );
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let peaks = pool.peaks.lock().unwrap();
        let kept: usize = peaks
            .iter()
            .filter(|(name, _)| name.starts_with("SharedExec["))
            .map(|(_, peak)| peak)
            .sum();
        assert!(kept > 0, "{peaks:?}");
        // All let go once both readers had it.
        drop(peaks);
        assert_eq!(
            datafusion::execution::memory_pool::MemoryPool::reserved(pool.as_ref()),
            0
        );
    }

    #[tokio::test]
    async fn a_plan_read_again_is_computed_again() {
        let dir = lake();
        let (with, without) = sessions(dir.path(), 2, RULE).await;
        let sql = format!(
            "{PER_ACCOUNT} SELECT a.app_id, count(*) FROM per_account a
             JOIN per_account b ON a.account_id = b.account_id GROUP BY 1 ORDER BY 1"
        );
        let expected = answer(&without, &sql).await.0;
        let df = with.sql(&sql).await.unwrap();
        for _ in 0..2 {
            let batches = df.clone().collect().await.unwrap();
            assert_eq!(
                pretty_format_batches(&batches).unwrap().to_string(),
                expected
            );
        }
        // The optimized plan (with its shared nodes) planned once more.
        let optimized = df.clone().into_optimized_plan().unwrap();
        let again = with.state().create_physical_plan(&optimized).await.unwrap();
        let batches = collect(again, with.task_ctx()).await.unwrap();
        assert_eq!(
            pretty_format_batches(&batches).unwrap().to_string(),
            expected
        );
    }
}
