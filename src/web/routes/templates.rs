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
        pages::render_page,
        session::ChatVisit,
    },
};

use super::compose::{ComposeMode, compose_page};

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
            "نام قالب را بنویسید (تا ۶۰ نویسه).".into(),
        );
    }
    if let Err(problems) = message::parse_form(&fields, chat.visit.post_token.as_ref()) {
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
