//! API errors, rendered as `{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
//! "..."}}` (Google API style), plus `position`/`column` for filter errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ward_store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// 0-based character offset of a filter error.
    pub position: Option<usize>,
    /// The request parameter at fault, when known.
    pub field: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inner<'a> {
    code: u16,
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
}

/// Google's canonical status name for an HTTP status.
pub fn status_name(s: StatusCode) -> &'static str {
    match s.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        408 => "DEADLINE_EXCEEDED",
        409 => "FAILED_PRECONDITION",
        413 => "PAYLOAD_TOO_LARGE",
        414 => "URI_TOO_LONG",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        429 => "RESOURCE_EXHAUSTED",
        431 => "REQUEST_HEADER_FIELDS_TOO_LARGE",
        503 => "UNAVAILABLE",
        _ if s.is_server_error() => "INTERNAL",
        _ => "UNKNOWN",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            position: None,
            field: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn with_field(mut self, field: &'static str) -> ApiError {
        self.field = Some(field);
        self
    }

    pub fn not_found(what: &str) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, format!("no finding '{what}'"))
    }

    /// True when the error is SQLite saying the database is busy or locked.
    pub fn is_busy(e: &StoreError) -> bool {
        matches!(e, StoreError::Sqlite { source, .. } if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ))
    }

    pub fn from_store(e: StoreError) -> ApiError {
        match &e {
            StoreError::Filter(f) => ApiError {
                status: StatusCode::BAD_REQUEST,
                message: f.to_string(),
                position: Some(f.position),
                field: Some("filter"),
            },
            StoreError::InvalidOrderBy { .. } => {
                Self::bad_request(e.to_string()).with_field("orderBy")
            }
            StoreError::InvalidPageToken(_) => {
                Self::bad_request(e.to_string()).with_field("pageToken")
            }
            StoreError::NotFound(id) => Self::not_found(id),
            StoreError::NameOfAnotherNode { .. } => {
                Self::new(StatusCode::FORBIDDEN, e.to_string()).with_field("findings")
            }
            StoreError::AmbiguousId { .. } => Self::bad_request(e.to_string()),
            StoreError::ReadOnly { .. } => Self::new(
                StatusCode::CONFLICT,
                "the finding database is open read-only",
            ),
            _ if Self::is_busy(&e) => {
                tracing::warn!(error = %e, "finding store busy");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the finding database is busy; retry shortly",
                )
            }
            _ if e.is_unavailable() => {
                tracing::warn!(error = %e, "finding store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the finding database is unavailable; retry shortly",
                )
            }
            _ => {
                tracing::error!(error = %e, "finding store error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(e)
    }
}

impl ApiError {
    /// The JSON body of this error (the documented shape).
    pub(crate) fn body_json(&self) -> Vec<u8> {
        let body = Body {
            error: Inner {
                code: self.status.as_u16(),
                status: status_name(self.status),
                message: &self.message,
                field: self.field,
                position: self.position,
                column: self.position.map(|p| p + 1),
            },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let json = self.body_json();
        let mut r = (self.status, json).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self.status {
            StatusCode::UNAUTHORIZED => {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"ward\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn busy_and_locked_map_to_503_not_500() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let e = StoreError::Sqlite {
                context: "x".into(),
                path: PathBuf::from("/db"),
                source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
            };
            assert_eq!(
                ApiError::from_store(e).status,
                StatusCode::SERVICE_UNAVAILABLE
            );
        }
    }
}
