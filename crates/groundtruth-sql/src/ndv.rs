//! Distinct-value estimates for the lake's `events`, so that DataFusion
//! chooses joins from what a side really holds.
//!
//! Parquet footers give row counts, minimums and maximums but (as the lake
//! writes them) no distinct counts. Without them DataFusion estimates a
//! `GROUP BY account_id` over a filter as 20% of the table: the analysts'
//! "what do the accounts that submit reports do besides" (about 5k
//! reporters of 40k accounts in 10M events) looks like 2M rows, so the join
//! repartitions all 10M rows of the other side by `account_id` where
//! building the small side once and streaming the large one past it
//! (`CollectLeft`) does far less work.
//!
//! [`estimate`] measures the distinct values of a few key columns with
//! `approx_distinct` (HyperLogLog, one scan), like a database's ANALYZE;
//! [`registry`] hands them to DataFusion's join selection through its
//! statistics registry: the scan of `events` carries them as
//! `distinct_count`, filters and projections pass them on (DataFusion's
//! own providers), and so do partial aggregates (here: DataFusion's own
//! provider leaves those to the operator, which sees no estimates), so a
//! final `GROUP BY` of a key is estimated at most at its distinct count.
//! Only join selection reads the registry: a stale estimate can only make
//! a join slower, never change an answer.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::{Result, Statistics};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::operator_statistics::{
    ExtendedStatistics, StatisticsProvider, StatisticsRegistry, StatisticsResult,
};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

/// The `events` columns whose distinct values are measured: the keys
/// analysts join and group on.
pub const NDV_COLUMNS: &[&str] = &["account_id", "device_id", "app_id", "region", "kind"];

/// Distinct values per column of `events` (estimates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistinctCounts(pub HashMap<String, usize>);

/// Measures [`NDV_COLUMNS`] of the session's `events` (whatever it is: the
/// lake, or a region's share of it) in one scan.
pub async fn estimate(ctx: &SessionContext) -> Result<DistinctCounts> {
    let select: Vec<String> = NDV_COLUMNS
        .iter()
        .map(|c| format!("approx_distinct({c}) AS {c}"))
        .collect();
    let batches = ctx
        .sql(&format!("SELECT {} FROM events", select.join(", ")))
        .await?
        .collect()
        .await?;
    let mut out = HashMap::new();
    if let Some(b) = batches.iter().find(|b| b.num_rows() > 0) {
        for (i, c) in NDV_COLUMNS.iter().enumerate() {
            let v = datafusion::common::ScalarValue::try_from_array(b.column(i), 0)?;
            if let datafusion::common::ScalarValue::UInt64(Some(n)) = v {
                out.insert((*c).to_string(), n as usize);
            }
        }
    }
    Ok(DistinctCounts(out))
}

/// DataFusion's statistics providers with the lake's distinct counts in
/// front. Needs `datafusion.optimizer.use_statistics_registry = true`.
pub fn registry(counts: DistinctCounts) -> StatisticsRegistry {
    let mut registry = StatisticsRegistry::default_with_builtin_providers();
    registry.register(Arc::new(LakeDistinctCounts { counts }));
    registry
}

/// See the [module documentation](self).
#[derive(Debug)]
struct LakeDistinctCounts {
    counts: DistinctCounts,
}

impl StatisticsProvider for LakeDistinctCounts {
    fn compute_statistics(
        &self,
        plan: &dyn ExecutionPlan,
        child_stats: &[ExtendedStatistics],
    ) -> Result<StatisticsResult> {
        if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
            return self.scan(plan, scan);
        }
        if let Some(agg) = plan.downcast_ref::<AggregateExec>() {
            return Ok(partial_aggregate(agg, child_stats));
        }
        if let Some(agg) = plan.downcast_ref::<crate::DictionaryKeyAggregateExec>() {
            return Ok(grouped(plan, &agg.key_inputs(), child_stats));
        }
        Ok(StatisticsResult::Delegate)
    }
}

impl LakeDistinctCounts {
    /// A scan of the lake's event files: its statistics with the distinct
    /// counts it lacks.
    fn scan(&self, plan: &dyn ExecutionPlan, scan: &DataSourceExec) -> Result<StatisticsResult> {
        let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(StatisticsResult::Delegate);
        };
        let events = groundtruth_event::event_schema();
        let file_schema = config.file_source().table_schema().file_schema();
        if file_schema.fields().len() != events.fields().len()
            || file_schema
                .fields()
                .iter()
                .zip(events.fields())
                .any(|(a, b)| a.name() != b.name())
        {
            return Ok(StatisticsResult::Delegate);
        }
        let mut stats =
            Arc::unwrap_or_clone(StatisticsContext::new().compute(plan, &StatisticsArgs::new())?);
        let rows = stats.num_rows.get_value().copied();
        let schema = plan.schema();
        for (field, col) in schema
            .fields()
            .iter()
            .zip(stats.column_statistics.iter_mut())
        {
            if let (Some(&n), Precision::Absent) =
                (self.counts.0.get(field.name()), &col.distinct_count)
            {
                col.distinct_count = Precision::Inexact(rows.map_or(n, |r| n.min(r)));
            }
        }
        Ok(StatisticsResult::Computed(ExtendedStatistics::new(stats)))
    }
}

/// A partial aggregate keeps its group keys' distinct counts, and has at
/// most (their product) rows per partition. DataFusion's own provider
/// leaves partial aggregates to the operator, which computes from its
/// input's plain statistics and so loses the estimates.
fn partial_aggregate(agg: &AggregateExec, child_stats: &[ExtendedStatistics]) -> StatisticsResult {
    if !matches!(agg.mode(), AggregateMode::Partial)
        || !agg.group_expr().is_single()
        || agg.group_expr().expr().is_empty()
    {
        return StatisticsResult::Delegate;
    }
    let Some(keys) = agg
        .group_expr()
        .expr()
        .iter()
        .map(|(expr, _)| expr.downcast_ref::<Column>().map(Column::index))
        .collect::<Option<Vec<_>>>()
    else {
        return StatisticsResult::Delegate;
    };
    grouped(agg, &keys, child_stats)
}

/// The statistics of a partial aggregate `plan` grouped by its input's
/// columns `keys`: see [`partial_aggregate`].
fn grouped(
    plan: &dyn ExecutionPlan,
    keys: &[usize],
    child_stats: &[ExtendedStatistics],
) -> StatisticsResult {
    let [input] = child_stats else {
        return StatisticsResult::Delegate;
    };
    let input = input.base();
    let schema = plan.schema();
    let mut columns = Statistics::unknown_column(&schema);
    let mut product: usize = 1;
    for (i, &key) in keys.iter().enumerate() {
        let Some(s) = input.column_statistics.get(key) else {
            return StatisticsResult::Delegate;
        };
        let Some(&n) = s.distinct_count.get_value() else {
            return StatisticsResult::Delegate;
        };
        product = product.saturating_mul(n.max(1));
        columns[i].distinct_count = s.distinct_count.to_inexact();
        columns[i].min_value = s.min_value.clone().to_inexact();
        columns[i].max_value = s.max_value.clone().to_inexact();
    }
    let partitions = plan
        .properties()
        .output_partitioning()
        .partition_count()
        .max(1);
    let groups = product.saturating_mul(partitions);
    let rows = match input.num_rows.get_value() {
        Some(&r) => groups.min(r),
        None => groups,
    };
    StatisticsResult::Computed(ExtendedStatistics::new(Statistics {
        num_rows: Precision::Inexact(rows),
        total_byte_size: Precision::Absent,
        column_statistics: columns,
    }))
}
