//! The «هنوز موجود است؟» button: Divar asks, at tap time, what to answer (its dynamic action;
//! docs/divar-platform.md, "Dynamic action"); the post's owner sets the words.

use url::Url;

use kenar::dynamic_action::{DynamicActionReply, DynamicActionRequest, ReplyAction};

use crate::{
    db,
    domain::{
        PostToken,
        availability::{UNKNOWN, Wording, WordingErrors, WordingForm},
        compose::Writer,
        message::{ASK_AVAILABLE, ASK_KEY, ASK_POST_KEY},
    },
};

use super::Deps;

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Not a body Divar documents, or a button that is not ours (the reason, for Divar's logs).
    #[error("bad dynamic-action request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Answers a tap: whether the post is still on Divar, in its seller's words (or ours), with a
/// link to the post while it is.
pub async fn answer(deps: &Deps, body: &[u8]) -> Result<DynamicActionReply, AskError> {
    let tap = DynamicActionRequest::parse(body).map_err(AskError::BadRequest)?;
    let asks = tap.extra_data.get(ASK_KEY).and_then(|v| v.as_str());
    if asks != Some(ASK_AVAILABLE) {
        return Err(AskError::BadRequest(format!(
            "extra_data.{ASK_KEY} is not a question this add-on answers"
        )));
    }
    // The button names its post; Divar's own field is the fallback.
    let post = match tap.extra_data.get(ASK_POST_KEY).and_then(|v| v.as_str()) {
        Some(post) => PostToken::parse(post).map_err(AskError::BadRequest)?,
        None => tap
            .post_token
            .ok_or_else(|| AskError::BadRequest("the tap names no post".into()))?,
    };
    // Without USER_POSTS_GET on the owner's grant Divar would not tell us of a removal: say so
    // rather than claim the post is there.
    if !db::grants::post_grant_holds(&deps.db, &post, "USER_POSTS_GET").await? {
        return Ok(DynamicActionReply {
            text_message: Some(UNKNOWN.into()),
            action: post_page(&post).map(ReplyAction::DirectLink),
        });
    }
    let wording = wording(deps, &post).await?;
    Ok(if db::posts::is_retired(&deps.db, &post).await? {
        DynamicActionReply {
            text_message: Some(wording.removed),
            action: None,
        }
    } else {
        DynamicActionReply {
            text_message: Some(wording.available),
            action: post_page(&post).map(ReplyAction::DirectLink),
        }
    })
}

/// The post's public page on Divar.
fn post_page(post: &PostToken) -> Option<Url> {
    Url::parse(&format!("https://divar.ir/v/{post}")).ok()
}

/// The post's words: its seller's, or the add-on's.
pub async fn wording(deps: &Deps, post: &PostToken) -> anyhow::Result<Wording> {
    Ok(db::availability::find(&deps.db, post)
        .await?
        .unwrap_or_default())
}

/// Keeps the post owner's words; a field left empty takes the add-on's. The form comes back
/// with what is wrong with it.
pub async fn save(
    deps: &Deps,
    owner: &Writer,
    post: &PostToken,
    form: &WordingForm,
) -> anyhow::Result<Result<(), WordingErrors>> {
    if form.is_empty() {
        db::availability::delete(&deps.db, post).await?;
        return Ok(Ok(()));
    }
    let wording = match Wording::try_from(form) {
        Ok(wording) => wording,
        Err(errors) => return Ok(Err(errors)),
    };
    db::availability::save(&deps.db, post, &owner.user, &wording, deps.now()).await?;
    Ok(Ok(()))
}
