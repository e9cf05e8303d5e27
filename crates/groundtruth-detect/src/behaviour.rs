//! Rows of the behaviour views (`sql/*.sql`) into the plain structs of
//! `groundtruth-behaviour`.

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use groundtruth_behaviour::checkin::CheckIn;
use groundtruth_behaviour::churn::ChurnDay;
use groundtruth_behaviour::farm::{ChainSession, DeviceProfile};
use groundtruth_behaviour::registration::Registration;
use groundtruth_behaviour::reports::Report;
use groundtruth_behaviour::Input;

use crate::error::DetectError;
use crate::tracks::col;

/// Typed access to one batch of a view, by column name.
struct Rows<'a> {
    b: &'a RecordBatch,
    what: &'static str,
}

impl Rows<'_> {
    fn get(&self, name: &'static str, t: &DataType) -> Result<ArrayRef, DetectError> {
        col(self.b, self.what, name, t)
    }

    fn strs(&self, name: &'static str) -> Result<Vec<Option<String>>, DetectError> {
        let a = self.get(name, &DataType::Utf8)?;
        Ok(a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    }

    /// A column that must not be NULL (the view guarantees it).
    fn req(&self, name: &'static str) -> Result<Vec<String>, DetectError> {
        Ok(self
            .strs(name)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }

    fn f64s(&self, name: &'static str) -> Result<Vec<Option<f64>>, DetectError> {
        let a = self.get(name, &DataType::Float64)?;
        Ok(a.as_primitive::<Float64Type>().iter().collect())
    }

    fn i64s(&self, name: &'static str) -> Result<Vec<Option<i64>>, DetectError> {
        let a = self.get(name, &DataType::Int64)?;
        Ok(a.as_primitive::<Int64Type>().iter().collect())
    }

    fn ints(&self, name: &'static str) -> Result<Vec<i64>, DetectError> {
        Ok(self
            .i64s(name)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }

    fn dates(&self, name: &'static str) -> Result<Vec<i32>, DetectError> {
        let a = self.get(name, &DataType::Date32)?;
        Ok(a.as_primitive::<Date32Type>()
            .iter()
            .map(Option::unwrap_or_default)
            .collect())
    }

    fn bools(&self, name: &'static str) -> Result<Vec<Option<bool>>, DetectError> {
        let a = self.get(name, &DataType::Boolean)?;
        Ok(a.as_boolean().iter().collect())
    }
}

async fn query(
    ctx: &SessionContext,
    what: &'static str,
    sql: &str,
) -> Result<Vec<RecordBatch>, DetectError> {
    let q = |source| DetectError::Query { what, source };
    ctx.sql(sql).await.map_err(q)?.collect().await.map_err(q)
}

async fn sessions(ctx: &SessionContext) -> Result<Vec<ChainSession>, DetectError> {
    const WHAT: &str = "sessions by network (session_chain)";
    let mut out = Vec::new();
    for b in query(
        ctx,
        WHAT,
        "SELECT app_id, account_id, session_id, device_id, net_key, region, start_us, \
         end_us, gap_s, event_date FROM session_chain ORDER BY net_key, seq",
    )
    .await?
    {
        let r = Rows { b: &b, what: WHAT };
        let (app, acct, sid, dev, net, region) = (
            r.req("app_id")?,
            r.req("account_id")?,
            r.req("session_id")?,
            r.strs("device_id")?,
            r.req("net_key")?,
            r.strs("region")?,
        );
        let (start, end, gap, date) = (
            r.ints("start_us")?,
            r.ints("end_us")?,
            r.f64s("gap_s")?,
            r.dates("event_date")?,
        );
        for (i, app_id) in app.into_iter().enumerate() {
            out.push(ChainSession {
                app_id,
                account_id: acct[i].clone(),
                session_id: sid[i].clone(),
                device_id: dev[i].clone(),
                net_key: net[i].clone(),
                region: region[i].clone(),
                start_us: start[i],
                end_us: end[i],
                gap_s: gap[i],
                event_date: date[i],
            });
        }
    }
    Ok(out)
}

async fn devices(ctx: &SessionContext) -> Result<Vec<DeviceProfile>, DetectError> {
    const WHAT: &str = "device profiles (device_profile)";
    let mut out = Vec::new();
    for b in query(
        ctx,
        WHAT,
        "SELECT device_id, accounts, networks, days, spread_m FROM device_profile",
    )
    .await?
    {
        let r = Rows { b: &b, what: WHAT };
        let (dev, acc, net, days, spread) = (
            r.req("device_id")?,
            r.ints("accounts")?,
            r.ints("networks")?,
            r.ints("days")?,
            r.f64s("spread_m")?,
        );
        for (i, device_id) in dev.into_iter().enumerate() {
            out.push(DeviceProfile {
                device_id,
                accounts: acc[i] as u32,
                networks: net[i] as u32,
                days: days[i] as u32,
                spread_m: spread[i],
            });
        }
    }
    Ok(out)
}

async fn check_ins(ctx: &SessionContext) -> Result<Vec<CheckIn>, DetectError> {
    const WHAT: &str = "check-ins (check_ins)";
    let mut out = Vec::new();
    for b in query(
        ctx,
        WHAT,
        "SELECT * FROM check_ins ORDER BY device_id, t_us, event_id",
    )
    .await?
    {
        let r = Rows { b: &b, what: WHAT };
        let (eid, app, acct, dev, region, point) = (
            r.req("event_id")?,
            r.req("app_id")?,
            r.req("account_id")?,
            r.strs("device_id")?,
            r.strs("region")?,
            r.strs("point_id")?,
        );
        let (t, date, lat, lon, acc, from) = (
            r.ints("t_us")?,
            r.dates("event_date")?,
            r.f64s("lat")?,
            r.f64s("lon")?,
            r.f64s("accuracy_m")?,
            r.f64s("from_point_m")?,
        );
        let (pacc, spot_n, spot_a, spot_d, dd_acc, since) = (
            r.i64s("point_accounts")?,
            r.ints("same_spot_check_ins")?,
            r.ints("same_spot_accounts")?,
            r.ints("same_spot_days")?,
            r.ints("device_day_accounts")?,
            r.f64s("since_device_prev_s")?,
        );
        for (i, event_id) in eid.into_iter().enumerate() {
            out.push(CheckIn {
                event_id,
                app_id: app[i].clone(),
                account_id: acct[i].clone(),
                device_id: dev[i].clone(),
                region: region[i].clone(),
                point_id: point[i].clone(),
                t_us: t[i],
                event_date: date[i],
                lat: lat[i],
                lon: lon[i],
                accuracy_m: acc[i],
                from_point_m: from[i],
                point_accounts: pacc[i],
                same_spot_check_ins: spot_n[i],
                same_spot_accounts: spot_a[i],
                same_spot_days: spot_d[i],
                device_day_accounts: dd_acc[i],
                since_device_prev_s: since[i],
            });
        }
    }
    Ok(out)
}

async fn registrations(ctx: &SessionContext) -> Result<Vec<Registration>, DetectError> {
    const WHAT: &str = "registrations (registrations)";
    let mut out = Vec::new();
    for b in query(
        ctx,
        WHAT,
        "SELECT * FROM registrations ORDER BY app_id, source, t_us, event_id",
    )
    .await?
    {
        let r = Rows { b: &b, what: WHAT };
        let (eid, app, acct, source, referrer, dev, ip, integ, claimed) = (
            r.req("event_id")?,
            r.req("app_id")?,
            r.req("account_id")?,
            r.req("source")?,
            r.strs("referrer")?,
            r.strs("device_id")?,
            r.strs("ip")?,
            r.strs("integrity")?,
            r.strs("claimed_region")?,
        );
        let referrer_account = r.bools("referrer_is_account")?;
        let (t, back, observed, since) = (
            r.ints("t_us")?,
            r.bools("returned")?,
            r.f64s("observed_s")?,
            r.f64s("since_source_prev_s")?,
        );
        for (i, event_id) in eid.into_iter().enumerate() {
            out.push(Registration {
                event_id,
                app_id: app[i].clone(),
                account_id: acct[i].clone(),
                source: source[i].clone(),
                referrer: referrer[i].clone(),
                referrer_is_account: referrer_account[i].unwrap_or(false),
                device_id: dev[i].clone(),
                ip: ip[i].clone(),
                integrity: integ[i].clone(),
                claimed_region: claimed[i].clone(),
                t_us: t[i],
                returned: back[i],
                observed_s: observed[i].unwrap_or(0.0),
                since_source_prev_s: since[i],
            });
        }
    }
    Ok(out)
}

async fn churn_days(ctx: &SessionContext) -> Result<Vec<ChurnDay>, DetectError> {
    const WHAT: &str = "registry work per day (record_churn_daily)";
    let mut out = Vec::new();
    for b in query(
        ctx,
        WHAT,
        "SELECT * FROM record_churn_daily ORDER BY app_id, account_id, registry, event_date",
    )
    .await?
    {
        let r = Rows { b: &b, what: WHAT };
        let (app, acct, registry, region, date) = (
            r.req("app_id")?,
            r.req("account_id")?,
            r.strs("registry")?,
            r.strs("region")?,
            r.dates("event_date")?,
        );
        let n = |c| r.ints(c);
        let (ops, cr, up, de, re, noop, recs, rer, first, last) = (
            n("ops")?,
            n("creates")?,
            n("updates")?,
            n("deletes")?,
            n("re_entries")?,
            n("no_op_updates")?,
            n("records")?,
            n("re_entered_records")?,
            n("first_us")?,
            n("last_us")?,
        );
        for (i, app_id) in app.into_iter().enumerate() {
            out.push(ChurnDay {
                app_id,
                account_id: acct[i].clone(),
                registry: registry[i].clone(),
                event_date: date[i],
                region: region[i].clone(),
                ops: ops[i],
                creates: cr[i],
                updates: up[i],
                deletes: de[i],
                re_entries: re[i],
                no_op_updates: noop[i],
                records: recs[i],
                re_entered_records: rer[i],
                first_us: first[i],
                last_us: last[i],
            });
        }
    }
    Ok(out)
}

async fn reports(ctx: &SessionContext) -> Result<Vec<Report>, DetectError> {
    const WHAT: &str = "reports (reports)";
    let mut out = Vec::new();
    for b in query(
        ctx,
        WHAT,
        "SELECT app_id, account_id, region, category, summary, t_us, event_date, near_copy, \
         lat IS NOT NULL AS located FROM reports ORDER BY app_id, t_us, event_id",
    )
    .await?
    {
        let r = Rows { b: &b, what: WHAT };
        let (app, acct, region, category, summary, date) = (
            r.req("app_id")?,
            r.req("account_id")?,
            r.strs("region")?,
            r.strs("category")?,
            r.strs("summary")?,
            r.dates("event_date")?,
        );
        let (t, copy, located) = (r.ints("t_us")?, r.bools("near_copy")?, r.bools("located")?);
        for (i, app_id) in app.into_iter().enumerate() {
            out.push(Report {
                app_id,
                account_id: acct[i].clone(),
                region: region[i].clone(),
                category: category[i].clone(),
                summary: summary[i].clone(),
                t_us: t[i],
                event_date: date[i],
                near_copy: copy[i].unwrap_or(false),
                located: located[i].unwrap_or(false),
            });
        }
    }
    Ok(out)
}

/// Reads every behaviour view (views must be registered).
pub async fn load_input(ctx: &SessionContext) -> Result<Input, DetectError> {
    load_input_for(ctx, &|_| true).await
}

/// Loads only the views the `wanted` detectors read. The queries run
/// concurrently: each is small and partly serial (planning, the final
/// sort), so together they keep both cores busy.
pub async fn load_input_for(
    ctx: &SessionContext,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Input, DetectError> {
    use groundtruth_behaviour::{checkin, churn, farm, registration, reports};
    async fn when<T: Default>(
        on: bool,
        f: impl std::future::Future<Output = Result<T, DetectError>>,
    ) -> Result<T, DetectError> {
        if on {
            f.await
        } else {
            Ok(T::default())
        }
    }
    let farm = wanted(farm::DETECTOR);
    let (sessions, devices, check_ins, registrations, churn_days, reports) = futures::try_join!(
        when(farm, sessions(ctx)),
        when(farm, devices(ctx)),
        when(wanted(checkin::DETECTOR), check_ins(ctx)),
        when(wanted(registration::DETECTOR), registrations(ctx)),
        when(wanted(churn::DETECTOR), churn_days(ctx)),
        when(wanted(reports::DETECTOR), self::reports(ctx)),
    )?;
    Ok(Input {
        sessions,
        devices,
        check_ins,
        registrations,
        churn_days,
        reports,
    })
}
