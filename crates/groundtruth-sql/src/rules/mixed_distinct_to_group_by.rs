//! An optimizer rule: `count(DISTINCT x)` beside plain `count`, `sum`,
//! `min` and `max` in one grouped aggregate becomes two hash aggregates.
//!
//! DataFusion's own `single_distinct_aggregation_to_group_by` does this
//! when the plain aggregates are only `sum`, `min` and `max`; with a
//! `count(*)` beside (the analysts' everyday "accounts and events per
//! device") the distinct count falls back to one hash set per group, which
//! is slow over many groups. The same two-step plan works with counts too:
//!
//! ```text
//! SELECT g, count(DISTINCT x), count(*) FROM t GROUP BY g
//! =>  SELECT g, count(x), sum(c) FROM (SELECT g, x, count(*) AS c FROM t GROUP BY g, x) GROUP BY g
//! ```
//!
//! (the inner groups of one `g` are its distinct `x`, a NULL `x` among
//! them, which `count(x)` skips as `count(DISTINCT x)` does; every group is
//! non-empty, so the sum of its partial counts is its count.) Aggregates
//! without GROUP BY are left alone (an empty input must count 0).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::Result;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::logical_plan::{Aggregate, LogicalPlan};
use datafusion::logical_expr::{col, Expr, LogicalPlanBuilder};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct MixedDistinctToGroupBy;

const DISTINCT_ALIAS: &str = "__gt_distinct";

/// Whether the rule applies: grouped; every aggregate plain (no filter or
/// ORDER BY); the distinct ones over one same argument; the others
/// `count`, `sum`, `min` or `max`, at least one a `count` (without one,
/// DataFusion's own rule does it).
fn applies(agg: &Aggregate) -> bool {
    if agg.group_expr.is_empty() || matches!(agg.group_expr.first(), Some(Expr::GroupingSet(_))) {
        return false;
    }
    let mut distinct_args = HashSet::new();
    let mut counts = 0;
    for e in &agg.aggr_expr {
        let Expr::AggregateFunction(AggregateFunction {
            func,
            params:
                AggregateFunctionParams {
                    distinct,
                    args,
                    filter,
                    order_by,
                    ..
                },
        }) = e
        else {
            return false;
        };
        if filter.is_some() || !order_by.is_empty() {
            return false;
        }
        if *distinct {
            if args.len() != 1 {
                return false;
            }
            distinct_args.insert(args[0].schema_name().to_string());
        } else {
            match func.name().to_lowercase().as_str() {
                "count" => counts += 1,
                "sum" | "min" | "max" => {}
                _ => return false,
            }
        }
    }
    distinct_args.len() == 1 && counts > 0
}

impl OptimizerRule for MixedDistinctToGroupBy {
    fn name(&self) -> &str {
        "groundtruth_mixed_distinct_to_group_by"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !crate::options::rule_options(&config.options()).distinct_to_group_by {
            return Ok(Transformed::no(plan));
        }
        let LogicalPlan::Aggregate(agg) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if !applies(agg) {
            return Ok(Transformed::no(plan));
        }
        match two_step(agg)? {
            // The result must keep the names and types of the original
            // (a sum of partial decimals, for one, widens): otherwise keep it.
            Some(new)
                if new
                    .schema()
                    .logically_equivalent_names_and_types(plan.schema()) =>
            {
                Ok(Transformed::yes(new))
            }
            _ => Ok(Transformed::no(plan)),
        }
    }
}

/// The two aggregates and a projection giving the original names.
fn two_step(agg: &Aggregate) -> Result<Option<LogicalPlan>> {
    let schema = &agg.schema;
    let mut inner_group = Vec::new();
    let mut outer_group = Vec::new();
    let mut names = Vec::new();
    for (i, g) in agg.group_expr.iter().enumerate() {
        let (qualifier, field) = schema.qualified_field(i);
        if let Expr::Column(c) = g {
            inner_group.push(g.clone());
            outer_group.push(Expr::Column(c.clone()));
            names.push(Expr::Column(c.clone()));
        } else {
            let alias = format!("__gt_group_{i}");
            inner_group.push(g.clone().alias(&alias));
            outer_group.push(col(&alias));
            names.push(col(&alias).alias_qualified(qualifier.cloned(), field.name()));
        }
    }
    let mut inner_aggr = Vec::new();
    let mut outer_aggr = Vec::new();
    let mut distinct_added = false;
    for (k, e) in agg.aggr_expr.iter().enumerate() {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
            return Ok(None);
        };
        let outer = if params.distinct {
            if !distinct_added {
                inner_group.push(params.args[0].clone().alias(DISTINCT_ALIAS));
                distinct_added = true;
            }
            Expr::AggregateFunction(AggregateFunction::new_udf(
                Arc::clone(func),
                vec![col(DISTINCT_ALIAS)],
                false,
                None,
                vec![],
                None,
            ))
        } else {
            let alias = format!("__gt_part_{k}");
            inner_aggr.push(e.clone().alias(&alias));
            let merge = if func.name().eq_ignore_ascii_case("count") {
                sum_udaf()
            } else {
                Arc::clone(func)
            };
            Expr::AggregateFunction(AggregateFunction::new_udf(
                merge,
                vec![col(&alias)],
                false,
                None,
                vec![],
                None,
            ))
        };
        let (qualifier, field) = schema.qualified_field(agg.group_expr.len() + k);
        let out_name = format!("__gt_out_{k}");
        outer_aggr.push(outer.alias(&out_name));
        names.push(col(&out_name).alias_qualified(qualifier.cloned(), field.name()));
    }
    let plan = LogicalPlanBuilder::from(agg.input.as_ref().clone())
        .aggregate(inner_group, inner_aggr)?
        .aggregate(outer_group, outer_aggr)?
        .project(names)?
        .build()?;
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    fn contexts() -> (SessionContext, SessionContext) {
        let plain = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features()
            .with_optimizer_rule(Arc::new(MixedDistinctToGroupBy))
            .build();
        (plain, SessionContext::new_with_state(state))
    }

    #[tokio::test]
    async fn same_answers_as_without_the_rule() {
        let (plain, rule) = contexts();
        let table = "CREATE TABLE t (g VARCHAR, h INT, x VARCHAR, v BIGINT, f DOUBLE) AS VALUES \
            ('a', 1, 'p', 1, 0.5), ('a', 1, 'p', 2, 1.5), ('a', 1, NULL, 3, NULL), ('a', 2, 'q', NULL, 2.0), \
            ('b', 1, 'p', 5, 1.0), ('b', 1, 'r', 6, NULL), ('b', 1, 'r', 7, 3.0), (NULL, 1, 's', 8, 4.0), (NULL, 1, NULL, NULL, NULL)";
        for ctx in [&plain, &rule] {
            ctx.sql(table).await.unwrap().collect().await.unwrap();
        }
        for sql in [
            "SELECT g, count(DISTINCT x) AS d, count(*) AS n FROM t GROUP BY g ORDER BY g",
            "SELECT g, count(*), count(DISTINCT x), count(v), sum(v), min(f), max(x) FROM t GROUP BY g ORDER BY g",
            "SELECT g, h, count(DISTINCT x) AS d, count(x) AS c FROM t GROUP BY g, h ORDER BY g, h",
            "SELECT upper(g) AS u, count(DISTINCT x), count(1) FROM t GROUP BY upper(g) ORDER BY u",
            "SELECT g, count(DISTINCT x) FILTER (WHERE v > 1), count(*) FROM t GROUP BY g ORDER BY g",
            "SELECT count(DISTINCT x), count(*) FROM t WHERE v > 100",
            "SELECT g, count(DISTINCT x), count(*) FROM t GROUP BY g HAVING count(DISTINCT x) > 1 ORDER BY g",
        ] {
            assert_eq!(run(&plain, sql).await, run(&rule, sql).await, "{sql}");
        }
        // The rule did fire: two aggregates.
        let plan = rule
            .sql("EXPLAIN SELECT g, count(DISTINCT x), count(*) FROM t GROUP BY g")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = pretty_format_batches(&plan).unwrap().to_string();
        assert!(text.contains("__gt_distinct"), "{text}");
    }
}
