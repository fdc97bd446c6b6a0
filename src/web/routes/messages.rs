//! Messages a person sent: their history, each one's status (with resend), and the page one of
//! our buttons leads back to.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    db::{self, messages::MessageRow},
    domain::{
        button_kit,
        message::{self, Side},
        status::MessageStatus,
    },
    services::delivery::Failure,
    state::AppState,
    web::{
        error::{AppError, Result},
        pages::{
            HistoryPage, HistoryRow, MessagePage, MessageStatusPage, PreviewButton, PreviewView,
            render_page, tehran_time,
        },
        session::{ChatEntry, ChatVisit},
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/history", get(show_history))
        .route("/messages/{message_id}", get(show_message))
        .route("/messages/{message_id}/status", get(show_status))
        .route("/messages/{message_id}/progress", get(message_progress))
        .route("/messages/{message_id}/resend", post(resend_message))
}

/// How a message's status reads to the person who sent it. All of it is here, so a fork can
/// change the wording in one place.
struct StatusText {
    label: &'static str,
    tone: &'static str,
    reason: Option<&'static str>,
    /// Divar may take it if tried again later.
    can_resend: bool,
    /// Sending needs the person's consent again (then it goes out by itself).
    needs_reconnect: bool,
}

fn status_text(row: &MessageRow) -> StatusText {
    let failure = row.failure.as_deref().and_then(Failure::parse);
    match row.status {
        MessageStatus::Sent => StatusText {
            label: "فرستاده شد",
            tone: "success",
            reason: None,
            can_resend: false,
            needs_reconnect: false,
        },
        MessageStatus::Failed => StatusText {
            label: "فرستاده نشد",
            tone: "blocked",
            reason: Some(match failure {
                Some(Failure::RecipientRestricted) => {
                    "این شخص در این گفت‌وگو نمی‌تواند پیام دریافت کند (شاید گفت‌وگو را بسته باشد)؛ فرستادن دوباره فایده‌ای ندارد."
                }
                Some(Failure::Reconsent) => {
                    "اجازهٔ دیوار دیگر معتبر نیست. دوباره اتصال دهید تا پیام خودکار فرستاده شود."
                }
                Some(Failure::RateLimited) => {
                    "دیوار موقتاً پیام بیشتری نمی‌پذیرفت. یکی دو دقیقهٔ دیگر دوباره بفرستید."
                }
                Some(Failure::Unavailable) => "دیوار در دسترس نبود. کمی بعد دوباره بفرستید.",
                Some(Failure::Rejected) | None => "دیوار این پیام را نپذیرفت.",
            }),
            can_resend: failure.is_some_and(Failure::is_transient),
            needs_reconnect: failure == Some(Failure::Reconsent),
        },
        MessageStatus::Sending => StatusText {
            label: "در حال ارسال…",
            tone: "",
            reason: None,
            can_resend: false,
            needs_reconnect: false,
        },
    }
}

async fn show_history(State(state): State<AppState>, chat: ChatVisit) -> Result<Response> {
    let rows = db::messages::list_for_conversation(&state.db, &chat.conversation_id, 100).await?;
    let rows: Vec<HistoryRow> = rows
        .into_iter()
        .filter(|r| r.user_id == chat.user_id)
        .map(|r| {
            let text = status_text(&r);
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            HistoryRow {
                text: body["message"].as_str().unwrap_or_default().to_string(),
                time: tehran_time(r.updated_at),
                message_id: r.message_id,
                status: text.label,
                status_tone: text.tone,
                reason: text.reason,
            }
        })
        .collect();
    Ok(render_page(&HistoryPage { rows }))
}

/// The sender's own message, or 404 (also for the other side of the conversation).
async fn own_message(state: &AppState, chat: &ChatVisit, id: &str) -> Result<MessageRow> {
    let row = db::messages::find(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.conversation_id != chat.conversation_id || row.user_id != chat.user_id {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

#[derive(Deserialize)]
struct StatusQuery {
    /// Set when the same form was submitted again.
    again: Option<String>,
}

/// Where a send leads: the message's live status.
async fn show_status(
    State(state): State<AppState>,
    chat: ChatVisit,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Response> {
    let row = own_message(&state, &chat, &id).await?;
    let text = status_text(&row);
    // "Sent before" is said only of a message Divar took; otherwise the live status speaks.
    let notice = query.again.is_some().then_some(match row.status {
        MessageStatus::Sent => "این پیام قبلاً فرستاده شده بود؛ دوباره فرستاده نشد.",
        MessageStatus::Sending => {
            "این پیام را قبلاً ثبت کرده بودید و در حال ارسال است؛ دوباره ثبت نشد."
        }
        MessageStatus::Failed => "این پیام را قبلاً ثبت کرده بودید؛ وضعیتش را این‌جا می‌بینید.",
    });
    let body: Value = serde_json::from_str(&row.body)?;
    Ok(render_page(&MessageStatusPage {
        message_id: row.message_id.clone(),
        sending: row.status == MessageStatus::Sending,
        label: text.label,
        tone: text.tone,
        reason: text.reason,
        can_resend: text.can_resend,
        needs_reconnect: text.needs_reconnect,
        notice,
        time: tehran_time(row.created_at),
        preview: preview_of_body(&body),
        app_title: super::compose::APP_TITLE,
    }))
}

/// Polled by the status page's script.
async fn message_progress(
    State(state): State<AppState>,
    chat: ChatVisit,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let row = own_message(&state, &chat, &id).await?;
    let text = status_text(&row);
    Ok(Json(json!({
        "status": row.status,
        "label": text.label,
        "reason": text.reason,
    })))
}

/// Queues a failed message again; either way the person lands on its status.
async fn resend_message(
    State(state): State<AppState>,
    chat: ChatVisit,
    Path(id): Path<String>,
) -> Result<Response> {
    own_message(&state, &chat, &id).await?;
    // Nothing to do when it is sent, sending, or failed for good: the status says which.
    state.messaging.resend(&id, &chat.user_id).await?;
    Ok(Redirect::to(&format!("/messages/{id}/status")).into_response())
}

/// Where one of our `open_server_link` buttons leads: the message it was sent with (a single
/// send, or a broadcast that reached this conversation). Both sides of the conversation may
/// open it; the page speaks to whoever tapped.
async fn show_message(
    State(state): State<AppState>,
    chat: ChatEntry,
    Path(id): Path<String>,
) -> Result<Response> {
    let (body, sender, created_at, status) = match db::messages::find(&state.db, &id).await? {
        Some(row) if row.conversation_id == chat.conversation_id => (
            row.body.clone(),
            row.user_id.clone(),
            row.created_at,
            Some(status_text(&row).label),
        ),
        Some(_) => return Err(AppError::NotFound),
        // A broadcast's buttons carry its idempotency key (its id is made with it).
        None => {
            let broadcast = db::broadcasts::sent_to(&state.db, &id, &chat.conversation_id)
                .await?
                .ok_or(AppError::NotFound)?;
            (
                broadcast.body,
                broadcast.user_id,
                broadcast.created_at,
                None,
            )
        }
    };
    let body: Value = serde_json::from_str(&body)?;
    // The sender's grid is only ever shown to the sender, so the tapped button's side says who
    // tapped; the user id is the fallback when the data names no button (not every
    // session-init body carries a user id).
    let fallback = if chat.visit.user_id.as_ref() == Some(&sender) {
        Side::Sender
    } else {
        Side::Receiver
    };
    let (side, tapped) = message::tapped_button(&body, &chat.visit.extra_data, fallback);
    let mine = side == Side::Sender;
    let clicked = chat
        .visit
        .extra_data
        .iter()
        .filter(|(k, _)| !k.starts_with("kc_"))
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let preview = preview_of_body(&body);
    Ok(render_page(&MessagePage {
        tapped,
        mine,
        text: preview.text,
        rows: if mine {
            preview.sender_rows
        } else {
            preview.receiver_rows
        },
        status: status.filter(|_| mine),
        time: tehran_time(created_at),
        clicked,
    }))
}

/// The preview of a body as it was sent to Divar.
fn preview_of_body(body: &Value) -> PreviewView {
    let rows = |grid: &str| -> Vec<Vec<PreviewButton>> {
        body.pointer(&format!("/{grid}/rows"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|row| {
                row.get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|b| PreviewButton {
                        caption: b["caption"].as_str().unwrap_or_default().to_string(),
                        icon: button_kit::icon_label(b["icon"].as_str().unwrap_or_default()),
                    })
                    .collect()
            })
            .collect()
    };
    PreviewView {
        text: body["message"].as_str().unwrap_or_default().to_string(),
        sender_rows: rows("sender_buttons"),
        receiver_rows: rows("receiver_buttons"),
    }
}
