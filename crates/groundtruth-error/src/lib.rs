//! What every library error of groundtruth says besides its message
//! (Arroyo's `ErrorDomain` and `RetryHint`): whose fault it is and whether
//! trying again can help. Callers decide from these, not by digging
//! through wrapped variants: the review API answers a 4xx for a
//! [`ErrorDomain::User`] error and a 5xx otherwise; a consumer loop pauses
//! and tries again on [`RetryHint::WithBackoff`] and stops or dead-letters
//! on [`RetryHint::NoRetry`].

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The caller's input or request: a bad query, an unknown id, a
    /// forbidden action, a setting out of range. Answered with a 4xx; the
    /// message says what to change.
    User,
    /// Something outside the process: the disk, the broker, the database,
    /// another writer of a shared lake. Answered with a 5xx (503 when it
    /// passes); often passes by itself.
    External,
    /// groundtruth's own fault: a bug, a damaged file of its own, a state
    /// it no longer trusts. Answered with a 500 and logged in full.
    Internal,
}

/// Whether the same operation, tried again later, can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Trying again gives the same error: report it, stop or dead-letter.
    NoRetry,
    /// Trying again after a pause can succeed (a full disk freed, a file
    /// compacted away listed again, a busy server): nothing was half-done.
    WithBackoff,
}

/// An error that says its [`ErrorDomain`] and [`RetryHint`].
pub trait Classified: std::error::Error {
    /// Whose fault it is.
    fn domain(&self) -> ErrorDomain;

    /// Whether trying again can help.
    fn retry_hint(&self) -> RetryHint;

    /// `retry_hint() == RetryHint::WithBackoff`.
    fn is_retryable(&self) -> bool {
        self.retry_hint() == RetryHint::WithBackoff
    }
}
