//! Days, hours and clock times in the session's time zone, as PostgreSQL
//! reads a `timestamptz`.
//!
//! An event's `ts` is an instant (`Timestamp(µs, "UTC")`). PostgreSQL
//! turns such an instant into a day, an hour or a clock time in the
//! session's `TimeZone`; Arrow and DataFusion do it in the zone the value
//! is tagged with, UTC. So an analyst in China counting `ts::date` got UTC
//! days (a third of each day's events on the day before), `extract(hour
//! FROM ts)` UTC hours, `to_char(ts, 'HH24:MI')` UTC clock times, and
//! `ts >= '2026-11-04'` started at 08:00 in Beijing; `SET TIME ZONE` was
//! accepted and changed none of it.
//!
//! The session's zone is `datafusion.execution.time_zone`: the lake's day
//! zone (`lake.day_zone`, in which `event_date` is counted) unless the
//! caller sets another (`SET TIME ZONE` on the wire protocol). This
//! analyzer rule, run after type coercion, rewrites what depends on a zone
//! so that it reads the instant in the session's:
//! - a cast of an instant to a date, text or a timestamp without zone;
//! - a cast of a date, a timestamp without zone or text to an instant
//!   (the comparison `ts >= TIMESTAMP '2026-11-04 00:00'` casts its
//!   right side so): midnight of that day in the session's zone;
//! - `date_trunc`, `date_part` (`extract`) and `to_char` of an instant.
//!
//! An instant the query tagged itself (`ts AT TIME ZONE 'America/New_York'`)
//! is read on that zone's clock, as PostgreSQL reads the wall-clock time
//! `AT TIME ZONE` gives. `AT TIME ZONE 'UTC'` would keep the tag `ts` is
//! stored with and could not be told from a coercion (see [`user_zoned`]):
//! before planning, [`spell_out_utc`] writes UTC's names as the offset
//! `'+00:00'`, the same clock under a tag of the query's own.
//!
//! The instant itself and every type stay as they were (a result that is
//! an instant is cast back to its tag), and so does each output's name:
//! plans above see the same schema. Instants are still shown in UTC with
//! their offset.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{plan_err, DFSchema, Result};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Statement, Value as SqlValue, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Functions whose answer for an instant depends on the zone it is read
/// in.
const ZONED_FUNCTIONS: &[&str] = &[
    "date_trunc",
    "datetrunc",
    "date_part",
    "datepart",
    "to_char",
];

/// Names PostgreSQL reads as UTC.
const UTC_NAMES: &[&str] = &[
    "utc",
    "etc/utc",
    "uct",
    "etc/uct",
    "gmt",
    "etc/gmt",
    "gmt0",
    "etc/gmt0",
    "gmt+0",
    "gmt-0",
    "etc/gmt+0",
    "etc/gmt-0",
    "greenwich",
    "etc/greenwich",
    "universal",
    "etc/universal",
    "zulu",
    "etc/zulu",
    "z",
];

/// In `statement`, `x AT TIME ZONE '<a name of UTC>'` becomes `x AT TIME
/// ZONE '+00:00'`: the same instant on the same clock, but tagged by the
/// query, so that its day, hour and clock time are UTC's as in PostgreSQL
/// (the name `'UTC'` would keep the tag `ts` is stored with, read in the
/// session's zone). Whether anything changed.
pub fn spell_out_utc(statement: &mut Statement) -> bool {
    struct Utc(bool);
    impl VisitorMut for Utc {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<()> {
            if let SqlExpr::AtTimeZone { time_zone, .. } = e {
                if let SqlExpr::Value(ValueWithSpan {
                    value: SqlValue::SingleQuotedString(z),
                    ..
                }) = time_zone.as_mut()
                {
                    if UTC_NAMES.contains(&z.trim().to_lowercase().as_str()) {
                        *z = "+00:00".into();
                        self.0 = true;
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Utc(false);
    let _ = statement.visit(&mut v);
    v.0
}

/// [`spell_out_utc`] over a query's text: the text itself when nothing is
/// spelled out (or it does not parse, for the planner to report).
pub fn utc_spelled_out(sql: &str) -> Cow<'_, str> {
    rewritten(sql, |statements| {
        let mut changed = false;
        for s in statements {
            changed |= spell_out_utc(s);
        }
        changed
    })
}

/// `sql` parsed (PostgreSQL's dialect), rewritten by `rewrite` and printed
/// again if it says it changed anything; else (or if `sql` does not parse,
/// for the planner to report) `sql` itself, byte for byte.
pub fn rewritten(sql: &str, rewrite: impl FnOnce(&mut [Statement]) -> bool) -> Cow<'_, str> {
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    if !rewrite(&mut statements) {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";\n"),
    )
}

/// The analyzer rule (see the module's notes).
#[derive(Debug, Default)]
pub struct SessionZone;

impl AnalyzerRule for SessionZone {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let Some(zone) = config
            .execution
            .time_zone
            .as_deref()
            .map(str::trim)
            .filter(|z| !z.is_empty())
        else {
            return Ok(plan);
        };
        if zone.parse::<arrow::array::timezone::Tz>().is_err() {
            return plan_err!(
                "the session's time zone {zone:?} is not a time zone: set one such as 'Asia/Shanghai', 'UTC' or '+08:00'"
            );
        }
        let zone: Arc<str> = Arc::from(zone);
        plan.transform_up_with_subqueries(|node| in_zone(node, &zone))
            .data()
    }

    fn name(&self) -> &str {
        "groundtruth_session_zone"
    }
}

fn in_zone(node: LogicalPlan, zone: &Arc<str>) -> Result<Transformed<LogicalPlan>> {
    // The expressions of a node read its inputs' columns.
    let mut schema = DFSchema::empty();
    for input in node.inputs() {
        schema.merge(input.schema());
    }
    let names = NamePreserver::new(&node);
    let rewritten = node.map_expressions(|e| {
        let name = names.save(&e);
        e.transform_up(|e| rewrite(e, &schema, zone))
            .map(|t| t.update_data(|e| name.restore(e)))
    })?;
    if rewritten.transformed {
        rewritten.map_data(|p| p.recompute_schema())
    } else {
        Ok(rewritten)
    }
}

/// An instant's type tagged with `zone`.
fn tagged(unit: TimeUnit, zone: &Arc<str>) -> DataType {
    DataType::Timestamp(unit, Some(Arc::clone(zone)))
}

/// Whether `t` is an instant read in another zone than `zone`.
fn other_zone(t: &DataType, zone: &str) -> Option<TimeUnit> {
    match t {
        DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != zone => Some(*unit),
        _ => None,
    }
}

/// Whether `e` is an instant the query tagged with a zone of its own:
/// `x AT TIME ZONE 'z'`, which DataFusion plans as a cast of an instant to
/// `Timestamp(ns, "z")`, seen as a nanosecond cast that changes the tag
/// (type coercion's casts keep it; groundtruth's own keep their input's
/// unit). PostgreSQL reads such a value on z's clock, whatever the
/// session's zone, and so is it read here: left as the query tagged it.
/// `ts AT TIME ZONE 'UTC'` would keep the tag `ts` is stored with and not
/// be told from a coercion: [`spell_out_utc`] writes it as `'+00:00'`.
fn user_zoned(e: &Expr, schema: &DFSchema) -> bool {
    match e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            match (field.data_type(), expr.get_type(schema)) {
                (
                    DataType::Timestamp(TimeUnit::Nanosecond, Some(to)),
                    Ok(DataType::Timestamp(_, Some(from))),
                ) => to != &from,
                _ => false,
            }
        }
        _ => false,
    }
}

/// `expr` (of type `from`) as it should be cast to `to` in `zone`, if the
/// cast depends on the zone.
fn zoned_cast_input(expr: &Expr, from: &DataType, to: &DataType, zone: &Arc<str>) -> Option<Expr> {
    use DataType as T;
    match (from, to) {
        // An instant to a day or text: read it in the session's zone.
        (
            T::Timestamp(_, Some(_)),
            T::Date32 | T::Date64 | T::Utf8 | T::LargeUtf8 | T::Utf8View,
        ) => {
            let unit = other_zone(from, zone)?;
            Some(cast(expr.clone(), tagged(unit, zone)))
        }
        // An instant to a wall-clock time (also how a comparison with a day
        // is coerced): the session's clock at that instant (Arrow's cast
        // drops the zone and keeps UTC's clock).
        (T::Timestamp(_, Some(_)), T::Timestamp(_, None)) => {
            let unit = other_zone(from, zone)?;
            Some(Expr::ScalarFunction(ScalarFunction::new_udf(
                datafusion::functions::datetime::to_local_time(),
                vec![cast(expr.clone(), tagged(unit, zone))],
            )))
        }
        // A wall-clock time or text to an instant: that time in the
        // session's zone (Arrow reads it so when the target is tagged).
        (
            T::Timestamp(_, None) | T::Utf8 | T::LargeUtf8 | T::Utf8View,
            T::Timestamp(unit, Some(_)),
        ) => {
            other_zone(to, zone)?;
            Some(cast(expr.clone(), tagged(*unit, zone)))
        }
        // A day to an instant: its midnight in the session's zone.
        (T::Date32 | T::Date64, T::Timestamp(unit, Some(_))) => {
            other_zone(to, zone)?;
            Some(cast(
                cast(expr.clone(), T::Timestamp(*unit, None)),
                tagged(*unit, zone),
            ))
        }
        _ => None,
    }
}

fn cast(e: Expr, t: DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(e), t))
}

/// `e`'s type, if `e` is a value the session's zone may apply to: not one
/// the query tagged itself ([`user_zoned`]).
fn zone_free_type(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    if user_zoned(e, schema) {
        return None;
    }
    e.get_type(schema).ok()
}

fn rewrite(e: Expr, schema: &DFSchema, zone: &Arc<str>) -> Result<Transformed<Expr>> {
    let recast = |expr: &Expr, to: &DataType| {
        zone_free_type(expr, schema).and_then(|from| zoned_cast_input(expr, &from, to, zone))
    };
    match e {
        Expr::Cast(Cast { expr, field }) => Ok(match recast(&expr, field.data_type()) {
            Some(input) => {
                Transformed::yes(Expr::Cast(Cast::new_from_field(Box::new(input), field)))
            }
            None => Transformed::no(Expr::Cast(Cast { expr, field })),
        }),
        Expr::TryCast(TryCast { expr, field }) => Ok(match recast(&expr, field.data_type()) {
            Some(input) => Transformed::yes(Expr::TryCast(TryCast::new_from_field(
                Box::new(input),
                field,
            ))),
            None => Transformed::no(Expr::TryCast(TryCast { expr, field })),
        }),
        Expr::ScalarFunction(f) if ZONED_FUNCTIONS.contains(&f.func.name()) => {
            let units: Vec<Option<TimeUnit>> = f
                .args
                .iter()
                .map(|a| zone_free_type(a, schema).and_then(|t| other_zone(&t, zone)))
                .collect();
            if units.iter().all(Option::is_none) {
                return Ok(Transformed::no(Expr::ScalarFunction(f)));
            }
            let answer = Expr::ScalarFunction(f.clone()).get_type(schema).ok();
            let args = f
                .args
                .into_iter()
                .zip(units)
                .map(|(a, unit)| match unit {
                    Some(unit) => cast(a, tagged(unit, zone)),
                    None => a,
                })
                .collect();
            let call = Expr::ScalarFunction(ScalarFunction::new_udf(f.func, args));
            // An instant comes back tagged as it was (the same instant).
            Ok(Transformed::yes(match answer {
                Some(t @ DataType::Timestamp(_, Some(_))) => cast(call, t),
                _ => call,
            }))
        }
        other => Ok(Transformed::no(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// Events at instants around midnight in Beijing (16:00 UTC).
    async fn ctx(zone: Option<&str>) -> SessionContext {
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_analyzer_rule(Arc::new(SessionZone))
            .build();
        state.config_mut().options_mut().execution.time_zone = zone.map(String::from);
        let ctx = SessionContext::new_with_state(state);
        let ts = TimestampMicrosecondArray::from(vec![
            // 2026-11-03T15:30Z = 23:30 on the 3rd in Beijing
            1_793_719_800_000_000,
            // 2026-11-03T16:30Z = 00:30 on the 4th in Beijing
            1_793_723_400_000_000,
            // 2026-11-04T01:00Z = 09:00 on the 4th in Beijing
            1_793_754_000_000_000,
        ])
        .with_timezone("UTC");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            ts.data_type().clone(),
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ts)]).unwrap();
        ctx.register_batch("events", batch).unwrap();
        ctx
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        text.lines()
            .skip(3)
            .filter(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').trim().to_string())
            .collect()
    }

    #[tokio::test]
    async fn days_hours_and_clock_times_are_the_sessions() {
        let cn = ctx(Some("Asia/Shanghai")).await;
        assert_eq!(
            answer(
                &cn,
                "SELECT CAST(ts AS DATE) AS d, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
            )
            .await,
            ["2026-11-03 | 1", "2026-11-04 | 2"]
        );
        assert_eq!(
            answer(
                &cn,
                "SELECT extract(hour FROM ts) AS h FROM events ORDER BY ts"
            )
            .await,
            ["23", "0", "9"]
        );
        assert_eq!(
            answer(
                &cn,
                "SELECT to_char(ts, '%Y-%m-%d %H:%M') AS t FROM events ORDER BY ts"
            )
            .await,
            ["2026-11-03 23:30", "2026-11-04 00:30", "2026-11-04 09:00"]
        );
        // Truncated in Beijing, the same instant as PostgreSQL's
        // (16:00 UTC is Beijing's midnight).
        assert_eq!(
            answer(
                &cn,
                "SELECT date_trunc('day', ts) AS d FROM events ORDER BY ts"
            )
            .await,
            [
                "2026-11-02T16:00:00Z",
                "2026-11-03T16:00:00Z",
                "2026-11-03T16:00:00Z"
            ]
        );
        // A wall-clock time, a day and text compared with an instant are
        // read in the session's zone.
        for bound in [
            "TIMESTAMP '2026-11-04 00:00:00'",
            "DATE '2026-11-04'",
            "'2026-11-04 00:00:00'",
        ] {
            assert_eq!(
                answer(
                    &cn,
                    &format!("SELECT count(*) AS n FROM events WHERE ts >= {bound}")
                )
                .await,
                ["2"],
                "{bound}"
            );
        }
        // An explicit offset is kept.
        assert_eq!(
            answer(
                &cn,
                "SELECT count(*) AS n FROM events WHERE ts >= '2026-11-04T00:00:00Z'"
            )
            .await,
            ["1"]
        );
        // Names and types as they were.
        let fields = |c: SessionContext| async move {
            let sql = "SELECT CAST(ts AS DATE), date_trunc('hour', ts), extract(hour FROM ts) FROM events";
            let df = c.sql(sql).await.unwrap();
            df.schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(cn).await, fields(ctx(None).await).await);
    }

    #[test]
    fn utc_by_name_is_spelled_out_as_an_offset() {
        assert_eq!(
            utc_spelled_out("SELECT ts AT TIME ZONE 'UTC', ts AT TIME ZONE 'Etc/GMT' FROM events"),
            "SELECT ts AT TIME ZONE '+00:00', ts AT TIME ZONE '+00:00' FROM events"
        );
        for same in [
            "SELECT ts AT TIME ZONE 'Asia/Shanghai' FROM events",
            "SELECT 'UTC' AS z FROM events",
            "SELEC nonsense",
        ] {
            assert!(
                matches!(utc_spelled_out(same), Cow::Borrowed(s) if s == same),
                "{same}"
            );
        }
    }

    #[tokio::test]
    async fn utc_or_no_zone_leaves_the_plan_alone() {
        for zone in [None, Some("UTC")] {
            let c = ctx(zone).await;
            assert_eq!(
                answer(
                    &c,
                    "SELECT CAST(ts AS DATE) AS d, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
                )
                .await,
                ["2026-11-03 | 2", "2026-11-04 | 1"],
                "{zone:?}"
            );
        }
        let bad = ctx(Some("Mars/Olympus")).await;
        let e = bad
            .sql("SELECT CAST(ts AS DATE) FROM events")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a time zone"), "{e}");
    }
}
