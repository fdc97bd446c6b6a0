//! The use-case layer: one module per thing a person or Divar does, each a set of functions
//! that take [`Deps`] and typed inputs and return a typed outcome or that use case's error.
//! They own their transactions (through `db`) and know nothing of axum, HTML or Persian.
//!
//! - [`entry`]: session initialization and the one-time link into the webview
//! - [`consent`]: asking Divar for permission (start, callback), and disconnecting
//! - [`send`]: the composer, a message to one conversation, its status and resend
//! - [`media`]: a photo or file attached to a message, streamed to Divar's upload host
//! - [`templates`]: a person's saved drafts
//! - [`broadcast`]: a seller's message to every conversation of a post
//! - [`events`]: Divar's webhooks (a new message, a withdrawn access, a removed post)
//! - [`availability`]: the «هنوز موجود است؟» button Divar asks about at tap time
//! - [`erasure`]: forgetting a person
//!
//! and the machinery they share: [`vault`] (tokens), [`delivery`] (what Divar's answers mean),
//! [`pacing`] (sends per minute), [`catalog`] (what features declared).

pub mod availability;
pub mod broadcast;
pub mod catalog;
pub mod compose;
pub mod consent;
pub mod delivery;
pub mod entry;
pub mod entry_links;
pub mod erasure;
pub mod events;
pub mod limits;
pub mod media;
pub mod pacing;
pub mod send;
pub mod templates;
pub mod vault;

use std::sync::Arc;

use kenar::{api::KenarApi, oauth::KenarOAuth};
use tokio::sync::Notify;

use crate::{clock::SharedClock, config::Settings, db::Db};

pub use catalog::Catalog;

/// Whether a failure means the database cannot be reached right now (so the answer is 503 and
/// a retry later, not 500).
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    crate::db::is_unavailable(error)
}

/// What the use cases need, built once in `startup` and shared.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub vault: vault::Vault,
    pub api: KenarApi,
    /// Divar's chat upload host: photos and files go there as they arrive.
    pub uploader: kenar::upload::Uploader,
    pub oauth: KenarOAuth,
    pub entry_links: entry_links::EntryLinks,
    /// Wakes the outbox's express worker as soon as a single send is committed.
    pub wake: Arc<Notify>,
    /// What the features declared, with the core's own entries.
    pub catalog: Arc<Catalog>,
    /// "Now" for every use case: the system clock, or a test's manual one.
    pub clock: SharedClock,
    /// How often each person may submit a send.
    pub submits: limits::SubmitThrottle,
}

impl Deps {
    /// What a composer form is checked against: the catalogue's pages, our entry links.
    pub fn form_rules(&self) -> crate::domain::compose::Rules {
        crate::domain::compose::Rules {
            pages: self.catalog.page_keys(),
            entry_links: self.settings.url("/s/"),
        }
    }

    /// Now, in epoch milliseconds.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}
