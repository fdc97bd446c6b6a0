//! The composer: writing, previewing and sending a message to one conversation (the post-wide
//! composer reuses its page).

use std::collections::HashMap;

use axum::{
    Form, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Deserialize;

use crate::{
    db::{self, grants::Subject},
    domain::{
        UserId, icons,
        message::{
            self, FieldErrors, GRID_COLS, GRID_ROWS, MAX_TEXT_CHARS, OutgoingMessage, Side,
            slot_field,
        },
    },
    services::messaging::Queued,
    state::AppState,
    web::{
        error::{AppError, Result},
        pages::{
            ComposePage, GridView, PreviewButton, PreviewView, SlotView, TemplateView, render_page,
        },
        session::ChatVisit,
    },
};

pub const APP_TITLE: &str = "گفت‌وگو یار";

pub fn router() -> Router<AppState> {
    Router::new().route("/compose", get(show_compose).post(submit_compose))
}

/// The composer's cacheable data, outside the pages' `no-store` and session layers.
pub fn assets_router() -> Router<AppState> {
    Router::new().route("/icons.json", get(icon_list))
}

/// Divar's icon names, with a fingerprint for the URL: the composer's script loads the list
/// once and the browser keeps it, instead of every composer page carrying 23 KB of it.
static ICONS: std::sync::LazyLock<(Vec<&'static str>, String)> = std::sync::LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let list: Vec<&'static str> = icons::all().collect();
    let hash = Sha256::digest(list.join(",").as_bytes());
    let short = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    (list, short)
});

fn icons_url() -> String {
    format!("/icons.json?v={}", ICONS.1)
}

#[derive(Deserialize)]
struct IconQuery {
    v: Option<String>,
}

async fn icon_list(Query(query): Query<IconQuery>) -> Response {
    let cache = if query.v.as_deref() == Some(ICONS.1.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    (
        [(axum::http::header::CACHE_CONTROL, cache)],
        axum::Json(&ICONS.0),
    )
        .into_response()
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
        .has_grant(
            &Subject::Conversation(chat.conversation_id.clone()),
            &chat.user_id,
        )
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

/// A button slot's fields, in the order the page shows them.
const SLOT_PARTS: [&str; 5] = ["caption", "icon", "kind", "link", "data"];

/// The first field with a problem, in the order of the page (the text, then each slot's
/// fields): the one the page focuses.
fn first_invalid(errors: &FieldErrors) -> String {
    let mut order = vec!["text".to_string()];
    for side in [Side::Sender, Side::Receiver] {
        for row in 0..GRID_ROWS {
            for col in 0..GRID_COLS {
                order.extend(SLOT_PARTS.iter().map(|p| slot_field(side, row, col, p)));
            }
        }
    }
    order.push("template_name".into());
    order
        .into_iter()
        .find(|name| errors.contains_key(name))
        .unwrap_or_default()
}

/// Where the composer's form goes: one conversation, or every conversation of a post.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ComposeMode {
    Conversation,
    Broadcast,
}

pub async fn compose_page(
    state: &AppState,
    user_id: &UserId,
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
                let slot_errors: HashMap<&'static str, String> = SLOT_PARTS
                    .iter()
                    .filter_map(|p| errors.get(&f(p)).map(|e| (*p, e.clone())))
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
        icons_url: icons_url(),
        templates,
        template_name: get("template_name"),
        notice,
        error_count: errors.len(),
        first_invalid: first_invalid(errors),
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
        return super::templates::save_template(&state, &chat, fields).await;
    }
    let message = match message::parse_form(&fields, chat.visit.post_token.as_ref()) {
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
