//! Extractors whose rejections are [`ApiError`]s: every malformed body,
//! query or path gets the same JSON error shape with a 4xx status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use groundtruth_store::{AuthError, Principal, Role};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::ApiState;

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match <axum::Json<T> as FromRequest<S>>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

/// An optional JSON body: absent when the request has no `Content-Type`
/// (as axum's `Json`), parsed strictly otherwise.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        <ApiJson<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = match rej.status() {
        // A body of the wrong shape is the client's syntax problem too.
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let message = match &rej {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with `Content-Type: application/json`".to_string()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the server accepts (api.max_body_bytes)".into()
        }
        _ => format!("invalid JSON body: {}", rej.body_text()),
    };
    ApiError::Rejected { status, message }
}

/// Query-string parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::Rejected {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid query parameters: {}", rej.body_text()),
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(path_rejection(rej)),
        }
    }
}

fn path_rejection(rej: PathRejection) -> ApiError {
    ApiError::Rejected {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid path: {}", rej.body_text()),
    }
}

/// The authenticated caller (`Authorization: Bearer gt_...`).
pub struct Caller(pub Principal);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(h) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(AuthError::Missing));
        };
        let text = h
            .to_str()
            .map_err(|_| ApiError::Unauthorized(AuthError::Malformed))?;
        let token = match text.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => return Err(ApiError::Unauthorized(AuthError::Missing)),
        };
        match state.store.authenticate(token).await {
            Ok(p) => Ok(Caller(p)),
            Err(AuthError::Store(e)) => {
                tracing::error!(error = %e, "cannot check a token");
                Err(ApiError::Unavailable(
                    "cannot check the token right now; try again".into(),
                ))
            }
            Err(e) => {
                // A token of the right shape that does not (or no longer)
                // hold is someone trying: audited. Missing or malformed
                // headers are noise and are not.
                if matches!(
                    e,
                    AuthError::Unknown | AuthError::Revoked { .. } | AuthError::Expired { .. }
                ) {
                    let label = format!("token {}…", token.get(..10).unwrap_or(""));
                    state.store.record_signin_failure("http", &label, &e).await;
                }
                Err(ApiError::Unauthorized(e))
            }
        }
    }
}

impl Caller {
    /// Refuses (403) a caller whose role is not one of `roles`.
    pub fn require(&self, roles: &[Role], to: &str) -> Result<&Principal, ApiError> {
        if roles.contains(&self.0.role) {
            return Ok(&self.0);
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "a token of role {} cannot {to}; roles that can: {}",
            self.0.role,
            allowed.join(", ")
        )))
    }
}
