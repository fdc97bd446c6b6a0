//! Delivers broadcasts: workers claim outbox rows under a lease, send, and record the outcome.
//! A row recorded as sent is never sent again; a crashed worker's lease expires and another
//! takes the row over, with the same idempotency key.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{
        Db,
        grants::Subject,
        now_ms,
        outbox::{self, Claimed},
    },
    kenar::api::{KenarApi, SendError},
    services::{
        messaging::{Failure, RetryPolicy},
        pacing::Pacer,
        vault::{Vault, VaultError},
    },
};

#[derive(Debug, PartialEq, Eq)]
pub enum ExecutionOutcome {
    TaskCompleted,
    EmptyQueue,
}

#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    pub workers: usize,
    /// How long a claimed row stays with its worker before others may take it over.
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// Sleep when there is nothing to do.
    pub idle: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            lease: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: 8,
                ..RetryPolicy::default()
            },
            idle: Duration::from_millis(250),
        }
    }
}

#[derive(Clone)]
pub struct OutboxWorker {
    db: Db,
    vault: Vault,
    api: KenarApi,
    pacer: Pacer,
    settings: OutboxSettings,
    /// Names this worker's leases.
    id: String,
}

impl OutboxWorker {
    pub fn new(
        db: Db,
        vault: Vault,
        api: KenarApi,
        pacer: Pacer,
        settings: OutboxSettings,
    ) -> Self {
        Self {
            db,
            vault,
            api,
            pacer,
            settings,
            id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Runs `settings.workers` loops until `shutdown`; each finishes its current row first.
    pub fn spawn_pool(&self, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.settings.workers)
            .map(|_| {
                let worker = Self {
                    id: uuid::Uuid::new_v4().to_string(),
                    ..self.clone()
                };
                tokio::spawn(worker.run_until_stopped(shutdown.clone()))
            })
            .collect()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let pause = match self.try_execute_task().await {
                Ok(ExecutionOutcome::TaskCompleted) => None,
                Ok(ExecutionOutcome::EmptyQueue) => Some(self.settings.idle),
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "outbox worker failed; backing off"
                    );
                    Some(Duration::from_secs(1))
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// Claims and handles one row. Public so tests can drain the queue step by step.
    pub async fn try_execute_task(&self) -> anyhow::Result<ExecutionOutcome> {
        let lease_ms = self.settings.lease.as_millis() as i64;
        let Some(row) = outbox::claim_next(&self.db, &self.id, lease_ms).await? else {
            return Ok(ExecutionOutcome::EmptyQueue);
        };
        let Some(broadcast) = outbox::find_broadcast(&self.db, &row.broadcast_id).await? else {
            anyhow::bail!("outbox row {} without its broadcast", row.outbox_id);
        };
        let token = match self
            .vault
            .access_token(Subject::Post, &broadcast.post_token, &broadcast.user_id)
            .await
        {
            Ok(token) => token,
            Err(VaultError::NoGrant | VaultError::Reconsent) => {
                // The seller must reconnect; the row waits, its attempt not counted.
                outbox::pause_for_grant(
                    &self.db,
                    &broadcast.post_token,
                    &broadcast.user_id,
                    "reconsent",
                )
                .await?;
                outbox::reschedule(&self.db, &row.outbox_id, &self.id, now_ms(), None, true)
                    .await?;
                return Ok(ExecutionOutcome::TaskCompleted);
            }
            Err(VaultError::Unavailable(reason)) => {
                tracing::warn!(%reason, "token refresh unavailable; retrying later");
                self.retry_later(&row, None, Failure::Unavailable).await?;
                return Ok(ExecutionOutcome::TaskCompleted);
            }
            Err(VaultError::Store(e)) => return Err(e),
        };
        if token.refreshed {
            // Subscriptions live as long as the token that made them (spec §9).
            if let Err(error) = self
                .api
                .subscribe_new_messages(&token.secret, &broadcast.post_token)
                .await
            {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "re-subscribing after a refresh failed"
                );
            }
        }
        let body: serde_json::Value = serde_json::from_str(&broadcast.body)?;
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
            Ok(()) => self.finish(&row, "sent", None).await?,
            Err(SendError::RecipientRestricted) => {
                self.finish(&row, "failed", Some(Failure::RecipientRestricted))
                    .await?
            }
            Err(SendError::Unauthorized { .. }) => {
                self.vault
                    .forget(Subject::Post, &broadcast.post_token, &broadcast.user_id)
                    .await?;
                outbox::pause_for_grant(
                    &self.db,
                    &broadcast.post_token,
                    &broadcast.user_id,
                    "reconsent",
                )
                .await?;
                outbox::reschedule(&self.db, &row.outbox_id, &self.id, now_ms(), None, true)
                    .await?;
            }
            Err(SendError::Rejected { status, message }) => {
                tracing::warn!(status, %message, "Divar rejected a broadcast message");
                self.finish(&row, "failed", Some(Failure::Rejected)).await?;
            }
            Err(error @ (SendError::Throttled { .. } | SendError::Unavailable { .. })) => {
                let failure = if matches!(error, SendError::Throttled { .. }) {
                    Failure::RateLimited
                } else {
                    Failure::Unavailable
                };
                self.retry_later(&row, error.retry_after(), failure).await?;
            }
        }
        Ok(ExecutionOutcome::TaskCompleted)
    }

    async fn finish(
        &self,
        row: &Claimed,
        status: &str,
        failure: Option<Failure>,
    ) -> anyhow::Result<()> {
        if !outbox::finish(
            &self.db,
            &row.outbox_id,
            &self.id,
            status,
            failure.map(Failure::as_str),
        )
        .await?
        {
            tracing::warn!(outbox_id = %row.outbox_id, "lost the lease before recording the outcome");
        }
        outbox::complete_if_done(&self.db, &row.broadcast_id).await
    }

    /// Backs off (or honours Retry-After), or gives up after the last attempt.
    async fn retry_later(
        &self,
        row: &Claimed,
        retry_after: Option<Duration>,
        failure: Failure,
    ) -> anyhow::Result<()> {
        // A cancelled broadcast starts no new attempt.
        let broadcast = outbox::find_broadcast(&self.db, &row.broadcast_id).await?;
        if broadcast.is_some_and(|b| b.status == "cancelled") {
            return self.finish(row, "cancelled", None).await;
        }
        let retry = self.settings.retry;
        if row.attempts >= i64::from(retry.max_attempts) {
            return self.finish(row, "failed", Some(failure)).await;
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(row.attempts.saturating_sub(1) as usize)
            .unwrap_or(retry.max_delay);
        let wait = retry_after.map_or(backoff, |r| r.min(Duration::from_secs(60)).max(backoff));
        let at = now_ms() + wait.as_millis() as i64;
        outbox::reschedule(
            &self.db,
            &row.outbox_id,
            &self.id,
            at,
            Some(failure.as_str()),
            false,
        )
        .await
    }
}
