//! Errors of the review store. Each says what failed and on what; the API
//! maps the kinds to HTTP statuses ([`StoreError::kind`]).

/// What kind of failure, for the caller to choose a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not there, or not visible in the caller's scope (the same answer, so
    /// existence is not revealed).
    NotFound,
    /// A request that cannot be carried out in the current state.
    Conflict,
    /// A value that is not acceptable.
    Invalid,
    /// Visible, but not the caller's to change (a case that reaches outside
    /// the caller's scope).
    Forbidden,
    /// The database failed; details are in the log, not for the client.
    Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("`{field}`: {problem}")]
    Invalid { field: String, problem: String },
    #[error("cannot open the review store at {url}: {source}; check store.url and that the database is reachable")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the review store at {url} to version {version} ({name}): {source}")]
    Migrate {
        url: String,
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the review store at {url} is at schema version {found}, newer than this groundtruth knows ({known}); run a newer groundtruth")]
    TooNew { url: String, found: i64, known: i64 },
    #[error("review store: cannot {op}: {source}")]
    Backend {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("review store: stored {what} is not valid: {problem}")]
    Corrupt { what: String, problem: String },
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Forbidden(_) => ErrorKind::Forbidden,
            StoreError::Invalid { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Backend,
        }
    }

    /// Whether a caller's request is at fault (its own 4xx), not the
    /// store.
    fn is_callers(&self) -> bool {
        self.kind() != ErrorKind::Backend
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> StoreError {
        StoreError::NotFound { what: what.into() }
    }
}

/// `map_err` helper: a database error during `op`.
pub(crate) fn db(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |source| StoreError::Backend { op, source }
}

impl groundtruth_error::Classified for StoreError {
    fn domain(&self) -> groundtruth_error::ErrorDomain {
        use groundtruth_error::ErrorDomain;
        match self {
            _ if self.is_callers() => ErrorDomain::User,
            StoreError::TooNew { .. } | StoreError::Corrupt { .. } | StoreError::Migrate { .. } => {
                ErrorDomain::Internal
            }
            _ => ErrorDomain::External,
        }
    }

    /// A database that could not be reached or answered with an error
    /// may answer later; a request at fault, or a store of another
    /// version or damaged, will not.
    fn retry_hint(&self) -> groundtruth_error::RetryHint {
        use groundtruth_error::RetryHint;
        match self {
            StoreError::Connect { .. } | StoreError::Backend { .. } => RetryHint::WithBackoff,
            _ => RetryHint::NoRetry,
        }
    }
}
