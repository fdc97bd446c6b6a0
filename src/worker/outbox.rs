//! Delivers broadcasts: workers claim outbox rows under a lease, send, and record the outcome.
//! A row recorded as sent is never sent again; a crashed worker's lease expires and another
//! takes the row over, with the same idempotency key.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

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

pub use outbox::Finished;

/// What sending for one broadcast needs, looked up once per batch.
struct Sender {
    body: serde_json::Value,
    token: secrecy::SecretString,
    post_token: String,
    user_id: String,
}

#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    pub workers: usize,
    /// Rows one worker claims at a time (one claim, one token lookup and one outcome write for
    /// all of them) and sends together: at most `workers × batch` calls are in flight.
    pub batch: usize,
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
            batch: 16,
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
    /// Set when a worker of this pool finished rows since the last completion check. Starts set,
    /// so a restarted process completes broadcasts whose last rows an earlier one recorded.
    finished_rows: Arc<AtomicBool>,
}

impl OutboxWorker {
    pub fn new(
        db: Db,
        vault: Vault,
        api: KenarApi,
        pacer: Pacer,
        mut settings: OutboxSettings,
    ) -> Self {
        // A claimed row waits its turn at the pacer; keep batches small enough that every row
        // of one is sent well within its lease, even with all workers sharing the budget.
        if let Some(per_minute) = pacer.limit_per_minute() {
            let per_lease = u64::from(per_minute) * settings.lease.as_secs() / 60;
            let fits = per_lease / 2 / settings.workers.max(1) as u64;
            settings.batch = settings.batch.min(fits.max(1) as usize);
        }
        Self {
            db,
            vault,
            api,
            pacer,
            settings,
            id: uuid::Uuid::new_v4().to_string(),
            finished_rows: Arc::new(AtomicBool::new(true)),
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

    /// Claims a batch of due rows and handles each. Public so tests and the benchmark can drain
    /// the queue step by step.
    pub async fn try_execute_task(&self) -> anyhow::Result<ExecutionOutcome> {
        let lease_ms = self.settings.lease.as_millis() as i64;
        let rows =
            outbox::claim_batch(&self.db, &self.id, lease_ms, self.settings.batch as i64).await?;
        if rows.is_empty() {
            // The queue ran dry: mark what this process finished as done, once.
            if self.finished_rows.swap(false, Ordering::AcqRel)
                && let Err(error) = outbox::complete_finished(&self.db).await
            {
                // Try again on the next dry run rather than leave a finished broadcast running.
                self.finished_rows.store(true, Ordering::Release);
                return Err(error);
            }
            return Ok(ExecutionOutcome::EmptyQueue);
        }
        // One broadcast and one token per broadcast in the batch, not per row.
        let mut senders: HashMap<&str, Option<Sender>> = HashMap::new();
        for row in &rows {
            if !senders.contains_key(row.broadcast_id.as_str()) {
                let sender = self.sender_for(&row.broadcast_id).await?;
                senders.insert(&row.broadcast_id, sender);
            }
        }
        // The batch's rows go out together (still one at a time through the pacer): a batch
        // lasts about as long as its slowest call, so a slow Divar does not keep claimed rows
        // unrecorded, and off the progress page, for one round trip after another.
        let outcomes = futures::future::join_all(rows.iter().map(|row| async {
            match &senders[row.broadcast_id.as_str()] {
                Some(sender) => self.deliver(row, sender).await,
                // The seller must reconnect (or Divar is unreachable); the row waits a little.
                None => outbox::reschedule(
                    &self.db,
                    &row.outbox_id,
                    &self.id,
                    now_ms() + 2000,
                    None,
                    true,
                )
                .await
                .map(|()| None),
            }
        }))
        .await;
        let mut done = Vec::with_capacity(rows.len());
        let mut failed = None;
        for outcome in outcomes {
            match outcome {
                Ok(finished) => done.extend(finished),
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        // One write for the batch's outcomes, even when another row's bookkeeping failed.
        // Should this process die before it, those rows' leases expire and they are sent again
        // under the same idempotency keys.
        if !outbox::finish_many(&self.db, &self.id, &done).await? {
            tracing::warn!("lost a lease before recording a batch's outcomes");
        }
        self.finished_rows.store(true, Ordering::Release);
        match failed {
            Some(error) => Err(error),
            None => Ok(ExecutionOutcome::TaskCompleted),
        }
    }

    /// What sending for a broadcast needs, or `None` when its seller's token cannot be had now
    /// (the broadcast is then paused, or retried later).
    async fn sender_for(&self, broadcast_id: &str) -> anyhow::Result<Option<Sender>> {
        let Some(broadcast) = outbox::find_broadcast(&self.db, broadcast_id).await? else {
            anyhow::bail!("outbox rows without their broadcast {broadcast_id}");
        };
        let token = match self
            .vault
            .access_token(Subject::Post, &broadcast.post_token, &broadcast.user_id)
            .await
        {
            Ok(token) => token,
            Err(VaultError::NoGrant | VaultError::Reconsent) => {
                outbox::pause_for_grant(
                    &self.db,
                    &broadcast.post_token,
                    &broadcast.user_id,
                    "reconsent",
                )
                .await?;
                return Ok(None);
            }
            Err(VaultError::Unavailable(reason)) => {
                tracing::warn!(%reason, "token refresh unavailable; retrying later");
                return Ok(None);
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
        let body = serde_json::from_str(&broadcast.body)?;
        Ok(Some(Sender {
            body,
            token: token.secret,
            post_token: broadcast.post_token,
            user_id: broadcast.user_id,
        }))
    }

    /// Sends one row; a final outcome comes back for the batch to record.
    async fn deliver(&self, row: &Claimed, sender: &Sender) -> anyhow::Result<Option<Finished>> {
        self.pacer.ready().await;
        let result = self
            .api
            .send_message(
                &row.conversation_id,
                &sender.token,
                &sender.body,
                &row.idempotency_key,
            )
            .await;
        match result {
            Ok(()) => Ok(Some(finished(row, "sent", None))),
            Err(SendError::RecipientRestricted) => Ok(Some(finished(
                row,
                "failed",
                Some(Failure::RecipientRestricted),
            ))),
            Err(SendError::Unauthorized { .. }) => {
                self.vault
                    .forget(Subject::Post, &sender.post_token, &sender.user_id)
                    .await?;
                outbox::pause_for_grant(&self.db, &sender.post_token, &sender.user_id, "reconsent")
                    .await?;
                outbox::reschedule(&self.db, &row.outbox_id, &self.id, now_ms(), None, true)
                    .await?;
                Ok(None)
            }
            Err(SendError::Rejected { status, message }) => {
                tracing::warn!(status, %message, "Divar rejected a broadcast message");
                Ok(Some(finished(row, "failed", Some(Failure::Rejected))))
            }
            Err(error @ (SendError::Throttled { .. } | SendError::Unavailable { .. })) => {
                let failure = if matches!(error, SendError::Throttled { .. }) {
                    Failure::RateLimited
                } else {
                    Failure::Unavailable
                };
                self.retry_later(row, error.retry_after(), failure).await
            }
        }
    }

    /// Backs off (or honours Retry-After), or gives up after the last attempt.
    async fn retry_later(
        &self,
        row: &Claimed,
        retry_after: Option<Duration>,
        failure: Failure,
    ) -> anyhow::Result<Option<Finished>> {
        // A cancelled broadcast starts no new attempt.
        let broadcast = outbox::find_broadcast(&self.db, &row.broadcast_id).await?;
        if broadcast.is_some_and(|b| b.status == "cancelled") {
            return Ok(Some(finished(row, "cancelled", None)));
        }
        let retry = self.settings.retry;
        if row.attempts >= i64::from(retry.max_attempts) {
            return Ok(Some(finished(row, "failed", Some(failure))));
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
        .await?;
        Ok(None)
    }
}

/// A final outcome; the batch writes all of them in one statement at its end.
fn finished(row: &Claimed, status: &'static str, failure: Option<Failure>) -> Finished {
    Finished {
        outbox_id: row.outbox_id.clone(),
        status,
        failure: failure.map(Failure::as_str),
    }
}
