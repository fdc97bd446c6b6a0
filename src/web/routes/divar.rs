//! Endpoints Divar itself calls.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, State},
    http::HeaderMap,
    routing::post,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    config::Settings,
    db,
    domain::{SessionInit, event::DivarEvent},
    state::AppState,
    web::error::ApiError,
};

/// Session-init bodies are a few hundred bytes; anything near this is not from Divar.
const MAX_SESSION_INIT_BODY: usize = 16 * 1024;
const MAX_EVENT_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/divar/events",
            post(receive_event).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/divar/session-init",
            // The handler enforces the limit itself, to answer 400 with a reason instead of 413.
            post(session_init).layer(DefaultBodyLimit::disable()),
        )
}

/// A superset of both revisions' answers: v2 reads `url`, the original also `status`/`message`.
#[derive(Serialize)]
struct SessionInitReply {
    status: &'static str,
    message: &'static str,
    url: String,
}

/// Divar asks where to send someone who clicked our button or opened us from a chat or post.
/// All three documented bodies are taken: docs/divar-platform.md, "Session initialization".
async fn session_init(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SessionInitReply>, ApiError> {
    verify_divar(&headers, &state.settings.identification_key)?;
    let body = axum::body::to_bytes(body, MAX_SESSION_INIT_BODY)
        .await
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "the body is larger than {MAX_SESSION_INIT_BODY} bytes"
            ))
        })?;
    let api_version = headers
        .get("api-version")
        .or_else(|| headers.get("api_version"))
        .and_then(|v| v.to_str().ok());
    let init = SessionInit::parse(&body, api_version).map_err(ApiError::BadRequest)?;
    let token = state.entry_links.issue(&init).await?;
    tracing::info!(revision = init.revision.as_str(), source = %init.source, "session initialized");
    metrics::counter!(crate::observe::SESSION_INITS, "revision" => init.revision.as_str())
        .increment(1);
    Ok(Json(SessionInitReply {
        status: "200",
        message: "success",
        url: entry_url(&state.settings, &token),
    }))
}

/// The one-time link into the webview; opening it binds the click to a session.
fn entry_url(settings: &Arc<Settings>, token: &str) -> String {
    settings.url(&format!("/s/{token}")).to_string()
}

/// Event webhooks (docs/divar-platform.md, "Events"): `NEW_MESSAGE` links a conversation to its post,
/// `USER_ACCESS_REVOCATION` erases everything kept about the user. Other types are acknowledged and ignored.
/// Every effect is an upsert or a delete, so a redelivered event changes nothing.
async fn receive_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    verify_divar(&headers, &state.settings.identification_key)?;
    let body = axum::body::to_bytes(body, MAX_EVENT_BODY)
        .await
        .map_err(|_| {
            ApiError::BadRequest(format!("the body is larger than {MAX_EVENT_BODY} bytes"))
        })?;
    match DivarEvent::parse(&body).map_err(ApiError::BadRequest)? {
        // An app's own message (ours, echoed back) tells nothing about a buyer, and a message
        // without its post cannot be linked to one.
        DivarEvent::NewMessage { from_bot: true, .. }
        | DivarEvent::NewMessage {
            post_token: None, ..
        } => tracing::debug!("a new message that links no buyer to a post"),
        DivarEvent::NewMessage {
            conversation_id,
            post_token: Some(post_token),
            ..
        } => {
            db::conversations::record_seen(
                &state.db,
                &conversation_id,
                &post_token,
                state.clock.now_ms(),
            )
            .await?;
        }
        // The person withdrew the app's access: forget everything kept about them (Divar's
        // policy asks apps to keep people's data no longer than needed).
        DivarEvent::AccessRevoked { user_id } => {
            let erased = db::erasure::erase_user(&state.db, &user_id).await?;
            tracing::info!(
                ?erased,
                "a user revoked the app's access; their data was erased"
            );
        }
        DivarEvent::Other(kind) => tracing::debug!(%kind, "ignoring an event type we do not use"),
    }
    Ok(Json(serde_json::json!({})))
}

/// Divar authenticates itself with the identification key, sent bare in `Authorization`.
pub fn verify_divar(headers: &HeaderMap, key: &SecretString) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Hashing first makes the comparison constant-time in the length too.
    let matches: bool = Sha256::digest(given)
        .ct_eq(&Sha256::digest(key.expose_secret().as_bytes()))
        .into();
    if matches {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}
