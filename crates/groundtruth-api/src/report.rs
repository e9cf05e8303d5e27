//! `GET /api/v1/regions/{region}/report?month=YYYY-MM`: a unit's month
//! handed back to it (數據迴流). What its people were made to do in the
//! apps (apps used, days, minutes), how much of each app's reported
//! activity was real (accounts and events no finding flags), and its
//! cases: the figures a monthly return asks a unit to compile by hand.
//! `format=xlsx` gives the same as a workbook (one sheet per table, with
//! the column names in the caller's language); the pages print it to PDF.
//!
//! The figures come from the analysts' views in the caller's scoped
//! session ([`groundtruth_query::QueryService::session`]), so a unit reads
//! its own people only, and the month and region reach the query as
//! literals of the DataFrame API, never as SQL text.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct, max, median, sum};
use datafusion::prelude::{cast, col, lit, when, DataFrame, Expr, SessionContext};
use datafusion::scalar::ScalarValue;
use groundtruth_event::{date32_to_string, string_to_date32};
use groundtruth_store::{RegionCases, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::lake::{query_failed, rows_json};
use crate::params::region_in_scope;
use crate::routes::READERS;
use crate::workbook::{self, Cell, Lang, Sheet};
use crate::ApiState;

/// Most people listed (the biggest burden first); a unit is a few hundred.
const MAX_PEOPLE: usize = 2_000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// The month, `YYYY-MM` (local days); default: the lake's latest month.
    pub month: Option<String>,
    /// `json` (default) or `xlsx`.
    pub format: Option<String>,
    /// Column names of the workbook: `zh` (default) or `en`; the
    /// `Accept-Language` header also chooses.
    pub lang: Option<String>,
}

/// One app's month in the region.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppMonth {
    pub app_id: String,
    /// Accounts with any activity (what the app's dashboard reports).
    pub active_accounts: i64,
    /// ...of which active on at least one day no finding flags.
    pub real_active_accounts: i64,
    pub events: i64,
    /// Events of accounts on days a finding flags.
    pub faked_events: i64,
    pub faked_share: f64,
    /// Minutes the region's people spent in the app (sessions' length).
    pub minutes: f64,
}

/// One person's month: what the apps cost them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonMonth {
    pub account_id: String,
    pub apps_used: i64,
    pub days_active: i64,
    pub minutes_in_apps: f64,
    pub events: i64,
    /// Check-ins made, over all apps (what the apps ask of the person).
    pub check_ins: i64,
    /// Reports filed, over all apps.
    pub reports: i64,
    /// Days on which a finding flags the person's activity.
    pub flagged_days: i64,
}

/// The month's burden over the region's people.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Burden {
    pub people: usize,
    pub median_apps_used: f64,
    pub max_apps_used: i64,
    pub median_minutes_in_apps: f64,
    /// People who used at least 5 apps in the month.
    pub people_5_or_more_apps: usize,
}

/// A region's month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthlyReport {
    pub region: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's first and last local day.
    pub first_day: String,
    pub last_day: String,
    pub apps: Vec<AppMonth>,
    pub burden: Burden,
    /// The heaviest burdens first (at most 2,000 people).
    pub people: Vec<PersonMonth>,
    /// More people than listed.
    pub people_truncated: bool,
    /// The region's cases (all time: open ones counted, not shown).
    pub cases: RegionCases,
}

/// The first and last local day of `YYYY-MM`, as Arrow `Date32` values.
fn month_days(month: &str) -> Result<(i32, i32), ApiError> {
    let bad = || {
        ApiError::bad(
            "month",
            format!("`{month}` is not a month; give it as YYYY-MM, e.g. 2026-11"),
        )
    };
    let (y, m) = month
        .split_once('-')
        .filter(|(y, m)| {
            y.len() == 4 && m.len() == 2 && (y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        })
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        .ok_or_else(bad)?;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let first = string_to_date32(&format!("{y:04}-{m:02}-01")).ok_or_else(bad)?;
    let next = string_to_date32(&format!("{ny:04}-{nm:02}-01")).ok_or_else(bad)?;
    Ok((first, next - 1))
}

fn date32(d: i32) -> Expr {
    lit(ScalarValue::Date32(Some(d)))
}

async fn rows(df: DataFrame, what: &'static str) -> Result<Vec<Value>, ApiError> {
    let batches: Vec<RecordBatch> = df.collect().await.map_err(query_failed(what))?;
    rows_json(&batches)
}

/// An integer column of a JSON row (0 when absent).
fn int(r: &Value, k: &str) -> i64 {
    r.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// Seconds as minutes, to one decimal.
fn minutes(seconds: f64) -> f64 {
    (seconds / 6.0).round() / 10.0
}

/// The month's `account_days` rows of `region`.
async fn month_rows(
    ctx: &SessionContext,
    region: &Scope,
    first: i32,
    last: i32,
) -> Result<DataFrame, ApiError> {
    let f = query_failed("the report's activity");
    let mut cond = col("day")
        .gt_eq(date32(first))
        .and(col("day").lt_eq(date32(last)));
    if !region.is_nationwide() {
        cond = cond.and(col("region").like(lit(region.like_pattern())));
    }
    ctx.table("account_days")
        .await
        .map_err(&f)?
        .filter(cond)
        .map_err(&f)
}

fn flagged_then(then: Expr) -> Expr {
    when(col("flagged"), then)
        .otherwise(lit(ScalarValue::Null))
        .unwrap_or_else(|_| lit(ScalarValue::Null))
}

async fn apps(days: DataFrame) -> Result<Vec<AppMonth>, ApiError> {
    let f = query_failed("the report's apps");
    let unflagged_account = when(col("flagged"), lit(ScalarValue::Utf8(None)))
        .otherwise(col("account_id"))
        .map_err(&f)?;
    let df = days
        .aggregate(
            vec![col("app_id")],
            vec![
                count_distinct(col("account_id")).alias("active_accounts"),
                count_distinct(unflagged_account).alias("real_active_accounts"),
                sum(col("events")).alias("events"),
                sum(flagged_then(col("events"))).alias("faked_events"),
                sum(col("seconds")).alias("seconds"),
            ],
        )
        .map_err(&f)?
        .sort(vec![col("app_id").sort(true, false)])
        .map_err(&f)?;
    Ok(rows(df, "the report's apps")
        .await?
        .iter()
        .map(|r| {
            let events = int(r, "events");
            let faked = int(r, "faked_events");
            AppMonth {
                app_id: r["app_id"].as_str().unwrap_or_default().to_string(),
                active_accounts: int(r, "active_accounts"),
                real_active_accounts: int(r, "real_active_accounts"),
                events,
                faked_events: faked,
                faked_share: if events > 0 {
                    faked as f64 / events as f64
                } else {
                    0.0
                },
                minutes: minutes(int(r, "seconds") as f64),
            }
        })
        .collect())
}

/// One row per person: apps used, days, seconds, events, flagged days.
fn per_person(days: DataFrame) -> Result<DataFrame, ApiError> {
    let f = query_failed("the report's people");
    let flagged_day = flagged_then(col("day"));
    days.aggregate(
        vec![col("account_id")],
        vec![
            count_distinct(col("app_id")).alias("apps_used"),
            count_distinct(col("day")).alias("days_active"),
            sum(col("seconds")).alias("seconds"),
            sum(col("events")).alias("events"),
            sum(col("check_ins")).alias("check_ins"),
            sum(col("reports")).alias("reports"),
            count_distinct(flagged_day).alias("flagged_days"),
        ],
    )
    .map_err(&f)
}

/// The burden over every person of the month (not only those listed).
async fn burden(people: DataFrame) -> Result<Burden, ApiError> {
    let f = query_failed("the report's burden");
    let five = when(col("apps_used").gt_eq(lit(5i64)), lit(1i64))
        .otherwise(lit(0i64))
        .map_err(&f)?;
    let df = people
        .aggregate(
            vec![],
            vec![
                count(lit(1)).alias("people"),
                median(cast(col("apps_used"), DataType::Float64)).alias("median_apps"),
                max(col("apps_used")).alias("max_apps"),
                median(cast(col("seconds"), DataType::Float64)).alias("median_seconds"),
                sum(five).alias("five_or_more"),
            ],
        )
        .map_err(&f)?;
    let r = rows(df, "the report's burden")
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let num = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    Ok(Burden {
        people: num("people") as usize,
        median_apps_used: num("median_apps"),
        max_apps_used: num("max_apps") as i64,
        median_minutes_in_apps: minutes(num("median_seconds")),
        people_5_or_more_apps: num("five_or_more") as usize,
    })
}

async fn people(people: DataFrame) -> Result<Vec<PersonMonth>, ApiError> {
    let f = query_failed("the report's people");
    let df = people
        .sort(vec![
            col("apps_used").sort(false, false),
            col("seconds").sort(false, false),
            col("account_id").sort(true, false),
        ])
        .map_err(&f)?
        .limit(0, Some(MAX_PEOPLE + 1))
        .map_err(&f)?;
    Ok(rows(df, "the report's people")
        .await?
        .iter()
        .map(|r| PersonMonth {
            account_id: r["account_id"].as_str().unwrap_or_default().to_string(),
            apps_used: int(r, "apps_used"),
            days_active: int(r, "days_active"),
            minutes_in_apps: minutes(int(r, "seconds") as f64),
            events: int(r, "events"),
            check_ins: int(r, "check_ins"),
            reports: int(r, "reports"),
            flagged_days: int(r, "flagged_days"),
        })
        .collect())
}

/// The lake's latest month in `scope`, `YYYY-MM`.
async fn latest_month(s: &ApiState, scope: &Scope) -> Result<String, ApiError> {
    let lake = s.lake()?;
    let latest = crate::lake::latest_event_us(lake, scope).await?;
    let us = latest.unwrap_or_else(crate::now_us);
    let day = groundtruth_event::local_date(us, lake.zone);
    let text = date32_to_string(day);
    Ok(text.get(..7).unwrap_or(&text).to_string())
}

#[utoipa::path(get, path = "/api/v1/regions/{region}/report", tag = "data return", security(("bearer" = [])),
    params(("region" = String, Path, description = "division-code prefix inside your scope"), ReportParams),
    responses((status = 200, body = MonthlyReport, description = "JSON, or an xlsx workbook with format=xlsx"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn region_report(
    State(s): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(region): ApiPath<String>,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let p = caller.require(READERS, "read a region's monthly report")?;
    let region = region_in_scope(&p.scope, &region)?;
    let xlsx = match params.format.as_deref() {
        None | Some("json") => false,
        Some("xlsx") => true,
        Some(other) => {
            return Err(ApiError::bad(
                "format",
                format!("`{other}` is not a report format; use json or xlsx"),
            ))
        }
    };
    let month = match params.month {
        Some(m) => m,
        None => latest_month(&s, &region).await?,
    };
    let (first, last) = month_days(&month)?;
    let Some(query) = s.query.as_ref() else {
        return Err(ApiError::Unavailable(
            "the report needs the lake and the analysts' views; start the service with a lake"
                .into(),
        ));
    };
    let ctx = query.session(p).await?;
    let days = month_rows(&ctx, &region, first, last).await?;
    let apps = apps(days.clone()).await?;
    let persons = per_person(days)?;
    let burden = burden(persons.clone()).await?;
    let mut people = people(persons).await?;
    let people_truncated = people.len() > MAX_PEOPLE;
    people.truncate(MAX_PEOPLE);
    let report = MonthlyReport {
        region: region.as_str().to_string(),
        month,
        first_day: date32_to_string(first),
        last_day: date32_to_string(last),
        apps,
        burden,
        people,
        people_truncated,
        cases: s.store.region_cases(&p.scope, &region).await?,
    };
    if !xlsx {
        return Ok(Json(report).into_response());
    }
    let lang = Lang::of(params.lang.as_deref(), &headers);
    let bytes = workbook::xlsx(&sheets(&report, lang))?;
    let name = format!("groundtruth-{}-{}.xlsx", report.region, report.month);
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(workbook::MEDIA_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The report's sheets: the summary, the apps, the people.
fn sheets(r: &MonthlyReport, l: Lang) -> Vec<Sheet<'_>> {
    let row = |zh, en, v| vec![Cell::Text(l.t(zh, en)), v];
    let b = &r.burden;
    let summary = vec![
        row("地区", "Region", Cell::Text(&r.region)),
        row("月份", "Month", Cell::Text(&r.month)),
        row("起", "From", Cell::Text(&r.first_day)),
        row("止", "To", Cell::Text(&r.last_day)),
        row("人数", "People", Cell::Int(b.people as i64)),
        row(
            "每人使用应用数（中位数）",
            "Apps per person (median)",
            Cell::Num(b.median_apps_used),
        ),
        row(
            "每人使用应用数（最多）",
            "Apps per person (most)",
            Cell::Int(b.max_apps_used),
        ),
        row(
            "使用5个及以上应用的人数",
            "People using 5 or more apps",
            Cell::Int(b.people_5_or_more_apps as i64),
        ),
        row(
            "每人在应用中的分钟数（中位数）",
            "Minutes in apps per person (median)",
            Cell::Num(b.median_minutes_in_apps),
        ),
        row("待审案件", "Open cases", Cell::Int(r.cases.open)),
        row(
            "需补充材料",
            "Cases needing information",
            Cell::Int(r.cases.needs_info),
        ),
        row("已确认", "Confirmed", Cell::Int(r.cases.confirmed)),
        row("已排除", "Dismissed", Cell::Int(r.cases.dismissed)),
    ];
    let apps = r
        .apps
        .iter()
        .map(|a| {
            vec![
                Cell::Text(&a.app_id),
                Cell::Int(a.active_accounts),
                Cell::Int(a.real_active_accounts),
                Cell::Int(a.events),
                Cell::Int(a.faked_events),
                Cell::Share(a.faked_share),
                Cell::Num(a.minutes),
            ]
        })
        .collect();
    let people = r
        .people
        .iter()
        .map(|p| {
            vec![
                Cell::Text(&p.account_id),
                Cell::Int(p.apps_used),
                Cell::Int(p.days_active),
                Cell::Num(p.minutes_in_apps),
                Cell::Int(p.events),
                Cell::Int(p.check_ins),
                Cell::Int(p.reports),
                Cell::Int(p.flagged_days),
            ]
        })
        .collect();
    vec![
        Sheet {
            name: l.t("概况", "Summary"),
            header: vec![l.t("项目", "Item"), l.t("数值", "Value")],
            rows: summary,
        },
        Sheet {
            name: l.t("各应用", "Apps"),
            header: vec![
                l.t("应用", "App"),
                l.t("报告的活跃账号", "Active accounts (reported)"),
                l.t("真实活跃账号", "Really active accounts"),
                l.t("事件数", "Events"),
                l.t("被标记的事件", "Flagged events"),
                l.t("被标记占比", "Flagged share"),
                l.t("使用分钟数", "Minutes in the app"),
            ],
            rows: apps,
        },
        Sheet {
            name: l.t("人员负担", "Burden per person"),
            header: vec![
                l.t("账号", "Account"),
                l.t("使用应用数", "Apps used"),
                l.t("活跃天数", "Days active"),
                l.t("应用内分钟数", "Minutes in apps"),
                l.t("事件数", "Events"),
                l.t("打卡次数", "Check-ins"),
                l.t("上报件数", "Reports filed"),
                l.t("被标记天数", "Days flagged"),
            ],
            rows: people,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_whole_months() {
        let days = |m| {
            let (a, b) = month_days(m).unwrap();
            (date32_to_string(a), date32_to_string(b))
        };
        assert_eq!(days("2026-11"), ("2026-11-01".into(), "2026-11-30".into()));
        assert_eq!(days("2026-12"), ("2026-12-01".into(), "2026-12-31".into()));
        assert_eq!(days("2028-02").1, "2028-02-29");
        for bad in [
            "2026-13",
            "2026-1",
            "26-11",
            "2026-11-01",
            "november",
            "",
            "2026-+1",
            "2026-00",
        ] {
            assert!(month_days(bad).is_err(), "{bad}");
        }
    }
}
