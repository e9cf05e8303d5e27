//! Why a query was refused or failed. Each says what to change; the API
//! and the wire protocol map the kinds to their own codes.

/// Whose problem it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// Not allowed here (DDL, DML, several statements, file access...).
    Refused,
    /// The SQL does not parse or plan (unknown table, bad syntax).
    Invalid,
    /// Too long to read (query text) or to run (time, memory).
    Limit,
    /// Our failure.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("the query does not run: {0}")]
    Invalid(String),
    #[error("the query text is {bytes} bytes; at most {max} are accepted")]
    TooLong { bytes: usize, max: usize },
    #[error("the query ran longer than {seconds} s and was stopped; narrow it (a WHERE on event_date, fewer joins) or ask for less")]
    Timeout { seconds: f64 },
    #[error("the query needed more than {mb} MB of memory and was stopped: {detail}; aggregate before joining, or filter first")]
    Memory { mb: usize, detail: String },
    /// Stopped by the server: the running queries together held more
    /// memory than its budget, and this one started last (pool.rs).
    #[error("the server's running queries together held {used_mb} MB, more than the {budget_mb} MB they may, and this query, the last to start, was stopped: try again when others have finished, or ask for less (filter first, aggregate before joining)")]
    ServerMemory { used_mb: usize, budget_mb: usize },
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many queries at once (the caller's or the server's).
    #[error("busy: {0}")]
    Busy(String),
    /// A file listed by the query was compacted away before it was read;
    /// the query is run again.
    #[error("a lake file changed under the query: {0}")]
    Vanished(String),
}

impl From<crate::deadline::OverBudget> for QueryError {
    fn from(o: crate::deadline::OverBudget) -> QueryError {
        QueryError::ServerMemory {
            used_mb: o.used_mb,
            budget_mb: o.budget_mb,
        }
    }
}

impl groundtruth_error::Classified for QueryError {
    fn domain(&self) -> groundtruth_error::ErrorDomain {
        use groundtruth_error::ErrorDomain;
        match self {
            QueryError::Refused(_)
            | QueryError::Invalid(_)
            | QueryError::TooLong { .. }
            | QueryError::Timeout { .. }
            | QueryError::Memory { .. }
            | QueryError::Busy(_) => ErrorDomain::User,
            // The server's state, not the query alone.
            QueryError::ServerMemory { .. } | QueryError::Vanished(_) => ErrorDomain::External,
            QueryError::Internal(_) => ErrorDomain::Internal,
        }
    }

    /// Too many queries at once, the server's memory held by others, a
    /// file compacted away under the query: the same query later can run.
    fn retry_hint(&self) -> groundtruth_error::RetryHint {
        use groundtruth_error::RetryHint;
        match self {
            QueryError::Busy(_) | QueryError::ServerMemory { .. } | QueryError::Vanished(_) => {
                RetryHint::WithBackoff
            }
            _ => RetryHint::NoRetry,
        }
    }
}

impl QueryError {
    pub fn kind(&self) -> QueryErrorKind {
        match self {
            QueryError::Refused(_) => QueryErrorKind::Refused,
            QueryError::Invalid(_) => QueryErrorKind::Invalid,
            QueryError::TooLong { .. }
            | QueryError::Timeout { .. }
            | QueryError::Memory { .. }
            | QueryError::ServerMemory { .. }
            | QueryError::Busy(_) => QueryErrorKind::Limit,
            QueryError::Internal(_) | QueryError::Vanished(_) => QueryErrorKind::Internal,
        }
    }

    /// A DataFusion error met while planning or running a query.
    pub(crate) fn from_datafusion(e: datafusion::error::DataFusionError, mb: usize) -> QueryError {
        use datafusion::error::DataFusionError as E;
        if groundtruth_sql::is_vanished_file(&e) {
            return QueryError::Vanished(e.to_string());
        }
        let root = e.find_root();
        if let E::External(inner) = root {
            if let Some(t) = inner.downcast_ref::<crate::deadline::TimedOut>() {
                return QueryError::Timeout { seconds: t.seconds };
            }
        }
        match root {
            E::ResourcesExhausted(detail) => QueryError::Memory {
                mb,
                detail: detail.clone(),
            },
            E::SQL(..)
            | E::NotImplemented(_)
            | E::Plan(_)
            | E::SchemaError(..)
            | E::Execution(_)
            | E::ArrowError(..) => QueryError::Invalid(e.to_string()),
            _ => QueryError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groundtruth_error::{Classified, ErrorDomain, RetryHint};

    #[test]
    fn the_caller_the_server_and_a_bug_are_told_apart() {
        let bad = QueryError::Invalid("no such table".into());
        assert_eq!(
            (bad.domain(), bad.retry_hint()),
            (ErrorDomain::User, RetryHint::NoRetry)
        );
        let busy = QueryError::Busy("3 queries running".into());
        assert_eq!(busy.domain(), ErrorDomain::User);
        assert!(busy.is_retryable());
        let full = QueryError::ServerMemory {
            used_mb: 900,
            budget_mb: 800,
        };
        assert_eq!(full.domain(), ErrorDomain::External);
        assert!(full.is_retryable());
        let vanished = QueryError::Vanished("part-1.parquet".into());
        assert!(vanished.is_retryable());
        let bug = QueryError::Internal("oops".into());
        assert_eq!(
            (bug.domain(), bug.retry_hint()),
            (ErrorDomain::Internal, RetryHint::NoRetry)
        );
    }
}
