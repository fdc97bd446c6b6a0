//! The composer, sending, templates, history and message pages.

use std::collections::HashMap;

use axum::{
    Form, Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    db::{self, grants::Subject, messages::MessageRow},
    domain::{
        icons,
        message::{
            self, FieldErrors, GRID_COLS, GRID_ROWS, MAX_TEXT_CHARS, OutgoingMessage, Side,
            slot_field,
        },
    },
    services::{delivery::Failure, messaging::Queued},
    state::AppState,
    web::error::{AppError, Result},
    web::{
        ASSET_VERSION,
        pages::{
            ComposePage, GridView, HistoryPage, HistoryRow, MessagePage, MessageStatusPage,
            PreviewButton, PreviewView, SlotView, TemplateView, render_page, tehran_time,
        },
        session::{ChatEntry, ChatVisit},
    },
};

pub const APP_TITLE: &str = "گفت‌وگو یار";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/compose", get(show_compose).post(submit_compose))
        .route("/templates/{template_id}/delete", post(delete_template))
        .route("/history", get(show_history))
        .route("/messages/{message_id}", get(show_message))
        .route("/messages/{message_id}/status", get(show_status))
        .route("/messages/{message_id}/progress", get(message_progress))
        .route("/messages/{message_id}/resend", post(resend_message))
}

#[derive(Deserialize)]
struct ComposeQuery {
    template: Option<String>,
    notice: Option<String>,
}

/// Sends people without a grant to the landing page, which asks for one.
async fn require_grant(state: &AppState, chat: &ChatVisit) -> Result<Option<Response>> {
    let connected = state
        .vault
        .has_grant(Subject::Conversation, &chat.conversation_id, &chat.user_id)
        .await?;
    Ok((!connected).then(|| Redirect::to("/start").into_response()))
}

async fn show_compose(
    State(state): State<AppState>,
    chat: ChatVisit,
    Query(query): Query<ComposeQuery>,
) -> Result<Response> {
    if let Some(redirect) = require_grant(&state, &chat).await? {
        return Ok(redirect);
    }
    let mut fields = HashMap::new();
    if let Some(id) = &query.template {
        let template = db::templates::find(&state.db, id, &chat.user_id)
            .await?
            .ok_or(AppError::NotFound)?;
        fields = serde_json::from_str(&template.draft)?;
    }
    let notice = match query.notice.as_deref() {
        Some("template_saved") => Some("قالب ذخیره شد.".to_string()),
        Some("template_deleted") => Some("قالب حذف شد.".to_string()),
        _ => None,
    };
    let page = compose_page(
        &state,
        &chat.user_id,
        ComposeMode::Conversation,
        &fields,
        &FieldErrors::new(),
        notice,
        None,
    )
    .await?;
    Ok(render_page(&page))
}

/// Where the composer's form goes: one conversation, or every conversation of a post.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ComposeMode {
    Conversation,
    Broadcast,
}

pub async fn compose_page(
    state: &AppState,
    user_id: &str,
    mode: ComposeMode,
    fields: &HashMap<String, String>,
    errors: &FieldErrors,
    notice: Option<String>,
    preview: Option<PreviewView>,
) -> Result<ComposePage> {
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let grid = |side: Side, title, hint| {
        let mut slots = Vec::new();
        for row in 0..GRID_ROWS {
            for col in 0..GRID_COLS {
                let f = |part: &str| slot_field(side, row, col, part);
                let parts = ["caption", "icon", "kind", "link", "data"];
                let slot_errors: Vec<String> = parts
                    .iter()
                    .filter_map(|p| errors.get(&f(p)).cloned())
                    .collect();
                slots.push(SlotView {
                    prefix: format!("{}{row}{col}", side.prefix()),
                    label: format!(
                        "دکمهٔ ردیف {} ستون {}",
                        persian_digit(row + 1),
                        persian_digit(col + 1)
                    ),
                    caption: get(&f("caption")),
                    icon: get(&f("icon")),
                    kind: get(&f("kind")),
                    link: get(&f("link")),
                    data: get(&f("data")),
                    filled: !slot_errors.is_empty() || !get(&f("caption")).is_empty(),
                    errors: slot_errors,
                });
            }
        }
        let open = slots.iter().any(|s| s.filled);
        GridView {
            title,
            hint,
            slots,
            open,
        }
    };
    let templates = db::templates::list(&state.db, user_id)
        .await?
        .into_iter()
        .map(|t| TemplateView {
            id: t.template_id,
            name: t.name,
        })
        .collect();
    Ok(ComposePage {
        asset_version: ASSET_VERSION,
        idempotency_key: fields
            .get("idempotency_key")
            .filter(|k| is_idempotency_key(k))
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        text: get("text"),
        text_error: errors.get("text").cloned(),
        max_text: MAX_TEXT_CHARS,
        grids: vec![
            grid(
                Side::Sender,
                "دکمه‌هایی که خودتان می‌بینید",
                "تا ۳ ردیف و هر ردیف تا ۳ دکمه.",
            ),
            grid(
                Side::Receiver,
                "دکمه‌هایی که طرف مقابل می‌بیند",
                "تا ۳ ردیف و هر ردیف تا ۳ دکمه.",
            ),
        ],
        icons: icons::all().collect(),
        templates,
        template_name: get("template_name"),
        notice,
        has_errors: !errors.is_empty(),
        preview,
        app_title: APP_TITLE,
        broadcast: mode == ComposeMode::Broadcast,
        form_action: match mode {
            ComposeMode::Conversation => "/compose",
            ComposeMode::Broadcast => "/broadcasts/new",
        },
    })
}

fn persian_digit(n: usize) -> char {
    char::from_u32(0x06F0 + n as u32).unwrap_or('?')
}

fn is_idempotency_key(key: &str) -> bool {
    uuid::Uuid::parse_str(key).is_ok()
}

pub fn preview_of(message: &OutgoingMessage) -> PreviewView {
    let rows = |grid: &message::ButtonGrid| {
        grid.rows()
            .iter()
            .map(|row| {
                row.iter()
                    .map(|b| PreviewButton {
                        caption: b.caption.clone(),
                        icon: b.icon.clone(),
                    })
                    .collect()
            })
            .collect()
    };
    PreviewView {
        text: message.text.clone(),
        sender_rows: rows(&message.sender_buttons),
        receiver_rows: rows(&message.receiver_buttons),
    }
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
                        icon: b["icon"].as_str().unwrap_or_default().to_string(),
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

/// One form, three buttons: send, preview, save as template. The server's checks decide.
async fn submit_compose(
    State(state): State<AppState>,
    chat: ChatVisit,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<Response> {
    if let Some(redirect) = require_grant(&state, &chat).await? {
        return Ok(redirect);
    }
    let action = fields.get("action").map(String::as_str).unwrap_or("send");
    if action == "save_template" {
        return save_template(&state, &chat, fields).await;
    }
    let message = match message::parse_form(&fields, chat.post().as_ref()) {
        Ok(message) => message,
        Err(errors) => {
            let page = compose_page(
                &state,
                &chat.user_id,
                ComposeMode::Conversation,
                &fields,
                &errors,
                None,
                None,
            )
            .await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render_page(&page)).into_response());
        }
    };
    if action == "preview" {
        let page = compose_page(
            &state,
            &chat.user_id,
            ComposeMode::Conversation,
            &fields,
            &FieldErrors::new(),
            None,
            Some(preview_of(&message)),
        )
        .await?;
        return Ok(render_page(&page));
    }
    let key = fields
        .get("idempotency_key")
        .filter(|k| is_idempotency_key(k))
        .ok_or_else(|| {
            AppError::BadRequest("فرم ناقص است؛ صفحه را دوباره باز کنید و پیام را بفرستید.".into())
        })?;
    // Recorded and queued in one commit: from here the outbox delivers it, whether or not
    // this request's client is still there to read the answer.
    let location = match state
        .messaging
        .queue(&chat.conversation_id, &chat.user_id, &message, key)
        .await?
    {
        Queued::New { message_id } => format!("/messages/{message_id}/status"),
        Queued::Duplicate { message } => {
            format!("/messages/{}/status?again=1", message.message_id)
        }
    };
    Ok(Redirect::to(&location).into_response())
}

async fn save_template(
    state: &AppState,
    chat: &ChatVisit,
    mut fields: HashMap<String, String>,
) -> Result<Response> {
    let name = fields
        .get("template_name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let mut errors = FieldErrors::new();
    if name.is_empty() || name.chars().count() > 60 {
        errors.insert(
            "template_name".into(),
            "نام قالب را بنویسید (تا ۶۰ نویسه).".into(),
        );
    }
    if let Err(problems) = message::parse_form(&fields, chat.post().as_ref()) {
        errors.extend(problems);
    }
    if !errors.is_empty() {
        let notice = errors.get("template_name").cloned();
        let page = compose_page(
            state,
            &chat.user_id,
            ComposeMode::Conversation,
            &fields,
            &errors,
            notice,
            None,
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render_page(&page)).into_response());
    }
    for transient in ["idempotency_key", "action", "template_name"] {
        fields.remove(transient);
    }
    db::templates::create(
        &state.db,
        &chat.user_id,
        &name,
        &serde_json::to_string(&fields)?,
    )
    .await?;
    Ok(Redirect::to("/compose?notice=template_saved").into_response())
}

async fn delete_template(
    State(state): State<AppState>,
    chat: ChatVisit,
    Path(id): Path<String>,
) -> Result<Redirect> {
    if !db::templates::delete(&state.db, &id, &chat.user_id).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/compose?notice=template_deleted"))
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
    match row.status.as_str() {
        "sent" => StatusText {
            label: "فرستاده شد",
            tone: "success",
            reason: None,
            can_resend: false,
            needs_reconnect: false,
        },
        "failed" => StatusText {
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
        _ => StatusText {
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
    Ok(render_page(&HistoryPage {
        asset_version: ASSET_VERSION,
        rows,
    }))
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
    let notice = query.again.is_some().then_some(match row.status.as_str() {
        "sent" => "این پیام قبلاً فرستاده شده بود؛ دوباره فرستاده نشد.",
        "sending" => "این پیام را قبلاً ثبت کرده بودید و در حال ارسال است؛ دوباره ثبت نشد.",
        _ => "این پیام را قبلاً ثبت کرده بودید؛ وضعیتش را این‌جا می‌بینید.",
    });
    let body: Value = serde_json::from_str(&row.body)?;
    Ok(render_page(&MessageStatusPage {
        asset_version: ASSET_VERSION,
        message_id: row.message_id.clone(),
        sending: row.status == "sending",
        label: text.label,
        tone: text.tone,
        reason: text.reason,
        can_resend: text.can_resend,
        needs_reconnect: text.needs_reconnect,
        notice,
        time: tehran_time(row.created_at),
        preview: preview_of_body(&body),
        app_title: APP_TITLE,
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

/// Where one of our `open_server_link` buttons leads: the message it was sent with. Both sides
/// of the conversation may open it.
async fn show_message(
    State(state): State<AppState>,
    chat: ChatEntry,
    Path(id): Path<String>,
) -> Result<Response> {
    let row = db::messages::find(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.conversation_id != chat.conversation_id {
        return Err(AppError::NotFound);
    }
    let body: Value = serde_json::from_str(&row.body)?;
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
    let status = status_text(&row).label;
    Ok(render_page(&MessagePage {
        asset_version: ASSET_VERSION,
        text: body["message"].as_str().unwrap_or_default().to_string(),
        status,
        time: tehran_time(row.created_at),
        clicked,
        preview: preview_of_body(&body),
    }))
}
