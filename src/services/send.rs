//! A person's message to one conversation: the composer, the send (recorded and queued in one
//! transaction, then delivered by the outbox, so a dropped request or a dead process loses
//! nothing), its status, a resend, and the page one of its buttons leads back to.

use serde_json::{Map, Value};

use crate::{
    db::{
        self,
        grants::Subject,
        messages::{Inserted, MessageRow, Requeue},
    },
    domain::{
        ConversationId, UserId,
        compose::{ComposeForm, Writer},
        message::{self, SentBody, Side},
        status::MessageStatus,
    },
};

use super::{
    Deps,
    compose::{self, Draft},
    delivery::Failure,
    templates::{self, TemplateSummary},
};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The writer has not given the add-on permission for this conversation (yet, or any more).
    #[error("not connected to this conversation")]
    NotConnected,
    #[error("no such message or template of this person's")]
    NotFound,
    /// The form lacks what the page always sends (its key): it did not arrive whole.
    #[error("the form arrived incomplete")]
    Incomplete,
    /// One of the person's limits: nothing was recorded.
    #[error("a limit of the person's: {0:?}")]
    Limit(super::limits::LimitHit),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The composer page's content.
#[derive(Debug, Clone)]
pub struct Composer {
    pub draft: Draft,
    pub templates: Vec<TemplateSummary>,
}

/// What a submit of the composer led to.
#[derive(Debug)]
pub enum Submitted {
    /// The composer again: edited, with problems beside their fields, or with a preview.
    Again(Box<Composer>),
    /// Recorded and queued; `again` when the same page had been submitted before.
    Sent {
        message_id: String,
        again: bool,
    },
    TemplateSaved,
}

/// A message as its sender sees it later.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub id: String,
    /// The composer form's key it was sent with.
    pub idempotency_key: String,
    pub status: MessageStatus,
    pub failure: Option<Failure>,
    pub body: SentBody,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<MessageRow> for SentMessage {
    fn from(row: MessageRow) -> Self {
        let body: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
        Self {
            failure: row.failure.as_deref().and_then(Failure::parse),
            body: message::read_body(&body),
            id: row.message_id,
            idempotency_key: row.idempotency_key,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn conversation(writer: &Writer) -> Result<&ConversationId, SendError> {
    writer.conversation.as_ref().ok_or(SendError::NotFound)
}

/// Only a connected writer composes: one without a grant is asked to connect first.
async fn require_grant(deps: &Deps, writer: &Writer) -> Result<(), SendError> {
    let subject = Subject::Conversation(conversation(writer)?.clone());
    if deps.vault.has_grant(&subject, &writer.user).await? {
        Ok(())
    } else {
        Err(SendError::NotConnected)
    }
}

async fn composer_with(deps: &Deps, writer: &Writer, draft: Draft) -> Result<Composer, SendError> {
    Ok(Composer {
        draft,
        templates: templates::list(deps, &writer.user).await?,
    })
}

/// The empty composer, or one filled from the writer's template `template`.
pub async fn composer(
    deps: &Deps,
    writer: &Writer,
    template: Option<&str>,
) -> Result<Composer, SendError> {
    require_grant(deps, writer).await?;
    let form = match template {
        Some(id) => templates::load(deps, &writer.user, id)
            .await?
            .ok_or(SendError::NotFound)?,
        None => ComposeForm::default(),
    };
    composer_with(deps, writer, Draft::new(form)).await
}

/// One form, several buttons: a button edit, save as template, preview, send. The message is
/// recorded and queued in one commit: from then on the outbox delivers it, whether or not the
/// page's request is still there to read the answer. Once per page, however often it is sent.
pub async fn submit(
    deps: &Deps,
    writer: &Writer,
    form: ComposeForm,
) -> Result<Submitted, SendError> {
    require_grant(deps, writer).await?;
    let again = async |draft: Draft| {
        let composer = composer_with(deps, writer, draft).await?;
        Ok::<_, SendError>(Submitted::Again(Box::new(composer)))
    };
    let form = match compose::apply_edit(&deps.catalog, writer, form) {
        Ok(form) => form,
        Err(draft) => return again(*draft).await,
    };
    if form.intent == crate::domain::compose::Intent::SaveTemplate {
        return match templates::save(deps, writer, &form).await? {
            Ok(()) => Ok(Submitted::TemplateSaved),
            Err(errors) => {
                again(Draft {
                    errors,
                    ..Draft::new(form)
                })
                .await
            }
        };
    }
    let (message, form) = match compose::check(&deps.form_rules(), writer, form) {
        Ok(ready) => ready,
        Err(draft) => return again(*draft).await,
    };
    let key = form.key().ok_or(SendError::Incomplete)?;
    // The same form again (a dropped connection, a second tap) finds its message before any
    // limit is asked: it was accepted already.
    if let Some(existing) = db::messages::find_by_key(&deps.db, key.as_str()).await?
        && existing.user_id == writer.user
    {
        return Ok(Submitted::Sent {
            message_id: existing.message_id,
            again: true,
        });
    }
    super::limits::single_send(deps, &writer.user)
        .await?
        .map_err(SendError::Limit)?;
    let message_id = uuid::Uuid::new_v4().to_string();
    let mut body = message::to_kenar_json(&message, &message_id);
    if let Some(attachment) = &form.attachment {
        attachment.attach_to(&mut body);
    }
    let row = MessageRow {
        body: body.to_string(),
        message_id: message_id.clone(),
        idempotency_key: key.as_str().to_string(),
        conversation_id: conversation(writer)?.clone(),
        user_id: writer.user.clone(),
        status: MessageStatus::Sending,
        failure: None,
        attempts: 0,
        created_at: 0,
        updated_at: 0,
    };
    match db::messages::insert_queued(&deps.db, &row, deps.now()).await? {
        Inserted::Existing(existing) => Ok(Submitted::Sent {
            message_id: existing.message_id,
            again: true,
        }),
        Inserted::New => {
            deps.wake.notify_one();
            Ok(Submitted::Sent {
                message_id,
                again: false,
            })
        }
    }
}

/// The writer's own message in this conversation; anyone else's is not found.
pub async fn status(deps: &Deps, writer: &Writer, id: &str) -> Result<SentMessage, SendError> {
    let row = db::messages::find(&deps.db, id)
        .await?
        .filter(|row| Some(&row.conversation_id) == writer.conversation.as_ref())
        .filter(|row| row.user_id == writer.user)
        .ok_or(SendError::NotFound)?;
    Ok(row.into())
}

/// The writer's messages in this conversation, newest first (the last 100).
pub async fn history(deps: &Deps, writer: &Writer) -> Result<Vec<SentMessage>, SendError> {
    let rows = db::messages::list_for_conversation(&deps.db, conversation(writer)?, 100).await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.user_id == writer.user)
        .map(SentMessage::from)
        .collect())
}

/// Queues a failed message again under its original key. Nothing happens when it is sent,
/// sending, or failed for a reason retrying cannot fix: its status says which.
pub async fn resend(deps: &Deps, writer: &Writer, id: &str) -> Result<(), SendError> {
    status(deps, writer, id).await?;
    let queued =
        db::messages::requeue(&deps.db, &writer.user, Requeue::One(id), deps.now()).await?;
    if !queued.is_empty() {
        deps.wake.notify_one();
    }
    Ok(())
}

/// After the person consented again: their messages in this conversation that failed for want
/// of consent go out now.
pub async fn resume_after_consent(
    deps: &Deps,
    conversation_id: &ConversationId,
    user: &UserId,
) -> anyhow::Result<usize> {
    let which = Requeue::AfterReconsent { conversation_id };
    let queued = db::messages::requeue(&deps.db, user, which, deps.now()).await?;
    if !queued.is_empty() {
        deps.wake.notify_one();
    }
    Ok(queued.len())
}

/// Who tapped one of our buttons, and from where.
pub struct Tap<'a> {
    pub conversation: &'a ConversationId,
    pub user: Option<&'a UserId>,
    /// The tapped button's data, as session initialization brought it back.
    pub data: &'a Map<String, Value>,
}

/// The page a tap on one of our server-link buttons leads to: the message it came with.
pub struct Tapped {
    pub body: SentBody,
    /// The one who tapped sent the message (else they are the other side of the conversation).
    pub mine: bool,
    /// The tapped button's caption, when it is known.
    pub caption: Option<String>,
    /// The send's status, for a single send (a broadcast's is on the seller's own page).
    pub status: Option<SentMessage>,
    pub created_at: i64,
    /// The button's own data (the add-on's `kc_` keys left out), as text.
    pub data: Vec<(String, String)>,
}

/// The message one of our buttons was sent with: a single send, or a broadcast that reached
/// this conversation (its buttons carry its id). Both sides of the conversation
/// may open it.
pub async fn tapped(deps: &Deps, tap: &Tap<'_>, id: &str) -> Result<Tapped, SendError> {
    let (body, sender, created_at, single) = match db::messages::find(&deps.db, id).await? {
        Some(row) if row.conversation_id == *tap.conversation => (
            row.body.clone(),
            row.user_id.clone(),
            row.created_at,
            Some(SentMessage::from(row)),
        ),
        Some(_) => return Err(SendError::NotFound),
        None => {
            let broadcast = db::broadcasts::sent_to(&deps.db, id, tap.conversation)
                .await?
                .ok_or(SendError::NotFound)?;
            (
                broadcast.body,
                broadcast.user_id,
                broadcast.created_at,
                None,
            )
        }
    };
    let body: Value = serde_json::from_str(&body).map_err(anyhow::Error::from)?;
    // The sender's grid is only ever shown to the sender, so the tapped button's side says who
    // tapped; without it, the user id (not every session-init body carries one).
    let (side, caption) = message::tapped_button(&body, tap.data).unwrap_or_else(|| {
        let side = if tap.user == Some(&sender) {
            Side::Sender
        } else {
            Side::Receiver
        };
        (side, None)
    });
    let mine = side == Side::Sender;
    let data = tap
        .data
        .iter()
        .filter(|(k, _)| !k.starts_with(crate::domain::compose::RESERVED_DATA_PREFIX))
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    Ok(Tapped {
        body: message::read_body(&body),
        mine,
        caption,
        status: single.filter(|_| mine),
        created_at,
        data,
    })
}
