//! Sending a message to one conversation on a user's behalf, with retries and idempotency.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::{
    db::{
        Db,
        grants::Subject,
        messages::{self, Inserted, MessageRow},
    },
    domain::message::OutgoingMessage,
    kenar::api::{KenarApi, SendError},
    services::{
        pacing::Pacer,
        vault::{Vault, VaultError},
    },
};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// Why a message ended as failed; stored in `messages.failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    RecipientRestricted,
    Reconsent,
    RateLimited,
    Unavailable,
    Rejected,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecipientRestricted => "recipient_restricted",
            Self::Reconsent => "reconsent",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        message_id: String,
    },
    /// The form was submitted before; nothing was sent again.
    Duplicate {
        message: Box<MessageRow>,
    },
    Failed {
        message_id: String,
        failure: Failure,
    },
}

#[derive(Clone)]
pub struct Messaging {
    db: Db,
    vault: Vault,
    api: KenarApi,
    retry: RetryPolicy,
    /// Shared with the outbox workers: one budget for all of this instance's sends.
    pacer: Pacer,
}

impl Messaging {
    pub fn new(db: Db, vault: Vault, api: KenarApi, retry: RetryPolicy, pacer: Pacer) -> Self {
        Self {
            db,
            vault,
            api,
            retry,
            pacer,
        }
    }

    /// Sends once per `idempotency_key`, whatever the number of submits.
    #[tracing::instrument(skip_all, fields(conversation_id))]
    pub async fn send(
        &self,
        conversation_id: &str,
        user_id: &str,
        message: &OutgoingMessage,
        idempotency_key: &str,
    ) -> anyhow::Result<SendOutcome> {
        let message_id = uuid::Uuid::new_v4().to_string();
        let row = MessageRow {
            body: message.to_kenar_json(&message_id).to_string(),
            message_id: message_id.clone(),
            idempotency_key: idempotency_key.to_string(),
            conversation_id: conversation_id.to_string(),
            user_id: user_id.to_string(),
            status: "sending".into(),
            failure: None,
            attempts: 0,
            created_at: 0,
            updated_at: 0,
        };
        match messages::insert(&self.db, &row).await? {
            Inserted::Existing(existing) => Ok(SendOutcome::Duplicate {
                message: Box::new(existing),
            }),
            Inserted::New => self.deliver(&row).await,
        }
    }

    /// Tries a failed message again, under its original idempotency key.
    pub async fn resend(
        &self,
        message_id: &str,
        user_id: &str,
    ) -> anyhow::Result<Option<SendOutcome>> {
        if !messages::claim_for_resend(&self.db, message_id, user_id).await? {
            return Ok(None);
        }
        let Some(row) = messages::find(&self.db, message_id).await? else {
            return Ok(None);
        };
        self.deliver(&row).await.map(Some)
    }

    async fn deliver(&self, row: &MessageRow) -> anyhow::Result<SendOutcome> {
        let body: serde_json::Value = serde_json::from_str(&row.body)?;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let token = match self
                .vault
                .access_token(Subject::Conversation, &row.conversation_id, &row.user_id)
                .await
            {
                Ok(token) => token,
                Err(VaultError::NoGrant | VaultError::Reconsent) => break Err(Failure::Reconsent),
                Err(VaultError::Unavailable(reason)) => {
                    tracing::warn!(%reason, "could not refresh the token");
                    break Err(Failure::Unavailable);
                }
                Err(VaultError::Store(e)) => return Err(e),
            };
            self.pacer.ready().await;
            match self
                .api
                .send_message(
                    &row.conversation_id,
                    &token.secret,
                    &body,
                    &row.idempotency_key,
                )
                .await
            {
                Ok(()) => break Ok(()),
                Err(error) if error.is_retryable() && attempts < self.retry.max_attempts => {
                    let backoff = delays.next().unwrap_or(self.retry.max_delay);
                    // Honour Divar's Retry-After, within reason.
                    let wait = error
                        .retry_after()
                        .map_or(backoff, |r| r.min(Duration::from_secs(60)).max(backoff));
                    tracing::info!(%error, attempt = attempts, wait_ms = wait.as_millis() as u64, "retrying a send");
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt = attempts, "send failed");
                    break Err(match error {
                        SendError::RecipientRestricted => Failure::RecipientRestricted,
                        SendError::Unauthorized { .. } => {
                            // The token is no good for this chat any more: ask again next time.
                            self.vault
                                .forget(Subject::Conversation, &row.conversation_id, &row.user_id)
                                .await?;
                            Failure::Reconsent
                        }
                        SendError::Throttled { .. } => Failure::RateLimited,
                        SendError::Unavailable { .. } => Failure::Unavailable,
                        SendError::Rejected { .. } => Failure::Rejected,
                    });
                }
            }
        };
        match outcome {
            Ok(()) => {
                messages::record_outcome(&self.db, &row.message_id, "sent", None, attempts.into())
                    .await?;
                Ok(SendOutcome::Sent {
                    message_id: row.message_id.clone(),
                })
            }
            Err(failure) => {
                messages::record_outcome(
                    &self.db,
                    &row.message_id,
                    "failed",
                    Some(failure.as_str()),
                    attempts.into(),
                )
                .await?;
                Ok(SendOutcome::Failed {
                    message_id: row.message_id.clone(),
                    failure,
                })
            }
        }
    }
}
