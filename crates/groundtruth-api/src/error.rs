//! API errors: one JSON shape (`{"error": {"code", "message"}}`) and the
//! status that says whose fault it is. Database and internal failures are
//! logged with their details and answered with a short message only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use groundtruth_error::{Classified, ErrorDomain};
use groundtruth_store::{AuthError, ErrorKind, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `bad_request`, `conflict`, `payload_too_large`, `unavailable`,
    /// `timeout`, `internal`.
    pub code: String,
    /// What is wrong and what to do, in words.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// An extractor's rejection, with its own status.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self.status() {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        }
    }

    pub fn bad(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("`{field}`: {problem}"))
    }
}

impl From<StoreError> for ApiError {
    /// A 4xx when the request is at fault ([`ErrorDomain::User`], the kind
    /// says which), else a 500 with the details in the log only.
    fn from(e: StoreError) -> ApiError {
        match (e.domain(), e.kind()) {
            (ErrorDomain::User, ErrorKind::NotFound) => ApiError::NotFound(e.to_string()),
            (ErrorDomain::User, ErrorKind::Conflict) => ApiError::Conflict(e.to_string()),
            (ErrorDomain::User, ErrorKind::Forbidden) => ApiError::Forbidden(e.to_string()),
            (ErrorDomain::User, _) => ApiError::BadRequest(e.to_string()),
            _ => {
                tracing::error!(error = %e, "review store failed");
                ApiError::Internal(
                    "the review store failed; the details are in the server log".into(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"groundtruth\""),
            );
        }
        resp
    }
}
