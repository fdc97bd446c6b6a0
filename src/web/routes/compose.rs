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
        assets,
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

/// The composer's cacheable data, outside the pages' `no-store` and session layers.
pub fn asset_routes() -> Routes {
    Routes::new().get("/icons.json", icon_list)
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

#[derive(Deserialize)]
struct IconQuery {
    v: Option<String>,
}

/// Divar's icon names, for the composer's script: cached for good under the URL the page
/// names (`assets::icons_url`), for an hour under any other.
async fn icon_list(Query(query): Query<IconQuery>) -> Response {
    let (names, current) = assets::icons();
    let cache = if query.v.as_deref() == Some(current) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    let cached = [(axum::http::header::CACHE_CONTROL, cache)];
    (cached, axum::Json(names)).into_response()
}
