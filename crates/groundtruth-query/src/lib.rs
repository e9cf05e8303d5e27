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

/// The methods of a `ScalarUDFImpl` that wraps another (`self.inner`,
/// an `Arc<ScalarUDF>`) and changes only how it is invoked: the wrapper is
/// planned, coerced, simplified and documented as the function it wraps
/// (`bounded.rs`, `to_char.rs`).
macro_rules! forward_to_inner {
    () => {
        fn name(&self) -> &str {
            self.inner.name()
        }

        fn aliases(&self) -> &[String] {
            self.inner.aliases()
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            self.inner.signature()
        }

        fn return_type(
            &self,
            arg_types: &[arrow::datatypes::DataType],
        ) -> datafusion::common::Result<arrow::datatypes::DataType> {
            self.inner.return_type(arg_types)
        }

        fn return_field_from_args(
            &self,
            args: datafusion::logical_expr::ReturnFieldArgs<'_>,
        ) -> datafusion::common::Result<arrow::datatypes::FieldRef> {
            self.inner.return_field_from_args(args)
        }

        fn simplify(
            &self,
            args: Vec<datafusion::logical_expr::Expr>,
            info: &datafusion::logical_expr::simplify::SimplifyContext,
        ) -> datafusion::common::Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
            self.inner.simplify(args, info)
        }

        fn short_circuits(&self) -> bool {
            self.inner.short_circuits()
        }

        fn coerce_types(
            &self,
            arg_types: &[arrow::datatypes::DataType],
        ) -> datafusion::common::Result<Vec<arrow::datatypes::DataType>> {
            self.inner.coerce_types(arg_types)
        }

        fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
            self.inner.documentation()
        }
    };
}

pub mod bounded;
pub mod catalog;
pub mod deadline;
pub mod encode;
mod error;
pub mod gate;
pub mod guard;
pub mod pool;
pub mod repeated;
pub mod scope;
pub mod sortcopies;
pub mod tables;
pub mod to_char;
pub mod watch;
mod weight;
pub mod zone;

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
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use groundtruth_event::DayZone;
use groundtruth_store::{Principal, ReviewStore, Scope};

pub use catalog::AppCatalog;
pub use error::{QueryError, QueryErrorKind};
pub use groundtruth_sql::CATALOG;

/// What a query may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_sql_bytes: usize,
    pub max_tokens: usize,
    /// Deepest nesting of parentheses.
    pub max_depth: usize,
    /// Deepest nesting of expressions (operators, calls), checked on the
    /// parsed statement ([`guard::check_shape`]).
    pub max_expr_depth: usize,
    /// Most `SELECT`s, and most tables named, in one statement.
    pub max_query_parts: usize,
    pub timeout: Duration,
    /// Memory the query's operators (and its collected result) may hold
    /// (DataFusion's memory pool).
    pub memory_bytes: usize,
    /// Memory all queries of the server may use together, in fact: each
    /// query's pool draws on one server pool of a third of this
    /// ([`pool::tracked_share`]), the rest is for the copies operators make
    /// without counting them.
    pub server_memory_bytes: usize,
    /// Queries running at once on the server; more wait their turn (within
    /// their time limit).
    pub max_concurrent: usize,
    /// Queries one caller may have running at once; more wait their turn
    /// (a page that asks six things at once), and beyond
    /// [`CALLER_QUEUE`] times this many the caller is refused.
    pub max_per_caller: usize,
    /// Most rows returned; more are cut and the result says so.
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sql_bytes: 100_000,
            max_tokens: 20_000,
            max_depth: 64,
            max_expr_depth: 256,
            max_query_parts: 256,
            timeout: Duration::from_secs(30),
            memory_bytes: 512 << 20,
            server_memory_bytes: 1 << 30,
            max_concurrent: 8,
            max_per_caller: 3,
            max_rows: 10_000,
        }
    }
}

/// How long the distinct counts of a scope's events (which steer join
/// choices, see [`groundtruth_sql::ndv`]) are used before they are
/// measured again.
pub const STATISTICS_MAX_AGE: Duration = Duration::from_secs(600);

/// The distinct counts of one scope's events.
#[derive(Debug, Default)]
struct ScopeCounts {
    counts: Option<groundtruth_sql::ndv::DistinctCounts>,
    measured: Option<Instant>,
    refreshing: bool,
}

/// Distinct counts of `ctx`'s events, or `None` (logged) when the scan
/// fails: joins are then planned without them.
async fn measure(
    ctx: &SessionContext,
    scope: &Scope,
) -> Option<groundtruth_sql::ndv::DistinctCounts> {
    let started = Instant::now();
    match groundtruth_sql::ndv::estimate(ctx).await {
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
    measured: Option<groundtruth_sql::ndv::DistinctCounts>,
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
    /// The server-wide memory pool every query's pool draws on.
    shared_pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    /// Holds the running queries to the server's budget as the allocator
    /// counts it ([`pool::Governor`]).
    governor: Arc<pool::Governor>,
    /// Turns for running queries ([`Limits::max_concurrent`]).
    turns: Arc<tokio::sync::Semaphore>,
    /// Per caller (token id or subject): queries admitted (running or
    /// waiting) and the turns of those running.
    running: Arc<std::sync::Mutex<HashMap<String, CallerTurns>>>,
    /// See [`Self::lake_text`].
    lake_text: std::sync::OnceLock<String>,
    /// Whether join planning uses measured distinct counts
    /// ([`Self::join_statistics`]).
    join_statistics: bool,
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
            bases: Default::default(),
            counts: Default::default(),
            extra: None,
            shared_pool: Arc::new(datafusion::execution::memory_pool::GreedyMemoryPool::new(
                pool::tracked_share(limits.server_memory_bytes),
            )),
            governor: pool::Governor::new(limits.server_memory_bytes),
            turns: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent.max(1))),
            running: Default::default(),
            lake_text: std::sync::OnceLock::new(),
            join_statistics: true,
            limits,
        }
    }

    /// Plans joins without measured distinct counts (`query.join_statistics
    /// = false`; to compare timings).
    pub fn without_join_statistics(mut self) -> QueryService {
        self.join_statistics = false;
        self
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

    /// The zone sessions read instants in unless the caller sets another:
    /// the lake's day zone (zone.rs).
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
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
        let ctx = groundtruth_sql::lake_context();
        let events = groundtruth_sql::events_table(&self.lake).map_err(|e| internal(&e))?;
        // A regional caller's events are cut inside the scan, beneath
        // every expression of the query (scope.rs); the nationwide scope
        // reads the lake's table itself (and gets the lake's rules).
        let events: Arc<dyn datafusion::catalog::TableProvider> = if scope.is_nationwide() {
            Arc::new(events)
        } else {
            Arc::new(scope::ScopedEvents::new(Arc::new(events), scope.clone()))
        };
        ctx.register_table("events", events)
            .map_err(|e| internal(&e))?;
        if scope.is_nationwide() {
            let dl = groundtruth_sql::dead_letters_table(&self.lake).map_err(|e| internal(&e))?;
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
        if let Some(catalog) = ctx.catalog(CATALOG) {
            catalog
                .register_schema(
                    tables::INTERNAL_SCHEMA,
                    Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
                )
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
        to_char::register(&ctx);
        // Days, hours and clock times in the lake's day zone (in which
        // `event_date` is counted) unless the caller sets another (zone.rs).
        let mut state =
            SessionStateBuilder::new_from_existing(bounded::planners_first(ctx.state()))
                .with_analyzer_rule(Arc::new(zone::SessionZone))
                .build();
        state.config_mut().options_mut().execution.time_zone = Some(self.zone.name().to_string());
        let ctx = SessionContext::new_with_state(state);
        groundtruth_sql::register_all_views(&ctx)
            .await
            .map_err(|e| internal(&e))?;
        // The views hold what they read; the store's raw tables go, so that
        // clients listing the database's tables see the views only.
        if let Some(catalog) = ctx.catalog(CATALOG) {
            catalog
                .deregister_schema(tables::INTERNAL_SCHEMA, true)
                .map_err(|e| internal(&e))?;
        }
        if let Some(setup) = &self.extra {
            setup(&ctx).map_err(QueryError::Internal)?;
        }
        Ok(ctx.state())
    }

    /// A session for `who`: the scoped tables and views, a memory pool of
    /// its own, and a stop flag ([`deadline::QueryCancel`], in its options:
    /// [`watch::stop_flag`]) that its plans' checks and watched functions
    /// read.
    pub async fn session(&self, who: &Principal) -> Result<SessionContext, QueryError> {
        let base = self.base(&who.scope).await?;
        // No spilling: an analyst's query lives in its memory pool, and
        // writes nothing to disk.
        let memory: Arc<dyn datafusion::execution::memory_pool::MemoryPool> = Arc::new(
            pool::CappedPool::new(Arc::clone(&self.shared_pool), self.limits.memory_bytes),
        );
        let stop = Arc::new(deadline::QueryCancel::default());
        self.governor.watch(&memory, &stop);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(memory)
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
            }))
            .with_physical_optimizer_rule(Arc::new(sortcopies::SortCopiesRule));
        if let Some(c) = &counts {
            builder = builder.with_statistics_registry(groundtruth_sql::ndv::registry(c.clone()));
        }
        let mut state = builder.build();
        // The session's stop flag: read by the plans' checks and the
        // watched functions (watch.rs), set when a statement is stopped.
        let options = state.config_mut().options_mut();
        options.extensions.insert(deadline::StopFlag(Some(stop)));
        if counts.is_some() {
            options.optimizer.use_statistics_registry = true;
        }
        Ok(SessionContext::new_with_state(state))
    }

    /// The distinct counts of `scope`'s events last measured, if any; when
    /// they are missing or older than [`STATISTICS_MAX_AGE`], they are
    /// measured again in the background (one scan; the query asking does
    /// not wait); none when turned off ([`Self::without_join_statistics`]).
    fn join_statistics(
        &self,
        scope: &Scope,
        base: &SessionState,
    ) -> Option<groundtruth_sql::ndv::DistinctCounts> {
        if !self.join_statistics {
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
    ///
    /// The query runs on the [`query_runtime`] (big stacks, apart from the
    /// threads that serve requests, so a heavy query does not hold up
    /// `/healthz` or other callers' requests), after waiting for a turn
    /// ([`Limits::max_concurrent`]). When the caller goes away (the future
    /// is dropped: a client that disconnected), the query is stopped and
    /// audited as cancelled; a query that panics is an internal error,
    /// audited, and the server goes on.
    pub async fn run(
        self: &Arc<Self>,
        who: &Principal,
        channel: &'static str,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let rt = query_runtime()?;
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
        let svc = Arc::clone(self);
        let (who2, sql2) = (who.clone(), sql.to_string());
        let task = rt.spawn(async move {
            let started = Instant::now();
            let result = tokio::select! {
                r = svc.run_counted(&who2, &sql2, max_rows) => Some(r),
                _ = gone_rx => None,
            };
            let ms = started.elapsed().as_millis() as u64;
            let outcome = match &result {
                Some(Ok(r)) => {
                    serde_json::json!({"status": "ok", "rows": r.rows, "truncated": r.truncated, "ms": ms})
                }
                Some(Err(e)) => {
                    serde_json::json!({"status": outcome_status(e), "error": e.to_string(), "ms": ms})
                }
                None => {
                    serde_json::json!({"status": "cancelled", "error": "the client went away before the answer", "ms": ms})
                }
            };
            svc.audit(&who2, channel, &sql2, outcome).await;
            tracing::info!(subject = %who2.subject, scope = %who2.scope, channel, ms, ok = matches!(result, Some(Ok(_))), "analyst query");
            result
        });
        let joined = task.await;
        // Kept until here: dropped with this future if the caller leaves.
        drop(gone_tx);
        match joined {
            Ok(Some(r)) => r,
            Ok(None) => Err(QueryError::Internal("the query was cancelled".into())),
            Err(e) => {
                let why = if e.is_panic() {
                    "crashed"
                } else {
                    "was stopped"
                };
                tracing::error!(error = %e, subject = %who.subject, "an analyst query {why}");
                let err = QueryError::Internal(format!(
                    "the query {why} inside the server; the server goes on, and the details are in its log"
                ));
                self.audit(
                    who,
                    channel,
                    sql,
                    serde_json::json!({"status": "crashed", "error": err.to_string()}),
                )
                .await;
                Err(err)
            }
        }
    }

    /// [`Self::run_inner`] within the caller's and the server's share of
    /// running queries.
    async fn run_counted(
        &self,
        who: &Principal,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<QueryResult, QueryError> {
        let key = if who.token_id.is_empty() {
            who.subject.clone()
        } else {
            who.token_id.clone()
        };
        let mine = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            let c = running.entry(key.clone()).or_insert_with(|| CallerTurns {
                admitted: 0,
                turns: Arc::new(tokio::sync::Semaphore::new(
                    self.limits.max_per_caller.max(1),
                )),
            });
            let most = self.limits.max_per_caller.max(1) * CALLER_QUEUE;
            if c.admitted >= most {
                return Err(QueryError::Busy(format!(
                    "you have {} queries running or waiting; at most {most} per caller: wait for some to finish",
                    c.admitted
                )));
            }
            c.admitted += 1;
            Arc::clone(&c.turns)
        };
        let _release = Release {
            running: Arc::clone(&self.running),
            key,
        };
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let _my_turn = tokio::time::timeout_at(deadline, mine.acquire_owned())
            .await
            .map_err(|_| {
                QueryError::Busy(format!(
                    "your other queries ran for {} s and this one had no turn; try again",
                    self.limits.timeout.as_secs()
                ))
            })?
            .map_err(|_| QueryError::Internal("the query service is shutting down".into()))?;
        let turn = tokio::time::timeout_at(deadline, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| {
                QueryError::Busy(format!(
                    "the server ran {} queries for {} s and had no turn for this one; try again",
                    self.limits.max_concurrent,
                    self.limits.timeout.as_secs()
                ))
            })?
            .map_err(|_| QueryError::Internal("the query service is shutting down".into()))?;
        self.room(deadline).await?;
        let r = self.run_inner(who, sql, max_rows).await;
        drop(turn);
        r.map_err(|e| self.scrub(e))
    }

    /// Waits, at most until `deadline`, while the running queries hold
    /// most of the server's memory budget ([`pool::Governor::room`]).
    pub async fn room(&self, deadline: tokio::time::Instant) -> Result<(), QueryError> {
        if self.governor.room(deadline).await {
            Ok(())
        } else {
            Err(QueryError::Busy(format!(
                "the running queries held most of the server's {} MB for queries until this one's time ran out; try again",
                self.limits.server_memory_bytes >> 20
            )))
        }
    }

    /// An error as a caller may see it: the lake's path on the server is
    /// not the caller's business.
    fn scrub(&self, e: QueryError) -> QueryError {
        let clean = |m: String| self.hide_lake(&m);
        match e {
            QueryError::Refused(m) => QueryError::Refused(clean(m)),
            QueryError::Invalid(m) => QueryError::Invalid(clean(m)),
            QueryError::Internal(m) => QueryError::Internal(clean(m)),
            QueryError::Vanished(m) => QueryError::Vanished(clean(m)),
            QueryError::Busy(m) => QueryError::Busy(clean(m)),
            QueryError::Memory { mb, detail } => QueryError::Memory {
                mb,
                detail: clean(detail),
            },
            other => other,
        }
    }

    /// The lake's path on the server as text shows it (object-store paths
    /// have no leading `/`), resolved once, when the lake exists.
    fn lake_text(&self) -> Option<&str> {
        if self.lake_text.get().is_none() {
            let abs = std::fs::canonicalize(&self.lake).ok()?;
            let text = abs
                .display()
                .to_string()
                .trim_start_matches('/')
                .to_string();
            let _ = self.lake_text.set(text);
        }
        self.lake_text
            .get()
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// `text` with the lake's path replaced by `<lake>`.
    fn hide_lake(&self, text: &str) -> String {
        match self.lake_text() {
            Some(lake) => text
                .replace(&format!("/{lake}"), "<lake>")
                .replace(lake, "<lake>"),
            None => text.to_string(),
        }
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
        let sql = zone::utc_spelled_out(sql);
        let result = groundtruth_sql::retry_vanished(
            || self.attempt(who, &sql, max_rows),
            |e| matches!(e, QueryError::Vanished(_)),
        )
        .await;
        match result {
            Err(QueryError::Vanished(e)) => Err(QueryError::Internal(e)),
            other => other,
        }
    }

    /// String values with the lake's path on the server replaced by
    /// `<lake>` (`EXPLAIN` names the files a scan reads).
    fn without_lake_paths(
        &self,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let Some(lake) = self.lake_text() else {
            return Ok(batches);
        };
        batches
            .into_iter()
            .map(|b| {
                let cols = b
                    .columns()
                    .iter()
                    .map(
                        |c| match c.as_any().downcast_ref::<arrow::array::StringArray>() {
                            Some(s) if s.iter().flatten().any(|v| v.contains(lake)) => {
                                let out: arrow::array::StringArray =
                                    s.iter().map(|v| v.map(|v| self.hide_lake(v))).collect();
                                Arc::new(out) as arrow::array::ArrayRef
                            }
                            _ => Arc::clone(c),
                        },
                    )
                    .collect();
                RecordBatch::try_new(b.schema(), cols)
                    .map_err(|e| QueryError::Internal(e.to_string()))
            })
            .collect()
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
        // However this attempt ends (answered, failed, timed out, its
        // caller gone), its function calls still running stop.
        let stop = watch::stop_flag(ctx.state_ref().read().config_options());
        let _stop = stop.clone().map(deadline::StopOnDrop);
        let work = async {
            let df = ctx
                .sql_with_options(sql, groundtruth_sql::read_only_options())
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
            // The answer held here counts against the query's memory, three
            // times over: the batches, and the copies its encoding (JSON,
            // CSV, the wire's rows) makes of them.
            let held = datafusion::execution::memory_pool::MemoryConsumer::new("query result")
                .register(&ctx.runtime_env().memory_pool);
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| QueryError::from_datafusion(e, mb))?;
                held.try_grow(b.get_array_memory_size().saturating_mul(RESULT_COPIES))
                    .map_err(|e| QueryError::from_datafusion(e, mb))?;
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
            let batches = self.without_lake_paths(batches)?;
            Ok::<_, QueryError>((schema, batches, rows, truncated))
        };
        // A stop from elsewhere (the memory governor) ends the attempt at
        // once, whatever it is doing.
        let stopped = stop.as_ref().map(|s| s.cancelled());
        let work = async {
            tokio::select! {
                r = work => r,
                _ = async move {
                    match stopped {
                        Some(s) => s.await,
                        None => std::future::pending().await,
                    }
                } => Err(QueryError::Internal("the query was stopped".into())),
            }
        };
        let answer = tokio::time::timeout(self.limits.timeout, work).await;
        if let Some(stop) = &stop {
            if answer.is_err() {
                stop.cancel();
            }
            // Stopped (timed out, or by the governor): the calls of the
            // dropped plan end within a slice; the query keeps its turn
            // until they have.
            if stop.is_cancelled() && !stop.settle(SETTLE).await {
                tracing::warn!(subject = %who.subject, "a stopped query's functions still ran {} s after it", SETTLE.as_secs());
            }
            if let Some(why) = stop.over_budget() {
                return Err(why.into());
            }
        }
        let (schema, batches, rows, truncated) = answer.map_err(|_| QueryError::Timeout {
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

/// Longest a stopped statement waits for its function calls to see the
/// stop (each ends within one slice of its rows, watch.rs).
pub const SETTLE: Duration = Duration::from_secs(10);

/// How many times a collected result's bytes are reserved: the batches and
/// the encoding's copies of them.
const RESULT_COPIES: usize = 3;

/// How many times [`Limits::max_per_caller`] queries one caller may have
/// admitted (running or waiting for a turn).
pub const CALLER_QUEUE: usize = 4;

/// One caller's queries.
#[derive(Debug)]
struct CallerTurns {
    /// Running or waiting.
    admitted: usize,
    /// Turns to run ([`Limits::max_per_caller`]).
    turns: Arc<tokio::sync::Semaphore>,
}

/// Gives back a caller's admitted query.
struct Release {
    running: Arc<std::sync::Mutex<HashMap<String, CallerTurns>>>,
    key: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = running.get_mut(&self.key) {
            c.admitted = c.admitted.saturating_sub(1);
            if c.admitted == 0 {
                running.remove(&self.key);
            }
        }
    }
}

/// The audit log's word for how a query ended.
fn outcome_status(e: &QueryError) -> &'static str {
    match e {
        QueryError::Refused(_) => "refused",
        QueryError::Timeout { .. } => "timeout",
        QueryError::Memory { .. }
        | QueryError::ServerMemory { .. }
        | QueryError::TooLong { .. }
        | QueryError::Busy(_) => "limit",
        _ => "error",
    }
}

/// Stack of each query thread: planning recurses over the query's
/// expressions, and [`guard::check_shape`] lets through what this holds
/// (measured: a 256-deep expression plans in a few MB in a debug build).
pub const QUERY_STACK_BYTES: usize = 64 << 20;

/// The runtime analysts' queries (both channels) run on: one worker per
/// core, [`QUERY_STACK_BYTES`] stacks, apart from the runtime that serves
/// requests. Built on first use; lives as long as the process.
pub fn query_runtime() -> Result<&'static tokio::runtime::Runtime, QueryError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2),
                )
                .thread_name("gt-query")
                .thread_stack_size(QUERY_STACK_BYTES)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| QueryError::Internal(format!("cannot start the query runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundtruth_store::{Role, StoreOptions};

    /// A service over an empty lake and a new store in `dir`.
    async fn service(dir: &tempfile::TempDir, limits: Limits) -> Arc<QueryService> {
        let store = ReviewStore::open(
            &dir.path().join("review.db").display().to_string(),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        Arc::new(QueryService::new(
            dir.path().join("lake"),
            DayZone::default(),
            store,
            AppCatalog::default(),
            limits,
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn distinct_counts_are_measured_in_the_background_then_steer_joins() {
        let dir = tempfile::tempdir().unwrap();
        let service = service(&dir, Limits::default()).await;
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

    /// CPU time this process has used (user and system), from /proc.
    fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        // Fields after the command's closing parenthesis; utime and stime
        // are the 14th and 15th of the line, in clock ticks (100 a second).
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    }

    /// A query whose one batch of function calls would run for many
    /// minutes (the edit distance of 3,000-character strings, row after
    /// row) is answered as timed out, and then uses no more CPU: its calls
    /// stop at the next row instead of running on beside the next query.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_query_stops_inside_its_function_calls() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let service = service(&dir, limits).await;
        let who = Principal {
            token_id: String::new(),
            subject: "chen".into(),
            role: Role::Analyst,
            scope: Scope::nationwide(),
        };
        let sql = "SELECT sum(levenshtein(repeat(md5(CAST(value AS VARCHAR)), 94), \
                   repeat(md5(CAST(value + 1 AS VARCHAR)), 94))) FROM range(4000)";
        let started = Instant::now();
        let err = service.run(&who, "http", sql, None).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, QueryError::Timeout { .. }), "{err}");
        assert!(took < Duration::from_secs(15), "answered after {took:?}");
        let before = cpu_seconds();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = cpu_seconds() - before;
        assert!(
            used < 0.5,
            "the stopped query still used {used:.2} s of CPU in the 2 s after its answer"
        );
        // The server answers the next query.
        let r = service
            .run(&who, "http", "SELECT 1 AS one", None)
            .await
            .unwrap();
        assert_eq!(r.rows, 1);
    }
}
