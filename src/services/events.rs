//! Divar's webhooks (docs/divar-platform.md, "Events"). Every effect is an upsert or a delete,
//! so a redelivered event changes nothing.

use crate::{
    db,
    domain::event::{DivarEvent, PostChange},
};

use super::{Deps, erasure};

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not an event body Divar documents (the reason, for Divar's logs).
    #[error("bad event body: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// `NEW_MESSAGE` links a conversation to its post (how a post's conversations become known) and
/// queues the post's auto-reply for a new buyer;
/// `USER_ACCESS_REVOCATION` erases everything kept about the user; a `POST_UPDATE` that says the
/// post was removed stops its broadcasts. Other types are ignored.
pub async fn receive(deps: &Deps, body: &[u8]) -> Result<(), EventError> {
    match DivarEvent::parse(body).map_err(EventError::BadRequest)? {
        // An app's own message (ours, echoed back) tells nothing about a buyer, and a message
        // without its post cannot be linked to one.
        DivarEvent::NewMessage { from_bot: true, .. }
        | DivarEvent::NewMessage {
            post_token: None, ..
        } => tracing::debug!("a new message that links no buyer to a post"),
        DivarEvent::NewMessage {
            conversation_id,
            post_token: Some(post_token),
            ..
        } => {
            let now = deps.now();
            db::conversations::record_seen(&deps.db, &conversation_id, &post_token, now).await?;
            // A new buyer of a post whose auto-reply is on gets it, once; the outbox sends it.
            if db::broadcasts::add_to_auto_reply(&deps.db, &post_token, &conversation_id, now)
                .await?
            {
                tracing::info!("a new buyer queued for the post's auto-reply");
            }
        }
        // The person withdrew the app's access: forget everything kept about them (Divar's
        // policy asks apps to keep people's data no longer than needed).
        DivarEvent::AccessRevoked { user_id } => {
            let erased = erasure::erase_user(deps, &user_id).await?;
            tracing::info!(
                ?erased,
                "a user revoked the app's access; their data was erased"
            );
        }
        // The post left Divar: its broadcasts stop and no new one starts. A repeated report
        // (Divar warns they repeat) finds nothing left to change.
        DivarEvent::PostUpdate { post_token, change } if change.is_removal() => {
            let now = deps.now();
            let news = db::posts::retire(&deps.db, &post_token, change.as_str(), now).await?;
            let cancelled =
                db::broadcasts::cancel_for_removed_post(&deps.db, &post_token, now).await?;
            tracing::info!(
                news,
                cancelled,
                change = change.as_str(),
                "Divar reported a post removed"
            );
        }
        // Published (again): a post once removed is live, and may be asked about and messaged.
        DivarEvent::PostUpdate {
            post_token,
            change: PostChange::Published,
        } => {
            if db::posts::reopen(&deps.db, &post_token).await? {
                tracing::info!("Divar reported a removed post published again");
            }
        }
        DivarEvent::PostUpdate { change, .. } => {
            tracing::debug!(
                change = change.as_str(),
                "a post update that changes nothing here"
            )
        }
        // This add-on has no chatbot and takes no payments.
        DivarEvent::ChatbotMessage { .. } | DivarEvent::PaymentTransaction(_) => {
            tracing::debug!("ignoring an event this add-on does not use")
        }
        DivarEvent::Other(kind) => tracing::debug!(%kind, "ignoring an event type we do not use"),
    }
    Ok(())
}
