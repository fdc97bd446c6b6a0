//! The post owner's words for the «هنوز موجود است؟» button (`services::availability`); Divar's
//! own question at tap time is in `routes::divar`.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::{
    domain::availability::{WordingErrors, WordingForm},
    services::availability,
    state::AppState,
    web::{
        error::Result,
        extract::{Known, PostOwner},
        form::Form,
        pages::availability::AvailabilityPage,
    },
};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/post/availability", show_wording)
        .post("/post/availability", save_wording)
}

#[derive(Deserialize)]
struct Saved {
    #[serde(default)]
    saved: bool,
}

async fn show_wording(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Query(query): Query<Saved>,
) -> Result<AvailabilityPage> {
    let wording = availability::wording(&app.deps, &owner.post).await?;
    Ok(AvailabilityPage::new(
        WordingForm::of(&wording),
        WordingErrors::default(),
        query.saved,
    ))
}

async fn save_wording(
    State(app): State<AppState>,
    owner: Known<PostOwner>,
    Form(form): Form<WordingForm>,
) -> Result<Response> {
    let writer = owner.writer();
    Ok(
        match availability::save(&app.deps, &writer, &owner.post, &form).await? {
            Ok(()) => Redirect::to("/post/availability?saved=true").into_response(),
            Err(errors) => AvailabilityPage::new(form, errors, false).into_response(),
        },
    )
}
