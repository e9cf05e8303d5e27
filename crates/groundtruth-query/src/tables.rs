//! Tables that are not in the lake: the review store's findings, cases and
//! verdicts (read when a query scans them, only the caller's scope), the
//! findings' accounts one per row, and the app catalog.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, ListBuilder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use groundtruth_event::{local_date, DayZone};
use groundtruth_store::{ReviewStore, Scope};

use crate::catalog::AppCatalog;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// Which table of the review store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKind {
    Findings,
    FindingAccounts,
    Cases,
    Verdicts,
}

/// The schema of the tables the views are made of, while they are made.
pub const INTERNAL_SCHEMA: &str = "internal";

impl ReviewKind {
    pub const ALL: [ReviewKind; 4] = [
        ReviewKind::Findings,
        ReviewKind::FindingAccounts,
        ReviewKind::Cases,
        ReviewKind::Verdicts,
    ];

    /// The name the session registers it under. The views of `sql/`
    /// (`findings`, `cases`, `verdicts`) are made of the three in the
    /// [`INTERNAL_SCHEMA`], which goes once they are: clients listing the
    /// database's tables (SQLAlchemy's inspector, DBeaver) see the views.
    pub fn table_name(self) -> &'static str {
        match self {
            ReviewKind::Findings => "internal.review_findings",
            ReviewKind::FindingAccounts => "finding_accounts",
            ReviewKind::Cases => "internal.review_cases",
            ReviewKind::Verdicts => "internal.review_verdicts",
        }
    }

    pub fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(match self {
            ReviewKind::Findings => vec![
                f("finding_id", DataType::Utf8, false),
                f("case_id", DataType::Int64, false),
                f("detector", DataType::Utf8, false),
                f("app_id", DataType::Utf8, false),
                f("region", DataType::Utf8, false),
                f("score", DataType::Float64, false),
                f("window_start", ts(), false),
                f("window_end", ts(), false),
                f("first_day", DataType::Date32, false),
                f("last_day", DataType::Date32, false),
                f("n_accounts", DataType::Int64, false),
                f("accounts", list(), false),
                f("devices", list(), false),
                f("patrol_ids", list(), false),
                f("reason", DataType::Utf8, false),
                f("evidence", DataType::Utf8, false),
                f("raised", DataType::Boolean, false),
                f("review", DataType::Utf8, false),
            ],
            ReviewKind::FindingAccounts => vec![
                f("finding_id", DataType::Utf8, false),
                f("detector", DataType::Utf8, false),
                f("app_id", DataType::Utf8, false),
                f("account_id", DataType::Utf8, false),
                f("region", DataType::Utf8, false),
                f("first_day", DataType::Date32, false),
                f("last_day", DataType::Date32, false),
                f("review", DataType::Utf8, false),
            ],
            ReviewKind::Cases => vec![
                f("case_id", DataType::Int64, false),
                f("app_id", DataType::Utf8, false),
                f("region", DataType::Utf8, false),
                f("regions", list(), false),
                f("status", DataType::Utf8, false),
                f("verdict", DataType::Utf8, true),
                f("assignee", DataType::Utf8, true),
                f("score", DataType::Float64, false),
                f("detectors", list(), false),
                f("n_accounts", DataType::Int64, false),
                f("accounts", list(), false),
                f("n_findings", DataType::Int64, false),
                f("n_raised", DataType::Int64, false),
                f("window_start", ts(), false),
                f("window_end", ts(), false),
                f("created_at", ts(), false),
                f("updated_at", ts(), false),
            ],
            ReviewKind::Verdicts => vec![
                f("verdict_id", DataType::Int64, false),
                f("case_id", DataType::Int64, false),
                f("region", DataType::Utf8, false),
                f("verdict", DataType::Utf8, false),
                f("note", DataType::Utf8, false),
                f("author", DataType::Utf8, false),
                f("at", ts(), false),
                f("detectors", list(), false),
            ],
        }))
    }
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

fn strings<'a>(b: &mut ListBuilder<StringBuilder>, items: impl IntoIterator<Item = &'a String>) {
    for s in items {
        b.values().append_value(s);
    }
    b.append(true);
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// A review-store table, read in the caller's scope when scanned.
#[derive(Debug, Clone)]
pub struct ReviewTable {
    pub kind: ReviewKind,
    pub store: ReviewStore,
    pub scope: Scope,
    pub zone: DayZone,
}

impl ReviewTable {
    async fn batch(&self) -> Result<RecordBatch, groundtruth_store::StoreError> {
        let schema = self.kind.schema();
        let cols: Vec<ArrayRef> = match self.kind {
            ReviewKind::Findings => {
                findings_columns(&self.store.export_findings(&self.scope).await?, self.zone)
            }
            ReviewKind::FindingAccounts => {
                finding_accounts_columns(&self.store.export_findings(&self.scope).await?, self.zone)
            }
            ReviewKind::Cases => cases_columns(&self.store.export_cases(&self.scope).await?),
            ReviewKind::Verdicts => {
                verdicts_columns(&self.store.export_verdicts(&self.scope).await?)
            }
        };
        RecordBatch::try_new(schema, cols).map_err(|e| groundtruth_store::StoreError::Corrupt {
            what: self.kind.table_name().into(),
            problem: e.to_string(),
        })
    }
}

/// `review_findings`: one row per finding.
fn findings_columns(rows: &[groundtruth_store::FindingRow], zone: DayZone) -> Vec<ArrayRef> {
    let mut id = StringBuilder::new();
    let mut case = Int64Builder::new();
    let mut det = StringBuilder::new();
    let mut app = StringBuilder::new();
    let mut region = StringBuilder::new();
    let mut score = Float64Builder::new();
    let mut ws = ts_builder();
    let mut we = ts_builder();
    let mut d0 = Date32Builder::new();
    let mut d1 = Date32Builder::new();
    let mut n = Int64Builder::new();
    let mut accounts = ListBuilder::new(StringBuilder::new());
    let mut devices = ListBuilder::new(StringBuilder::new());
    let mut patrols = ListBuilder::new(StringBuilder::new());
    let mut reason = StringBuilder::new();
    let mut evidence = StringBuilder::new();
    let mut raised = BooleanBuilder::new();
    let mut review = StringBuilder::new();
    for r in rows {
        let (s, e) = (
            micros(&r.finding.window_start),
            micros(&r.finding.window_end),
        );
        id.append_value(&r.finding.finding_id);
        case.append_value(r.case_id);
        det.append_value(&r.finding.detector);
        app.append_value(&r.app_id);
        region.append_value(&r.region);
        score.append_value(r.finding.score);
        ws.append_value(s);
        we.append_value(e);
        d0.append_value(local_date(s, zone));
        d1.append_value(local_date(e, zone));
        n.append_value(r.finding.accounts.len() as i64);
        strings(&mut accounts, &r.finding.accounts);
        strings(&mut devices, &r.finding.devices);
        strings(&mut patrols, &r.finding.patrol_ids);
        reason.append_value(&r.finding.reason);
        evidence.append_value(serde_json::Value::Object(r.finding.evidence.clone()).to_string());
        raised.append_value(r.raised);
        review.append_value(&r.review);
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(case.finish()),
        Arc::new(det.finish()),
        Arc::new(app.finish()),
        Arc::new(region.finish()),
        Arc::new(score.finish()),
        Arc::new(ws.finish()),
        Arc::new(we.finish()),
        Arc::new(d0.finish()),
        Arc::new(d1.finish()),
        Arc::new(n.finish()),
        Arc::new(accounts.finish()),
        Arc::new(devices.finish()),
        Arc::new(patrols.finish()),
        Arc::new(reason.finish()),
        Arc::new(evidence.finish()),
        Arc::new(raised.finish()),
        Arc::new(review.finish()),
    ]
}

/// `review_finding_accounts`: one row per finding, app and account.
fn finding_accounts_columns(
    rows: &[groundtruth_store::FindingRow],
    zone: DayZone,
) -> Vec<ArrayRef> {
    let mut id = StringBuilder::new();
    let mut det = StringBuilder::new();
    let mut app = StringBuilder::new();
    let mut acc = StringBuilder::new();
    let mut region = StringBuilder::new();
    let mut d0 = Date32Builder::new();
    let mut d1 = Date32Builder::new();
    let mut review = StringBuilder::new();
    for r in rows {
        let (s, e) = (
            micros(&r.finding.window_start),
            micros(&r.finding.window_end),
        );
        // A finding about several apps (a farm) names its
        // accounts in each.
        for a in r.app_id.split(',') {
            for account in &r.finding.accounts {
                id.append_value(&r.finding.finding_id);
                det.append_value(&r.finding.detector);
                app.append_value(a);
                acc.append_value(account);
                region.append_value(&r.region);
                d0.append_value(local_date(s, zone));
                d1.append_value(local_date(e, zone));
                review.append_value(&r.review);
            }
        }
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(det.finish()),
        Arc::new(app.finish()),
        Arc::new(acc.finish()),
        Arc::new(region.finish()),
        Arc::new(d0.finish()),
        Arc::new(d1.finish()),
        Arc::new(review.finish()),
    ]
}

/// `review_cases`: one row per case.
fn cases_columns(rows: &[groundtruth_store::CaseSummary]) -> Vec<ArrayRef> {
    let mut id = Int64Builder::new();
    let mut app = StringBuilder::new();
    let mut region = StringBuilder::new();
    let mut regions = ListBuilder::new(StringBuilder::new());
    let mut status = StringBuilder::new();
    let mut verdict = StringBuilder::new();
    let mut assignee = StringBuilder::new();
    let mut score = Float64Builder::new();
    let mut dets = ListBuilder::new(StringBuilder::new());
    let mut n_acc = Int64Builder::new();
    let mut accounts = ListBuilder::new(StringBuilder::new());
    let mut n_f = Int64Builder::new();
    let mut n_r = Int64Builder::new();
    let mut ws = ts_builder();
    let mut we = ts_builder();
    let mut ca = ts_builder();
    let mut ua = ts_builder();
    for c in rows {
        id.append_value(c.case_id);
        app.append_value(&c.app_id);
        region.append_value(&c.region);
        strings(&mut regions, &c.regions);
        status.append_value(c.status.as_str());
        verdict.append_option(c.verdict.map(|v| v.as_str()));
        assignee.append_option(c.assignee.as_deref());
        score.append_value(c.score);
        strings(&mut dets, &c.detectors);
        n_acc.append_value(c.n_accounts);
        strings(&mut accounts, &c.accounts);
        n_f.append_value(c.n_findings);
        n_r.append_value(c.n_raised);
        ws.append_value(micros(&c.window_start));
        we.append_value(micros(&c.window_end));
        ca.append_value(micros(&c.created_at));
        ua.append_value(micros(&c.updated_at));
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(app.finish()),
        Arc::new(region.finish()),
        Arc::new(regions.finish()),
        Arc::new(status.finish()),
        Arc::new(verdict.finish()),
        Arc::new(assignee.finish()),
        Arc::new(score.finish()),
        Arc::new(dets.finish()),
        Arc::new(n_acc.finish()),
        Arc::new(accounts.finish()),
        Arc::new(n_f.finish()),
        Arc::new(n_r.finish()),
        Arc::new(ws.finish()),
        Arc::new(we.finish()),
        Arc::new(ca.finish()),
        Arc::new(ua.finish()),
    ]
}

/// `review_verdicts`: one row per verdict.
fn verdicts_columns(rows: &[groundtruth_store::VerdictRow]) -> Vec<ArrayRef> {
    let mut id = Int64Builder::new();
    let mut case = Int64Builder::new();
    let mut region = StringBuilder::new();
    let mut verdict = StringBuilder::new();
    let mut note = StringBuilder::new();
    let mut author = StringBuilder::new();
    let mut at = ts_builder();
    let mut dets = ListBuilder::new(StringBuilder::new());
    for v in rows {
        id.append_value(v.verdict_id);
        case.append_value(v.case_id);
        region.append_value(&v.region);
        verdict.append_value(&v.verdict);
        note.append_value(&v.note);
        author.append_value(&v.author);
        at.append_value(v.at_us);
        strings(&mut dets, &v.detectors);
    }
    vec![
        Arc::new(id.finish()),
        Arc::new(case.finish()),
        Arc::new(region.finish()),
        Arc::new(verdict.finish()),
        Arc::new(note.finish()),
        Arc::new(author.finish()),
        Arc::new(at.finish()),
        Arc::new(dets.finish()),
    ]
}

#[async_trait]
impl TableProvider for ReviewTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self
            .batch()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let plan =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(plan)
    }
}

/// The app catalog as a table: `app_id, name, level, functions, owner`.
pub fn catalog_batch(catalog: &AppCatalog) -> RecordBatch {
    let schema = catalog_schema();
    let mut id = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut level = StringBuilder::new();
    let mut functions = ListBuilder::new(StringBuilder::new());
    let mut owner = StringBuilder::new();
    for a in &catalog.apps {
        id.append_value(&a.id);
        name.append_value(&a.name);
        level.append_value(&a.level);
        strings(&mut functions, &a.functions);
        owner.append_value(&a.owner);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(name.finish()),
        Arc::new(level.finish()),
        Arc::new(functions.finish()),
        Arc::new(owner.finish()),
    ];
    RecordBatch::try_new(schema, cols).unwrap_or_else(|_| RecordBatch::new_empty(catalog_schema()))
}

pub fn catalog_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("app_id", DataType::Utf8, false),
        f("name", DataType::Utf8, false),
        f("level", DataType::Utf8, false),
        f("functions", list(), false),
        f("owner", DataType::Utf8, false),
    ]))
}
