//! What the API reads from the lake with DataFusion: a case's accounts'
//! activity timeline and a region's activity summary. Values reach the
//! query as literals of the DataFrame API, never as SQL text.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::prelude::{col, lit, Expr, SessionContext};
use groundtruth_event::{local_date, DayZone};
use groundtruth_sql::open_range_session;
use groundtruth_store::Scope;
use serde_json::Value;

use crate::error::ApiError;

/// Where the lake is and how its days are cut.
#[derive(Debug, Clone)]
pub struct LakeAccess {
    pub dir: PathBuf,
    pub zone: DayZone,
}

pub(crate) fn query_failed(
    what: &str,
) -> impl Fn(datafusion::error::DataFusionError) -> ApiError + '_ {
    move |e| {
        tracing::error!(error = %e, what, "lake query failed");
        ApiError::Internal(format!(
            "reading {what} from the lake failed; the details are in the server log"
        ))
    }
}

/// Rows as JSON objects (the analysts' SQL encoding).
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<Value>, ApiError> {
    groundtruth_query::encode::rows_json(batches)
        .map_err(|e| ApiError::Internal(format!("cannot encode rows as JSON: {e}")))
}

fn dates(from_us: i64, to_us: i64, zone: DayZone) -> Vec<String> {
    let first = local_date(from_us, zone);
    let last = local_date(to_us.saturating_sub(1), zone);
    (first..=last)
        .map(groundtruth_event::date32_to_string)
        .collect()
}

/// A session over the lake's events in `[from_us, to_us)`, or `None` when
/// no partition of those days exists.
async fn session(
    lake: &LakeAccess,
    from_us: i64,
    to_us: i64,
) -> Result<Option<SessionContext>, ApiError> {
    open_range_session(&lake.dir, &dates(from_us, to_us, lake.zone), from_us, to_us)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot open the lake");
            ApiError::Internal("cannot open the lake; the details are in the server log".into())
        })
}

fn in_scope(scope: &Scope) -> Option<Expr> {
    (!scope.is_nationwide()).then(|| col("region").like(lit(scope.like_pattern())))
}

/// The events of `accounts` (of `app`, when one) in `[from_us, to_us)`, in
/// the caller's scope, oldest first: at most `limit` rows, and the counts
/// per account, day and kind.
pub struct Timeline {
    pub events: Vec<Value>,
    pub truncated: bool,
    pub per_day: Vec<Value>,
}

pub async fn timeline(
    lake: &LakeAccess,
    scope: &Scope,
    app: Option<&str>,
    accounts: &[String],
    from_us: i64,
    to_us: i64,
    limit: usize,
) -> Result<Timeline, ApiError> {
    let empty = Timeline {
        events: Vec::new(),
        truncated: false,
        per_day: Vec::new(),
    };
    let Some(ctx) = session(lake, from_us, to_us).await? else {
        return Ok(empty);
    };
    let fail = query_failed("the activity timeline");
    let mut cond =
        col("account_id").in_list(accounts.iter().map(|a| lit(a.as_str())).collect(), false);
    if let Some(a) = app {
        cond = cond.and(col("app_id").eq(lit(a)));
    }
    if let Some(s) = in_scope(scope) {
        cond = cond.and(s);
    }
    let base = ctx
        .table("events")
        .await
        .map_err(&fail)?
        .filter(cond)
        .map_err(&fail)?;
    let rows = base
        .clone()
        .select_columns(&[
            "ts",
            "account_id",
            "app_id",
            "kind",
            "region",
            "device_id",
            "network_id",
            "ip",
            "lat",
            "lon",
            "accuracy_m",
            "speed_mps",
            "mock_location",
            "integrity",
            "module",
            "session_id",
            "patrol_id",
            "point_id",
            "registry",
            "category",
        ])
        .map_err(&fail)?
        .sort(vec![
            col("ts").sort(true, false),
            col("account_id").sort(true, false),
        ])
        .map_err(&fail)?
        .limit(0, Some(limit + 1))
        .map_err(&fail)?
        .collect()
        .await
        .map_err(&fail)?;
    let mut events = rows_json(&rows)?;
    let truncated = events.len() > limit;
    events.truncate(limit);
    let per_day = base
        .aggregate(
            vec![col("event_date"), col("account_id"), col("kind")],
            vec![count(lit(1)).alias("events")],
        )
        .map_err(&fail)?
        .sort(vec![
            col("event_date").sort(true, false),
            col("account_id").sort(true, false),
            col("kind").sort(true, false),
        ])
        .map_err(&fail)?
        .collect()
        .await
        .map_err(&fail)?;
    Ok(Timeline {
        events,
        truncated,
        per_day: rows_json(&per_day)?,
    })
}

/// A region's activity per day and app in `[from_us, to_us)`: events and
/// active accounts.
pub async fn region_activity(
    lake: &LakeAccess,
    region: &Scope,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<Value>, ApiError> {
    let Some(ctx) = session(lake, from_us, to_us).await? else {
        return Ok(Vec::new());
    };
    let fail = query_failed("the region's activity");
    let mut df = ctx.table("events").await.map_err(&fail)?;
    if let Some(s) = in_scope(region) {
        df = df.filter(s).map_err(&fail)?;
    }
    let batches = df
        .aggregate(
            vec![col("event_date"), col("app_id")],
            vec![
                count(lit(1)).alias("events"),
                count_distinct(col("account_id")).alias("active_accounts"),
            ],
        )
        .map_err(&fail)?
        .sort(vec![
            col("event_date").sort(true, false),
            col("app_id").sort(true, false),
        ])
        .map_err(&fail)?
        .collect()
        .await
        .map_err(&fail)?;
    rows_json(&batches)
}

/// The latest event time (µs) in the lake in `scope`, if any: the default
/// end of a summary.
pub async fn latest_event_us(lake: &LakeAccess, scope: &Scope) -> Result<Option<i64>, ApiError> {
    let ctx = groundtruth_sql::open_session(&lake.dir)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot open the lake");
            ApiError::Internal("cannot open the lake; the details are in the server log".into())
        })?;
    let fail = query_failed("the latest event");
    let mut df = ctx.table("events").await.map_err(&fail)?;
    if let Some(s) = in_scope(scope) {
        df = df.filter(s).map_err(&fail)?;
    }
    let batches = df
        .aggregate(
            vec![],
            vec![
                datafusion::functions_aggregate::expr_fn::max(datafusion::prelude::cast(
                    col("ts"),
                    arrow::datatypes::DataType::Int64,
                ))
                .alias("latest"),
            ],
        )
        .map_err(&fail)?
        .collect()
        .await
        .map_err(&fail)?;
    Ok(rows_json(&batches)?
        .first()
        .and_then(|r| r.get("latest"))
        .and_then(Value::as_i64))
}
