//! Pages opened inside Divar's webview: the entry link, the landing page, "back to Divar".

use axum::{
    Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    db::grants::Subject,
    domain::{
        PostToken, UserSide,
        message::{MESSAGE_KEY, PAGE_KEY},
    },
    services::entry_links::Entry,
    state::AppState,
    web::{
        error::{AppError, Result},
        pages::{HomePage, LandingPage, render_page},
        session::{ChatEntry, ChatVisit, TypedSession, Visit},
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(show_home))
        .route("/start", get(show_landing))
        .route("/back", get(back_to_divar))
        .route("/disconnect", post(disconnect))
}

#[derive(Deserialize)]
struct HomeQuery {
    post_token: Option<String>,
}

/// The one-time links: anyone can probe them, so `web::router` throttles this route per client.
pub fn entry_router() -> Router<AppState> {
    Router::new().route("/s/{token}", get(enter))
}

/// The panel's fallback URL: Divar opens it directly, with at most a post token and no user.
async fn show_home(Query(query): Query<HomeQuery>) -> Response {
    render_page(&HomePage {
        // A malformed token is left out rather than refused: the page works without it.
        post_token: query.post_token.and_then(|t| PostToken::parse(t).ok()),
    })
}

/// The one-time link from session initialization: binds the click to this browser's session,
/// then sends the person where the click asked to go.
async fn enter(
    State(state): State<AppState>,
    session: TypedSession,
    Path(token): Path<String>,
) -> Result<Response> {
    let (session_init_id, click) = match state.entry_links.open(&token).await? {
        Entry::Fresh {
            session_init_id,
            click,
        } => (session_init_id, click),
        Entry::AlreadyUsed => return Err(AppError::LinkUsed),
        Entry::Expired => return Err(AppError::LinkExpired),
        Entry::Unknown => return Err(AppError::NotFound),
    };
    let visit = Visit {
        session_init_id,
        conversation_id: click.conversation_id,
        post_token: click.post_token,
        user_id: click.user_id,
        user_side: click.user_side,
        callback_url: click.callback_url,
        extra_data: click.extra_data,
        csrf_token: crate::web::csrf::new_token(),
    };
    let target = next_page(&state, &visit).await?;
    session.begin_visit(visit).await?;
    Ok(Redirect::to(&target).into_response())
}

/// Where a visit starts: the page one of our buttons names, the composer when this person is
/// already connected, else the landing page.
async fn next_page(state: &AppState, visit: &Visit) -> Result<String> {
    let page = visit.extra_data.get(PAGE_KEY).and_then(|v| v.as_str());
    let message = visit.extra_data.get(MESSAGE_KEY).and_then(|v| v.as_str());
    if let (Some("message"), Some(id)) = (page, message) {
        return Ok(format!(
            "/messages/{}",
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        ));
    }
    // From a post (no conversation): the post-wide page, which only the owner may use.
    if visit.conversation_id.is_none() && visit.post_token.is_some() {
        return Ok("/post".into());
    }
    if let (Some(conversation), Some(user)) = (&visit.conversation_id, &visit.user_id)
        && state
            .vault
            .has_grant(&Subject::Conversation(conversation.clone()), user)
            .await?
    {
        return Ok("/compose".into());
    }
    Ok("/start".into())
}

/// Connect, or carry on. A visitor Divar has not named yet (touch-points click) is not connected
/// until consent says who they are.
async fn show_landing(State(state): State<AppState>, chat: ChatEntry) -> Result<Response> {
    let connected = match &chat.visit.user_id {
        Some(user) => {
            state
                .vault
                .has_grant(&Subject::Conversation(chat.conversation_id.clone()), user)
                .await?
        }
        None => false,
    };
    Ok(render_page(&LandingPage {
        conversation_id: chat.conversation_id,
        seller: chat.visit.user_side == Some(UserSide::Seller) && chat.visit.post_token.is_some(),
        post_token: chat.visit.post_token,
        side: chat.visit.user_side.map(UserSide::as_str),
        connected,
    }))
}

/// Ends the flow: the click's return address (`callback_url` or `completion_url`) when it points
/// at Divar, otherwise Divar's completion URL (docs/divar-platform.md, "Returning to Divar").
async fn back_to_divar(State(state): State<AppState>, session: TypedSession) -> Result<Redirect> {
    let visit = session.visit().await?;
    let callback = visit
        .and_then(|v| v.callback_url)
        .and_then(|u| url::Url::parse(&u).ok())
        .filter(|u| state.settings.is_return_url_allowed(u));
    let target = callback.unwrap_or_else(|| state.settings.completion_url.clone());
    Ok(Redirect::to(target.as_str()))
}

/// Deletes this person's tokens for the conversation.
async fn disconnect(State(state): State<AppState>, chat: ChatVisit) -> Result<Redirect> {
    state
        .vault
        .forget(
            &Subject::Conversation(chat.conversation_id.clone()),
            &chat.user_id,
        )
        .await?;
    tracing::info!("a user disconnected a conversation");
    Ok(Redirect::to("/start"))
}
