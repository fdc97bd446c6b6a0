//! Endpoints Divar itself calls: session initialization, the event webhook and the dynamic
//! action. Divar authenticates itself with the identification key, sent bare in `Authorization`.

use axum::{
    Json,
    body::Body,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, Method},
    routing::post,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    services::{availability, entry, events},
    state::AppState,
    web::error::ApiError,
};

use super::Routes;

/// Session-init bodies are a few hundred bytes; anything near this is not from Divar.
const MAX_SESSION_INIT_BODY: usize = 16 * 1024;
const MAX_EVENT_BODY: usize = 64 * 1024;
/// A dynamic-action body carries a button's data: a few hundred bytes.
const MAX_DYNAMIC_ACTION_BODY: usize = 16 * 1024;

pub fn routes() -> Routes {
    // The handlers enforce their limits themselves, to answer 400 with a reason instead of 413.
    let unlimited =
        |route: axum::routing::MethodRouter<AppState>| route.layer(DefaultBodyLimit::disable());
    Routes::new()
        .add(
            Method::POST,
            "/divar/events",
            unlimited(post(receive_event)),
        )
        .add(
            Method::POST,
            "/divar/session-init",
            unlimited(post(session_init)),
        )
        .add(
            Method::POST,
            "/divar/dynamic-action",
            unlimited(post(dynamic_action)),
        )
}

/// Divar asks what a tapped `get_dynamic_action` button does (our «هنوز موجود است؟»).
async fn dynamic_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    verify_divar(&headers, &app.deps.settings.identification_key)?;
    let body = read(body, MAX_DYNAMIC_ACTION_BODY).await?;
    let reply = availability::answer(&app.deps, &body).await?;
    Ok(Json(reply.to_json()))
}

/// A superset of both revisions' answers: v2 reads `url`, the original also `status`/`message`.
#[derive(Serialize)]
struct SessionInitReply {
    status: &'static str,
    message: &'static str,
    url: String,
}

/// Divar asks where to send someone who clicked our button or opened us from a chat or post.
async fn session_init(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SessionInitReply>, ApiError> {
    verify_divar(&headers, &app.deps.settings.identification_key)?;
    let body = read(body, MAX_SESSION_INIT_BODY).await?;
    // Divar documents both spellings of the header.
    let api_version = ["api-version", "api_version"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok());
    let url = entry::session_init(&app.deps, &body, api_version).await?;
    Ok(Json(SessionInitReply {
        status: "200",
        message: "success",
        url,
    }))
}

/// Event webhooks: acknowledged once handled (a redelivery changes nothing).
async fn receive_event(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    verify_divar(&headers, &app.deps.settings.identification_key)?;
    let body = read(body, MAX_EVENT_BODY).await?;
    events::receive(&app.deps, &body).await?;
    Ok(Json(serde_json::json!({})))
}

async fn read(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::BadRequest(format!("the body is larger than {limit} bytes")))
}

/// Compares `Authorization` with the identification key; hashing first makes the comparison
/// constant-time in the length too.
pub fn verify_divar(headers: &HeaderMap, key: &SecretString) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let matches: bool = Sha256::digest(given)
        .ct_eq(&Sha256::digest(key.expose_secret().as_bytes()))
        .into();
    if matches {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}
