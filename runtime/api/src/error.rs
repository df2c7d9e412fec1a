//! The one error type of every handler, rendered as `{"error": "..."}` with a status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error a handler returns.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
        }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl AppError {
    /// 400: the request is wrong, and the message says how.
    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 503: a part the request needs is not running.
    pub fn unavailable(message: impl Into<String>) -> AppError {
        AppError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> AppError {
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<tocsin_store::StoreError> for AppError {
    fn from(e: tocsin_store::StoreError) -> AppError {
        use tocsin_store::StoreError as E;
        match e {
            E::Selector { .. } | E::Query(_) | E::Refused(_) => {
                AppError::bad_request(e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure in a request");
                AppError::internal(other.to_string())
            }
        }
    }
}

impl AppError {
    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    /// 413 for a body over the limit, 400 for every other unreadable body.
    fn from(e: axum::extract::rejection::JsonRejection) -> AppError {
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        AppError::new(status, e.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}
