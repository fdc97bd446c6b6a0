//! Messaging every conversation of a post (its owner only): the post page, compose, confirm,
//! live progress, cancel, retry (`services::broadcast`).

use axum::{
    Json,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::Method,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};

use crate::{
    domain::compose::ConfirmForm,
    services::{
        broadcast::{self, Created, Step},
        consent,
    },
    state::AppState,
    web::{
        error::Result,
        extract::{Known, PostOwner},
        form::{ComposeSubmission, Form},
        pages::{
            broadcast::{BroadcastConfirmPage, BroadcastPage, BroadcastProgress},
            compose::ComposePage,
            post::PostPage,
        },
    },
};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/post", show_post)
        .post("/post/disconnect", disconnect_post)
        .get("/broadcasts/new", show_new_broadcast)
        .add(
            Method::POST,
            "/broadcasts/new",
            post(submit_new_broadcast)
                .layer(DefaultBodyLimit::max(super::compose::MAX_COMPOSE_BODY)),
        )
        .post("/broadcasts", create_broadcast)
        .get("/broadcasts/{broadcast_id}", show_broadcast)
        .get("/broadcasts/{broadcast_id}/progress", broadcast_progress)
        .post("/broadcasts/{broadcast_id}/cancel", cancel_broadcast)
        .post("/broadcasts/{broadcast_id}/retry", retry_failed)
}

fn to_broadcast(id: &str) -> Redirect {
    Redirect::to(&format!("/broadcasts/{id}"))
}

#[derive(serde::Deserialize)]
struct PostQuery {
    disconnected: Option<String>,
}

/// The post's page. An owner Divar has not named yet (touch-points click) sees the connect step.
async fn show_post(
    State(app): State<AppState>,
    owner: PostOwner,
    Query(query): Query<PostQuery>,
) -> Result<PostPage> {
    let user = owner.visit.user_id.as_ref();
    let overview = broadcast::overview(&app.deps, &owner.post, user).await?;
    Ok(PostPage::new(owner.post, overview).disconnected(query.disconnected.is_some()))
}

/// Forgets the seller's grant for the post; its broadcasts and auto-reply stop.
async fn disconnect_post(State(app): State<AppState>, owner: Known<PostOwner>) -> Result<Redirect> {
    consent::disconnect(&app.deps, &owner.writer()).await?;
    Ok(Redirect::to("/post?disconnected=1"))
}

async fn show_new_broadcast(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
) -> Result<ComposePage> {
    let writer = owner.writer();
    let draft = broadcast::composer(&app.deps, &writer).await?;
    Ok(ComposePage::new(draft, &writer, &app.deps.catalog, Vec::new(), None).restoring_draft())
}

/// A button edit or a preview comes back; a message that checks out leads to the confirm step.
async fn submit_new_broadcast(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    ComposeSubmission(form): ComposeSubmission,
) -> Result<Response> {
    let writer = owner.writer();
    Ok(match broadcast::submit(&app.deps, &writer, form).await? {
        Step::Again(draft) => {
            ComposePage::new(*draft, &writer, &app.deps.catalog, Vec::new(), None).into_response()
        }
        Step::Confirm(confirmation) => BroadcastConfirmPage::from(*confirmation).into_response(),
    })
}

/// The confirm step's form: the broadcast starts, or the seller confirms a changed list again.
async fn create_broadcast(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response> {
    Ok(
        match broadcast::create(&app.deps, &owner.writer(), form).await? {
            Created::Started(id) | Created::Existing(id) => to_broadcast(&id).into_response(),
            Created::Changed(again) => BroadcastConfirmPage::from(*again).into_response(),
        },
    )
}

async fn show_broadcast(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Path(id): Path<String>,
) -> Result<BroadcastPage> {
    let report = broadcast::report(&app.deps, &owner.writer(), &id).await?;
    Ok(BroadcastPage::new(report, app.deps.now()))
}

/// Polled by the progress page's script.
async fn broadcast_progress(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Path(id): Path<String>,
) -> Result<Json<BroadcastProgress>> {
    let (b, progress) = broadcast::progress(&app.deps, &owner.writer(), &id).await?;
    Ok(Json(BroadcastProgress::new(&b, &progress)))
}

async fn cancel_broadcast(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Path(id): Path<String>,
) -> Result<Redirect> {
    broadcast::cancel(&app.deps, &owner.writer(), &id).await?;
    Ok(to_broadcast(&id))
}

/// Queues the failed conversations of a finished broadcast again (blocked chats excepted).
async fn retry_failed(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Path(id): Path<String>,
) -> Result<Redirect> {
    broadcast::retry(&app.deps, &owner.writer(), &id).await?;
    Ok(to_broadcast(&id))
}
