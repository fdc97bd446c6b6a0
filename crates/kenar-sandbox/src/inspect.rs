//! JSON views of everything the simulated Divar saw, and knobs to turn, for tests and for a
//! curious developer. Sandbox only: these list the fake tokens it issued.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Sandbox, world::KnobsUpdate};

pub fn router() -> Router<Sandbox> {
    Router::new()
        .route("/_inspect/messages", get(messages))
        .route("/_inspect/tokens", get(tokens))
        .route("/_inspect/refreshes", get(refreshes))
        .route("/_inspect/api-calls", get(api_calls))
        .route("/_inspect/outbound", get(outbound))
        .route("/_inspect/subscriptions", get(subscriptions))
        .route("/_inspect/app", get(app))
        .route("/_control/settings", get(settings).post(update_settings))
        .route("/_control/clock", get(clock).post(advance_clock))
        .route(
            "/_control/conversations/{conversation_id}",
            post(update_conversation),
        )
        .route(
            "/_control/posts/{post_token}/conversations",
            post(add_conversations),
        )
        .route("/_control/posts/{post_token}/retire", post(retire_post))
}

/// The seller removes the post from Divar: apps subscribed to its updates hear `RETIRE`. Each
/// call sends the event again, as Divar may repeat updates.
async fn retire_post(State(sandbox): State<Sandbox>, Path(post_token): Path<String>) -> Response {
    match super::outbound::post_retired(&sandbox, &post_token).await {
        Some(told) => {
            Json(json!({ "post_token": post_token, "retired": true, "subscribers_told": told }))
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "post not found" })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct MessageFilter {
    conversation_id: Option<String>,
    sender_type: Option<String>,
}

/// Messages (newest last) plus a count per idempotency key, so duplicates stand out.
async fn messages(
    State(sandbox): State<Sandbox>,
    Query(filter): Query<MessageFilter>,
) -> Json<Value> {
    let world = sandbox.world();
    let selected: Vec<_> = world
        .messages
        .iter()
        .filter(|m| {
            filter
                .conversation_id
                .as_ref()
                .is_none_or(|c| *c == m.conversation_id)
        })
        .filter(|m| {
            filter
                .sender_type
                .as_ref()
                .is_none_or(|t| t.eq_ignore_ascii_case(m.sender_type))
        })
        .collect();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for key in selected.iter().filter_map(|m| m.idempotency_key.as_deref()) {
        *per_key.entry(key).or_default() += 1;
    }
    let duplicated: Vec<_> = per_key
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    Json(json!({
        "count": selected.len(),
        "distinct_idempotency_keys": per_key.len(),
        "duplicated_idempotency_keys": duplicated,
        "messages": selected,
    }))
}

async fn tokens(State(sandbox): State<Sandbox>) -> Json<Value> {
    let world = sandbox.world();
    let mut access: Vec<_> = world.access_tokens.values().collect();
    access.sort_by_key(|t| t.issued_at);
    let refresh: Vec<_> = world.refresh_tokens.values().collect();
    Json(json!({ "access_tokens": access, "refresh_tokens": refresh }))
}

async fn refreshes(State(sandbox): State<Sandbox>) -> Json<Value> {
    let world = sandbox.world();
    Json(json!({ "count": world.refresh_calls.len(), "refreshes": world.refresh_calls }))
}

#[derive(Deserialize)]
struct CallFilter {
    /// `send` (message sends), `users` or `subscriptions`; all calls without it.
    endpoint: Option<String>,
}

async fn api_calls(
    State(sandbox): State<Sandbox>,
    Query(filter): Query<CallFilter>,
) -> Json<Value> {
    let world = sandbox.world();
    let calls: Vec<_> = world
        .api_calls
        .iter()
        .filter(|c| match filter.endpoint.as_deref() {
            Some("send") => c.path.ends_with("/messages"),
            Some("users") => c.path == super::api::USERS_PATH,
            Some("subscriptions") => c.path == super::api::SUBSCRIBE_PATH,
            _ => true,
        })
        .collect();
    Json(json!({ "count": calls.len(), "calls": calls }))
}

async fn outbound(State(sandbox): State<Sandbox>) -> Json<Value> {
    let world = sandbox.world();
    Json(json!({ "count": world.outbound.len(), "calls": world.outbound }))
}

async fn subscriptions(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(json!({ "subscriptions": sandbox.world().subscriptions }))
}

/// The registration with its (fake) credentials, and Divar's endpoints: everything an add-on
/// needs to be configured against this sandbox.
async fn app(State(sandbox): State<Sandbox>) -> Json<Value> {
    let app = sandbox.app();
    let divar = sandbox.url("");
    let divar = divar.trim_end_matches('/');
    Json(json!({
        "slug": app.slug,
        "title": app.title,
        "api_key": app.api_key,
        "oauth_secret": app.oauth_secret,
        "identification_key": app.identification_key,
        "redirect_uris": app.redirect_uris,
        "session_init_url": app.session_init_url,
        "events_url": app.events_url,
        "dynamic_action_url": app.dynamic_action_url,
        "api_base_url": divar,
        "oauth_base_url": divar,
    }))
}

async fn settings(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(json!(sandbox.world().knobs))
}

async fn update_settings(
    State(sandbox): State<Sandbox>,
    Json(update): Json<KnobsUpdate>,
) -> Response {
    let mut world = sandbox.world();
    let scripted = update.fail_next.clone();
    match world.knobs.apply(update) {
        Ok(()) => {
            world.scripted_faults.extend(scripted);
            Json(json!(world.knobs)).into_response()
        }
        Err(reason) => (StatusCode::BAD_REQUEST, Json(json!({ "error": reason }))).into_response(),
    }
}

fn clock_view(sandbox: &Sandbox) -> Json<Value> {
    Json(json!({
        "now_ms": sandbox.now_ms(),
        "ahead_secs": sandbox.clock().ahead().as_secs(),
    }))
}

/// The sandbox's time, and how far a test moved it ahead of the system's.
async fn clock(State(sandbox): State<Sandbox>) -> Json<Value> {
    clock_view(&sandbox)
}

#[derive(Deserialize)]
struct ClockUpdate {
    advance_secs: u64,
}

/// Moves the sandbox's clock forward, so a test sees tokens and codes expire without waiting.
async fn advance_clock(
    State(sandbox): State<Sandbox>,
    Json(update): Json<ClockUpdate>,
) -> Response {
    const TEN_YEARS_SECS: u64 = 10 * 365 * 24 * 3600;
    if update.advance_secs > TEN_YEARS_SECS {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "advance_secs must be at most ten years" })),
        )
            .into_response();
    }
    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(update.advance_secs));
    clock_view(&sandbox).into_response()
}

#[derive(Deserialize)]
struct ConversationUpdate {
    blocked: bool,
}

async fn update_conversation(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    Json(update): Json<ConversationUpdate>,
) -> Response {
    match sandbox.world().conversation_mut(&conversation_id) {
        Some(conversation) => {
            conversation.blocked = update.blocked;
            Json(json!(conversation)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "conversation not found" })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct NewConversations {
    count: usize,
    /// Each new buyer writes a first message, which subscribed apps hear of.
    #[serde(default)]
    announce: bool,
}

/// Adds `count` buyers, each with a new conversation about the post, for large broadcasts.
async fn add_conversations(
    State(sandbox): State<Sandbox>,
    Path(post_token): Path<String>,
    Json(request): Json<NewConversations>,
) -> Response {
    if request.count > 5000 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "at most 5000 at a time" })),
        )
            .into_response();
    }
    let created = {
        let mut world = sandbox.world();
        match world.add_conversations(&post_token, request.count) {
            Some(created) => created,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "error": "post not found" })),
                )
                    .into_response();
            }
        }
    };
    if request.announce {
        for (conversation, message) in &created {
            super::outbound::new_message(&sandbox, conversation, message).await;
        }
    }
    let ids: Vec<_> = created.iter().map(|(c, _)| c.id.clone()).collect();
    Json(json!({ "conversation_ids": ids })).into_response()
}
