//! A bound on constants repeated for every row.
//!
//! The bounded functions ([`crate::bounded`]) count the bytes they build,
//! but a constant is built once: `SELECT repeat('x', 1000000) FROM
//! range(8192)` folds `repeat` into a 1 MB literal while planning, and the
//! projection then copies that literal into each of a batch's 8,192 rows
//! (8 GB, counted by no memory pool); `string_agg(<1 MB literal>, ',')`
//! does the same with its argument. [`RepeatedValues`], a logical
//! optimizer rule that runs after constant folding, puts every literal of
//! more than [`WATCHED_BYTES`] that a projection outputs or an aggregate
//! reads under [`RepeatedValue`], which builds the repeated column itself
//! after checking that the batch's copies stay within
//! [`MAX_CALL_BYTES`](crate::bounded::MAX_CALL_BYTES). A literal compared
//! or passed to a function is not copied per row and is left alone.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::expr::{Alias, Cast};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::weight::MAX_CALL_BYTES;

/// Literals larger than this are watched: 2 KiB copied into a default
/// batch of 8,192 rows is [`MAX_CALL_BYTES`].
pub const WATCHED_BYTES: usize = 1024;

/// `bounded_value(v)`: `v` for every row of the batch, refused when the
/// copies would exceed [`MAX_CALL_BYTES`]. Volatile, so that constant
/// folding leaves it where [`RepeatedValues`] put it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RepeatedValue {
    signature: Signature,
}

impl RepeatedValue {
    pub const NAME: &'static str = "bounded_value";

    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(RepeatedValue {
            signature: Signature::any(1, Volatility::Volatile),
        }))
    }
}

impl ScalarUDFImpl for RepeatedValue {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        match &args.args[0] {
            ColumnarValue::Scalar(v) => {
                let bytes = v.size();
                let total = (bytes as i64).saturating_mul(rows as i64);
                if total > MAX_CALL_BYTES {
                    return exec_err!(
                        "a constant of {bytes} bytes repeated for each of {rows} rows would build {total} bytes in one batch of rows; at most {MAX_CALL_BYTES} are allowed in a query (aggregate first, or use the constant once)"
                    );
                }
                Ok(ColumnarValue::Array(v.to_array_of_size(rows)?))
            }
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(Arc::clone(a))),
        }
    }
}

/// The rule: see the module's notes.
#[derive(Debug)]
pub struct RepeatedValues {
    udf: Arc<ScalarUDF>,
}

impl RepeatedValues {
    pub fn new() -> RepeatedValues {
        RepeatedValues {
            udf: RepeatedValue::udf(),
        }
    }

    /// Whether `e`, output as it is, is a large literal (under aliases and
    /// casts).
    fn watched(e: &Expr) -> bool {
        match e {
            Expr::Alias(a) => Self::watched(&a.expr),
            Expr::Cast(c) => Self::watched(&c.expr),
            Expr::Literal(v, _) => v.size() > WATCHED_BYTES,
            _ => false,
        }
    }

    /// `e` with its large literal under [`RepeatedValue`] (only called when
    /// [`Self::watched`]).
    fn guard(&self, e: Expr) -> Expr {
        match e {
            Expr::Alias(a) => Expr::Alias(Alias {
                expr: Box::new(self.guard(*a.expr)),
                ..a
            }),
            Expr::Cast(c) => Expr::Cast(Cast {
                expr: Box::new(self.guard(*c.expr)),
                ..c
            }),
            lit @ Expr::Literal(..) => self.udf.call(vec![lit]),
            other => other,
        }
    }

    fn aggregate_reads_watched(e: &Expr) -> bool {
        match e {
            Expr::Alias(a) => Self::aggregate_reads_watched(&a.expr),
            Expr::AggregateFunction(f) => f.params.args.iter().any(Self::watched),
            _ => false,
        }
    }

    /// The aggregate `e` with its watched arguments guarded.
    fn guard_aggregate(&self, e: Expr) -> Expr {
        match e {
            Expr::AggregateFunction(mut f) => {
                f.params.args = f
                    .params
                    .args
                    .into_iter()
                    .map(|a| if Self::watched(&a) { self.guard(a) } else { a })
                    .collect();
                Expr::AggregateFunction(f)
            }
            other => other,
        }
    }
}

/// `e` rewritten by `f` under its own output name (the plan above refers
/// to it): an alias keeps its name over the rewritten expression, anything
/// else is aliased with the name it had.
fn keep_name(e: Expr, f: impl FnOnce(Expr) -> Expr) -> Expr {
    match e {
        Expr::Alias(a) => Expr::Alias(Alias {
            expr: Box::new(f(*a.expr)),
            ..a
        }),
        e => {
            let name = e.schema_name().to_string();
            f(e).alias(name)
        }
    }
}

impl Default for RepeatedValues {
    fn default() -> Self {
        Self::new()
    }
}

impl OptimizerRule for RepeatedValues {
    fn name(&self) -> &str {
        "bounded_repeated_values"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Projection(p) if p.expr.iter().any(Self::watched) => {
                let expr = p
                    .expr
                    .into_iter()
                    .map(|e| {
                        if Self::watched(&e) {
                            keep_name(e, |e| self.guard(e))
                        } else {
                            e
                        }
                    })
                    .collect();
                let p = Projection::try_new(expr, p.input)?;
                Ok(Transformed::yes(LogicalPlan::Projection(p)))
            }
            LogicalPlan::Aggregate(a) if a.aggr_expr.iter().any(Self::aggregate_reads_watched) => {
                let aggr = a
                    .aggr_expr
                    .into_iter()
                    .map(|e| {
                        if Self::aggregate_reads_watched(&e) {
                            keep_name(e, |e| self.guard_aggregate(e))
                        } else {
                            e
                        }
                    })
                    .collect();
                let a = Aggregate::try_new(a.input, a.group_expr, aggr)?;
                Ok(Transformed::yes(LogicalPlan::Aggregate(a)))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.register_udf(RepeatedValue::udf().as_ref().clone());
        ctx.add_optimizer_rule(Arc::new(RepeatedValues::new()));
        ctx
    }

    async fn run(sql: &str) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        ctx().sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn a_large_constant_repeated_over_a_batch_is_refused() {
        for sql in [
            "SELECT repeat('x', 100000) AS big FROM range(8192)",
            "SELECT repeat('x', 100000) FROM range(8192)",
            "SELECT length(string_agg(repeat('x', 100000), ',')) FROM range(8192)",
            "SELECT CAST(repeat('x', 100000) AS VARCHAR) AS s, value FROM range(8192)",
            "SELECT count(repeat('x', 100000)) AS n FROM range(8192)",
        ] {
            let e = run(sql).await.unwrap_err().to_string();
            assert!(e.contains("repeated for each of"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn small_batches_and_small_or_compared_constants_answer_as_before() {
        let plain = SessionContext::new();
        for sql in [
            // Fits: 100 copies of 100 kB.
            "SELECT length(s) AS n, count(*) AS c FROM (SELECT repeat('x', 100000) AS s FROM range(100)) GROUP BY 1",
            "SELECT repeat('x', 100000) FROM range(3)",
            "SELECT length(string_agg(repeat('x', 100000), ',')) FROM range(100)",
            // Compared, not copied.
            "SELECT count(*) FROM range(100000) WHERE CAST(value AS VARCHAR) = repeat('x', 100000)",
            // Copied but not read: the optimizer folds length() first.
            "SELECT length(s) AS n FROM (SELECT repeat('x', 100000) AS s FROM range(8192)) LIMIT 2",
            // Small constants are not watched.
            "SELECT 'abc' AS s, count(*) FROM range(100000) GROUP BY 1",
        ] {
            let ours = datafusion::arrow::util::pretty::pretty_format_batches(&run(sql).await.unwrap())
                .unwrap()
                .to_string();
            let theirs = plain.sql(sql).await.unwrap().collect().await.unwrap();
            let theirs = datafusion::arrow::util::pretty::pretty_format_batches(&theirs)
                .unwrap()
                .to_string();
            assert_eq!(ours, theirs, "{sql}");
        }
    }

    #[tokio::test]
    async fn the_rule_runs_after_folding_and_keeps_the_names() {
        let ctx = ctx();
        let df = ctx
            .sql("SELECT repeat('x', 5000) FROM range(2)")
            .await
            .unwrap();
        let plan = df.clone().into_optimized_plan().unwrap();
        let shown = plan.display_indent().to_string();
        assert!(shown.contains("bounded_value"), "{shown}");
        let batches = df.collect().await.unwrap();
        assert_eq!(
            batches[0].schema().field(0).name(),
            "repeat(Utf8(\"x\"),Int64(5000))"
        );
    }
}
