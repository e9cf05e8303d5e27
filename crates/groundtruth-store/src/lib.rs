//! `groundtruth-store`: the inspectors' review store.
//!
//! Findings (upserted by `finding_id`), the cases that group them, the
//! assignments, verdicts and notes inspectors make, an append-only audit
//! log of every change (who, what, when, before and after), and the hashed
//! bearer tokens that say who may see which region. SQLite is the embedded
//! default; PostgreSQL serves shared deployments; both run the same
//! migrations and the same queries (see [`db`]).
//!
//! Every read and every change takes the caller's [`Scope`] and filters by
//! it in SQL: a case outside the scope answers exactly like a case that
//! does not exist.

pub mod access;
mod audit;
mod case_regions;
mod cases;
pub mod db;
mod error;
mod export;
mod finding_scope;
mod findings;
mod mask;
pub mod model;
mod tokens;

use sqlx::AnyPool;

pub use access::{Principal, Role, Scope};
pub use audit::AuditQuery;
pub use db::{Backend, StoreOptions};
pub use error::{ErrorKind, StoreError};
pub use export::{FindingRow, VerdictRow};
pub use finding_scope::FindingScope;
pub use findings::{case_key, evidence_key};
pub use mask::is_withheld;
pub use model::*;
pub use tokens::{AuthError, NewToken};

/// The review store (cheap to clone: the pools are shared).
#[derive(Clone)]
pub struct ReviewStore {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    url: String,
    /// See [`StoreOptions::four_eyes`].
    four_eyes: std::sync::Arc<Vec<String>>,
}

impl std::fmt::Debug for ReviewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewStore")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish()
    }
}

impl ReviewStore {
    /// Connects (creating a SQLite file if missing) and migrates.
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<ReviewStore, StoreError> {
        let (backend, read, write, url) = db::connect(url, opts).await?;
        db::migrate(&write, backend, &url).await?;
        Ok(ReviewStore {
            read,
            write,
            backend,
            url,
            four_eyes: std::sync::Arc::new(opts.four_eyes.clone()),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(error::db("reach the database"))?;
        Ok(())
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Now, epoch microseconds.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
