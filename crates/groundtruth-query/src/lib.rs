//! `groundtruth-query`: the analysts' SQL.
//!
//! [`QueryService::session`] gives a caller a DataFusion session whose
//! tables are already cut to the caller's region scope: `events` is the
//! lake filtered by `region` (the unfiltered table is never registered, so
//! no query text can reach it), `dead_letters` only for a nationwide
//! scope, the review store's tables read in the scope, the app catalog,
//! and the views of `sql/` (the detectors' feature views and the
//! anti-formalism metrics). [`QueryService::run`] puts a query through the
//! [`guard`], plans it read-only, runs it under a time limit, a memory
//! limit and a row cap, and writes it to the audit log with its caller.

pub mod bounded;
pub mod catalog;
pub mod deadline;
pub mod encode;
mod error;
pub mod guard;
pub mod tables;
pub mod views;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{col, lit, SessionContext};
use futures::StreamExt;
use groundtruth_event::DayZone;
use groundtruth_store::{Principal, ReviewStore, Scope};

pub use catalog::AppCatalog;
pub use error::{QueryError, QueryErrorKind};

/// What a query may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_sql_bytes: usize,
    pub max_tokens: usize,
    /// Deepest nesting of parentheses.
    pub max_depth: usize,
    pub timeout: Duration,
    /// Memory the query's operators may hold (DataFusion's memory pool).
    pub memory_bytes: usize,
    /// Most rows returned; more are cut and the result says so.
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sql_bytes: 100_000,
            max_tokens: 20_000,
            max_depth: 64,
            timeout: Duration::from_secs(30),
            memory_bytes: 512 << 20,
            max_rows: 10_000,
        }
    }
}

/// How long the distinct counts of a scope's events (which steer join
/// choices, see [`groundtruth_lake::ndv`]) are used before they are
/// measured again.
pub const STATISTICS_MAX_AGE: Duration = Duration::from_secs(600);

/// The distinct counts of one scope's events.
#[derive(Debug, Default)]
struct ScopeCounts {
    counts: Option<groundtruth_lake::ndv::DistinctCounts>,
    measured: Option<Instant>,
    refreshing: bool,
}

/// Distinct counts of `ctx`'s events, or `None` (logged) when the scan
/// fails: joins are then planned without them.
async fn measure(
    ctx: &SessionContext,
    scope: &Scope,
) -> Option<groundtruth_lake::ndv::DistinctCounts> {
    let started = Instant::now();
    match groundtruth_lake::ndv::estimate(ctx).await {
        Ok(c) => {
            tracing::debug!(scope = %scope, ms = started.elapsed().as_millis() as u64, counts = ?c.0, "distinct counts of events measured");
            Some(c)
        }
        Err(e) => {
            tracing::warn!(error = %e, scope = %scope, "cannot measure distinct counts of events; joins are planned without them");
            None
        }
    }
}

/// Records a measurement of `scope`'s distinct counts (a failed one,
/// `None`, keeps the counts measured before and waits for the next
/// refresh).
fn keep(
    all: &std::sync::Mutex<HashMap<Scope, ScopeCounts>>,
    scope: Scope,
    measured: Option<groundtruth_lake::ndv::DistinctCounts>,
) {
    let mut all = all.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = all.entry(scope).or_default();
    entry.refreshing = false;
    entry.measured = Some(Instant::now());
    if let Some(c) = measured {
        entry.counts = Some(c);
    }
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// More rows existed than the cap.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Builds scoped sessions and runs queries in them.
pub struct QueryService {
    lake: PathBuf,
    zone: DayZone,
    store: ReviewStore,
    catalog: Arc<AppCatalog>,
    pub limits: Limits,
    /// Per scope, the session with its tables and views registered (the
    /// store's tables are read at scan time, so it stays current).
    bases: tokio::sync::Mutex<HashMap<Scope, SessionState>>,
    /// Per scope, distinct counts of its events for join selection.
    counts: Arc<std::sync::Mutex<HashMap<Scope, ScopeCounts>>>,
    /// Extra setup of every base session (the wire protocol adds its
    /// `pg_catalog` here).
    extra: Option<SessionSetup>,
}

/// A hook run on every base session after its tables are registered.
pub type SessionSetup = Arc<dyn Fn(&SessionContext) -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for QueryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryService")
            .field("lake", &self.lake)
            .field("limits", &self.limits)
            .finish()
    }
}

impl QueryService {
    pub fn new(
        lake: PathBuf,
        zone: DayZone,
        store: ReviewStore,
        catalog: AppCatalog,
        limits: Limits,
    ) -> QueryService {
        QueryService {
            lake,
            zone,
            store,
            catalog: Arc::new(catalog),
            limits,
            bases: Default::default(),
            counts: Default::default(),
            extra: None,
        }
    }

    /// Runs `setup` on every session built from now on.
    pub fn with_setup(
        mut self,
        setup: impl Fn(&SessionContext) -> Result<(), String> + Send + Sync + 'static,
    ) -> QueryService {
        self.extra = Some(Arc::new(setup));
        self
    }

    pub fn store(&self) -> &ReviewStore {
        &self.store
    }

    async fn base(&self, scope: &Scope) -> Result<SessionState, QueryError> {
        let mut bases = self.bases.lock().await;
        if let Some(s) = bases.get(scope) {
            return Ok(s.clone());
        }
        let state = self.build(scope).await?;
        bases.insert(scope.clone(), state.clone());
        Ok(state)
    }

    async fn build(&self, scope: &Scope) -> Result<SessionState, QueryError> {
        let internal = |e: &dyn std::fmt::Display| QueryError::Internal(e.to_string());
        let ctx = groundtruth_lake::lake_context();
        let events = groundtruth_lake::events_table(&self.lake).map_err(|e| internal(&e))?;
        let mut df = ctx.read_table(Arc::new(events)).map_err(|e| internal(&e))?;
        if !scope.is_nationwide() {
            df = df
                .filter(col("region").like(lit(scope.like_pattern())))
                .map_err(|e| internal(&e))?;
        }
        ctx.register_table("events", df.into_view())
            .map_err(|e| internal(&e))?;
        if scope.is_nationwide() {
            let dl = groundtruth_lake::dead_letters_table(&self.lake).map_err(|e| internal(&e))?;
            ctx.register_table("dead_letters", Arc::new(dl))
                .map_err(|e| internal(&e))?;
        } else {
            // Bad messages name no trustworthy region: a regional caller
            // sees the table empty.
            let schema = groundtruth_event::dead_letter_schema();
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(|e| internal(&e))?;
            ctx.register_table("dead_letters", Arc::new(empty))
                .map_err(|e| internal(&e))?;
        }
        for kind in tables::ReviewKind::ALL {
            ctx.register_table(
                kind.table_name(),
                Arc::new(tables::ReviewTable {
                    kind,
                    store: self.store.clone(),
                    scope: scope.clone(),
                    zone: self.zone,
                }),
            )
            .map_err(|e| internal(&e))?;
        }
        let cat = MemTable::try_new(
            tables::catalog_schema(),
            vec![vec![tables::catalog_batch(&self.catalog)]],
        )
        .map_err(|e| internal(&e))?;
        ctx.register_table("app_catalog", Arc::new(cat))
            .map_err(|e| internal(&e))?;
        bounded::register(&ctx);
        groundtruth_detect::register_views(&ctx)
            .await
            .map_err(|e| internal(&e))?;
        views::register(&ctx).await?;
        if let Some(setup) = &self.extra {
            setup(&ctx).map_err(QueryError::Internal)?;
        }
        Ok(ctx.state())
    }

    /// A session for `who`: the scoped tables and views, and a memory pool
    /// of its own.
    pub async fn session(&self, who: &Principal) -> Result<SessionContext, QueryError> {
        let base = self.base(&who.scope).await?;
        // No spilling: an analyst's query lives in its memory pool, and
        // writes nothing to disk.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_bytes, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let counts = self.join_statistics(&who.scope, &base);
        let mut builder = SessionStateBuilder::new_from_existing(base)
            .with_runtime_env(runtime)
            .with_physical_optimizer_rule(Arc::new(deadline::DeadlineRule {
                timeout: self.limits.timeout,
            }));
        if let Some(c) = &counts {
            builder = builder.with_statistics_registry(groundtruth_lake::ndv::registry(c.clone()));
        }
        let mut state = builder.build();
        if counts.is_some() {
            let options = state.config_mut().options_mut();
            options.optimizer.use_statistics_registry = true;
        }
        Ok(SessionContext::new_with_state(state))
    }

    /// The distinct counts of `scope`'s events last measured, if any; when
    /// they are missing or older than [`STATISTICS_MAX_AGE`], they are
    /// measured again in the background (one scan; the query asking does
    /// not wait). `GROUNDTRUTH_JOIN_STATISTICS=off` turns them off.
    fn join_statistics(
        &self,
        scope: &Scope,
        base: &SessionState,
    ) -> Option<groundtruth_lake::ndv::DistinctCounts> {
        if groundtruth_lake::switched_off("GROUNDTRUTH_JOIN_STATISTICS") {
            return None;
        }
        let mut all = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = all.entry(scope.clone()).or_default();
        let stale = entry
            .measured
            .is_none_or(|t| t.elapsed() >= STATISTICS_MAX_AGE);
        if stale && !entry.refreshing {
            entry.refreshing = true;
            let counts = Arc::clone(&self.counts);
            let scope = scope.clone();
            let ctx = SessionContext::new_with_state(base.clone());
            tokio::spawn(async move {
                let measured = measure(&ctx, &scope).await;
                keep(&counts, scope, measured);
            });
        }
        entry.counts.clone()
    }

    /// Measures the distinct counts of `scope`'s events now and keeps them
    /// (what the background refresh does; for a caller that wants the
    /// next queries planned with them, e.g. a benchmark).
    pub async fn refresh_statistics(&self, scope: &Scope) -> Result<(), QueryError> {
        let base = self.base(scope).await?;
        let ctx = SessionContext::new_with_state(base);
        let measured = measure(&ctx, scope).await;
        keep(&self.counts, scope.clone(), measured);
        Ok(())
    }

    /// Runs one analyst query (`channel`: `http` or `pgwire`, for the audit
    /// log) and returns at most `max_rows` rows (capped by the limits).
    pub async fn run(
        &self,
        who: &Principal,
        channel: &'static str,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let result = self.run_inner(who, sql, max_rows).await;
        let outcome = match &result {
            Ok(r) => {
                serde_json::json!({"status": "ok", "rows": r.rows, "truncated": r.truncated, "ms": started.elapsed().as_millis() as u64})
            }
            Err(e) => {
                serde_json::json!({"status": "error", "error": e.to_string(), "ms": started.elapsed().as_millis() as u64})
            }
        };
        self.audit(who, channel, sql, outcome).await;
        tracing::info!(subject = %who.subject, scope = %who.scope, channel, ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "analyst query");
        result
    }

    /// Writes a query and its outcome to the audit log; a failure to write
    /// is logged, not returned (the answer is already decided).
    pub async fn audit(
        &self,
        who: &Principal,
        channel: &'static str,
        sql: &str,
        outcome: serde_json::Value,
    ) {
        if let Err(e) = self.store.record_query(who, channel, sql, outcome).await {
            tracing::error!(error = %e, channel, "cannot write an analyst query to the audit log");
        }
    }

    async fn run_inner(
        &self,
        who: &Principal,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        guard::check(sql, &self.limits)?;
        let result = groundtruth_lake::retry_vanished(
            || self.attempt(who, sql, max_rows),
            |e| matches!(e, QueryError::Vanished(_)),
        )
        .await;
        match result {
            Err(QueryError::Vanished(e)) => Err(QueryError::Internal(e)),
            other => other,
        }
    }

    /// One run; a file compacted away under it is [`QueryError::Vanished`].
    async fn attempt(
        &self,
        who: &Principal,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let cap = max_rows
            .unwrap_or(self.limits.max_rows)
            .min(self.limits.max_rows);
        let mb = self.limits.memory_bytes >> 20;
        let ctx = self.session(who).await?;
        let work = async {
            let df = ctx
                .sql_with_options(sql, groundtruth_lake::read_only_options())
                .await
                .map_err(|e| QueryError::from_datafusion(e, mb))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df
                .execute_stream()
                .await
                .map_err(|e| QueryError::from_datafusion(e, mb))?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            let mut truncated = false;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| QueryError::from_datafusion(e, mb))?;
                if rows + b.num_rows() > cap {
                    let keep = cap - rows;
                    if keep > 0 {
                        batches.push(b.slice(0, keep));
                    }
                    rows = cap;
                    truncated = true;
                    break;
                }
                rows += b.num_rows();
                batches.push(b);
            }
            let (schema, batches) = encode::plain_strings(&schema, batches)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            Ok::<_, QueryError>((schema, batches, rows, truncated))
        };
        let (schema, batches, rows, truncated) = tokio::time::timeout(self.limits.timeout, work)
            .await
            .map_err(|_| QueryError::Timeout {
                seconds: self.limits.timeout.as_secs_f64(),
            })??;
        Ok(QueryResult {
            schema,
            batches,
            rows,
            truncated,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundtruth_store::{Role, StoreOptions};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn distinct_counts_are_measured_in_the_background_then_steer_joins() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReviewStore::open(
            &dir.path().join("review.db").display().to_string(),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        let service = QueryService::new(
            dir.path().join("lake"),
            DayZone::default(),
            store,
            AppCatalog::default(),
            Limits::default(),
        );
        let who = Principal {
            token_id: String::new(),
            subject: "chen".into(),
            role: Role::Analyst,
            scope: Scope::parse("4501").unwrap(),
        };
        let uses_counts = |ctx: &SessionContext| {
            let state = ctx.state();
            state.statistics_registry().is_some()
                && state.config().options().optimizer.use_statistics_registry
        };
        // The first session is planned without them; it starts measuring.
        assert!(!uses_counts(&service.session(&who).await.unwrap()));
        let started = Instant::now();
        while !uses_counts(&service.session(&who).await.unwrap()) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never measured"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Another scope has its own, measured on demand.
        let nationwide = Scope::nationwide();
        service.refresh_statistics(&nationwide).await.unwrap();
        let all = Principal {
            scope: nationwide,
            ..who
        };
        assert!(uses_counts(&service.session(&all).await.unwrap()));
        // Queries answer the same either way.
        let r = service
            .run(&all, "http", "SELECT count(*) AS n FROM events", None)
            .await
            .unwrap();
        assert_eq!(r.rows, 1);
    }
}
