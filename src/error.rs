//! One error type for the person-facing pages and one for the machine-facing Divar endpoints.
//! Neither puts internal error text in a response: the cause chain goes to the log.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::web::pages::{ErrorPage, render_page};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Errors of the webview pages; each becomes a Persian error page with a next step.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// The text is shown to the person, so it is written for them (in Persian).
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, page) = match &self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorPage::new(
                    "صفحه پیدا نشد",
                    "نشانی‌ای که باز کردید وجود ندارد یا منقضی شده است.",
                ),
            ),
            AppError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                ErrorPage::new("درخواست نادرست", message),
            ),
            AppError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorPage::new(
                        "خطای غیرمنتظره",
                        "مشکلی در سرور پیش آمد. چند لحظهٔ دیگر دوباره امتحان کنید.",
                    ),
                )
            }
        };
        (status, render_page(&page)).into_response()
    }
}

/// Errors of the JSON endpoints Divar calls (session initialization, webhooks).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "the Authorization header does not carry this app's Divar identification key"
                    .to_string(),
            ),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
        };
        let body = json!({ "status": status.as_u16().to_string(), "message": message });
        (status, Json(body)).into_response()
    }
}
