//! Connections and migrations, one code path for SQLite and PostgreSQL
//! (sqlx's `Any` driver: `$N` placeholders, BIGINT / DOUBLE PRECISION /
//! TEXT columns only).

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::error::{db, StoreError};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (PostgreSQL: for everything).
    pub max_connections: u32,
    /// How long a request waits for a free connection.
    pub acquire_timeout: Duration,
    /// Detectors whose confirmations need a second inspector's sign-off
    /// (four eyes; `all` for every detector). Empty: one inspector decides.
    pub four_eyes: Vec<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            four_eyes: Vec::new(),
        }
    }
}

/// Normalises a store URL: `sqlite:PATH`, `sqlite://PATH`, a bare file
/// path (SQLite, created if missing) or `postgres://user:pass@host:port/db`.
pub(crate) fn parse_url(url: &str) -> Result<(Backend, String), StoreError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::invalid(
            "store.url",
            "is empty; give a SQLite file path or a postgres:// URL",
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::invalid(
            "store.url",
            format!(
                "`{}`: unknown scheme; use a SQLite file path or postgres://",
                redact(url)
            ),
        ));
    } else {
        url
    };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if path.is_empty() {
        return Err(StoreError::invalid("store.url", "names no SQLite file"));
    }
    let mode = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".into(),
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{mode}")))
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Opens the pools: SQLite gets one writer connection (writes are
/// serialised, so a transaction never fails to upgrade its lock) and
/// `max_connections` readers in WAL mode; PostgreSQL one pool for both.
pub(crate) async fn connect(
    url: &str,
    opts: &StoreOptions,
) -> Result<(Backend, AnyPool, AnyPool, String), StoreError> {
    sqlx::any::install_default_drivers();
    let (backend, full) = parse_url(url)?;
    let shown = redact(&full);
    let err = |source| StoreError::Connect {
        url: shown.clone(),
        source,
    };
    let pool = |max: u32| {
        AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 15000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
    };
    match backend {
        Backend::Sqlite => {
            if let Some(path) = full
                .strip_prefix("sqlite://")
                .and_then(|p| p.split('?').next())
            {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| err(sqlx::Error::Io(e)))?;
                    }
                }
            }
            let write = pool(1).connect(&full).await.map_err(err)?;
            let read = pool(opts.max_connections.max(1))
                .connect(&full)
                .await
                .map_err(err)?;
            Ok((backend, read, write, shown))
        }
        Backend::Postgres => {
            let p = pool(opts.max_connections.max(2))
                .connect(&full)
                .await
                .map_err(err)?;
            Ok((backend, p.clone(), p, shown))
        }
    }
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every schema change, in order. Never edit a released one; add the next.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "review store",
        sql: include_str!("../migrations/0001_review.sql"),
    },
    Migration {
        version: 2,
        name: "queue indexes",
        sql: include_str!("../migrations/0002_queue_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "scoped queue",
        sql: include_str!("../migrations/0003_scoped_queue.sql"),
    },
    Migration {
        version: 4,
        name: "audit by region",
        sql: include_str!("../migrations/0004_audit_region.sql"),
    },
    Migration {
        version: 5,
        name: "account regions",
        sql: include_str!("../migrations/0005_account_regions.sql"),
    },
    Migration {
        version: 6,
        name: "replies",
        sql: include_str!("../migrations/0006_replies.sql"),
    },
    Migration {
        version: 7,
        name: "four eyes",
        sql: include_str!("../migrations/0007_four_eyes.sql"),
    },
];

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A migration's statements for `backend`.
fn statements(sql: &str, backend: Backend) -> Vec<String> {
    let id = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Backend::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let code = line.trim();
        if code.starts_with("--") || code.is_empty() {
            continue;
        }
        cur.push_str(&line.replace("{{id}}", id));
        cur.push('\n');
        if code.ends_with(';') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Brings the schema up to date, each migration in its own transaction
/// (PostgreSQL: under an advisory lock, so instances starting together
/// migrate once).
pub(crate) async fn migrate(pool: &AnyPool, backend: Backend, url: &str) -> Result<(), StoreError> {
    pool.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)",
    )
    .await
    .map_err(|source| StoreError::Migrate {
        url: url.to_string(),
        version: 0,
        name: "schema_migrations",
        source,
    })?;
    for m in MIGRATIONS {
        let fail = |source| StoreError::Migrate {
            url: url.to_string(),
            version: m.version,
            name: m.name,
            source,
        };
        let mut tx = pool.begin().await.map_err(fail)?;
        if backend == Backend::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(4707275)")
                .await
                .map_err(fail)?;
        }
        let applied: Option<AnyRow> =
            sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(fail)?;
        if applied.is_some() {
            tx.rollback().await.map_err(fail)?;
            continue;
        }
        for stmt in statements(m.sql, backend) {
            tx.execute(stmt.as_str()).await.map_err(fail)?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_us) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::now_us())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            backend = backend.name(),
            "review store migrated"
        );
    }
    let newest: i64 = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(db("read the schema version"))?
        .try_get::<Option<i64>, _>("v")
        .map_err(db("read the schema version"))?
        .unwrap_or(0);
    if newest > schema_version() {
        return Err(StoreError::TooNew {
            url: url.to_string(),
            found: newest,
            known: schema_version(),
        });
    }
    Ok(())
}

/// A value bound to a `$N` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(i64),
    Float(f64),
    Text(String),
    NullText,
}

/// Placeholders and their values for a query built at run time.
#[derive(Debug, Default)]
pub(crate) struct Params(pub Vec<Param>);

impl Params {
    /// Adds a value; returns its placeholder (`$N`).
    pub fn push(&mut self, p: Param) -> String {
        self.0.push(p);
        format!("${}", self.0.len())
    }

    pub fn int(&mut self, v: i64) -> String {
        self.push(Param::Int(v))
    }

    pub fn float(&mut self, v: f64) -> String {
        self.push(Param::Float(v))
    }

    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.push(Param::Text(v.into()))
    }

    /// The query with every value bound.
    pub fn query(
        self,
        sql: &str,
    ) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(sql);
        for p in self.0 {
            q = match p {
                Param::Int(v) => q.bind(v),
                Param::Float(v) => q.bind(v),
                Param::Text(v) => q.bind(v),
                Param::NullText => q.bind(None::<String>),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("data/state/review.db").unwrap(),
            (
                Backend::Sqlite,
                "sqlite://data/state/review.db?mode=rwc".into()
            )
        );
        assert_eq!(
            parse_url("sqlite:///tmp/x.db").unwrap().1,
            "sqlite:///tmp/x.db?mode=rwc"
        );
        assert_eq!(
            parse_url("postgres://u:p@h/db").unwrap().0,
            Backend::Postgres
        );
        assert!(parse_url("mysql://h/db").is_err());
        assert!(parse_url("  ").is_err());
        assert_eq!(
            redact("postgres://gt:secret@h:5432/db"),
            "postgres://gt:***@h:5432/db"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn migrations_split_and_fill_in_the_dialect() {
        let pg = statements(MIGRATIONS[0].sql, Backend::Postgres);
        let lite = statements(MIGRATIONS[0].sql, Backend::Sqlite);
        assert_eq!(pg.len(), lite.len());
        assert!(pg.iter().all(|s| !s.contains("{{")));
        assert!(pg.iter().any(|s| s.contains("BIGSERIAL PRIMARY KEY")));
        assert!(lite.iter().any(|s| s.contains("AUTOINCREMENT")));
        assert!(pg.iter().all(|s| s.trim_end().ends_with(';')));
    }
}
