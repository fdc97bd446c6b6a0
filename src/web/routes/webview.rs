//! Pages opened inside Divar's webview: the one-time link, the landing page, "back to Divar",
//! disconnecting.

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::{
    domain::PostToken,
    services::{
        consent,
        entry::{self, Start},
    },
    state::AppState,
    web::{
        error::Result,
        extract::{ChatVisitor, Known},
        pages::{home::HomePage, landing::LandingPage, privacy::PrivacyPage},
        session::{TypedSession, Visit},
    },
};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/", show_home)
        .get("/start", show_landing)
        .get("/back", back_to_divar)
        .get("/privacy", show_privacy)
        .post("/disconnect", disconnect)
        .post("/keepalive", keep_alive)
}

/// The composer's script, while the person types: the session's idle period starts over.
async fn keep_alive(session: TypedSession) -> Result<axum::http::StatusCode> {
    session.keep_alive().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The one-time links: anyone can probe them, so `web::router` throttles this route per client.
pub fn entry_routes() -> Routes {
    Routes::new().get("/s/{token}", enter)
}

#[derive(Deserialize)]
struct HomeQuery {
    post_token: Option<String>,
}

/// The panel's fallback URL: Divar opens it directly, with at most a post token and no user.
async fn show_home(Query(query): Query<HomeQuery>) -> HomePage {
    // A malformed token is left out rather than refused: the page works without it.
    HomePage {
        post_token: query.post_token.and_then(|t| PostToken::parse(t).ok()),
    }
}

/// Public: what the add-on keeps about people, for anyone (no session needed).
async fn show_privacy(State(app): State<AppState>) -> PrivacyPage {
    PrivacyPage::new(&app.deps.settings)
}

/// The one-time link from session initialization: binds the click to this browser's session,
/// then sends the person where the click asked to go.
async fn enter(
    State(app): State<AppState>,
    session: TypedSession,
    Path(token): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    // What the browser says about the navigation: `cross-site` or `same-site` when a link on
    // another site was followed; `none` (or no header) when the app or a person opened it.
    // Divar's own web pages are another site too: a link from them (by its Referer) counts as
    // Divar opening it.
    let from_divar = headers
        .get(axum::http::header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .is_some_and(|r| app.deps.settings.is_return_url_allowed(&r));
    let opened = match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"cross-site" | b"same-site") if !from_divar => entry::Opened::FromAnotherSite,
        _ => entry::Opened::Directly,
    };
    let entered = entry::open(&app.deps, &token, opened).await?;
    let target = match entered.start {
        Start::Message(id) => format!("/messages/{}", urlencoded(&id)),
        Start::Feature(path) => path,
        Start::Post(_) => "/post".into(),
        Start::Composer => "/compose".into(),
        Start::Landing => "/start".into(),
    };
    session
        .begin_visit(Visit::new(entered.session_init_id, entered.click))
        .await?;
    Ok(Redirect::to(&target).into_response())
}

fn urlencoded(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Connect, or carry on. A visitor Divar has not named yet (touch-points click) is not
/// connected until consent says who they are.
async fn show_landing(State(app): State<AppState>, chat: ChatVisitor) -> Result<LandingPage> {
    let target = consent::Target::Conversation(chat.conversation.clone());
    let connected = consent::connected(&app.deps, &target, chat.visit.user_id.as_ref()).await?;
    let visit = chat.visit;
    Ok(LandingPage::new(
        chat.conversation,
        visit.post_token,
        visit.user_side,
        connected,
    ))
}

/// Ends the flow: back to where Divar said, or Divar's completion URL.
async fn back_to_divar(State(app): State<AppState>, session: TypedSession) -> Result<Redirect> {
    let visit = session.visit().await?;
    let callback = visit.as_ref().and_then(|v| v.callback_url.as_deref());
    Ok(Redirect::to(
        entry::back_to_divar(&app.deps, callback).as_str(),
    ))
}

/// Deletes this person's tokens for the conversation.
async fn disconnect(State(app): State<AppState>, chat: Known<ChatVisitor>) -> Result<Redirect> {
    consent::disconnect(&app.deps, &chat.writer()).await?;
    Ok(Redirect::to("/start"))
}
