//! A person's message to one conversation: recorded and queued in one transaction, then
//! delivered by the outbox workers, so a dropped request or a dead process loses nothing.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    clock::SharedClock,
    db::{
        Db,
        messages::{self, Inserted, MessageRow, Requeue},
    },
    domain::{ConversationId, UserId, message::OutgoingMessage},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// Recorded and queued; the outbox delivers it.
    New { message_id: String },
    /// The form was submitted before: that message, whatever its status now.
    Duplicate { message: Box<MessageRow> },
}

#[derive(Clone)]
pub struct Messaging {
    db: Db,
    /// Wakes the outbox's express worker as soon as a send is committed.
    wake: Arc<Notify>,
    clock: SharedClock,
}

impl Messaging {
    pub fn new(db: Db, wake: Arc<Notify>, clock: SharedClock) -> Self {
        Self { db, wake, clock }
    }

    /// Queues a message once per `idempotency_key`, whatever the number of submits.
    #[tracing::instrument(skip_all, fields(conversation_id))]
    pub async fn queue(
        &self,
        conversation_id: &ConversationId,
        user_id: &UserId,
        message: &OutgoingMessage,
        idempotency_key: &str,
    ) -> anyhow::Result<Queued> {
        let message_id = uuid::Uuid::new_v4().to_string();
        let row = MessageRow {
            body: crate::domain::message::to_kenar_json(message, &message_id).to_string(),
            message_id: message_id.clone(),
            idempotency_key: idempotency_key.to_string(),
            conversation_id: conversation_id.clone(),
            user_id: user_id.clone(),
            status: crate::domain::status::MessageStatus::Sending,
            failure: None,
            attempts: 0,
            created_at: 0,
            updated_at: 0,
        };
        match messages::insert_queued(&self.db, &row, self.clock.now_ms()).await? {
            Inserted::Existing(existing) => Ok(Queued::Duplicate {
                message: Box::new(existing),
            }),
            Inserted::New => {
                self.wake.notify_one();
                Ok(Queued::New { message_id })
            }
        }
    }

    /// Queues a failed message again under its original idempotency key. False when it is not
    /// this person's, not failed, or failed for a reason retrying cannot fix.
    pub async fn resend(&self, message_id: &str, user_id: &UserId) -> anyhow::Result<bool> {
        let queued = messages::requeue(
            &self.db,
            user_id,
            Requeue::One(message_id),
            self.clock.now_ms(),
        )
        .await?;
        if queued.is_empty() {
            return Ok(false);
        }
        self.wake.notify_one();
        Ok(true)
    }

    /// After the person consented again: their messages in this conversation that failed for
    /// want of consent go out now.
    pub async fn resume_after_consent(
        &self,
        conversation_id: &ConversationId,
        user_id: &UserId,
    ) -> anyhow::Result<usize> {
        let queued = messages::requeue(
            &self.db,
            user_id,
            Requeue::AfterReconsent { conversation_id },
            self.clock.now_ms(),
        )
        .await?;
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        Ok(queued.len())
    }
}
