//! A seller's message to every conversation of their post: the post's page, the composer, the
//! confirm step (exactly who will get it), the broadcast and its outbox rows in one transaction,
//! then its progress, cancel and retry.

use serde_json::Value;

use crate::{
    db::{self, broadcasts::Created as Inserted, grants::Subject},
    domain::{
        PostToken, UserId,
        compose::{Attachment, ComposeForm, ConfirmForm, ConfirmMode, OutgoingMessage, Writer},
        message,
        status::BroadcastStatus,
    },
};

use super::{
    Deps,
    compose::{self, Draft},
    consent::Target,
};

pub use crate::domain::broadcast::{Broadcast, FailedRecipient, Progress};

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    /// The seller has not given the add-on permission for this post (yet, or any more).
    #[error("not connected to this post")]
    NotConnected,
    #[error("no such broadcast of this seller's")]
    NotFound,
    /// The confirm form lacks what the page always sends: it did not arrive whole.
    #[error("the form arrived incomplete")]
    Incomplete,
    /// The confirm form carries a message the composer would not have let through.
    #[error("the confirmed message does not check out")]
    InvalidMessage,
    #[error("no conversation of this post is known yet")]
    NoConversations,
    /// Divar reported the post removed: nothing new goes to its conversations.
    #[error("the post was removed from Divar")]
    PostRemoved,
    /// One of the seller's limits: nothing was recorded.
    #[error("a limit of the seller's: {0:?}")]
    Limit(super::limits::LimitHit),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The post's page: whether the seller is connected, the post's known conversations, and the
/// broadcasts so far (newest first, at most 50).
pub struct Overview {
    pub connected: bool,
    /// Divar reported the post removed.
    pub removed: bool,
    pub conversations: usize,
    /// When the newest conversation was last seen.
    pub last_activity: Option<i64>,
    pub broadcasts: Vec<Summary>,
}

/// One broadcast in the post's list.
pub struct Summary {
    pub broadcast: Broadcast,
    /// Its text (empty once purged).
    pub text: String,
    pub progress: Progress,
}

/// The text of a stored send body.
fn text_of(body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    body["message"].as_str().unwrap_or_default().to_string()
}

/// A seller Divar has not named yet (a touch-points click) sees the connect step.
pub async fn overview(
    deps: &Deps,
    post: &PostToken,
    user: Option<&UserId>,
) -> anyhow::Result<Overview> {
    let connected = super::consent::connected(deps, &Target::Post(post.clone()), user).await?;
    let broadcasts = match user {
        Some(user) => db::broadcasts::list_for_post(&deps.db, post, user)
            .await?
            .into_iter()
            .map(
                |db::broadcasts::WithProgress {
                     broadcast,
                     progress,
                 }| Summary {
                    text: text_of(&broadcast.body),
                    broadcast,
                    progress,
                },
            )
            .collect(),
        None => Vec::new(),
    };
    let conversations = db::conversations::list_for_post(&deps.db, post).await?;
    Ok(Overview {
        connected,
        removed: db::posts::is_retired(&deps.db, post).await?,
        conversations: conversations.len(),
        last_activity: conversations.iter().map(|c| c.updated_at).max(),
        broadcasts,
    })
}

fn post(writer: &Writer) -> Result<&PostToken, BroadcastError> {
    writer.post.as_ref().ok_or(BroadcastError::NotFound)
}

/// A new broadcast (or a retry) needs the seller's grant, and a post still on Divar.
async fn require_sendable_post(deps: &Deps, writer: &Writer) -> Result<(), BroadcastError> {
    let post = post(writer)?;
    if !deps
        .vault
        .has_grant(&Subject::Post(post.clone()), &writer.user)
        .await?
    {
        return Err(BroadcastError::NotConnected);
    }
    if db::posts::is_retired(&deps.db, post).await? {
        return Err(BroadcastError::PostRemoved);
    }
    Ok(())
}

/// The empty composer for every conversation of the post.
pub async fn composer(deps: &Deps, writer: &Writer) -> Result<Draft, BroadcastError> {
    require_sendable_post(deps, writer).await?;
    Ok(Draft::new(ComposeForm::default()))
}

/// What the seller confirms: the count, the message as each side sees it, and the list's moment
/// and digest, which the confirm form carries back.
pub struct Confirmation {
    pub recipients: usize,
    /// Known conversations of the post recorded with another seller: they will not get it.
    pub other_seller: usize,
    pub as_of: i64,
    pub digest: String,
    /// The composer's fields, carried through the confirm form.
    pub fields: Vec<(String, String)>,
    /// The composer page's key: the broadcast is made once with it, however often confirmed.
    pub idempotency_key: String,
    /// The photo or file that goes with it, already on Divar's upload host.
    pub attachment: Option<Attachment>,
    pub message: OutgoingMessage,
    /// The list changed since the seller last saw it.
    pub changed: bool,
}

pub enum Step {
    /// The composer again: edited, with problems, or with a preview.
    Again(Box<Draft>),
    Confirm(Box<Confirmation>),
}

async fn confirmation(
    deps: &Deps,
    writer: &Writer,
    form: &ComposeForm,
    message: OutgoingMessage,
    changed: bool,
) -> Result<Confirmation, BroadcastError> {
    let as_of = deps.now();
    let recipients =
        db::conversations::recipients_for_post(&deps.db, post(writer)?, &writer.user, as_of)
            .await?;
    Ok(Confirmation {
        recipients: recipients.conversation_ids.len(),
        other_seller: recipients.other_seller,
        as_of,
        digest: recipients.digest(),
        fields: form.fields_with_attachment(),
        idempotency_key: form.idempotency_key.clone(),
        attachment: form.attachment.clone(),
        message,
        changed,
    })
}

/// The composer's submit: a button edit or a preview comes back; a message that checks out
/// leads to the confirm step.
pub async fn submit(
    deps: &Deps,
    writer: &Writer,
    form: ComposeForm,
) -> Result<Step, BroadcastError> {
    require_sendable_post(deps, writer).await?;
    let form = match compose::apply_edit(&deps.catalog, writer, form) {
        Ok(form) => form,
        Err(draft) => return Ok(Step::Again(draft)),
    };
    let (message, form) = match compose::check(&deps.form_rules(), writer, form) {
        Ok(ready) => ready,
        Err(draft) => return Ok(Step::Again(draft)),
    };
    let confirmation = confirmation(deps, writer, &form, message, false).await?;
    Ok(Step::Confirm(Box::new(confirmation)))
}

pub enum Created {
    /// Recorded with one outbox row per conversation; the workers send it.
    Started(String),
    /// The same confirm form was submitted before: that broadcast.
    Existing(String),
    /// The list changed since the seller saw it: the new count, to confirm again.
    Changed(Box<Confirmation>),
}

/// The confirm step: the broadcast and its outbox rows, in one transaction, to exactly the list
/// the seller saw counted (or the seller is asked again).
pub async fn create(
    deps: &Deps,
    writer: &Writer,
    confirm: ConfirmForm,
) -> Result<Created, BroadcastError> {
    require_sendable_post(deps, writer).await?;
    let post = post(writer)?;
    let message = confirm
        .message
        .parse(writer, &deps.form_rules())
        .map_err(|_| BroadcastError::InvalidMessage)?;
    let key = confirm.message.key().ok_or(BroadcastError::Incomplete)?;
    if let Some(existing) = db::broadcasts::id_for_key(&deps.db, key.as_str()).await? {
        return Ok(Created::Existing(existing));
    }
    if confirm.mode == ConfirmMode::AutoReply {
        return start_auto_reply(deps, writer, &confirm, &message, key.as_str()).await;
    }
    let as_of = confirm.as_of().ok_or(BroadcastError::Incomplete)?;
    let recipients =
        db::conversations::recipients_for_post(&deps.db, post, &writer.user, as_of).await?;
    if recipients.digest() != confirm.digest {
        let again = confirmation(deps, writer, &confirm.message, message, true).await?;
        return Ok(Created::Changed(Box::new(again)));
    }
    if recipients.conversation_ids.is_empty() {
        return Err(BroadcastError::NoConversations);
    }
    super::limits::broadcast(deps, &writer.user, recipients.conversation_ids.len())
        .await?
        .map_err(BroadcastError::Limit)?;
    let broadcast_id = uuid::Uuid::new_v4().to_string();
    let body = body_of(&confirm, &message, &broadcast_id);
    let conversations = recipients.conversation_ids;
    match db::broadcasts::create(
        &deps.db,
        &broadcast_id,
        key.as_str(),
        post,
        &writer.user,
        &body,
        &conversations,
        deps.now(),
    )
    .await?
    {
        Inserted::New(id) => {
            tracing::info!(recipients = conversations.len(), "broadcast created");
            // Divar may have reported the post removed since the check above: such a report
            // cancels only the broadcasts it finds, so look again now that this one exists.
            if db::posts::is_retired(&deps.db, post).await? {
                db::broadcasts::cancel_for_removed_post(&deps.db, post, deps.now()).await?;
            }
            Ok(Created::Started(id))
        }
        Inserted::Existing(id) => Ok(Created::Existing(id)),
    }
}

/// The send body of a confirmed message, with its attachment: one upload for every
/// conversation it goes to. Its buttons carry the broadcast's id: an opaque reference to where
/// a tap leads (the composer's key would let a recipient find the seller's broadcast by it).
fn body_of(confirm: &ConfirmForm, message: &OutgoingMessage, broadcast_id: &str) -> String {
    let mut body = message::to_kenar_json(message, broadcast_id);
    if let Some(attachment) = &confirm.message.attachment {
        attachment.attach_to(&mut body);
    }
    body.to_string()
}

/// Turns the confirmed message into the post's automatic first reply: from now on each new
/// buyer Divar announces gets it once (`db::broadcasts::add_to_auto_reply`), until the seller
/// turns it off or the post is removed.
async fn start_auto_reply(
    deps: &Deps,
    writer: &Writer,
    confirm: &ConfirmForm,
    message: &OutgoingMessage,
    key: &str,
) -> Result<Created, BroadcastError> {
    let post = post(writer)?;
    let broadcast_id = uuid::Uuid::new_v4().to_string();
    let body = body_of(confirm, message, &broadcast_id);
    let id = match db::broadcasts::start_auto_reply(
        &deps.db,
        &broadcast_id,
        key,
        post,
        &writer.user,
        &body,
        deps.now(),
    )
    .await?
    {
        Inserted::New(id) => {
            tracing::info!("auto-reply turned on");
            if db::posts::is_retired(&deps.db, post).await? {
                db::broadcasts::cancel_for_removed_post(&deps.db, post, deps.now()).await?;
            }
            id
        }
        Inserted::Existing(id) => return Ok(Created::Existing(id)),
    };
    Ok(Created::Started(id))
}

/// A broadcast's page: where it stands, and each conversation that did not get it.
pub struct Report {
    pub broadcast: Broadcast,
    pub text: String,
    pub progress: Progress,
    pub failures: Vec<FailedRecipient>,
    /// Failed conversations a retry may still reach, and blocked chats it cannot.
    pub retryable: i64,
    pub restricted: i64,
}

impl Report {
    /// Whether the counts can still change.
    pub fn settled(&self) -> bool {
        settled(&self.broadcast, self.progress.pending)
    }

    /// A retry is offered once it is done, some failures may still be reached, and its text was
    /// not yet purged.
    pub fn can_retry(&self) -> bool {
        self.broadcast.status == BroadcastStatus::Done
            && self.retryable > 0
            && self.broadcast.body != "{}"
    }
}

/// Whether a broadcast's counts can still change: a cancelled one is still settling while sends
/// that had already started finish. An auto-reply that is on has nothing in flight between new
/// buyers: its page need not keep asking.
pub fn settled(broadcast: &Broadcast, pending: i64) -> bool {
    match broadcast.status {
        BroadcastStatus::Done | BroadcastStatus::Paused => true,
        BroadcastStatus::Cancelled => pending == 0,
        BroadcastStatus::Running => broadcast.is_auto_reply() && pending == 0,
    }
}

/// Only the seller who made it, from the post it went to, sees a broadcast.
async fn owned(deps: &Deps, writer: &Writer, id: &str) -> Result<Broadcast, BroadcastError> {
    db::broadcasts::find(&deps.db, id)
        .await?
        .filter(|b| b.user_id == writer.user && Some(&b.post_token) == writer.post.as_ref())
        .ok_or(BroadcastError::NotFound)
}

pub async fn report(deps: &Deps, writer: &Writer, id: &str) -> Result<Report, BroadcastError> {
    let broadcast = owned(deps, writer, id).await?;
    let progress = db::broadcasts::progress(&deps.db, id).await?;
    let failures = db::broadcasts::failures(&deps.db, id).await?;
    let (retryable, restricted) = db::broadcasts::failure_counts(&deps.db, id).await?;
    Ok(Report {
        text: text_of(&broadcast.body),
        broadcast,
        progress,
        failures,
        retryable,
        restricted,
    })
}

/// For the progress page's polling: the status, the total and the counts.
pub async fn progress(
    deps: &Deps,
    writer: &Writer,
    id: &str,
) -> Result<(Broadcast, Progress), BroadcastError> {
    let broadcast = owned(deps, writer, id).await?;
    let progress = db::broadcasts::progress(&deps.db, id).await?;
    Ok((broadcast, progress))
}

/// Stops a broadcast: its pending rows are never sent.
pub async fn cancel(deps: &Deps, writer: &Writer, id: &str) -> Result<(), BroadcastError> {
    owned(deps, writer, id).await?;
    db::broadcasts::cancel(&deps.db, id, deps.now()).await?;
    Ok(())
}

/// Queues the failed rows of a finished broadcast again (blocked chats excepted).
pub async fn retry(deps: &Deps, writer: &Writer, id: &str) -> Result<(), BroadcastError> {
    let broadcast = owned(deps, writer, id).await?;
    if db::posts::is_retired(&deps.db, &broadcast.post_token).await? {
        return Err(BroadcastError::PostRemoved);
    }
    // A retry runs the broadcast again: the seller's limits apply as to a new one.
    let (retryable, _) = db::broadcasts::failure_counts(&deps.db, id).await?;
    if retryable > 0 {
        super::limits::broadcast(deps, &writer.user, retryable as usize)
            .await?
            .map_err(BroadcastError::Limit)?;
    }
    let queued = db::broadcasts::retry_failed(&deps.db, id, deps.now()).await?;
    tracing::info!(queued, "retrying a broadcast's failed conversations");
    Ok(())
}
