//! `groundtruth-pgwire`: the analysts' SQL over the PostgreSQL wire
//! protocol, so `psql -h 127.0.0.1 -p 5433 -U analyst` works and the
//! `pg_catalog` queries of DBeaver, Grafana or Metabase succeed.
//!
//! * **Sign-in**: cleartext password = an API token (the user name is only
//!   a label; the token decides who you are). Only `analyst` and `admin`
//!   tokens may connect.
//! * **Session**: each connection gets [`QueryService::session`] for its
//!   caller: the same tables, cut to the caller's region under the query,
//!   the same memory pool per session, plus `pg_catalog` (added to the
//!   service by [`with_pg_catalog`]).
//! * **Guard**: the text limits of [`guard::check_text`] before parsing,
//!   then every statement through [`Guard`]: queries that pass
//!   [`guard::check_sql_statement`], `EXPLAIN` of them, cursors over them,
//!   `SHOW`, transaction control, and `SET` of the client settings drivers
//!   send. Everything else is refused with SQLSTATE 42501.
//! * **Limits**: the service's time limit over planning and over the row
//!   stream (SQLSTATE 57014); each statement is written to the audit log
//!   with its caller (channel `pgwire`).
//!
//! Protocol work is datafusion-postgres's; this crate adds sign-in,
//! scoping, the guard and the limits.

mod compat;
mod copy;
mod shield;
pub mod tls;

use groundtruth_telemetry::metric;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Set, Statement};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::{DfSessionService, Parser, QueryHook};
use futures::{Sink, SinkExt, StreamExt};
use groundtruth_query::deadline::{QueryCancel, StopOnDrop};
use groundtruth_query::{guard, QueryError, QueryService};
use groundtruth_store::{Principal, Role};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, ConnectionManager,
    PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The catalog `pg_catalog` describes, the database clients connect to
/// (the lake's catalog).
pub const DATABASE: &str = groundtruth_query::CATALOG;

/// Client settings a driver may `SET` (they change how results are
/// written, not what may be read or what a query may cost).
const SAFE_SET: &[&str] = &[
    "application_name",
    "extra_float_digits",
    "datestyle",
    "intervalstyle",
    "bytea_output",
    "search_path",
    "client_encoding",
    "client_min_messages",
    "statement_timeout",
    "standard_conforming_strings",
    // Read by the analyzer rule of groundtruth-query's zone.rs.
    "timezone",
];

/// Adds `pg_catalog` (what DBeaver, Grafana and psql's `\d` ask) to every
/// session of `service`.
pub fn with_pg_catalog(service: QueryService) -> QueryService {
    service.with_setup(|ctx| {
        setup_pg_catalog(ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| format!("cannot set up pg_catalog: {e}"))?;
        ctx.register_udf(compat::version_udf());
        ctx.register_udf(compat::to_regtype_udf());
        for f in compat::constant_udfs() {
            ctx.register_udf(f);
        }
        ctx.register_udf(compat::JsonBuildObject::udf());
        ctx.register_udf(compat::CurrentSetting::udf());
        for f in compat::text_udfs() {
            ctx.register_udf(f);
        }
        Ok(())
    })
}

/// How long a connection may take to sign in before it is closed.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections not yet signed in, at most, at once.
pub const MAX_UNAUTHENTICATED: usize = 64;
/// Connections not yet signed in from one address: silent connections from
/// one place cannot hold the slots everyone else signs in through.
pub const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = 4;
/// Connections one token may hold open at once.
pub const MAX_PER_CALLER: usize = 8;

/// Serves the wire protocol on `listener` (TLS to clients that ask, with
/// `tls`; see [`tls::acceptor`]) until `shutdown` resolves, at
/// most `max_connections` at once (more are turned away with an error), of
/// which at most [`MAX_UNAUTHENTICATED`] not yet signed in (closed after
/// [`STARTUP_TIMEOUT`]) and [`MAX_PER_CALLER`] per token. Connections run
/// on the [`query runtime`](groundtruth_query::query_runtime): the
/// statements they plan and run do not hold up the API's threads.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<QueryService>,
    max_connections: usize,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let rt =
        groundtruth_query::query_runtime().map_err(|e| std::io::Error::other(e.to_string()))?;
    let timeout = service.limits.timeout;
    let template = DfSessionService::new(Arc::new(SessionContext::new())).query_parser();
    let startup = Arc::new(TokenStartup {
        service: service.clone(),
        // Told to clients at sign-in: the zone their instants' days and
        // hours are read in (groundtruth-query's zone.rs).
        params: {
            let mut p = DefaultServerParameterProvider::default();
            p.time_zone = service.zone_name().to_string();
            p
        },
        pids: RandomPidSecretKeyGenerator::default(),
        conns: Arc::new(ConnectionManager::new()),
        flags: Default::default(),
        callers: Default::default(),
    });
    let query = Arc::new(Scoped {
        service: service.clone(),
        parser: Arc::new(ScopedParser {
            template,
            limits: service.limits.clone(),
            service: service.clone(),
        }),
        timeout,
    });
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let unauthenticated = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    let signing_in: Counts<std::net::IpAddr> = Default::default();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "pgwire: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(from_peer) = Slot::take(&signing_in, peer.ip(), MAX_UNAUTHENTICATED_PER_ADDRESS)
        else {
            tracing::warn!(%peer, "pgwire: {MAX_UNAUTHENTICATED_PER_ADDRESS} connections from this address are signing in; turning one away");
            metrics::counter!(metric::PGWIRE_REFUSED.name, "why" => "signing_in_from_address")
                .increment(1);
            drop(socket);
            continue;
        };
        let Ok(unsigned) = unauthenticated.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "pgwire: {MAX_UNAUTHENTICATED} connections are signing in; turning one away");
            metrics::counter!(metric::PGWIRE_REFUSED.name, "why" => "signing_in").increment(1);
            drop(socket);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "pgwire: too many connections; turning one away");
            metrics::counter!(metric::PGWIRE_REFUSED.name, "why" => "full").increment(1);
            drop(socket);
            continue;
        };
        metrics::counter!(metric::PGWIRE_CONNECTIONS.name).increment(1);
        let signed_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = Arc::new(Handlers {
            startup: Arc::new(ConnStartup {
                inner: startup.clone(),
                signed_in: signed_in.clone(),
                unsigned: std::sync::Mutex::new(Some((unsigned, from_peer))),
            }),
            query: query.clone(),
        });
        // A CancelRequest is answered here, on the accepting runtime: the
        // query runtime may be busy with the very statement to cancel.
        let cancels = h.cancel_both();
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Some(r) = cancel_request(&socket).await {
                pgwire::api::cancel::CancelHandler::on_cancel_request(&cancels, r).await;
                drop(permit);
                return;
            }
            rt.spawn(connection(socket, peer, h, signed_in, permit, tls));
        });
    }
}

/// The first message of `socket` if it is a CancelRequest (read within a
/// moment of connecting, as clients send it; anything else is left unread
/// for the connection).
async fn cancel_request(
    socket: &tokio::net::TcpStream,
) -> Option<pgwire::messages::cancel::CancelRequest> {
    const CANCEL_CODE: i32 = 80_877_102;
    let mut buf = [0u8; 268];
    let peeked = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let n = socket.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if n >= 8 {
                let len = i32::from_be_bytes(buf[0..4].try_into().ok()?);
                let code = i32::from_be_bytes(buf[4..8].try_into().ok()?);
                if code != CANCEL_CODE || !(16..=268).contains(&len) {
                    return None;
                }
                if n >= len as usize {
                    return Some(len as usize);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .ok()??;
    let pid = i32::from_be_bytes(buf[8..12].try_into().ok()?);
    let key = &buf[12..peeked];
    let key = match <[u8; 4]>::try_from(key) {
        Ok(k) => SecretKey::I32(i32::from_be_bytes(k)),
        Err(_) => SecretKey::Bytes(bytes::Bytes::copy_from_slice(key)),
    };
    Some(pgwire::messages::cancel::CancelRequest::new(pid, key))
}

/// One wire connection on the query runtime, closed if it has not signed
/// in within [`STARTUP_TIMEOUT`].
async fn connection(
    socket: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    h: Arc<Handlers>,
    signed_in: Arc<std::sync::atomic::AtomicBool>,
    permit: tokio::sync::OwnedSemaphorePermit,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) {
    let conn = pgwire::tokio::process_socket(socket, tls, h);
    tokio::pin!(conn);
    let watchdog = async {
        tokio::time::sleep(STARTUP_TIMEOUT).await;
        if signed_in.load(std::sync::atomic::Ordering::Acquire) {
            futures::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = &mut conn => if let Err(e) = r {
            tracing::debug!(%peer, error = %e, "pgwire connection ended with an error");
        },
        _ = watchdog => {
            tracing::info!(%peer, "pgwire: no sign-in within {} s; closing the connection", STARTUP_TIMEOUT.as_secs());
            metrics::counter!(metric::PGWIRE_REFUSED.name, "why" => "startup_timeout").increment(1);
        }
    }
    drop(permit);
}

/// One connection's sign-in: [`TokenStartup`], then the connection counts
/// as signed in (its unauthenticated slot is given back, the startup
/// watchdog stands down).
struct ConnStartup {
    inner: Arc<TokenStartup>,
    signed_in: Arc<std::sync::atomic::AtomicBool>,
    unsigned: std::sync::Mutex<Option<(tokio::sync::OwnedSemaphorePermit, Slot<std::net::IpAddr>)>>,
}

/// Open connections per key (an address signing in, a token signed in).
type Counts<K> = Arc<std::sync::Mutex<std::collections::HashMap<K, usize>>>;

/// One connection's place in a [`Counts`]; given back when dropped (the
/// connection ends, or stops counting: it signed in).
struct Slot<K: std::hash::Hash + Eq + Clone> {
    counts: Counts<K>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Slot<K> {
    /// A place under `key` when it holds fewer than `max`.
    fn take(counts: &Counts<K>, key: K, max: usize) -> Option<Slot<K>> {
        let mut c = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = c.entry(key.clone()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: Arc::clone(counts),
            key,
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut c = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = c.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.key);
            }
        }
    }
}

#[async_trait]
impl StartupHandler for ConnStartup {
    async fn on_startup<C>(&self, client: &mut C, msg: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.inner.on_startup(client, msg).await?;
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            self.signed_in
                .store(true, std::sync::atomic::Ordering::Release);
            self.unsigned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
        Ok(())
    }
}

/// What a connection holds once signed in.
struct Conn {
    who: Principal,
    svc: Arc<DfSessionService>,
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// A refused or failed query as a PostgreSQL error with its SQLSTATE.
fn query_error(e: &QueryError) -> PgWireError {
    let code = match e {
        QueryError::Refused(_) => "42501",
        QueryError::Invalid(_) => "42601",
        QueryError::TooLong { .. } => "54000",
        QueryError::Timeout { .. } => "57014",
        QueryError::Memory { .. } | QueryError::ServerMemory { .. } => "53200",
        QueryError::Busy(_) => "53300",
        QueryError::Internal(_) | QueryError::Vanished(_) => "XX000",
    };
    user_error(code, e.to_string())
}

fn conn<C: ClientInfo + ?Sized>(c: &C) -> PgWireResult<Arc<Conn>> {
    c.session_extensions()
        .get::<Conn>()
        .ok_or_else(|| user_error("28000", "not signed in".into()))
}

/// Sign-in: the password is an API token.
struct TokenStartup {
    service: Arc<QueryService>,
    params: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    conns: Arc<ConnectionManager>,
    /// Each connection's cancel flag (see [`QueryCancel`]): pgwire's own
    /// handle only covers a statement until its first row; the flag
    /// reaches it while its rows stream and inside a plan looping in one
    /// poll.
    flags: Arc<CancelFlags>,
    /// Open connections per token.
    callers: Counts<String>,
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(&self, client: &mut C, msg: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match msg {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let token = pwd.into_password()?.password;
                let claimed = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let who = match self.service.store().authenticate(token.trim()).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::info!(user = %claimed, error = %e, "pgwire sign-in refused");
                        metrics::counter!(metric::PGWIRE_SIGNINS.name, "outcome" => "refused")
                            .increment(1);
                        self.service
                            .store()
                            .record_signin_failure("pgwire", &claimed, &e)
                            .await;
                        return Err(PgWireError::InvalidPassword(claimed));
                    }
                };
                let Some(slot) = Slot::take(&self.callers, who.token_id.clone(), MAX_PER_CALLER)
                else {
                    metrics::counter!(metric::PGWIRE_SIGNINS.name, "outcome" => "busy")
                        .increment(1);
                    return Err(user_error(
                        "53300",
                        format!("this token already holds {MAX_PER_CALLER} connections; close one first"),
                    ));
                };
                if !matches!(who.role, Role::Analyst | Role::Admin) {
                    metrics::counter!(metric::PGWIRE_SIGNINS.name, "outcome" => "forbidden")
                        .increment(1);
                    return Err(user_error(
                        "28000",
                        format!(
                            "a token of role {} cannot use SQL; ask an admin for an analyst token",
                            who.role
                        ),
                    ));
                }
                let ctx = self
                    .service
                    .session(&who)
                    .await
                    .map_err(|e| query_error(&e))?;
                // The flag every DeadlineExec and watched function of this
                // connection's statements reads (the session's own).
                let flag =
                    groundtruth_query::watch::stop_flag(ctx.state_ref().read().config_options())
                        .ok_or_else(|| {
                            user_error("XX000", "the query session has no stop flag".into())
                        })?;
                // session_user and the logs show who the token says.
                client
                    .metadata_mut()
                    .insert(METADATA_USER.into(), who.subject.clone());
                let hooks: Vec<Arc<dyn QueryHook>> = vec![
                    Arc::new(Guard),
                    Arc::new(copy::CopyHook),
                    Arc::new(CursorStatementHook),
                    Arc::new(compat::CompatHook {
                        default_zone: ctx.state().config().options().execution.time_zone.clone(),
                    }),
                    Arc::new(SetShowHook),
                    Arc::new(TransactionStatementHook),
                ];
                let svc = Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks));
                tracing::info!(subject = %who.subject, scope = %who.scope, "pgwire sign-in");
                metrics::counter!(metric::PGWIRE_SIGNINS.name, "outcome" => "ok").increment(1);
                client.session_extensions().insert(Conn { who, svc });
                client.session_extensions().insert(slot);
                let (pid, key) = self.pids.generate(client);
                client.set_pid_and_secret_key(pid, key.clone());
                // Registered so a client's CancelRequest reaches it.
                let (handle, guard) = self.conns.register(pid, key.clone());
                client
                    .session_extensions()
                    .insert::<Arc<ConnectionHandle>>(handle);
                client.session_extensions().insert::<ConnectionGuard>(guard);
                self.flags.register(pid, &key, &flag);
                // A connection that closes stops what its statement still runs.
                client
                    .session_extensions()
                    .insert(StopOnDrop(Arc::clone(&flag)));
                client.session_extensions().insert::<Arc<QueryCancel>>(flag);
                finish_authentication(client, &self.params).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether a statement may run on the wire protocol in session `ctx`.
pub fn check_statement(s: &Statement, ctx: &SessionContext) -> Result<(), QueryError> {
    match s {
        Statement::Query(_) | Statement::Explain { .. } => guard::check_sql_statement(s),
        Statement::Declare { stmts } => {
            for d in stmts {
                match &d.for_query {
                    Some(q) => guard::check_query(q)?,
                    None => {
                        return Err(QueryError::Refused(
                            "DECLARE is allowed only for a cursor over a query".into(),
                        ))
                    }
                }
            }
            Ok(())
        }
        // COPY ... TO STDOUT of a query or table (copy.rs checks the
        // query); refused to or from anything else.
        Statement::Copy { .. } => match copy::copy_out(s) {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        },
        Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Set(Set::SetTimeZone { .. }) => Ok(()),
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) => {
            let name = variable.to_string().to_lowercase();
            if SAFE_SET.contains(&name.as_str()) {
                Ok(())
            } else if name.starts_with("groundtruth.") {
                // groundtruth's own plan rules may be switched off: they
                // never change an answer, only how it is computed.
                check_rule_switch(&name, values, ctx)
            } else {
                Err(QueryError::Refused(format!(
                    "SET {name} is not allowed; only client settings ({}) and groundtruth's rule switches (groundtruth.*, SHOW ALL lists them) may be set",
                    SAFE_SET.join(", ")
                )))
            }
        }
        other => guard::check_sql_statement(other),
    }
}

/// `SET groundtruth.<name> = <value>` must name a rule switch the session
/// has and give it a value it takes. datafusion-postgres answers every SET
/// itself and drops the session's error, so a misspelt switch would be
/// answered `SET` and change nothing; it is refused here with the list.
fn check_rule_switch(name: &str, values: &[Expr], ctx: &SessionContext) -> Result<(), QueryError> {
    let value = match values {
        [one] => compat::set_value(one),
        _ => {
            return Err(QueryError::Refused(format!(
                "SET {name} takes one value: true or false"
            )))
        }
    };
    let mut options = ctx.state().config_options().as_ref().clone();
    options
        .set(name, &value)
        .map_err(|e| QueryError::Refused(e.strip_backtrace()))
}

/// The statement guard, first in the hook chain of both protocols.
struct Guard;

fn guard(s: &Statement, ctx: &SessionContext) -> Option<PgWireError> {
    check_statement(s, ctx).err().map(|e| query_error(&e))
}

#[async_trait]
impl QueryHook for Guard {
    async fn handle_simple_query(
        &self,
        s: &Statement,
        ctx: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        guard(s, ctx).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        s: &Statement,
        ctx: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        guard(s, ctx).map(Err)
    }

    async fn handle_extended_query(
        &self,
        s: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        ctx: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        guard(s, ctx).map(Err)
    }
}

/// The query handlers: the text limits, the caller's own session, the time
/// limit and the audit log around datafusion-postgres's handling.
struct Scoped {
    service: Arc<QueryService>,
    parser: Arc<ScopedParser>,
    timeout: Duration,
}

impl Scoped {
    /// The connection's token must still hold for each statement: a
    /// revoked or expired token ends what it may do at once, not at the
    /// next sign-in. The refusal is audited.
    async fn still_signed_in(&self, who: &Principal, sql: &str) -> PgWireResult<()> {
        match self.service.store().still_valid(who).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = user_error(
                    "28000",
                    format!("{e}; this connection can run nothing more: sign in again with a valid token"),
                );
                self.audit(who, sql, Err(&e)).await;
                Err(e)
            }
        }
    }

    fn timeout_error(&self) -> PgWireError {
        query_error(&QueryError::Timeout {
            seconds: self.timeout.as_secs_f64(),
        })
    }

    async fn audit(&self, who: &Principal, sql: &str, result: Result<(), &PgWireError>) {
        let status = result.err().map_or("ok", failure_status);
        let outcome = match result {
            Ok(()) => serde_json::json!({"status": status}),
            Err(e) => serde_json::json!({"status": status, "error": e.to_string()}),
        };
        metrics::counter!(metric::PGWIRE_QUERIES.name, "outcome" => status).increment(1);
        if status == "cancelled" {
            // pgwire drops the statement's future on a cancel request as
            // soon as it can: write the entry where nothing waits for it.
            let (service, who, sql) = (Arc::clone(&self.service), who.clone(), sql.to_string());
            tokio::spawn(async move { service.audit(&who, "pgwire", &sql, outcome).await });
            return;
        }
        self.service.audit(who, "pgwire", sql, outcome).await;
    }
}

/// The audit entry of a statement whose rows are still to come: written
/// when the rows end (`ok`, with their count), when they fail (`error`:
/// a query can fail while streaming, after its plan was accepted), or, if
/// the client stops reading first, as `stopped` when the stream is dropped.
struct StreamAudit {
    service: Arc<QueryService>,
    who: Principal,
    sql: String,
    rows: usize,
    written: bool,
}

impl StreamAudit {
    fn outcome(&self, error: Option<&PgWireError>) -> serde_json::Value {
        match error {
            Some(e) => {
                serde_json::json!({"status": failure_status(e), "error": e.to_string(), "rows": self.rows})
            }
            None => serde_json::json!({"status": "ok", "rows": self.rows}),
        }
    }

    /// Writes the entry in a task of its own (from where nothing can wait).
    fn write_later(&mut self, status: &'static str, outcome: serde_json::Value) {
        self.written = true;
        metrics::counter!(metric::PGWIRE_QUERIES.name, "outcome" => status).increment(1);
        let (service, who, sql) = (
            Arc::clone(&self.service),
            self.who.clone(),
            std::mem::take(&mut self.sql),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { service.audit(&who, "pgwire", &sql, outcome).await });
        }
    }

    /// Writes the entry now (the rows ended or failed).
    async fn write(&mut self, error: Option<&PgWireError>) {
        if self.written {
            return;
        }
        self.written = true;
        let outcome = self.outcome(error);
        metrics::counter!(metric::PGWIRE_QUERIES.name, "outcome" => error.map_or("ok", failure_status)).increment(1);
        self.service
            .audit(&self.who, "pgwire", &self.sql, outcome)
            .await;
    }
}

impl Drop for StreamAudit {
    fn drop(&mut self) {
        if self.written {
            return;
        }
        let outcome = serde_json::json!({"status": "stopped", "error": "the client stopped reading the rows", "rows": self.rows});
        self.write_later("stopped", outcome);
    }
}

/// What ends a statement early, with the error it ends with: its deadline
/// (a timeout) or the client's CancelRequest (SQLSTATE 57014), whichever
/// comes first. One per statement, watched while it plans and runs and
/// then while its rows stream.
type Stop = Pin<Box<dyn Future<Output = PgWireError> + Send>>;

/// The in-plan cancel flags by connection (pid and secret key); a closed
/// connection's entry goes with the next registration.
#[derive(Default)]
struct CancelFlags(std::sync::Mutex<HashMap<ConnKey, std::sync::Weak<QueryCancel>>>);

/// A connection's process id and secret key, as its BackendKeyData gave them.
type ConnKey = (i32, Vec<u8>);

impl CancelFlags {
    fn register(&self, pid: i32, key: &SecretKey, flag: &Arc<QueryCancel>) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.retain(|_, f| f.strong_count() > 0);
        m.insert((pid, key.to_bytes().to_vec()), Arc::downgrade(flag));
    }

    fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        let m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match m
            .get(&(pid, key.to_bytes().to_vec()))
            .and_then(std::sync::Weak::upgrade)
        {
            Some(f) => {
                f.cancel();
                true
            }
            None => false,
        }
    }
}

/// A CancelRequest stops the connection's statement wherever it is: in
/// pgwire before its first row (pgwire's handle), and through the
/// connection's flag in its [`Stop`] while the rows stream and inside the
/// plan (an operator looping in one poll).
struct CancelBoth {
    conns: Arc<ConnectionManager>,
    flags: Arc<CancelFlags>,
}

#[async_trait]
impl pgwire::api::cancel::CancelHandler for CancelBoth {
    async fn on_cancel_request(&self, r: pgwire::messages::cancel::CancelRequest) {
        let found = self.flags.cancel(r.pid, &r.secret_key);
        self.conns.cancel(r.pid, &r.secret_key).await;
        tracing::info!(pid = r.pid, found, "pgwire cancel request");
    }
}

/// How a failed statement is audited: `cancelled` when the client's
/// CancelRequest stopped it, else `error`.
fn failure_status(e: &PgWireError) -> &'static str {
    match e {
        PgWireError::UserError(info) if info.code == CANCELLED => "cancelled",
        // Out of memory (the query's or the server's), too many at once,
        // too long: the limits of the HTTP channel's audit entries.
        PgWireError::UserError(info)
            if matches!(info.code.as_str(), "53200" | "53300" | "54000") =>
        {
            "limit"
        }
        _ => "error",
    }
}

/// SQLSTATE query_canceled.
const CANCELLED: &str = "57014";

/// The error of a statement the client cancelled, as PostgreSQL words it.
fn cancelled_error() -> PgWireError {
    user_error(CANCELLED, "canceling statement due to user request".into())
}

/// The error of a statement whose stop flag was set: the server's memory
/// governor's, or else the client's cancel.
fn stopped_error(flag: Option<&QueryCancel>) -> PgWireError {
    match flag.and_then(|f| f.over_budget()) {
        Some(why) => query_error(&why.into()),
        None => cancelled_error(),
    }
}

/// Ends a result's row stream (its rows, or a COPY's data) with `stop`'s
/// error once it fires, and writes its audit entry when the rows end. A
/// row error while the connection's `cancel` flag is set is the plan's own
/// check (`DeadlineExec`) ending a cancelled statement.
fn until_stopped(
    r: Response,
    stop: Stop,
    cancel: Option<Arc<QueryCancel>>,
    audit: StreamAudit,
) -> Response {
    match r {
        Response::Query(mut q) => {
            let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
            q.data_rows = stopped_stream(rows, stop, cancel, audit);
            Response::Query(q)
        }
        Response::CopyOut(mut c) => {
            let data = std::mem::replace(c.data_stream(), Box::pin(futures::stream::empty()));
            *c.data_stream() = stopped_stream(data, stop, cancel, audit);
            Response::CopyOut(c)
        }
        other => {
            // No rows to come: it ran.
            let outcome = audit.outcome(None);
            let mut audit = audit;
            audit.write_later("ok", outcome);
            other
        }
    }
}

/// `rows` until `stop` fires (then its error), with the audit entry written
/// when they end.
fn stopped_stream<T: Send + 'static>(
    rows: Pin<Box<dyn futures::Stream<Item = PgWireResult<T>> + Send>>,
    stop: Stop,
    cancel: Option<Arc<QueryCancel>>,
    audit: StreamAudit,
) -> Pin<Box<dyn futures::Stream<Item = PgWireResult<T>> + Send>> {
    Box::pin(futures::stream::unfold(
        Some((rows, stop, cancel, audit)),
        move |st| async move {
            let (mut rows, mut stop, cancel, mut audit) = st?;
            tokio::select! {
                e = &mut stop => {
                    audit.write(Some(&e)).await;
                    Some((Err(e), None))
                }
                row = rows.next() => match row {
                    None => {
                        audit.write(None).await;
                        None
                    }
                    Some(Err(e)) => {
                        let e = if cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                            stopped_error(cancel.as_deref())
                        } else {
                            e
                        };
                        audit.write(Some(&e)).await;
                        Some((Err(e), Some((rows, stop, cancel, audit))))
                    }
                    Some(Ok(row)) => {
                        audit.rows += 1;
                        Some((Ok(row), Some((rows, stop, cancel, audit))))
                    }
                },
            }
        },
    ))
}

impl Scoped {
    /// A statement starts on `client`'s connection: once the function
    /// calls of a statement stopped before it have ended, its cancel flag
    /// is cleared (an earlier cancel does not reach it) and returned.
    async fn start<C: ClientInfo>(&self, client: &C) -> Option<Arc<QueryCancel>> {
        let flag = client.session_extensions().get::<Arc<QueryCancel>>()?;
        if flag.is_cancelled() && !flag.settle(groundtruth_query::SETTLE).await {
            tracing::warn!("a stopped statement's functions still ran when the next one started");
        }
        flag.reset();
        Some(Arc::clone(&flag))
    }

    /// The [`Stop`] of a statement: `deadline`, or its connection's flag.
    fn stop(&self, deadline: Instant, cancel: Option<&Arc<QueryCancel>>) -> Stop {
        let timeout = self.timeout_error();
        let flag = cancel.cloned();
        let why = cancel.cloned();
        let cancelled = cancel.map(|c| c.cancelled());
        Box::pin(async move {
            let cancelled = async move {
                match cancelled {
                    Some(c) => c.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    // Its function calls still running stop too.
                    if let Some(f) = flag {
                        f.cancel();
                    }
                    timeout
                }
                _ = cancelled => stopped_error(why.as_deref()),
            }
        })
    }

    /// `checked`'s refusal as the client gets it, written to the audit log
    /// first.
    async fn refused_audited(
        &self,
        who: &Principal,
        sql: &str,
        checked: Result<(), QueryError>,
    ) -> PgWireResult<()> {
        if let Err(e) = checked {
            let e = query_error(&e);
            self.audit(who, sql, Err(&e)).await;
            return Err(e);
        }
        Ok(())
    }

    fn stream_audit(&self, who: &Principal, sql: &str) -> StreamAudit {
        StreamAudit {
            service: Arc::clone(&self.service),
            who: who.clone(),
            sql: sql.to_string(),
            rows: 0,
            written: false,
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Scoped {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let c = conn(client)?;
        self.still_signed_in(&c.who, query).await?;
        self.refused_audited(
            &c.who,
            query,
            guard::check_wire_text(query, &self.service.limits),
        )
        .await?;
        let deadline = Instant::now() + self.timeout;
        self.refused_audited(&c.who, query, self.service.room(deadline).await)
            .await?;
        let cancel = self.start(client).await;
        let shielded = shield::shield(query);
        let result = tokio::select! {
            r = SimpleQueryHandler::do_query(&*c.svc, client, &shielded) => r,
            e = self.stop(deadline, cancel.as_ref()) => Err(e),
        };
        match result {
            Err(e) => {
                self.audit(&c.who, query, Err(&e)).await;
                Err(e)
            }
            Ok(responses) => Ok(responses
                .into_iter()
                .map(|r| {
                    until_stopped(
                        r,
                        self.stop(deadline, cancel.as_ref()),
                        cancel.clone(),
                        self.stream_audit(&c.who, query),
                    )
                })
                .collect()),
        }
    }
}

type DfStatement = (String, Option<(Statement, LogicalPlan)>);

#[async_trait]
impl ExtendedQueryHandler for Scoped {
    type Statement = DfStatement;
    type QueryParser = ScopedParser;

    fn query_parser(&self) -> Arc<ScopedParser> {
        self.parser.clone()
    }

    /// A portal as the statement describes it; a cursor opened by
    /// `DECLARE` (psycopg's server-side cursors describe it before they
    /// `FETCH`) as the rows it holds, which its statement does not say.
    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<DfStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PortalExecutionState::Suspended(rows) = &*target.state.lock().await {
            return Ok(DescribePortalResponse::new(rows.row_schema().to_vec()));
        }
        let fields = self.parser.get_result_schema(
            &target.statement.statement,
            Some(&target.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<DfStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let c = conn(client)?;
        let sql = portal.statement.statement.0.clone();
        self.still_signed_in(&c.who, &sql).await?;
        let deadline = Instant::now() + self.timeout;
        self.refused_audited(&c.who, &sql, self.service.room(deadline).await)
            .await?;
        let cancel = self.start(client).await;
        let result = tokio::select! {
            r = ExtendedQueryHandler::do_query(&*c.svc, client, portal, max_rows) => r,
            e = self.stop(deadline, cancel.as_ref()) => Err(e),
        };
        match result {
            Err(e) => {
                self.audit(&c.who, &sql, Err(&e)).await;
                Err(e)
            }
            Ok(r) => Ok(until_stopped(
                r,
                self.stop(deadline, cancel.as_ref()),
                cancel,
                self.stream_audit(&c.who, &sql),
            )),
        }
    }
}

/// Parses and plans in the connection's own session; describes through a
/// template parser (types and schemas come from the stored plan alone).
struct ScopedParser {
    template: Arc<Parser>,
    limits: groundtruth_query::Limits,
    service: Arc<QueryService>,
}

#[async_trait]
impl QueryParser for ScopedParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<DfStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let c = conn(client)?;
        let refused = |e: PgWireError| async {
            let outcome =
                serde_json::json!({"status": "refused", "error": e.to_string(), "stage": "parse"});
            self.service.audit(&c.who, "pgwire", sql, outcome).await;
            Err(e)
        };
        if let Err(e) = self.service.store().still_valid(&c.who).await {
            return refused(user_error(
                "28000",
                format!(
                    "{e}; this connection can run nothing more: sign in again with a valid token"
                ),
            ))
            .await;
        }
        if let Err(e) = guard::check_wire_text(sql, &self.limits) {
            return refused(query_error(&e)).await;
        }
        c.svc
            .query_parser()
            .parse_sql(client, &shield::shield(sql), types)
            .await
    }

    fn get_parameter_types(&self, stmt: &DfStatement) -> PgWireResult<Vec<Type>> {
        self.template.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &DfStatement,
        f: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.template.get_result_schema(stmt, f)
    }
}

struct Handlers {
    startup: Arc<ConnStartup>,
    query: Arc<Scoped>,
}

impl Handlers {
    fn cancel_both(&self) -> CancelBoth {
        CancelBoth {
            conns: self.startup.inner.conns.clone(),
            flags: self.startup.inner.flags.clone(),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(self.cancel_both())
    }
}
