//! Deleting a saved draft (saving one is a button of the composer's form).

use axum::{
    extract::{Path, State},
    response::Redirect,
};

use crate::{
    services::templates,
    state::AppState,
    web::{
        error::{AppError, Result},
        extract::{ChatVisitor, Known},
    },
};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new().post("/templates/{template_id}/delete", delete_template)
}

async fn delete_template(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
    Path(id): Path<String>,
) -> Result<Redirect> {
    if !templates::delete(&app.deps, &chat.user, &id).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/compose?notice=template_deleted"))
}
