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
        broadcasts::{Broadcast, Created, WithProgress},
        grants::Subject,
    },
    domain::message,
    domain::status::BroadcastStatus,
    services::delivery::Failure,
    state::AppState,
    web::{
        error::{AppError, Result},
        pages::{
            BroadcastConfirmPage, BroadcastPage, BroadcastRow, PostPage, PreviewView,
            persian_digits, render_page, tehran_date_time, tehran_time,
        },
        routes::compose::{ComposeMode, Draft, compose_page, edit_buttons, preview_of},
        session::{PostEntry, SellerVisit},
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
        .route("/broadcasts/{broadcast_id}/retry", post(retry_failed))
}

async fn connected(state: &AppState, seller: &SellerVisit) -> Result<bool> {
    Ok(state
        .vault
        .has_grant(&Subject::Post(seller.post_token.clone()), &seller.user_id)
        .await?)
}

/// A broadcast's status in words. A cancelled one is "being cancelled" while sends that had
/// already started are still finishing, so the counts shown next to it are not final yet.
fn status_label(status: BroadcastStatus, pending: i64) -> &'static str {
    match status {
        BroadcastStatus::Running => "در حال ارسال",
        BroadcastStatus::Paused => "متوقف: دوباره اتصال دهید",
        BroadcastStatus::Cancelled if pending > 0 => "در حال لغو…",
        BroadcastStatus::Cancelled => "لغو شد",
        BroadcastStatus::Done => "تمام شد",
    }
}

/// The status badge's colour: green once done, red when it waits for the seller.
fn status_tone(status: BroadcastStatus) -> &'static str {
    match status {
        BroadcastStatus::Done => "success",
        BroadcastStatus::Paused => "blocked",
        BroadcastStatus::Running | BroadcastStatus::Cancelled => "",
    }
}

/// Whether the counts can still change.
fn settled(status: BroadcastStatus, pending: i64) -> bool {
    match status {
        BroadcastStatus::Done | BroadcastStatus::Paused => true,
        BroadcastStatus::Cancelled => pending == 0,
        BroadcastStatus::Running => false,
    }
}

fn broadcast_rows(broadcasts: Vec<WithProgress>) -> Vec<BroadcastRow> {
    let mut rows = Vec::new();
    for WithProgress {
        broadcast: b,
        progress,
    } in broadcasts
    {
        let body: Value = serde_json::from_str(&b.body).unwrap_or(Value::Null);
        rows.push(BroadcastRow {
            text: body["message"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect(),
            status: status_label(b.status, progress.pending),
            tone: status_tone(b.status),
            sent: progress.sent,
            failed: progress.failed,
            total: b.total,
            time: tehran_time(b.created_at),
            broadcast_id: b.broadcast_id,
        });
    }
    rows
}

/// The post's page: connect, or the known conversations and the broadcasts so far. An owner
/// Divar has not named yet (touch-points click) sees the connect step.
async fn show_post(State(state): State<AppState>, entry: PostEntry) -> Result<Response> {
    let (connected, broadcasts) = match &entry.visit.user_id {
        Some(user) => (
            state
                .vault
                .has_grant(&Subject::Post(entry.post_token.clone()), user)
                .await?,
            db::broadcasts::list_for_post(&state.db, &entry.post_token, user).await?,
        ),
        None => (false, Vec::new()),
    };
    let conversations = db::conversations::list_for_post(&state.db, &entry.post_token).await?;
    let last_activity = conversations
        .iter()
        .map(|c| c.updated_at)
        .max()
        .map(tehran_time);
    Ok(render_page(&PostPage {
        post_token: entry.post_token,
        connected,
        conversation_count: conversations.len(),
        last_activity,
        broadcasts: broadcast_rows(broadcasts),
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
    let fields = HashMap::new();
    let draft = Draft::new(ComposeMode::Broadcast, true, &fields);
    Ok(render_page(
        &compose_page(&state, &seller.user_id, draft).await?,
    ))
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
    let draft = || Draft::new(ComposeMode::Broadcast, true, &fields);
    if let Some(page) = edit_buttons(&state, &seller.user_id, draft()).await? {
        return Ok(page);
    }
    let message = match message::parse_form(&fields, Some(&seller.post_token)) {
        Ok(message) => message,
        Err(errors) => {
            let page = compose_page(&state, &seller.user_id, Draft { errors, ..draft() }).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render_page(&page)).into_response());
        }
    };
    let preview = preview_of(&message);
    // "Edit" (back from the confirm step) shows the composer with the draft as it was;
    // "preview" shows it with the preview.
    let action = fields.get("action").map(String::as_str);
    if matches!(action, Some("edit" | "preview")) {
        let preview = (action == Some("preview")).then_some(preview);
        let page = compose_page(&state, &seller.user_id, Draft { preview, ..draft() }).await?;
        return Ok(render_page(&page));
    }
    let as_of = state.clock.now_ms();
    confirm_page(&state, &seller, fields, preview, as_of, None).await
}

/// The confirm step: exactly who will get the message, and the message as each side sees it.
async fn confirm_page(
    state: &AppState,
    seller: &SellerVisit,
    fields: HashMap<String, String>,
    preview: PreviewView,
    as_of: i64,
    notice: Option<&'static str>,
) -> Result<Response> {
    let recipients = db::conversations::recipients_for_post(
        &state.db,
        &seller.post_token,
        &seller.user_id,
        as_of,
    )
    .await?;
    let hidden = fields
        .into_iter()
        .filter(|(k, v)| !["action", "as_of", "digest"].contains(&k.as_str()) && !v.is_empty())
        .collect();
    let count = recipients.conversation_ids.len();
    Ok(render_page(&BroadcastConfirmPage {
        recipients: persian_digits(&count.to_string()),
        digest: recipients.digest(),
        as_of,
        excluded: (recipients.other_seller > 0).then(|| {
            persian_digits(&format!(
                "{} گفت‌وگوی این آگهی با حساب دیگری از دیوار به‌عنوان فروشنده ثبت شده است و پیام به آن‌ها فرستاده نمی‌شود: این پیام فقط از طرف شما به گفت‌وگوهای خودتان می‌رود.",
                recipients.other_seller
            ))
        }),
        notice,
        hidden,
        preview,
        app_title: crate::web::routes::compose::APP_TITLE,
    })
    .into_response())
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
    let message = message::parse_form(&fields, Some(&seller.post_token))
        .map_err(|_| AppError::BadRequest("پیام معتبر نیست؛ دوباره آن را بنویسید.".into()))?;
    let key = fields
        .get("idempotency_key")
        .filter(|k| uuid::Uuid::parse_str(k).is_ok())
        .ok_or_else(|| AppError::BadRequest("صفحه کامل نرسید؛ دوباره شروع کنید.".into()))?
        .clone();
    // A second submit of the same confirm form leads to the broadcast the first one made.
    if let Some(existing) = db::broadcasts::id_for_key(&state.db, &key).await? {
        return Ok(Redirect::to(&format!("/broadcasts/{existing}")).into_response());
    }
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
    let (Some(as_of), Some(digest)) = (number("as_of"), fields.get("digest")) else {
        return Err(AppError::BadRequest(
            "صفحه کامل نرسید؛ دوباره شروع کنید.".into(),
        ));
    };
    let recipients = db::conversations::recipients_for_post(
        &state.db,
        &seller.post_token,
        &seller.user_id,
        as_of,
    )
    .await?;
    if recipients.digest() != *digest {
        // The list changed since the seller saw it: show the new count and ask again.
        return confirm_page(
            &state,
            &seller,
            fields,
            preview_of(&message),
            state.clock.now_ms(),
            Some("از وقتی این صفحه را باز کردید فهرست گفت‌وگوها تغییر کرده است. تعداد تازه را ببینید و دوباره تأیید کنید."),
        )
        .await;
    }
    let conversations = recipients.conversation_ids;
    if conversations.is_empty() {
        return Err(AppError::BadRequest(
            "هنوز گفت‌وگویی از این آگهی نمی‌شناسیم.".into(),
        ));
    }
    let key = key.as_str();
    let body = crate::domain::message::to_kenar_json(&message, key).to_string();
    let id = match db::broadcasts::create(
        &state.db,
        key,
        &seller.post_token,
        &seller.user_id,
        &body,
        &conversations,
        state.clock.now_ms(),
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
    let broadcast = db::broadcasts::find(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if broadcast.user_id != seller.user_id || broadcast.post_token != seller.post_token {
        return Err(AppError::NotFound);
    }
    Ok(broadcast)
}

/// Why a conversation did not get the broadcast, in the seller's words.
fn failure_label(failure: Option<Failure>) -> &'static str {
    match failure {
        Some(Failure::RecipientRestricted) => {
            "خریدار در این گفت‌وگو پیام نمی‌پذیرد (شاید گفت‌وگو را بسته باشد)"
        }
        Some(Failure::RateLimited) => "دیوار در آن لحظه پیام بیشتری نپذیرفت",
        Some(Failure::Unavailable) => "دیوار در دسترس نبود",
        Some(Failure::Reconsent) => "اجازهٔ دیوار معتبر نبود",
        Some(Failure::Rejected) | None => "دیوار پیام را نپذیرفت",
    }
}

async fn show_broadcast(
    State(state): State<AppState>,
    seller: SellerVisit,
    Path(id): Path<String>,
) -> Result<Response> {
    let broadcast = owned(&state, &seller, &id).await?;
    let progress = db::broadcasts::progress(&state.db, &id).await?;
    let failed = db::broadcasts::failures(&state.db, &id).await?;
    let (retryable, restricted) = db::broadcasts::failure_counts(&state.db, &id).await?;
    let now = state.clock.now_ms();
    let failures = failed
        .iter()
        .map(|f| {
            let what = failure_label(f.failure.as_deref().and_then(Failure::parse));
            let chat = match f.conversation_seen_at {
                Some(seen) => format!("گفت‌وگویی که {} به فهرست آمد", tehran_date_time(seen, now)),
                None => "یکی از گفت‌وگوهای آگهی".to_string(),
            };
            persian_digits(&format!(
                "{chat}: {what}؛ آخرین تلاش {}، پس از {} تلاش.",
                tehran_time(f.failed_at),
                f.attempts
            ))
        })
        .collect();
    let body: Value = serde_json::from_str(&broadcast.body)?;
    let is_settled = settled(broadcast.status, progress.pending);
    let cancelled_note =
        (broadcast.status == BroadcastStatus::Cancelled && is_settled).then(|| {
            persian_digits(&format!(
                "{} نفر پیش از لغو پیام را دریافت کردند و به {} نفر فرستاده نشد.",
                progress.sent, progress.cancelled
            ))
        });
    Ok(render_page(&BroadcastPage {
        broadcast_id: id,
        text: body["message"].as_str().unwrap_or_default().to_string(),
        status: broadcast.status.as_str().to_string(),
        status_label: status_label(broadcast.status, progress.pending),
        status_tone: status_tone(broadcast.status),
        live: !is_settled,
        total: broadcast.total,
        sent: progress.sent,
        failed: progress.failed,
        pending: progress.pending,
        done: progress.sent + progress.failed + progress.cancelled,
        cancelled_note,
        failures,
        retry_offer: (broadcast.status == BroadcastStatus::Done
            && retryable > 0
            && broadcast.body != "{}")
            .then(|| persian_digits(&format!("دوباره فرستادن به {retryable} نفر"))),
        restricted_note: (restricted > 0).then(|| {
            persian_digits(&format!(
                "{restricted} نفر در گفت‌وگو پیام نمی‌پذیرند؛ دوباره فرستادن به آن‌ها فایده‌ای ندارد."
            ))
        }),
    }))
}

/// Polled by the progress page's script.
async fn broadcast_progress(
    State(state): State<AppState>,
    seller: SellerVisit,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let broadcast = owned(&state, &seller, &id).await?;
    let progress = db::broadcasts::progress(&state.db, &id).await?;
    Ok(Json(json!({
        "status": broadcast.status,
        "status_label": status_label(broadcast.status, progress.pending),
        "settled": settled(broadcast.status, progress.pending),
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
    db::broadcasts::cancel(&state.db, &id, state.clock.now_ms()).await?;
    Ok(Redirect::to(&format!("/broadcasts/{id}")))
}

/// Queues the failed rows of a finished broadcast again (blocked chats excepted).
async fn retry_failed(
    State(state): State<AppState>,
    seller: SellerVisit,
    Path(id): Path<String>,
) -> Result<Redirect> {
    owned(&state, &seller, &id).await?;
    let queued = db::broadcasts::retry_failed(&state.db, &id, state.clock.now_ms()).await?;
    tracing::info!(queued, "retrying a broadcast's failed conversations");
    Ok(Redirect::to(&format!("/broadcasts/{id}")))
}
