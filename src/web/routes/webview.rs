//! Pages opened inside Divar's webview.

use axum::{
    Router,
    extract::{Path, Query, State},
    response::Response,
    routing::get,
};
use serde::Deserialize;

use crate::{
    db,
    error::{AppError, Result},
    state::AppState,
    web::{
        ASSET_VERSION,
        pages::{HomePage, WelcomePage, render_page},
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(show_home))
        .route("/welcome/{session_init_id}", get(show_welcome))
}

#[derive(Deserialize)]
struct HomeQuery {
    post_token: Option<String>,
}

/// The panel's fallback URL: Divar opens it directly, with at most a post token.
async fn show_home(Query(query): Query<HomeQuery>) -> Response {
    render_page(&HomePage {
        asset_version: ASSET_VERSION,
        post_token: query
            .post_token
            .filter(|t| crate::domain::PostToken::parse(t.as_str()).is_ok()),
    })
}

/// Where session initialization sends the person for now: it shows what Divar told us.
async fn show_welcome(
    State(state): State<AppState>,
    Path(session_init_id): Path<String>,
) -> Result<Response> {
    let init = db::conversations::find_session_init(&state.db, &session_init_id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(render_page(&WelcomePage {
        asset_version: ASSET_VERSION,
        conversation_id: init.conversation_id,
        post_token: init.post_token,
        user_side: init.user_side,
        source: init.source,
    }))
}
