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
        UserId,
        button_kit::{self, Edit, Edited, PRESETS, Preset, SLOT_PARTS},
        icons,
        message::{
            self, FieldErrors, GRID_COLS, GRID_ROWS, MAX_TEXT_CHARS, OutgoingMessage, Side,
            slot_field,
        },
        persian_digits,
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
    let mut draft = Draft::new(
        ComposeMode::Conversation,
        chat.visit.post_token.is_some(),
        &fields,
    );
    draft.notice = notice;
    Ok(render_page(
        &compose_page(&state, &chat.user_id, draft).await?,
    ))
}

/// The first field with a problem, in the order of the page (the text, then each slot's
/// fields): the one the page focuses.
fn first_invalid(errors: &FieldErrors) -> Option<String> {
    let mut order = vec!["text".to_string()];
    for side in [Side::Sender, Side::Receiver] {
        for row in 0..GRID_ROWS {
            for col in 0..GRID_COLS {
                order.extend(SLOT_PARTS.iter().map(|p| slot_field(side, row, col, p)));
            }
        }
    }
    order.push("template_name".into());
    order.into_iter().find(|name| errors.contains_key(name))
}

/// Where the composer's form goes: one conversation, or every conversation of a post.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ComposeMode {
    Conversation,
    Broadcast,
}

/// What the composer page shows: the draft as the person left it, and what to say about it.
pub struct Draft<'a> {
    pub mode: ComposeMode,
    /// The message is about a post: buttons that open the post are offered.
    pub has_post: bool,
    pub fields: &'a HashMap<String, String>,
    pub errors: FieldErrors,
    pub notice: Option<String>,
    pub preview: Option<PreviewView>,
    /// The field to focus when no field has a problem (e.g. the link of a button just added).
    pub focus: Option<String>,
    /// A side whose grid had no room for one more button, and what to say.
    pub full: Option<(Side, String)>,
}

impl<'a> Draft<'a> {
    pub fn new(mode: ComposeMode, has_post: bool, fields: &'a HashMap<String, String>) -> Self {
        Self {
            mode,
            has_post,
            fields,
            errors: FieldErrors::new(),
            notice: None,
            preview: None,
            focus: None,
            full: None,
        }
    }
}

/// Runs a tap on «افزودن …» or «حذف این دکمه», if the form was one: the same page comes back
/// with the change made and nothing sent or checked yet.
pub async fn edit_buttons(
    state: &AppState,
    user_id: &UserId,
    mut draft: Draft<'_>,
) -> Result<Option<Response>> {
    let Some(edit) = Edit::from_form(draft.fields) else {
        return Ok(None);
    };
    let mut fields = draft.fields.clone();
    match edit.apply(&mut fields) {
        Edited::Done { focus } => draft.focus = Some(focus),
        Edited::Full(problem) => {
            if let Edit::Add { side, .. } = edit {
                draft.full = Some((side, problem));
            }
        }
    }
    draft.fields = &fields;
    let page = compose_page(state, user_id, draft).await?;
    Ok(Some(render_page(&page)))
}

pub async fn compose_page(
    state: &AppState,
    user_id: &UserId,
    draft: Draft<'_>,
) -> Result<ComposePage> {
    let fields = draft.fields;
    let errors = &draft.errors;
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let presets: Vec<&'static Preset> = PRESETS
        .iter()
        .filter(|p| draft.has_post || !p.needs_post)
        .collect();
    let grid = |side: Side| {
        let mut slots = Vec::new();
        for row in 0..GRID_ROWS {
            for col in 0..GRID_COLS {
                let f = |part: &str| slot_field(side, row, col, part);
                let slot_errors: HashMap<&'static str, String> = SLOT_PARTS
                    .iter()
                    .filter_map(|p| errors.get(&f(p)).map(|e| (*p, e.clone())))
                    .collect();
                if slot_errors.is_empty() && !button_kit::is_used(fields, side, row, col) {
                    continue;
                }
                let icon = get(&f("icon")).trim().to_ascii_uppercase();
                slots.push(SlotView {
                    prefix: format!("{}{row}{col}", side.prefix()),
                    label: format!("دکمهٔ {}", persian_digits(&(slots.len() + 1).to_string())),
                    caption: get(&f("caption")),
                    other_icon: (!icon.is_empty() && button_kit::persian_name(&icon).is_none())
                        .then(|| icon.clone()),
                    icon,
                    kind: get(&f("kind")),
                    link: get(&f("link")),
                    data: get(&f("data")),
                    errors: slot_errors,
                });
            }
        }
        GridView {
            side: side.prefix(),
            full: slots.len() == GRID_ROWS * GRID_COLS,
            problem: draft
                .full
                .as_ref()
                .filter(|(s, _)| *s == side)
                .map(|(_, p)| p.clone()),
            slots,
            presets: presets.clone(),
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
    let form_action = match draft.mode {
        ComposeMode::Conversation => "/compose",
        ComposeMode::Broadcast => "/broadcasts/new",
    };
    Ok(ComposePage {
        idempotency_key: fields
            .get("idempotency_key")
            .filter(|k| is_idempotency_key(k))
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        text: get("text"),
        text_error: errors.get("text").cloned(),
        max_text: MAX_TEXT_CHARS,
        grids: vec![grid(Side::Sender), grid(Side::Receiver)],
        icons_url: icons_url(),
        templates,
        template_name: get("template_name"),
        template_error: errors.get("template_name").cloned(),
        notice: draft.notice,
        error_count: errors.len(),
        focus: first_invalid(errors).or(draft.focus).unwrap_or_default(),
        preview: draft.preview,
        app_title: APP_TITLE,
        broadcast: draft.mode == ComposeMode::Broadcast,
        form_action,
    })
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
                        icon: button_kit::icon_label(&b.icon),
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
    let has_post = chat.visit.post_token.is_some();
    let draft = || Draft::new(ComposeMode::Conversation, has_post, &fields);
    if let Some(page) = edit_buttons(&state, &chat.user_id, draft()).await? {
        return Ok(page);
    }
    let action = fields.get("action").map(String::as_str).unwrap_or("send");
    if action == "save_template" {
        return super::templates::save_template(&state, &chat, fields).await;
    }
    let message = match message::parse_form(&fields, chat.visit.post_token.as_ref()) {
        Ok(message) => message,
        Err(errors) => {
            let page = compose_page(&state, &chat.user_id, Draft { errors, ..draft() }).await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render_page(&page)).into_response());
        }
    };
    if action == "preview" {
        let preview = Some(preview_of(&message));
        let page = compose_page(&state, &chat.user_id, Draft { preview, ..draft() }).await?;
        return Ok(render_page(&page));
    }
    let key = fields
        .get("idempotency_key")
        .filter(|k| is_idempotency_key(k))
        .ok_or_else(|| {
            AppError::BadRequest("صفحه کامل نرسید؛ آن را دوباره باز کنید و پیام را بفرستید.".into())
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
