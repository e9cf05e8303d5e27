//! A physical optimizer rule: a partial aggregate over a join that only
//! keeps or drops the rows of its large side is computed below the join.
//!
//! "What do the accounts that submit reports do besides" joins every event
//! to the few thousand reporters and then groups what is left by app and
//! account. The join probes 10M `account_id` strings one row at a time;
//! grouping first (by the same keys, the join key among them) leaves a
//! few tens of thousands of groups to probe, and the grouping itself runs
//! straight over the scan, where [`DictionaryKeys`](crate::rules::DictionaryKeys)
//! groups by the Parquet dictionaries.
//!
//! ```text
//! AggregateExec: mode=Partial, gby=[app_id, account_id], aggr=[count(1)]
//!   HashJoinExec: mode=CollectLeft, join_type=Inner, on=[(account_id, account_id)]
//!     <reporters: grouped by account_id>
//!     DataSourceExec: events
//! =>
//! HashJoinExec: mode=CollectLeft, join_type=Inner, on=[(account_id, account_id)],
//!               projection=<the aggregate's columns>
//!   <reporters: grouped by account_id>
//!   AggregateExec: mode=Partial, gby=[app_id, account_id], aggr=[count(1)]
//!     DataSourceExec: events
//! ```
//!
//! It cannot change an answer: the build side holds each key once (it is
//! grouped by exactly the key), so the join passes a probe row at most
//! once and adds nothing the aggregate reads; the key is a group key, so
//! every row of a group has the same key and the join passes or drops the
//! whole group, its partial state unchanged. A semi join (what DataFusion
//! makes of such a join when nothing of the build side is read) passes a
//! row at most once whatever the build side holds. It applies only to an
//! inner or right semi equi-join on one column pair without a join filter,
//! build side collected (`CollectLeft`), and a partial or single aggregate
//! without limit, filters or grouping sets, reading only probe-side
//! columns.
//!
//! `SET groundtruth.aggregate_below_join = false` turns the rule off for a
//! session.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{JoinType, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, HashJoinExecBuilder, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::ExecutionPlan;

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub struct AggregateBelowJoin;

impl PhysicalOptimizerRule for AggregateBelowJoin {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::options::rule_options(config).aggregate_below_join {
            return Ok(plan);
        }
        crate::plan::rewrite_nodes(plan, rewrite)
    }

    fn name(&self) -> &str {
        "groundtruth_aggregate_below_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The join over the aggregate computed below it, or `None` when the rule
/// does not apply to `node`.
fn rewrite(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
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
    let Some(join) = agg.input().downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    // A semi join passes a probe row once whatever the build side holds;
    // an inner join, when the build side holds each key once.
    let semi = match join.join_type() {
        JoinType::Inner => false,
        JoinType::RightSemi => true,
        _ => return Ok(None),
    };
    if join.filter().is_some()
        || join.null_aware
        || *join.partition_mode() != PartitionMode::CollectLeft
    {
        return Ok(None);
    }
    let [(build_key, probe_key)] = join.on() else {
        return Ok(None);
    };
    let (Some(build_key), Some(probe_key)) = (
        build_key.downcast_ref::<Column>(),
        probe_key.downcast_ref::<Column>(),
    ) else {
        return Ok(None);
    };
    let probe = join.right();
    let left_len = join.left().schema().fields().len();
    // Where the probe side's columns start in the join's columns.
    let offset = if semi { 0 } else { left_len };
    // The probe column behind each of the join's output columns, if any.
    let probe_column = |output: usize| -> Option<usize> {
        let combined = match &join.projection {
            Some(p) => *p.get(output)?,
            None => output,
        };
        combined.checked_sub(offset)
    };
    let to_probe = |expr: &Arc<dyn PhysicalExpr>| -> Result<Option<Arc<dyn PhysicalExpr>>> {
        if collect_columns(expr)
            .iter()
            .any(|c| probe_column(c.index()).is_none())
        {
            return Ok(None);
        }
        let schema = probe.schema();
        let moved = Arc::clone(expr)
            .transform(|e| {
                Ok(match e.downcast_ref::<Column>() {
                    Some(c) => {
                        let at = probe_column(c.index()).expect("checked above");
                        Transformed::yes(Arc::new(Column::new(schema.field(at).name(), at))
                            as Arc<dyn PhysicalExpr>)
                    }
                    None => Transformed::no(e),
                })
            })?
            .data;
        Ok(Some(moved))
    };

    let mut groups = Vec::new();
    let mut probe_key_at = None;
    for (i, (expr, name)) in agg.group_expr().expr().iter().enumerate() {
        let Some(moved) = to_probe(expr)? else {
            return Ok(None);
        };
        if moved
            .downcast_ref::<Column>()
            .is_some_and(|c| c.index() == probe_key.index())
        {
            probe_key_at.get_or_insert(i);
        }
        groups.push((moved, name.clone()));
    }
    let Some(probe_key_at) = probe_key_at else {
        return Ok(None);
    };
    let mut aggregates = Vec::new();
    for a in agg.aggr_expr() {
        if !a.order_bys().is_empty() {
            return Ok(None);
        }
        let mut args = Vec::new();
        for e in a.expressions() {
            let Some(moved) = to_probe(&e)? else {
                return Ok(None);
            };
            args.push(moved);
        }
        let Some(moved) = a.with_new_expressions(args, Vec::new()) else {
            return Ok(None);
        };
        aggregates.push(Arc::new(moved));
    }
    if !semi && !unique_on(join.left(), build_key.index()) {
        return Ok(None);
    }

    let below = Arc::new(AggregateExec::try_new(
        *agg.mode(),
        PhysicalGroupBy::new_single(groups),
        aggregates,
        vec![None; agg.aggr_expr().len()],
        Arc::clone(probe),
        probe.schema(),
    )?);
    if below.schema().fields() != agg.schema().fields() {
        return Ok(None);
    }
    let width = below.schema().fields().len();
    let key_name = below.schema().field(probe_key_at).name().clone();
    let on = vec![(
        Arc::clone(&join.on()[0].0),
        Arc::new(Column::new(&key_name, probe_key_at)) as Arc<dyn PhysicalExpr>,
    )];
    let joined = HashJoinExecBuilder::new(Arc::clone(join.left()), below, on, *join.join_type())
        .with_projection((!semi).then(|| (left_len..left_len + width).collect()))
        .with_partition_mode(PartitionMode::CollectLeft)
        .with_null_equality(join.null_equality())
        .build()?;
    if joined.schema().fields() != agg.schema().fields() {
        return Ok(None);
    }
    Ok(Some(Arc::new(joined)))
}

/// Whether no two rows of `plan` have the same value in column `column`:
/// it is the one key of a complete (not partial) aggregate, seen through
/// operators that keep, drop or move rows without repeating any.
fn unique_on(plan: &Arc<dyn ExecutionPlan>, column: usize) -> bool {
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        return p
            .expr()
            .get(column)
            .and_then(|e| e.expr.downcast_ref::<Column>())
            .is_some_and(|c| unique_on(p.input(), c.index()));
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        let below = match f.projection() {
            Some(p) => match p.get(column) {
                Some(&b) => b,
                None => return false,
            },
            None => column,
        };
        return unique_on(f.input(), below);
    }
    if plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<SortExec>().is_some()
    {
        return plan
            .children()
            .first()
            .is_some_and(|c| unique_on(c, column));
    }
    if let Some(a) = plan.downcast_ref::<AggregateExec>() {
        let complete = matches!(
            a.mode(),
            AggregateMode::Final
                | AggregateMode::FinalPartitioned
                | AggregateMode::Single
                | AggregateMode::SinglePartitioned
        );
        return complete
            && a.group_expr().is_single()
            && a.group_expr().expr().len() == 1
            && column == 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testlake::{lake, physical_plan, sessions};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;

    /// The rule tested here.
    const RULE: &str = "groundtruth_aggregate_below_join";

    /// The answer, and whether some join's probe side is an aggregate.
    async fn answer(ctx: &SessionContext, sql: &str) -> (String, bool, String) {
        let plan = physical_plan(ctx, sql).await;
        let mut below = false;
        plan.apply(|node| {
            if let Some(j) = node.downcast_ref::<HashJoinExec>() {
                below |= matches!(
                    j.right().name(),
                    "AggregateExec" | "DictionaryKeyAggregateExec"
                );
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        (
            pretty_format_batches(&batches).unwrap().to_string(),
            below,
            shown,
        )
    }

    const REPORTERS: &str = "WITH reporters AS (
            SELECT account_id, count(*) AS reports FROM events
            WHERE kind = 'report_submit' GROUP BY account_id
        )";

    #[tokio::test]
    async fn answers_equal_the_join_first() {
        let dir = lake();
        let applies = [
            // The analysts' "what do the reporters do besides".
            format!(
                "{REPORTERS} SELECT e.app_id, count(DISTINCT e.account_id) AS accounts, count(*),
                        sum(CASE WHEN e.kind = 'login' THEN 1 ELSE 0 END)
                 FROM events e JOIN reporters r ON e.account_id = r.account_id
                 GROUP BY e.app_id ORDER BY e.app_id"
            ),
            format!(
                "{REPORTERS} SELECT e.account_id, e.kind, count(*), max(e.lat)
                 FROM events e JOIN reporters r ON e.account_id = r.account_id
                 GROUP BY e.account_id, e.kind ORDER BY 1, 2"
            ),
        ];
        let refused = [
            // Not grouped by the join key: a group mixes kept and dropped rows.
            format!(
                "{REPORTERS} SELECT e.kind, count(*) FROM events e
                 JOIN reporters r ON e.account_id = r.account_id GROUP BY e.kind ORDER BY 1"
            ),
            // A build side that repeats keys multiplies rows.
            "SELECT e.account_id, count(*) FROM events e
             JOIN (SELECT account_id FROM events WHERE kind = 'report_submit') r
               ON e.account_id = r.account_id
             GROUP BY e.account_id ORDER BY 1"
                .to_string(),
            // The aggregate reads the build side.
            format!(
                "{REPORTERS} SELECT e.account_id, sum(r.reports), count(*) FROM events e
                 JOIN reporters r ON e.account_id = r.account_id GROUP BY e.account_id ORDER BY 1"
            ),
            // Not an inner join.
            format!(
                "{REPORTERS} SELECT e.account_id, count(*) FROM events e
                 LEFT JOIN reporters r ON e.account_id = r.account_id
                 GROUP BY e.account_id ORDER BY 1"
            ),
        ];
        for (partitions, row_filtering) in [(1, false), (2, false), (4, false), (2, true)] {
            let (with, without) = sessions(dir.path(), partitions, RULE).await;
            if row_filtering {
                // The join's dynamic filter then filters the scan's rows:
                // the grouping below keeps it (no dictionaries).
                for ctx in [&with, &without] {
                    ctx.sql("SET datafusion.execution.parquet.pushdown_filters = true")
                        .await
                        .unwrap()
                        .collect()
                        .await
                        .unwrap();
                }
            }
            for (sql, expect) in applies
                .iter()
                .map(|s| (s, true))
                .chain(refused.iter().map(|s| (s, false)))
            {
                let (got, used, plan) = answer(&with, sql).await;
                let (want, unused, _) = answer(&without, sql).await;
                assert!(!unused, "{sql}: the rule is off");
                assert_eq!(got, want, "{sql} over {partitions} partitions");
                assert_eq!(used, expect, "{sql} over {partitions} partitions\n{plan}");
            }
        }
    }
}
