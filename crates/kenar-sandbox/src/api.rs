//! Divar's open-platform API as an add-on sees it (docs/divar-platform.md, "Sending", "Who
//! consented" and "Events"): sending chat messages, telling who granted a token, and subscribing
//! to events. Errors are `google.rpc.Status` JSON, as Divar's are.

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Sandbox, outbound, validate,
    world::{
        AccessToken, ApiCall, ChatMessage, Conversation, Subscription, TokenProblem, World,
        random_id,
    },
};
use kenar::{UserSide, scopes::ScopeKind};

pub const SEND_PATH: &str = "/v2/open-platform/conversations/{conversation_id}/messages";
pub const SUBSCRIBE_PATH: &str = "/v1/open-platform/events/subscriptions";
pub const USERS_PATH: &str = "/v1/open-platform/users";

pub fn router() -> Router<Sandbox> {
    Router::new()
        .route(SEND_PATH, post(send_message))
        .route(SUBSCRIBE_PATH, post(subscribe))
        // `get_user.md` and the OpenAPI file say GET; the OAuth overview shows POST.
        .route(USERS_PATH, get(user).post(user))
        .route(
            "/v1/open-platform/chat/conversations/{conversation_id}",
            get(read_conversation),
        )
        // Any other API-shaped path answers as Divar's API does: JSON, not a page.
        .route("/v1/{*rest}", any(unknown_endpoint))
        .route("/v2/{*rest}", any(unknown_endpoint))
        .route("/experimental/{*rest}", any(unknown_endpoint))
}

async fn unknown_endpoint() -> RpcError {
    status(StatusCode::NOT_FOUND, 5, "no such endpoint")
}

/// A `google.rpc.Status` error, as Divar answers. Codes follow gRPC numbering.
#[derive(Debug)]
struct RpcError {
    http: StatusCode,
    code: i32,
    message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message, "details": [] });
        let mut response = (self.http, Json(body)).into_response();
        if let Some(value) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn status(http: StatusCode, code: i32, message: &str) -> RpcError {
    RpcError {
        http,
        code,
        message: message.to_string(),
        retry_after: None,
    }
}

fn unauthenticated(message: &str) -> RpcError {
    status(StatusCode::UNAUTHORIZED, 16, message)
}

fn permission_denied(message: &str) -> RpcError {
    status(StatusCode::FORBIDDEN, 7, message)
}

fn invalid_argument(message: &str) -> RpcError {
    status(StatusCode::BAD_REQUEST, 3, message)
}

/// The caller's access token, from `Authorization: Bearer` (current docs) or `x-access-token`
/// (the original revision), and which header carried it.
fn access_token(headers: &HeaderMap) -> Option<(String, &'static str)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 7235): `Bearer`, `bearer`, `BEARER`.
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| (t.trim().to_string(), "authorization"));
    bearer
        .or_else(|| {
            headers
                .get("x-access-token")
                .and_then(|v| v.to_str().ok())
                .map(|t| (t.trim().to_string(), "x-access-token"))
        })
        .filter(|(t, _)| !t.is_empty())
}

fn check_api_key(sandbox: &Sandbox, headers: &HeaderMap) -> Result<(), RpcError> {
    match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        Some(key) if key == sandbox.app().api_key => Ok(()),
        Some(_) => Err(unauthenticated("invalid API key")),
        None => Err(unauthenticated("missing x-api-key header")),
    }
}

fn check_token<'w>(
    world: &'w World,
    headers: &HeaderMap,
) -> Result<(&'w AccessToken, &'static str), RpcError> {
    let Some((token, header)) = access_token(headers) else {
        return Err(unauthenticated(
            "missing access token (Authorization: Bearer … or x-access-token)",
        ));
    };
    match world.check_access_token(&token) {
        Ok(access) => Ok((access, header)),
        Err(TokenProblem::Expired) => Err(unauthenticated("access token has expired")),
        Err(TokenProblem::Revoked) => Err(unauthenticated("access token was revoked")),
        Err(TokenProblem::Unknown) => Err(unauthenticated("access token is not valid")),
    }
}

/// Divar creates a conversation on the first send to an id it does not know (the OpenAPI's
/// send-message description). The sandbox can tell whose it would be only from a post-wide
/// scope of the post's seller; a token for one named conversation, or for all of a seller's
/// posts, does not say which post, so such a send still finds no conversation.
fn created_by_send(
    world: &mut World,
    token: &AccessToken,
    conversation_id: &str,
) -> Option<Conversation> {
    if kenar::ConversationId::parse(conversation_id).is_err() {
        return None;
    }
    let post = token
        .scopes
        .iter()
        .find_map(|scope| match (&scope.kind, &scope.id) {
            (ScopeKind::ChatPostConversationsMessageSend, Some(post))
                if world
                    .post(post)
                    .is_some_and(|p| p.seller_id == token.user_id) =>
            {
                Some(post.clone())
            }
            _ => None,
        })?;
    world.open_conversation(conversation_id, &post)
}

/// Which side a token may send as in `conversation`, if any of its scopes allows it.
fn send_side(token: &AccessToken, conversation: &Conversation) -> Option<UserSide> {
    token
        .scopes
        .iter()
        .find_map(|scope| match (&scope.kind, scope.id.as_deref()) {
            (ScopeKind::ConversationSendMessage, Some(id)) if id == conversation.id => {
                conversation.side_of(&token.user_id)
            }
            (ScopeKind::ChatPostConversationsMessageSend, Some(post))
                if post == conversation.post_token =>
            {
                (token.user_id == conversation.seller_id).then_some(UserSide::Seller)
            }
            (ScopeKind::ChatSupplierAllConversationsMessageSend, None) => {
                (token.user_id == conversation.seller_id).then_some(UserSide::Seller)
            }
            _ => None,
        })
}

/// Simulated trouble, as set on the sandbox's settings page.
async fn injected_fault(sandbox: &Sandbox) -> Option<RpcError> {
    let (knobs, scripted) = {
        let mut world = sandbox.world();
        (world.knobs.clone(), world.scripted_faults.pop_front())
    };
    match scripted {
        Some(429) => {
            return Some(status(
                StatusCode::TOO_MANY_REQUESTS,
                8,
                "too many requests (sandbox script)",
            ));
        }
        Some(code) => {
            let http = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Some(status(http, 14, "service unavailable (sandbox script)"));
        }
        None => {}
    }
    let roll = |percent: u8| percent > 0 && rand::thread_rng().gen_range(0..100) < percent;
    if roll(knobs.slow_percent) {
        tokio::time::sleep(Duration::from_millis(knobs.slow_ms)).await;
    }
    if roll(knobs.fail_5xx_percent) {
        return Some(status(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "service unavailable (sandbox fault injection)",
        ));
    }
    if roll(knobs.fail_429_percent) {
        return Some(status(
            StatusCode::TOO_MANY_REQUESTS,
            8,
            "too many requests (sandbox fault injection)",
        ));
    }
    None
}

/// POST /v2/open-platform/conversations/{conversation_id}/messages
async fn send_message(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let seen_before = idempotency_key.as_ref().is_some_and(|key| {
        sandbox
            .world()
            .delivered_keys
            .contains(&(conversation_id.clone(), key.clone()))
    });
    // Credentials first, as Divar's gateway would: a bad key or token meets no injected fault
    // and uses up none of the app's quota.
    let authenticated = check_api_key(&sandbox, &headers)
        .and_then(|()| check_token(&sandbox.world(), &headers).map(|_| ()));
    let response = match authenticated {
        Err(refused) => refused.into_response(),
        Ok(()) => match injected_fault(&sandbox).await {
            Some(fault) => fault.into_response(),
            None => match accept_message(
                &sandbox,
                &conversation_id,
                &headers,
                &body,
                idempotency_key.clone(),
            ) {
                Ok(delivered) => {
                    // Subscribed apps hear of it as they hear of any message, sender `BOT`;
                    // Divar does that on its own time, not within the send call.
                    if let Some((conversation, message)) = delivered {
                        let sandbox = sandbox.clone();
                        tokio::spawn(async move {
                            outbound::new_message(&sandbox, &conversation, &message).await;
                        });
                    }
                    Json(json!({ "status": 200, "message": "message sent" })).into_response()
                }
                Err(refused) => refused.into_response(),
            },
        },
    };
    sandbox.world().api_calls.push(ApiCall {
        at: sandbox.now_ms(),
        method: "POST",
        path: format!("/v2/open-platform/conversations/{conversation_id}/messages"),
        status: response.status().as_u16(),
        idempotency_key,
        duplicate: seen_before && response.status().is_success(),
    });
    response
}

/// Delivers a message; `Ok(None)` for a retry of one already delivered.
fn accept_message(
    sandbox: &Sandbox,
    conversation_id: &str,
    headers: &HeaderMap,
    body: &[u8],
    idempotency_key: Option<String>,
) -> Result<Option<(Conversation, ChatMessage)>, RpcError> {
    check_api_key(sandbox, headers)?;
    // Parse and validate before taking the world's lock (the schema check is the costly part);
    // the outcome is reported in Divar's order below.
    let parsed = serde_json::from_slice::<Value>(body)
        .map_err(|_| invalid_argument("the body is not valid JSON"))
        .and_then(|body| {
            validate::send_message_body(&body).map_err(|problems| invalid_argument(&problems))?;
            Ok(body)
        });
    let mut world = sandbox.world();
    if let Err(retry_after) = world.admit_send(sandbox.now_ms()) {
        return Err(RpcError {
            retry_after: Some(retry_after),
            ..status(
                StatusCode::TOO_MANY_REQUESTS,
                8,
                "per-minute request limit exceeded",
            )
        });
    }
    let (token, token_header) = check_token(&world, headers).map(|(t, h)| (t.clone(), h))?;
    let conversation = match world.conversation(conversation_id) {
        Some(conversation) => conversation.clone(),
        None => match created_by_send(&mut world, &token, conversation_id) {
            Some(conversation) => conversation,
            None => return Err(status(StatusCode::NOT_FOUND, 5, "conversation not found")),
        },
    };
    let Some(side) = send_side(&token, &conversation) else {
        return Err(permission_denied(
            "the access token does not allow sending to this conversation (needs CONVERSATION_SEND_MESSAGE for it, or a post-wide scope granted by the post's owner)",
        ));
    };
    let body = parsed?;
    if conversation.blocked {
        return Err(status(
            StatusCode::PRECONDITION_FAILED,
            9,
            "message delivery failed due to recipient's restriction",
        ));
    }
    // The sandbox honours Idempotency-Key: a retry of a delivered message is acknowledged, not
    // delivered again. (Divar's docs do not say whether Divar does.)
    if let Some(key) = &idempotency_key
        && !world
            .delivered_keys
            .insert((conversation.id.clone(), key.clone()))
    {
        return Ok(None);
    }
    // The media a message carries must be what the upload host took (Divar's docs do not say
    // whether a token may be used again; the sandbox lets it, so one upload serves a broadcast).
    let media =
        match body.get("media_token") {
            None | Some(Value::Null) => None,
            Some(token) => {
                let found = token.as_str().and_then(|t| world.media.get(t)).cloned();
                Some(found.ok_or_else(|| {
                    invalid_argument("unknown media_token: upload the file first")
                })?)
            }
        };
    let message = ChatMessage {
        id: random_id(),
        conversation_id: conversation.id.clone(),
        sender_side: side,
        sender_id: token.user_id.clone(),
        sender_type: "BOT",
        text: body["message"].as_str().unwrap_or_default().to_string(),
        sender_buttons: body.get("sender_buttons").cloned(),
        receiver_buttons: body.get("receiver_buttons").cloned(),
        idempotency_key,
        token_header: Some(token_header),
        media,
        sent_at: world.now_ms(),
    };
    world.messages.push(message.clone());
    Ok(Some((conversation, message)))
}

/// GET /v1/open-platform/users: who granted the token. `user_id` only with scope `USER_ID`,
/// `phone_number` only with `USER_PHONE`, as `get_user.md` documents.
async fn user(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    let response = describe_user(&sandbox, &headers).into_response();
    sandbox.world().api_calls.push(ApiCall {
        at: sandbox.now_ms(),
        method: "GET",
        path: USERS_PATH.into(),
        status: response.status().as_u16(),
        idempotency_key: None,
        duplicate: false,
    });
    response
}

fn describe_user(sandbox: &Sandbox, headers: &HeaderMap) -> Result<Json<Value>, RpcError> {
    check_api_key(sandbox, headers)?;
    let world = sandbox.world();
    let (token, _) = check_token(&world, headers)?;
    let mut reply = serde_json::Map::new();
    if token.scopes.iter().any(|s| s.is(ScopeKind::UserId, None)) {
        reply.insert("user_id".into(), json!(token.user_id));
    }
    if token
        .scopes
        .iter()
        .any(|s| s.is(ScopeKind::UserPhone, None))
        && let Some(user) = world.user(&token.user_id)
    {
        reply.insert("phone_number".into(), json!(user.phone()));
    }
    Ok(Json(Value::Object(reply)))
}

/// GET /v1/open-platform/chat/conversations/{id} (`ChatAPI_GetConversation`): the chat's text
/// messages, oldest first, for a token with `CHAT_CONVERSATION_READ.<id>` from one of its two
/// people. `sent_at` is a date-time string here, as the OpenAPI document has it.
async fn read_conversation(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let response = conversation_view(&sandbox, &conversation_id, &headers).into_response();
    sandbox.world().api_calls.push(ApiCall {
        at: sandbox.now_ms(),
        method: "GET",
        path: format!("/v1/open-platform/chat/conversations/{conversation_id}"),
        status: response.status().as_u16(),
        idempotency_key: None,
        duplicate: false,
    });
    response
}

fn conversation_view(
    sandbox: &Sandbox,
    conversation_id: &str,
    headers: &HeaderMap,
) -> Result<Json<Value>, RpcError> {
    check_api_key(sandbox, headers)?;
    let world = sandbox.world();
    let (token, _) = check_token(&world, headers)?;
    let Some(conversation) = world.conversation(conversation_id) else {
        return Err(status(StatusCode::NOT_FOUND, 5, "conversation not found"));
    };
    let may_read = token
        .scopes
        .iter()
        .any(|s| s.is(ScopeKind::ChatConversationRead, Some(conversation_id)))
        && conversation.side_of(&token.user_id).is_some();
    if !may_read {
        return Err(permission_denied(
            "reading a conversation needs CHAT_CONVERSATION_READ.<conversation_id> from one of its two people",
        ));
    }
    let header =
        json!({ "id": conversation.id, "post_token": conversation.post_token, "type": "POST" });
    let messages: Vec<Value> = world
        .messages_of(conversation_id)
        .filter(|m| m.media.is_none() && !m.text.is_empty())
        .map(|m| {
            let sent_at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m.sent_at) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default();
            json!({
                "id": m.id,
                "conversation": header,
                "sender": {
                    "side": match m.sender_side { UserSide::Seller => "SELLER", UserSide::Buyer => "BUYER" },
                    "type": m.sender_type,
                },
                "type": "TEXT",
                "text": m.text,
                "sent_at": sent_at,
            })
        })
        .collect();
    Ok(Json(
        json!({ "conversation": header, "messages": messages }),
    ))
}

#[derive(Deserialize)]
struct SubscribeBody {
    event_type: String,
    event_resource_id: Option<String>,
    #[serde(default)]
    metadata: Value,
}

/// POST /v1/open-platform/events/subscriptions (docs/divar-platform.md, "Events").
async fn subscribe(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let response = register_subscription(&sandbox, &headers, &body).into_response();
    sandbox.world().api_calls.push(ApiCall {
        at: sandbox.now_ms(),
        method: "POST",
        path: "/v1/open-platform/events/subscriptions".into(),
        status: response.status().as_u16(),
        idempotency_key: None,
        duplicate: false,
    });
    response
}

fn register_subscription(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Value>, RpcError> {
    check_api_key(sandbox, headers)?;
    let mut world = sandbox.world();
    let token = check_token(&world, headers).map(|(t, _)| t.clone())?;
    let body: SubscribeBody = serde_json::from_slice(body)
        .map_err(|e| invalid_argument(&format!("invalid body: {e}")))?;
    let resource = body.event_resource_id.filter(|r| !r.is_empty());
    // Each event type and the OAuth scope it needs (kenar-docs `docs/events/ReadMe.md`).
    let allowed = match (body.event_type.as_str(), &resource) {
        // POST_UPDATE: the sandbox sends RETIRE when a post is removed (one post's subscribers only).
        ("POST_UPDATE", resource) => {
            resource.as_ref().is_none_or(|post| {
                world
                    .post(post)
                    .is_some_and(|p| p.seller_id == token.user_id)
            }) && token
                .scopes
                .iter()
                .any(|s| s.is(ScopeKind::UserPostsGet, None))
        }
        ("NEW_MESSAGE_ON_POST", Some(post)) => {
            world
                .post(post)
                .is_some_and(|p| p.seller_id == token.user_id)
                && token
                    .scopes
                    .iter()
                    .any(|s| s.is(ScopeKind::ChatPostConversationsRead, Some(post)))
        }
        ("NEW_MESSAGE_ON_POST", None) => token
            .scopes
            .iter()
            .any(|s| s.is(ScopeKind::ChatSupplierAllConversationsRead, None)),
        (other, _) => {
            return Err(invalid_argument(&format!(
                "event_type `{other}` cannot be subscribed to (NEW_MESSAGE_ON_POST, POST_UPDATE)"
            )));
        }
    };
    if !allowed {
        return Err(permission_denied(
            "subscribing needs the event's scope: CHAT_POST_CONVERSATIONS_READ.<post_token> from the post's owner (or CHAT_SUPPLIER_ALL_CONVERSATIONS_READ) for NEW_MESSAGE_ON_POST, USER_POSTS_GET for POST_UPDATE",
        ));
    }
    world.subscriptions.retain(|s| {
        !(s.user_id == token.user_id
            && s.event_type == body.event_type
            && s.event_resource_id == resource)
    });
    world.subscriptions.push(Subscription {
        id: random_id(),
        user_id: token.user_id.clone(),
        event_type: body.event_type,
        event_resource_id: resource,
        metadata: body.metadata,
        access_token: token.token.clone(),
        created_at: sandbox.now_ms(),
    });
    Ok(Json(json!({})))
}
