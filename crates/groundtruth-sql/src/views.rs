//! The SQL views in `sql/`, compiled into the binary, and the SQL functions
//! they share: `haversine_m(lat1, lon1, lat2, lon2)` and
//! `attr_text(attrs, key)`.
//!
//! One list, in dependency order. The detectors' views read the lake's
//! `events` only; the analysts' views also read the review store's tables
//! (registered by the analysts' session) and the detectors' views.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, StringArray};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::SessionContext;

use crate::error::SqlError;

/// What a view reads, and so which sessions can hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// The lake's `events` (and other such views): every session.
    Events,
    /// The review store's tables and the catalog as well: the analysts'
    /// session only.
    Review,
}

/// A view defined by one `.sql` file (a `CREATE OR REPLACE VIEW` statement).
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    pub sql: &'static str,
    pub reads: Reads,
}

macro_rules! view {
    ($name:literal, $reads:ident) => {
        View {
            name: $name,
            sql: include_str!(concat!("../../../sql/", $name, ".sql")),
            reads: Reads::$reads,
        }
    };
}

/// Every view, in dependency order.
pub const VIEWS: &[View] = &[
    view!("track_steps", Events),
    view!("sessions", Events),
    view!("session_chain", Events),
    view!("device_profile", Events),
    view!("check_ins", Events),
    view!("registrations", Events),
    view!("record_ops", Events),
    view!("record_churn_daily", Events),
    view!("reports", Events),
    view!("reports_daily", Events),
    view!("findings", Review),
    view!("cases", Review),
    view!("verdicts", Review),
    view!("flagged_accounts", Review),
    view!("account_days", Review),
    view!("activity_daily", Review),
    view!("worker_burden", Events),
    view!("app_overlap", Review),
    view!("app_health", Review),
];

/// Creates the functions and the views over `events` in `ctx` (which must
/// have the `events` table): what the detectors read.
pub async fn register_event_views(ctx: &SessionContext) -> Result<(), SqlError> {
    register(ctx, &[Reads::Events]).await
}

/// Creates the functions and every view in `ctx`, which must have the
/// `events` table and the review store's tables: the analysts' session.
pub async fn register_all_views(ctx: &SessionContext) -> Result<(), SqlError> {
    register(ctx, &[Reads::Events, Reads::Review]).await
}

async fn register(ctx: &SessionContext, reads: &[Reads]) -> Result<(), SqlError> {
    register_functions(ctx);
    for v in VIEWS.iter().filter(|v| reads.contains(&v.reads)) {
        let fail = |source| SqlError::View {
            view: v.name,
            source,
        };
        ctx.sql(v.sql)
            .await
            .map_err(fail)?
            .collect()
            .await
            .map_err(fail)?;
    }
    Ok(())
}

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two WGS84 points (haversine).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((p2 - p1) / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    // Rounding can push `a` a hair above 1 for antipodes.
    2.0 * EARTH_RADIUS_M * a.min(1.0).sqrt().asin()
}

/// Adds `haversine_m(lat1, lon1, lat2, lon2)` (Float64 degrees -> metres;
/// NULL when any argument is NULL) to `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    let f = Arc::new(|args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let cols: Vec<&Float64Array> = arrays
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let out: Float64Array = (0..cols[0].len())
            .map(|i| {
                if cols.iter().any(|c| c.is_null(i)) {
                    None
                } else {
                    Some(haversine_m(
                        cols[0].value(i),
                        cols[1].value(i),
                        cols[2].value(i),
                        cols[3].value(i),
                    ))
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    });
    ctx.register_udf(create_udf(
        "haversine_m",
        vec![DataType::Float64; 4],
        DataType::Float64,
        Volatility::Immutable,
        f,
    ));
    let f = Arc::new(|args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let (json, key) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
        let out: StringArray = (0..json.len())
            .map(|i| {
                if json.is_null(i) || key.is_null(i) {
                    return None;
                }
                attr_text(json.value(i), key.value(i))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    });
    ctx.register_udf(create_udf(
        "attr_text",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        f,
    ));
}

/// The string value of the top-level `key` of a JSON object (an event's
/// `attrs`, kept as the sender wrote it); `None` when the text is not an
/// object, the key is missing or its value is not a string. Optional fields
/// the contract documents without a column of their own (a report's
/// `summary`) are read this way.
pub fn attr_text(json: &str, key: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
        .ok()?
        .remove(key)?
    {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{attr_text, haversine_m, Reads, VIEWS};

    /// A view marked as reading `events` only registers in a session that
    /// has nothing else (the detectors' session), in the list's order.
    #[tokio::test]
    async fn views_over_events_need_only_the_events_table() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = crate::open_session(dir.path()).await.unwrap();
        super::register_event_views(&ctx).await.unwrap();
        for v in VIEWS {
            let registered = ctx.table_exist(v.name).unwrap();
            assert_eq!(registered, v.reads == Reads::Events, "{}", v.name);
        }
    }

    #[test]
    fn attr_text_reads_string_fields_only() {
        let a = r#"{"category":"family","summary":"两户因家事争执","n":3}"#;
        assert_eq!(attr_text(a, "summary").as_deref(), Some("两户因家事争执"));
        assert_eq!(attr_text(a, "n"), None);
        assert_eq!(attr_text(a, "missing"), None);
        assert_eq!(attr_text("not json", "summary"), None);
        assert_eq!(attr_text("[1,2]", "summary"), None);
    }

    #[test]
    fn haversine_known_distances() {
        // 0.0001 degree of latitude is 11.12 m.
        assert!((haversine_m(22.8, 108.3, 22.8001, 108.3) - 11.119).abs() < 0.01);
        assert_eq!(haversine_m(22.8, 108.3, 22.8, 108.3), 0.0);
        // Antipodes: half the circumference, not NaN.
        let half = std::f64::consts::PI * 6_371_008.8;
        assert!((haversine_m(0.0, 0.0, 0.0, 180.0) - half).abs() < 1.0);
    }
}
