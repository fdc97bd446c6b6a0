//! Saved drafts (templates) of the composer, per user.

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};

use crate::{
    db,
    domain::message::{self, FieldErrors},
    state::AppState,
    web::{
        error::{AppError, Result},
        pages::{persian_digits, render_page},
        session::ChatVisit,
    },
};

use super::compose::{ComposeMode, Draft, compose_page};

/// A person's saved templates at most, and the size of one: drafts of short chat messages.
pub const MAX_TEMPLATES_PER_USER: i64 = 50;
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/templates/{template_id}/delete", post(delete_template))
}

/// Saves the composer's fields under a name; the composer's checks apply.
pub(super) async fn save_template(
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
            "نام قالب را بنویسید (تا ۶۰ حرف).".into(),
        );
    }
    if let Err(problems) = message::parse_form(&fields, chat.visit.post_token.as_ref()) {
        errors.extend(problems);
    }
    // Only the composer's own fields are kept: anything else a client adds is not a draft.
    fields.retain(|name, _| message::is_composer_field(name));
    let draft = serde_json::to_string(&fields)?;
    if errors.is_empty() && draft.len() > MAX_TEMPLATE_BYTES {
        errors.insert(
            "template_name".into(),
            "این قالب بیش از اندازه بزرگ است و ذخیره نشد؛ متن یا دکمه‌ها را کوتاه‌تر کنید.".into(),
        );
    }
    if errors.is_empty()
        && db::templates::create(
            &state.db,
            &chat.user_id,
            &name,
            &draft,
            MAX_TEMPLATES_PER_USER,
            state.clock.now_ms(),
        )
        .await?
        .is_none()
    {
        errors.insert(
            "template_name".into(),
            persian_digits(&format!(
                "شما {MAX_TEMPLATES_PER_USER} قالب ذخیره کرده‌اید که بیشترین تعداد است. برای ذخیرهٔ این یکی، قالبی را که لازم ندارید حذف کنید."
            )),
        );
    }
    if !errors.is_empty() {
        let mut draft = Draft::new(
            ComposeMode::Conversation,
            chat.visit.post_token.is_some(),
            &fields,
        );
        draft.errors = errors;
        let page = compose_page(state, &chat.user_id, draft).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render_page(&page)).into_response());
    }
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
