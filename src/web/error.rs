//! One error type for the person-facing pages and one for the machine-facing Divar endpoints.
//! Neither puts internal error text in a response: the cause chain goes to the log.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::services::{
    availability::AskError, broadcast::BroadcastError, entry::EntryError, events::EventError,
    send::SendError,
};

use super::pages::{
    error::{self as words, ErrorPage},
    render_page,
};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// What a 503 for an unreachable database asks the client to wait, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// Errors of the webview pages; each becomes a Persian error page with a next step.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// The text is shown to the person, so it is written for them (in Persian, in
    /// `pages::error`).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// What the browser sent did not arrive whole (the client stopped, or it is not our form).
    #[error("an incomplete request")]
    Incomplete,
    /// The session has no visit: it expired, or the page was opened outside Divar.
    #[error("no visit in the session")]
    NoVisit,
    /// The page is for a visit from a chat (or a post), and this one came from neither.
    #[error("the visit is not from a chat")]
    NotInChat,
    #[error("the visitor is not signed in to Divar")]
    NotSignedIn,
    #[error("only the post's owner may do this")]
    NotPostOwner,
    #[error("the entry link was already used")]
    LinkUsed,
    #[error("the entry link has expired")]
    LinkExpired,
    /// A post that did not come from one of our own pages (see `web::csrf`).
    #[error("a cross-site or tokenless post")]
    Forbidden,
    #[error("the request body is too large")]
    TooLarge,
    /// This client made too many requests to a throttled route (see `web::throttle`).
    #[error("too many requests")]
    TooManyRequests { retry_after: std::time::Duration },
    /// One of the person's limits (`services::limits`).
    #[error("a person's limit: {0:?}")]
    Limit(crate::services::limits::LimitHit),
    /// The person has not given permission yet (or any more): sent to this page to connect.
    #[error("not connected")]
    Connect(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<SendError> for AppError {
    fn from(error: SendError) -> Self {
        match error {
            SendError::NotConnected => Self::Connect("/start"),
            SendError::NotFound => Self::NotFound,
            SendError::Incomplete => Self::BadRequest(words::SEND_INCOMPLETE),
            SendError::Limit(hit) => Self::Limit(hit),
            SendError::Store(error) => Self::Unexpected(error),
        }
    }
}

impl From<BroadcastError> for AppError {
    fn from(error: BroadcastError) -> Self {
        match error {
            BroadcastError::NotConnected => Self::Connect("/post"),
            BroadcastError::NotFound => Self::NotFound,
            BroadcastError::Incomplete => Self::BadRequest(words::BROADCAST_INCOMPLETE),
            BroadcastError::InvalidMessage => Self::BadRequest(words::INVALID_MESSAGE),
            BroadcastError::NoConversations => Self::BadRequest(words::NO_CONVERSATIONS),
            BroadcastError::PostRemoved => Self::BadRequest(words::POST_REMOVED),
            BroadcastError::Limit(hit) => Self::Limit(hit),
            BroadcastError::Store(error) => Self::Unexpected(error),
        }
    }
}

impl From<EntryError> for AppError {
    fn from(error: EntryError) -> Self {
        match error {
            EntryError::Used => Self::LinkUsed,
            EntryError::Expired => Self::LinkExpired,
            EntryError::Unknown | EntryError::BadRequest(_) => Self::NotFound,
            EntryError::Store(error) => Self::Unexpected(error),
        }
    }
}

impl From<EntryError> for ApiError {
    fn from(error: EntryError) -> Self {
        match error {
            EntryError::BadRequest(reason) => Self::BadRequest(reason),
            EntryError::Store(error) => Self::Unexpected(error),
            other => Self::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::BadRequest(reason) => Self::BadRequest(reason),
            EventError::Store(error) => Self::Unexpected(error),
        }
    }
}

impl From<AskError> for ApiError {
    fn from(error: AskError) -> Self {
        match error {
            AskError::BadRequest(reason) => Self::BadRequest(reason),
            AskError::Store(error) => Self::Unexpected(error),
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(error: serde_json::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, page): (StatusCode, ErrorPage) = match &self {
            AppError::NotFound => (StatusCode::NOT_FOUND, words::NOT_FOUND.into()),
            AppError::Incomplete => (StatusCode::BAD_REQUEST, words::INCOMPLETE.into()),
            AppError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, ErrorPage::bad_request(message))
            }
            AppError::NoVisit => (StatusCode::UNAUTHORIZED, words::NO_VISIT.into()),
            AppError::NotInChat => (StatusCode::BAD_REQUEST, words::NOT_IN_CHAT.into()),
            AppError::NotSignedIn => (StatusCode::UNAUTHORIZED, words::NOT_SIGNED_IN.into()),
            AppError::NotPostOwner => (StatusCode::FORBIDDEN, words::NOT_POST_OWNER.into()),
            AppError::LinkUsed => (StatusCode::GONE, words::LINK_USED.into()),
            AppError::LinkExpired => (StatusCode::GONE, words::LINK_EXPIRED.into()),
            AppError::Forbidden => (StatusCode::FORBIDDEN, words::FORBIDDEN.into()),
            AppError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, words::TOO_LARGE.into()),
            AppError::TooManyRequests { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil() as u64;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, seconds.to_string())],
                    render_page(&ErrorPage::too_many_requests(seconds)),
                )
                    .into_response();
            }
            AppError::Limit(hit) => {
                let page = render_page(&ErrorPage::limit(hit));
                return match hit {
                    crate::services::limits::LimitHit::Submits { retry_after } => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(
                            axum::http::header::RETRY_AFTER,
                            (retry_after.as_secs_f64().ceil() as u64).to_string(),
                        )],
                        page,
                    )
                        .into_response(),
                    _ => (StatusCode::TOO_MANY_REQUESTS, page).into_response(),
                };
            }
            AppError::Connect(to) => return axum::response::Redirect::to(to).into_response(),
            AppError::Unexpected(error) if crate::services::is_unavailable(error) => {
                crate::observe::reachability::database().failed(&format!("{error:#}"));
                let page: ErrorPage = words::UNAVAILABLE.into();
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECS)],
                    render_page(&page),
                )
                    .into_response();
            }
            AppError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, words::UNEXPECTED.into())
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
            ApiError::Unexpected(error) if crate::services::is_unavailable(&error) => {
                crate::observe::reachability::database().failed(&format!("{error:#}"));
                let body =
                    json!({ "status": "503", "message": "temporarily unavailable; retry shortly" });
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECS)],
                    Json(body),
                )
                    .into_response();
            }
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
