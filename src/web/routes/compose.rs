//! The composer for one conversation: write, add buttons, preview, send (`services::send`).

use axum::{
    extract::{DefaultBodyLimit, Query, State},
    http::Method,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use serde::Deserialize;

use crate::{
    services::send::{self, Submitted},
    state::AppState,
    web::{
        error::Result,
        extract::{ChatVisitor, Known},
        form::ComposeSubmission,
        pages::compose::{ComposePage, notice},
    },
};

use super::Routes;

/// The composer's form with a photo or file: Divar's 5 MB limit and room for the text, and
/// enough beyond it that a file a little too large is read through and refused beside its
/// field, not cut off.
pub(super) const MAX_COMPOSE_BODY: usize = 12_000_000;

pub fn routes() -> Routes {
    Routes::new().get("/compose", show_compose).add(
        Method::POST,
        "/compose",
        post(submit_compose).layer(DefaultBodyLimit::max(MAX_COMPOSE_BODY)),
    )
}

#[derive(Deserialize)]
struct ComposeQuery {
    template: Option<String>,
    notice: Option<String>,
}

async fn show_compose(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
    Query(query): Query<ComposeQuery>,
) -> Result<ComposePage> {
    let writer = chat.writer();
    let composer = send::composer(&app.deps, &writer, query.template.as_deref()).await?;
    let notice = query.notice.as_deref().and_then(notice);
    let page = ComposePage::new(
        composer.draft,
        &writer,
        &app.deps.catalog,
        composer.templates,
        notice,
    );
    // A template chosen is what the person asked for; otherwise a draft kept comes back.
    Ok(if query.template.is_none() {
        page.restoring_draft()
    } else {
        page
    })
}

/// One form, several buttons: a button edit, save as template, preview, send.
async fn submit_compose(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
    ComposeSubmission(form): ComposeSubmission,
) -> Result<Response> {
    let writer = chat.writer();
    Ok(match send::submit(&app.deps, &writer, form).await? {
        Submitted::Again(composer) => {
            let composer = *composer;
            let catalog = &app.deps.catalog;
            ComposePage::new(composer.draft, &writer, catalog, composer.templates, None)
                .into_response()
        }
        Submitted::Sent { message_id, again } => {
            let again = if again { "?again=1" } else { "" };
            Redirect::to(&format!("/messages/{message_id}/status{again}")).into_response()
        }
        Submitted::TemplateSaved => Redirect::to("/compose?notice=template_saved").into_response(),
    })
}
