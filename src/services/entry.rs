//! How a person gets in: Divar's session initialization, answered with a one-time link into the
//! webview, and the opening of that link (docs/divar-platform.md, "Session initialization").

use url::Url;

use crate::{
    db::grants::Subject,
    domain::{
        PostToken, SessionInit,
        entry_link::Click,
        message::{MESSAGE_KEY, MESSAGE_PAGE, PAGE_KEY},
    },
};

use super::{Deps, entry_links::Entry};

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Session initialization's body is not one of the documented forms (the reason, in English,
    /// for Divar's logs).
    #[error("bad session-init body: {0}")]
    BadRequest(String),
    #[error("the link was already used")]
    Used,
    #[error("the link has expired")]
    Expired,
    /// Not a link we made, or altered.
    #[error("not a link of ours")]
    Unknown,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Divar asks where to send someone who clicked our button or opened us from a chat or post:
/// a one-time link that carries the click. `api_version` is the request's header (Divar
/// documents both `API-Version` and `API_VERSION`).
pub async fn session_init(
    deps: &Deps,
    body: &[u8],
    api_version: Option<&str>,
) -> Result<String, EntryError> {
    let init = SessionInit::parse(body, api_version).map_err(EntryError::BadRequest)?;
    let token = deps.entry_links.issue(&init).await?;
    tracing::info!(revision = init.revision.as_str(), source = %init.source, "session initialized");
    metrics::counter!(crate::observe::SESSION_INITS, "revision" => init.revision.as_str())
        .increment(1);
    Ok(deps.settings.link(&format!("/s/{token}")))
}

/// Where a visit starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The message a tapped button of ours was sent with.
    Message(String),
    /// A feature's page, by the path its declaration gave.
    Feature(String),
    /// The post-wide page (opened from a post, not a chat): only its owner may use it.
    Post(PostToken),
    /// The composer: this person is already connected to this conversation.
    Composer,
    /// The landing page, which asks for permission.
    Landing,
}

/// A link opened for the first time, in time.
#[derive(Debug)]
pub struct Entered {
    /// The click, recorded under this id (it names the person's conversation and side).
    pub session_init_id: String,
    pub click: Click,
    pub start: Start,
}

/// How the browser says a one-time link was opened (its `Sec-Fetch-Site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// By Divar's app, typed, or a browser that does not say: the flow Divar documents.
    Directly,
    /// By following a link on another site: the link was passed on, and this browser has not
    /// shown it is the person the click names.
    FromAnotherSite,
}

/// Opens a one-time link: it is spent, the click is recorded, and the visit's first page is
/// decided. A link followed from another site proves nothing about the browser (a link is a
/// bearer pass for its lifetime): the visit does not take the click's user, so it starts at the
/// landing page and is bound to a person only by a consent in this browser
/// (docs/divar-platform.md, "Session initialization").
pub async fn open(deps: &Deps, token: &str, opened: Opened) -> Result<Entered, EntryError> {
    let (session_init_id, click) = match deps.entry_links.open(token).await? {
        Entry::Fresh {
            session_init_id,
            click,
        } => (session_init_id, *click),
        Entry::AlreadyUsed => return Err(EntryError::Used),
        Entry::Expired => return Err(EntryError::Expired),
        Entry::Unknown => return Err(EntryError::Unknown),
    };
    let mut click = click;
    if opened == Opened::FromAnotherSite && click.user_id.take().is_some() {
        tracing::warn!("an entry link was followed from another site; its user must consent here");
    }
    let start = start(deps, &click).await?;
    Ok(Entered {
        session_init_id,
        click,
        start,
    })
}

/// The page one of our buttons names, the composer when this person is already connected,
/// else the landing page.
async fn start(deps: &Deps, click: &Click) -> anyhow::Result<Start> {
    let data = &click.extra_data;
    match data.get(PAGE_KEY).and_then(|v| v.as_str()) {
        Some(MESSAGE_PAGE) => {
            if let Some(id) = data.get(MESSAGE_KEY).and_then(|v| v.as_str()) {
                return Ok(Start::Message(id.to_string()));
            }
        }
        Some(page) => {
            if let Some(path) = deps.catalog.page(page).and_then(|p| (p.open)(data)) {
                return Ok(Start::Feature(path));
            }
        }
        None => {}
    }
    if let (None, Some(post)) = (&click.conversation_id, &click.post_token) {
        return Ok(Start::Post(post.clone()));
    }
    if let (Some(conversation), Some(user)) = (&click.conversation_id, &click.user_id)
        && deps
            .vault
            .has_grant(&Subject::Conversation(conversation.clone()), user)
            .await?
    {
        return Ok(Start::Composer);
    }
    Ok(Start::Landing)
}

/// Where "back to Divar" leads: the click's return address (`callback_url` or
/// `completion_url`) when it points at Divar, else Divar's completion URL
/// (docs/divar-platform.md, "Returning to Divar").
pub fn back_to_divar(deps: &Deps, callback_url: Option<&str>) -> Url {
    callback_url
        .and_then(|u| Url::parse(u).ok())
        .filter(|u| deps.settings.is_return_url_allowed(u))
        .unwrap_or_else(|| deps.settings.completion_url.clone())
}
