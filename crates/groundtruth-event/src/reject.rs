//! Why a message is a bad event.

use std::fmt;

/// Low-cardinality class of a rejection, used for counting and as the
/// `reason_code` column of `dead_letters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// The message is larger than the configured limit.
    TooLarge,
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// Not parseable as JSON (syntax error, truncated, trailing bytes, empty).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A field appears twice in the same object.
    DuplicateField,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (including `null`).
    WrongType,
    /// A field has the right type but an impossible value.
    InvalidValue,
}

impl RejectCode {
    pub const ALL: [RejectCode; 8] = [
        RejectCode::TooLarge,
        RejectCode::InvalidUtf8,
        RejectCode::InvalidJson,
        RejectCode::NotAnObject,
        RejectCode::DuplicateField,
        RejectCode::MissingField,
        RejectCode::WrongType,
        RejectCode::InvalidValue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::TooLarge => "too_large",
            RejectCode::InvalidUtf8 => "invalid_utf8",
            RejectCode::InvalidJson => "invalid_json",
            RejectCode::NotAnObject => "not_an_object",
            RejectCode::DuplicateField => "duplicate_field",
            RejectCode::MissingField => "missing_field",
            RejectCode::WrongType => "wrong_type",
            RejectCode::InvalidValue => "invalid_value",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bad event: its class, the field at fault (if any) and a sentence
/// saying what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub code: RejectCode,
    /// Dotted field path, e.g. `lat` or `attrs.patrol_id`.
    pub field: Option<&'static str>,
    pub detail: String,
}

impl Reject {
    pub(crate) fn new(
        code: RejectCode,
        field: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Reject {
            code,
            field,
            detail: detail.into(),
        }
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        Reject::new(
            RejectCode::MissingField,
            Some(field),
            format!("required field `{field}` is missing"),
        )
    }

    pub(crate) fn invalid(field: &'static str, detail: impl fmt::Display) -> Self {
        Reject::new(
            RejectCode::InvalidValue,
            Some(field),
            format!("field `{field}` {detail}"),
        )
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Reject {}

impl Reject {
    /// Replaces the sentence, keeping code and field.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}
