//! Messaging every conversation of a post (post owner only): the post page, compose, confirm,
//! live progress, cancel.

use std::collections::HashMap;

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::{
    db::{
        self,
        grants::Subject,
        outbox::{Broadcast, Created},
    },
    domain::message::{self, FieldErrors},
    error::{AppError, Result},
    state::AppState,
    web::{
        ASSET_VERSION,
        pages::{
            BroadcastConfirmPage, BroadcastPage, BroadcastRow, PostPage, render_page, tehran_time,
        },
        routes::compose::{ComposeMode, compose_page, preview_of},
        session::SellerVisit,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/post", get(show_post))
        .route(
            "/broadcasts/new",
            get(show_new_broadcast).post(submit_new_broadcast),
        )
        .route("/broadcasts", post(create_broadcast))
        .route("/broadcasts/{broadcast_id}", get(show_broadcast))
        .route(
            "/broadcasts/{broadcast_id}/progress",
            get(broadcast_progress),
        )
        .route("/broadcasts/{broadcast_id}/cancel", post(cancel_broadcast))
}

async fn connected(state: &AppState, seller: &SellerVisit) -> Result<bool> {
    Ok(state
        .vault
        .has_grant(Subject::Post, &seller.post_token, &seller.user_id)
        .await?)
}

fn status_label(status: &str) -> &'static str {
    match status {
        "running" => "در حال ارسال",
        "paused" => "متوقف: دوباره اتصال دهید",
        "cancelled" => "لغو شد",
        "done" => "تمام شد",
        _ => "نامشخص",
    }
}

async fn broadcast_rows(state: &AppState, broadcasts: Vec<Broadcast>) -> Result<Vec<BroadcastRow>> {
    let mut rows = Vec::new();
    for b in broadcasts {
        let progress = db::outbox::progress(&state.db, &b.broadcast_id).await?;
        let body: Value = serde_json::from_str(&b.body).unwrap_or(Value::Null);
        rows.push(BroadcastRow {
            text: body["message"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect(),
            status: status_label(&b.status),
            sent: progress.sent,
            failed: progress.failed,
            total: b.total,
            time: tehran_time(b.created_at),
            broadcast_id: b.broadcast_id,
        });
    }
    Ok(rows)
}

/// The post's page: connect, or the known conversations and the broadcasts so far.
async fn show_post(State(state): State<AppState>, seller: SellerVisit) -> Result<Response> {
    let connected = connected(&state, &seller).await?;
    let conversations = db::conversations::list_for_post(&state.db, &seller.post_token).await?;
    let last_activity = conversations
        .iter()
        .map(|c| c.updated_at)
        .max()
        .map(tehran_time);
    let broadcasts =
        db::outbox::list_broadcasts(&state.db, &seller.post_token, &seller.user_id).await?;
    Ok(render_page(&PostPage {
        asset_version: ASSET_VERSION,
        post_token: seller.post_token,
        connected,
        conversation_count: conversations.len(),
        last_activity,
        broadcasts: broadcast_rows(&state, broadcasts).await?,
    }))
}

async fn require_post_grant(state: &AppState, seller: &SellerVisit) -> Result<Option<Response>> {
    Ok((!connected(state, seller).await?).then(|| Redirect::to("/post").into_response()))
}

async fn show_new_broadcast(
    State(state): State<AppState>,
    seller: SellerVisit,
) -> Result<Response> {
    if let Some(redirect) = require_post_grant(&state, &seller).await? {
        return Ok(redirect);
    }
    let page = compose_page(
        &state,
        &seller.user_id,
        ComposeMode::Broadcast,
        &HashMap::new(),
        &FieldErrors::new(),
        None,
        None,
    )
    .await?;
    Ok(render_page(&page))
}

/// Checks the message; "preview" shows it, "send" leads to the confirm step with the count.
async fn submit_new_broadcast(
    State(state): State<AppState>,
    seller: SellerVisit,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<Response> {
    if let Some(redirect) = require_post_grant(&state, &seller).await? {
        return Ok(redirect);
    }
    let message = match message::parse_form(&fields) {
        Ok(message) => message,
        Err(errors) => {
            let page = compose_page(
                &state,
                &seller.user_id,
                ComposeMode::Broadcast,
                &fields,
                &errors,
                None,
                None,
            )
            .await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render_page(&page)).into_response());
        }
    };
    let preview = preview_of(&message);
    if fields.get("action").map(String::as_str) == Some("preview") {
        let page = compose_page(
            &state,
            &seller.user_id,
            ComposeMode::Broadcast,
            &fields,
            &FieldErrors::new(),
            None,
            Some(preview),
        )
        .await?;
        return Ok(render_page(&page));
    }
    let recipients = db::conversations::list_for_post(&state.db, &seller.post_token)
        .await?
        .len();
    let hidden = fields
        .into_iter()
        .filter(|(k, v)| k != "action" && !v.is_empty())
        .collect();
    Ok(render_page(&BroadcastConfirmPage {
        asset_version: ASSET_VERSION,
        recipients,
        hidden,
        preview,
        app_title: crate::web::routes::compose::APP_TITLE,
    }))
}

/// The confirm step: the broadcast and its outbox rows, in one transaction.
async fn create_broadcast(
    State(state): State<AppState>,
    seller: SellerVisit,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<Response> {
    if let Some(redirect) = require_post_grant(&state, &seller).await? {
        return Ok(redirect);
    }
    let message = message::parse_form(&fields)
        .map_err(|_| AppError::BadRequest("پیام معتبر نیست؛ دوباره آن را بنویسید.".into()))?;
    let key = fields
        .get("idempotency_key")
        .filter(|k| uuid::Uuid::parse_str(k).is_ok())
        .ok_or_else(|| AppError::BadRequest("فرم ناقص است؛ دوباره شروع کنید.".into()))?;
    let conversations: Vec<String> =
        db::conversations::list_for_post(&state.db, &seller.post_token)
            .await?
            .into_iter()
            .map(|c| c.conversation_id)
            .collect();
    if conversations.is_empty() {
        return Err(AppError::BadRequest(
            "هنوز گفت‌وگویی از این آگهی نمی‌شناسیم.".into(),
        ));
    }
    let body = message.to_kenar_json(key).to_string();
    let id = match db::outbox::create_broadcast(
        &state.db,
        key,
        &seller.post_token,
        &seller.user_id,
        &body,
        &conversations,
    )
    .await?
    {
        Created::New(id) => {
            tracing::info!(recipients = conversations.len(), "broadcast created");
            id
        }
        Created::Existing(id) => id,
    };
    Ok(Redirect::to(&format!("/broadcasts/{id}")).into_response())
}

/// Only the seller who made it sees a broadcast.
async fn owned(state: &AppState, seller: &SellerVisit, id: &str) -> Result<Broadcast> {
    let broadcast = db::outbox::find_broadcast(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if broadcast.user_id != seller.user_id || broadcast.post_token != seller.post_token {
        return Err(AppError::NotFound);
    }
    Ok(broadcast)
}

fn failure_label(failure: &str) -> &'static str {
    match failure {
        "recipient_restricted" => "این شخص در این گفت‌وگو نمی‌تواند پیام دریافت کند",
        "rate_limited" => "دیوار پیام بیشتری نپذیرفت",
        "unavailable" => "دیوار در دسترس نبود",
        _ => "دیوار پیام را نپذیرفت",
    }
}

async fn show_broadcast(
    State(state): State<AppState>,
    seller: SellerVisit,
    Path(id): Path<String>,
) -> Result<Response> {
    let broadcast = owned(&state, &seller, &id).await?;
    let progress = db::outbox::progress(&state.db, &id).await?;
    let failures = db::outbox::failures(&state.db, &id)
        .await?
        .into_iter()
        .map(|(conversation, failure)| (conversation, failure_label(&failure)))
        .collect();
    let body: Value = serde_json::from_str(&broadcast.body)?;
    Ok(render_page(&BroadcastPage {
        asset_version: ASSET_VERSION,
        broadcast_id: id,
        text: body["message"].as_str().unwrap_or_default().to_string(),
        status: broadcast.status.clone(),
        status_label: status_label(&broadcast.status),
        total: broadcast.total,
        sent: progress.sent,
        failed: progress.failed,
        pending: progress.pending,
        done: progress.sent + progress.failed + progress.cancelled,
        failures,
    }))
}

/// Polled by the progress page's script.
async fn broadcast_progress(
    State(state): State<AppState>,
    seller: SellerVisit,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let broadcast = owned(&state, &seller, &id).await?;
    let progress = db::outbox::progress(&state.db, &id).await?;
    Ok(Json(json!({
        "status": broadcast.status,
        "status_label": status_label(&broadcast.status),
        "total": broadcast.total,
        "sent": progress.sent,
        "failed": progress.failed,
        "pending": progress.pending,
        "cancelled": progress.cancelled,
    })))
}

async fn cancel_broadcast(
    State(state): State<AppState>,
    seller: SellerVisit,
    Path(id): Path<String>,
) -> Result<Redirect> {
    owned(&state, &seller, &id).await?;
    db::outbox::cancel(&state.db, &id).await?;
    Ok(Redirect::to(&format!("/broadcasts/{id}")))
}
