//! Delivers everything the add-on sends: single messages and broadcasts. Workers claim outbox
//! rows under a lease, send, and record the outcome. A row recorded as sent is never sent
//! again; a crashed worker's lease expires and another takes the row over, with the same
//! idempotency key.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use secrecy::SecretString;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use kenar::api::KenarApi;

use crate::{
    clock::SharedClock,
    db::{
        self, Db, broadcasts,
        grants::Subject,
        messages,
        outbox::{self, Claimed, Lanes, Source},
    },
    domain::{ConversationId, UserId, broadcast::STOPPED_FOR_RECONSENT, message, status::Outcome},
    observe::reachability::{self, Backoff},
    services::{
        delivery::{self, Failure, RetryPolicy, Verdict},
        pacing::{Lane, Pacer},
        vault::{AccessToken, Vault, VaultError},
    },
};

#[derive(Debug, PartialEq, Eq)]
pub enum ExecutionOutcome {
    TaskCompleted,
    EmptyQueue,
}

pub use outbox::Finished;

/// A broadcast row that waited at least this long for its turn asks whether its broadcast was
/// cancelled meanwhile; one sent at once needs no extra read.
const CANCEL_CHECK_AFTER: Duration = Duration::from_millis(50);

/// When idle, the completion check runs at least this often.
const COMPLETION_CHECK_EVERY: Duration = Duration::from_secs(10);

/// At most this many single sends are claimed at once by the express worker (unpaced: a claim
/// reads the whole queue, so a large one spreads that over many sends)...
const EXPRESS_BATCH: usize = 256;
/// ...in at most this many batches in flight together: at most 512 calls to Divar at once, and,
/// paced, little waits at the pacer ahead of a new round.
const EXPRESS_BATCHES_IN_FLIGHT: usize = 2;

/// While a paced batch's rows wait for their turns, how often the batch looks for a cancel.
const CANCEL_POLL: Duration = Duration::from_millis(400);

pub use crate::config::OutboxSettings;

/// What sending one kind of row needs, looked up once per batch.
struct Sender {
    body: serde_json::Value,
    token: SecretString,
    /// Whose grant the token is.
    subject: Subject,
    user_id: UserId,
    lane: Lane,
    retry: RetryPolicy,
}

/// A sender, or why the rows that need it cannot go now.
enum Prepared {
    Ready(Sender),
    /// Put the rows back, as if never tried (the seller must reconnect, or Divar's OAuth
    /// server is away).
    Later,
    /// A final outcome for the rows.
    Fail(Failure),
    /// Count the attempt and try again after a backoff (a person's message while Divar's
    /// OAuth server is away), or fail once the attempts run out.
    Retry {
        failure: Failure,
        retry: RetryPolicy,
    },
}

#[derive(Clone)]
pub struct OutboxWorker {
    db: Db,
    vault: Vault,
    api: KenarApi,
    pacer: Pacer,
    settings: OutboxSettings,
    lanes: Lanes,
    /// Names this worker's leases.
    id: String,
    /// Notified when a single send is committed.
    wake: Arc<Notify>,
    /// Set when a worker of this pool finished rows since the last completion check. Starts set,
    /// so a restarted process completes broadcasts whose last rows an earlier one recorded.
    finished_rows: Arc<AtomicBool>,
    /// When the pool last ran the completion check (ms); it also runs now and then when idle,
    /// to settle rows another process left behind.
    last_completion: Arc<AtomicI64>,
    /// Rows this pool recorded a final outcome for (the stop line says how many were drained).
    recorded: Arc<AtomicU64>,
    /// Cancelled when the process stops: rows still waiting for their turn are given back.
    stopping: CancellationToken,
    /// Due times, leases and backoff are read on it.
    clock: SharedClock,
}

impl OutboxWorker {
    pub fn new(
        db: Db,
        vault: Vault,
        api: KenarApi,
        pacer: Pacer,
        mut settings: OutboxSettings,
        clock: SharedClock,
    ) -> Self {
        // A claimed row waits its turn at the pacer; keep batches small enough that every row
        // of one is sent well within its lease, even with all workers sharing the budget.
        if let Some(per_minute) = pacer.limit_per_minute() {
            let per_lease = u64::from(per_minute) * settings.lease.as_secs() / 60;
            let fits = per_lease / 2 / (settings.workers as u64 + 1);
            settings.batch = settings.batch.min(fits.max(1) as usize);
        }
        Self {
            db,
            vault,
            api,
            pacer,
            settings,
            lanes: Lanes::All,
            id: uuid::Uuid::new_v4().to_string(),
            wake: Arc::new(Notify::new()),
            finished_rows: Arc::new(AtomicBool::new(true)),
            last_completion: Arc::new(AtomicI64::new(0)),
            recorded: Arc::new(AtomicU64::new(0)),
            stopping: CancellationToken::new(),
            clock,
        }
    }

    /// How many rows this pool has recorded a final outcome for since it was built.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Acquire)
    }

    /// The pacer every worker of this pool sends through.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// What the web side notifies when it commits a single send.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The express worker: single sends only, claimed in turns across the people who sent them.
    /// Paced, it claims half a second of sends at a time, at most two claims ahead: what waits
    /// at the pacer is never more than about a second of one person's backlog, so another
    /// person's message, claimed in the next round, goes out within a second or two. Unpaced,
    /// nothing waits, and a claim takes up to [`EXPRESS_BATCH`].
    pub fn express(&self) -> Self {
        let mut settings = self.settings;
        settings.batch = match self.pacer.limit_per_minute() {
            Some(per_minute) => {
                (u64::from(per_minute) / 120).clamp(1, EXPRESS_BATCH as u64) as usize
            }
            None => EXPRESS_BATCH,
        };
        Self {
            lanes: Lanes::InteractiveOnly,
            id: uuid::Uuid::new_v4().to_string(),
            settings,
            ..self.clone()
        }
    }

    /// Runs `settings.workers` loops and the express worker until `shutdown`; each finishes
    /// its current batch first.
    pub fn spawn_pool(&self, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let pool = Self {
            stopping: shutdown.clone(),
            ..self.clone()
        };
        // Single sends are the express worker's alone: it takes them in turns across people.
        let general = (0..self.settings.workers).map(|_| Self {
            id: uuid::Uuid::new_v4().to_string(),
            lanes: Lanes::BulkOnly,
            ..pool.clone()
        });
        std::iter::once(pool.express())
            .chain(general)
            .map(|worker| tokio::spawn(worker.run_until_stopped(shutdown.clone())))
            .collect()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        match self.lanes {
            Lanes::All | Lanes::BulkOnly => self.run_batches_in_turn(shutdown).await,
            Lanes::InteractiveOnly => self.run_batches_overlapping(shutdown).await,
        }
    }

    /// The express worker does not wait for one batch to end before claiming the next: a
    /// message committed while earlier ones wait for their turns joins them in the
    /// interactive lane at once, so no broadcast row slips in between.
    /// After a failed batch it claims nothing more until its backoff has passed, unless a send
    /// is committed meanwhile (the database answers again).
    async fn run_batches_overlapping(self, shutdown: CancellationToken) {
        let mut batches = tokio::task::JoinSet::new();
        let mut backoff = Backoff::default();
        let mut next_claim = tokio::time::Instant::now();
        // Wake-ups so far: a batch that found nothing does not put off a claim that a send
        // committed after it began asked for.
        let mut wakes: u64 = 0;
        while !shutdown.is_cancelled() {
            if batches.len() < EXPRESS_BATCHES_IN_FLIGHT
                && tokio::time::Instant::now() >= next_claim
            {
                // Each batch its own lease name, so one batch never finishes another's rows.
                let worker = Self {
                    id: uuid::Uuid::new_v4().to_string(),
                    ..self.clone()
                };
                let woken_then = wakes;
                batches.spawn(async move {
                    let began = std::time::Instant::now();
                    (began, woken_then, worker.try_execute_task().await)
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.idle) => {}
                _ = self.wake.notified() => {
                    wakes += 1;
                    next_claim = tokio::time::Instant::now();
                }
                _ = reachability::database().recovered() => next_claim = tokio::time::Instant::now(),
                // A batch done: claim the next round at once while there is work, so the pacer
                // never waits for the idle tick (an empty claim waits for it).
                Some(finished) = batches.join_next(), if !batches.is_empty() => {
                    next_claim = match finished {
                        Ok((began, woken_then, Ok(outcome))) => {
                            reachability::database().reached_by(began);
                            backoff.reset();
                            match outcome {
                                ExecutionOutcome::TaskCompleted => tokio::time::Instant::now(),
                                ExecutionOutcome::EmptyQueue if woken_then != wakes => {
                                    tokio::time::Instant::now()
                                }
                                ExecutionOutcome::EmptyQueue => {
                                    tokio::time::Instant::now() + self.settings.idle
                                }
                            }
                        }
                        Ok((_, _, Err(error))) => {
                            report_failure(&error);
                            tokio::time::Instant::now() + backoff.next_delay()
                        }
                        Err(error) => {
                            tracing::error!(%error, "express outbox batch panicked");
                            tokio::time::Instant::now() + self.settings.idle
                        }
                    };
                }
                _ = shutdown.cancelled() => {}
            }
        }
        while let Some(finished) = batches.join_next().await {
            match finished {
                Ok((_, _, Ok(_))) => {}
                Ok((_, _, Err(error))) => {
                    report_failure(&error);
                }
                Err(error) => tracing::error!(%error, "express outbox batch panicked"),
            }
        }
    }

    async fn run_batches_in_turn(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let began = std::time::Instant::now();
            let outcome = self.try_execute_task().await;
            if outcome.is_ok() {
                reachability::database().reached_by(began);
                backoff.reset();
            }
            let pause = match outcome {
                Ok(ExecutionOutcome::TaskCompleted) => None,
                Ok(ExecutionOutcome::EmptyQueue) => Some(self.settings.idle),
                Err(error) => Some(failure_pause(&error, &mut backoff)),
            };
            // A committed single send wakes one waiter: the worker that takes single sends. A
            // broadcast-only worker must not take the wake-up from it.
            let woken = async {
                if self.lanes == Lanes::BulkOnly {
                    std::future::pending::<()>().await
                }
                self.wake.notified().await
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = woken => {}
                    _ = reachability::database().recovered() => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// Claims a batch of due rows and handles each. Public so tests and the benchmark can drain
    /// the queue step by step.
    pub async fn try_execute_task(&self) -> anyhow::Result<ExecutionOutcome> {
        let lease_ms = self.settings.lease.as_millis() as i64;
        let rows = outbox::claim_batch(
            &self.db,
            &self.id,
            lease_ms,
            self.settings.batch as i64,
            self.lanes,
            self.clock.now_ms(),
        )
        .await?;
        if rows.is_empty() {
            // The queue ran dry: mark what this process finished as done, once (and now and then
            // anyway, for what a dead process left behind).
            let now = self.clock.now_ms();
            let overdue = now - self.last_completion.load(Ordering::Acquire)
                > COMPLETION_CHECK_EVERY.as_millis() as i64;
            if self.finished_rows.swap(false, Ordering::AcqRel) || overdue {
                self.last_completion.store(now, Ordering::Release);
                match outbox::complete_finished(&self.db, now).await {
                    Ok(done) => self.summarize(&done).await,
                    Err(error) => {
                        // Try again on the next dry run rather than leave a finished broadcast
                        // running.
                        self.finished_rows.store(true, Ordering::Release);
                        return Err(error);
                    }
                }
            }
            return Ok(ExecutionOutcome::EmptyQueue);
        }
        let senders = self.prepare_all(&rows).await;
        // A row still waiting for its turn this late is given back before its lease runs out,
        // so no other worker sends it meanwhile.
        let give_back_at = tokio::time::Instant::now() + self.settings.lease * 3 / 4;
        // The batch's rows go out together (still one at a time through the pacer): a batch
        // lasts about as long as its longest chain (a chat's rows, a few at most), so a slow
        // Divar does not keep claimed rows unrecorded, and off the progress page, for one round
        // trip after another.
        // Paced rows may wait long for their turns: a cancel stops the waiting ones.
        let cancels: HashMap<&Source, CancellationToken> = rows
            .iter()
            .filter(|row| matches!(row.source, Source::Broadcast(_)))
            .map(|row| (&row.source, CancellationToken::new()))
            .collect();
        // Never ends by itself: it runs beside the sends and stops with them.
        let watch = async {
            if self.pacer.limit_per_minute().is_none() || cancels.is_empty() {
                return std::future::pending::<std::convert::Infallible>().await;
            }
            loop {
                tokio::time::sleep(CANCEL_POLL).await;
                for (source, token) in &cancels {
                    let cancelled = match source {
                        Source::Broadcast(id) => broadcasts::is_cancelled(&self.db, id).await,
                        Source::Message(_) => Ok(false),
                    };
                    if cancelled.unwrap_or(false) {
                        token.cancel();
                    }
                }
            }
        };
        // A chat's single sends go one after another, in the order they were queued, each once
        // the one before it has its outcome; when one must wait instead (a retry, a give-back),
        // the rest of the chain is given back behind it. Everything else goes at once.
        let sends = futures::future::join_all(chains(&rows).into_iter().map(|chain| async {
            let mut outcomes = Vec::with_capacity(chain.len());
            let mut go_on = true;
            for row in chain {
                let outcome = if go_on {
                    self.handle(row, &senders[&row.source], &cancels, give_back_at)
                        .await
                } else {
                    self.give_back(row).await
                };
                go_on = matches!(outcome, Ok(Some(_)));
                outcomes.push(outcome);
            }
            outcomes
        }));
        let outcomes = tokio::select! {
            outcomes = sends => outcomes.into_iter().flatten(),
            never = watch => match never {},
        };
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
        if outbox::finish_many(&self.db, &self.id, &done, self.clock.now_ms()).await? {
            self.recorded.fetch_add(done.len() as u64, Ordering::AcqRel);
        } else {
            tracing::warn!("lost a lease before recording a batch's outcomes");
        }
        self.finished_rows.store(true, Ordering::Release);
        match failed {
            Some(error) => Err(error),
            None => Ok(ExecutionOutcome::TaskCompleted),
        }
    }

    /// One line per broadcast that ended with failures: the operator's view of it, without
    /// anything about the people in it.
    async fn summarize(&self, done: &[String]) {
        for broadcast_id in done {
            match broadcasts::progress(&self.db, broadcast_id).await {
                Ok(progress) if progress.failed > 0 => tracing::warn!(
                    broadcast_id,
                    sent = progress.sent,
                    failed = progress.failed,
                    "a broadcast ended with failures"
                ),
                Ok(_) => tracing::info!(broadcast_id, "a broadcast ended"),
                Err(error) => tracing::debug!(%error, "could not summarize a broadcast"),
            }
        }
    }

    /// Sends one row as its source allows; a final outcome comes back for the batch to record.
    async fn handle(
        &self,
        row: &Claimed,
        prepared: &Prepared,
        cancels: &HashMap<&Source, CancellationToken>,
        give_back_at: tokio::time::Instant,
    ) -> anyhow::Result<Option<Finished>> {
        match prepared {
            Prepared::Ready(sender) => {
                self.deliver(row, sender, cancels.get(&row.source), give_back_at)
                    .await
            }
            Prepared::Fail(failure) => Ok(Some(finished(row, Outcome::Failed, Some(*failure)))),
            Prepared::Retry { failure, retry } => {
                let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                if attempts >= retry.max_attempts {
                    Ok(Some(finished(row, Outcome::Failed, Some(*failure))))
                } else {
                    self.retry_later(row, *failure, retry.backoff(attempts, None))
                        .await
                        .map(|()| None)
                }
            }
            // The row waits a little, its attempt not counted.
            Prepared::Later => {
                let now = self.clock.now_ms();
                outbox::reschedule(
                    &self.db,
                    &row.outbox_id,
                    &self.id,
                    now + 2000,
                    None,
                    true,
                    now,
                )
                .await
                .map(|()| None)
            }
        }
    }

    /// What sending each broadcast's and each message's rows of a batch needs: one read for the
    /// batch's messages, one per broadcast (a batch holds one or two), and one for all their
    /// grants. A failed read costs its own rows an attempt, not the whole batch.
    async fn prepare_all<'r>(&self, rows: &'r [Claimed]) -> HashMap<&'r Source, Prepared> {
        let mut seen = HashSet::new();
        let sources: Vec<&Source> = rows
            .iter()
            .map(|row| &row.source)
            .filter(|source| seen.insert(*source))
            .collect();
        let message_ids: Vec<&str> = sources
            .iter()
            .filter_map(|source| match source {
                Source::Message(id) => Some(id.as_str()),
                Source::Broadcast(_) => None,
            })
            .collect();
        let messages = match messages::find_many(&self.db, &message_ids).await {
            Ok(found) => Ok(found
                .into_iter()
                .map(|m| (m.message_id.clone(), m))
                .collect::<HashMap<_, _>>()),
            Err(error) => Err(report_lookup_failure(&error)),
        };
        let mut prepared = HashMap::new();
        let mut senders: Vec<(&Source, Sender)> = Vec::new();
        for source in sources {
            let sender = match source {
                Source::Broadcast(id) => self.broadcast_sender(id).await,
                Source::Message(id) => match &messages {
                    Ok(found) => self.message_sender(found.get(id), id),
                    Err(reported) => Err(*reported),
                },
            };
            match sender {
                Ok(sender) => senders.push((source, sender)),
                Err(LookupFailed) => {
                    prepared.insert(source, self.retry_later_prepared(source));
                }
            }
        }
        // One token per grant, however many of the batch's rows it sends.
        let mut grants: Vec<(Subject, UserId)> = Vec::new();
        let mut grant_of: HashMap<(Subject, UserId), usize> = HashMap::new();
        for (_, sender) in &senders {
            let grant = (sender.subject.clone(), sender.user_id.clone());
            grant_of.entry(grant.clone()).or_insert_with(|| {
                grants.push(grant);
                grants.len() - 1
            });
        }
        let tokens = match self.vault.access_tokens(&grants).await {
            Ok(tokens) => tokens,
            Err(error) => {
                report_lookup_failure(&error);
                for (source, _) in senders {
                    prepared.insert(source, self.retry_later_prepared(source));
                }
                return prepared;
            }
        };
        for ((subject, _), token) in grants.iter().zip(&tokens) {
            // A refresh ends the post's event subscriptions: made again, once per grant.
            if let (Subject::Post(post_token), Ok(token)) = (subject, token)
                && token.refreshed
            {
                delivery::subscribe_post_events(&self.api, &token.secret, post_token, &token.scope)
                    .await;
            }
        }
        for (source, sender) in senders {
            let token = &tokens[grant_of[&(sender.subject.clone(), sender.user_id.clone())]];
            let ready = match self.with_token(sender, token).await {
                Ok(ready) => ready,
                Err(error) => {
                    report_lookup_failure(&error);
                    self.retry_later_prepared(source)
                }
            };
            prepared.insert(source, ready);
        }
        prepared
    }

    /// A source whose lookup failed: its rows are tried again after a backoff.
    fn retry_later_prepared(&self, source: &Source) -> Prepared {
        Prepared::Retry {
            failure: Failure::Unavailable,
            retry: match source {
                Source::Broadcast(_) => self.settings.retry,
                Source::Message(_) => self.settings.interactive_retry,
            },
        }
    }

    /// What sending a broadcast's rows needs, but the token.
    async fn broadcast_sender(&self, id: &str) -> Result<Sender, LookupFailed> {
        let sender = async {
            let Some(b) = broadcasts::find(&self.db, id).await? else {
                anyhow::bail!("outbox rows without their broadcast {id}");
            };
            Ok(Sender {
                body: serde_json::from_str(&b.body)?,
                token: SecretString::from(String::new()),
                subject: Subject::Post(b.post_token),
                user_id: b.user_id,
                lane: Lane::Bulk,
                retry: self.settings.retry,
            })
        };
        sender.await.map_err(|error| report_lookup_failure(&error))
    }

    /// What sending message `id`'s row needs, but the token, from its row in the batch's read.
    fn message_sender(
        &self,
        found: Option<&messages::MessageRow>,
        id: &str,
    ) -> Result<Sender, LookupFailed> {
        let sender = || {
            let Some(m) = found else {
                anyhow::bail!("an outbox row without its message {id}");
            };
            Ok(Sender {
                body: serde_json::from_str(&m.body)?,
                token: SecretString::from(String::new()),
                subject: Subject::Conversation(m.conversation_id.clone()),
                user_id: m.user_id.clone(),
                lane: Lane::Interactive,
                retry: self.settings.interactive_retry,
            })
        };
        sender().map_err(|error| report_lookup_failure(&error))
    }

    /// The sender with its grant's access token, or what its rows do without one. An error is
    /// the database's.
    async fn with_token(
        &self,
        mut sender: Sender,
        token: &Result<AccessToken, VaultError>,
    ) -> anyhow::Result<Prepared> {
        match token {
            Ok(token) => {
                sender.token = token.secret.clone();
                Ok(Prepared::Ready(sender))
            }
            Err(VaultError::NoGrant | VaultError::Reconsent) => self.lost_grant(&sender).await,
            Err(VaultError::Unavailable(reason)) => {
                // Divar's OAuth server is away: said once for the outage, not once per batch.
                reachability::divar_api().failed(reason);
                Ok(match sender.lane {
                    Lane::Bulk => Prepared::Later,
                    // A person is waiting: a few attempts, then say so.
                    Lane::Interactive => Prepared::Retry {
                        failure: Failure::Unavailable,
                        retry: sender.retry,
                    },
                })
            }
            Err(VaultError::Store(error)) => {
                report_lookup_failure(error);
                Ok(Prepared::Retry {
                    failure: Failure::Unavailable,
                    retry: sender.retry,
                })
            }
        }
    }

    /// The grant is gone or no longer works: a broadcast pauses until the seller reconnects
    /// (and resumes then); a single send fails, and goes out when the person consents again.
    async fn lost_grant(&self, sender: &Sender) -> anyhow::Result<Prepared> {
        match &sender.subject {
            Subject::Post(post_token) => {
                broadcasts::pause_for_grant(
                    &self.db,
                    post_token,
                    &sender.user_id,
                    STOPPED_FOR_RECONSENT,
                    self.clock.now_ms(),
                )
                .await?;
                Ok(Prepared::Later)
            }
            Subject::Conversation(_) => Ok(Prepared::Fail(Failure::Reconsent)),
        }
    }

    /// Sends one row; a final outcome comes back for the batch to record.
    async fn deliver(
        &self,
        row: &Claimed,
        sender: &Sender,
        cancel: Option<&CancellationToken>,
        give_back_at: tokio::time::Instant,
    ) -> anyhow::Result<Option<Finished>> {
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        // In this order: a row whose give-back time has passed (late in a chain) is given back
        // even when the pacer would let it go at once.
        let waited = tokio::select! {
            biased;
            // Not attempted: back in the queue, its attempt refunded.
            _ = self.stopping.cancelled() => return self.give_back(row).await,
            _ = tokio::time::sleep_until(give_back_at) => return self.give_back(row).await,
            _ = cancel.cancelled() => return Ok(Some(finished(row, Outcome::Cancelled, None))),
            waited = self.pacer.ready(sender.lane) => waited,
        };
        if waited >= CANCEL_CHECK_AFTER && self.cancelled(row).await? {
            return Ok(Some(finished(row, Outcome::Cancelled, None)));
        }
        // A body with a photo or file is two calls, media first, each under its own key: a retry
        // after the first went out sends it again under the same key (docs/messaging.md, *Media*).
        let mut result = Ok(());
        for (part, suffix) in message::send_parts(&sender.body) {
            let key = format!("{}{suffix}", row.idempotency_key);
            result = self
                .api
                .send_message(&row.conversation_id, &sender.token, &part, &key)
                .await;
            if result.is_err() {
                break;
            }
        }
        let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        match delivery::judge(&result, attempts, &sender.retry) {
            Verdict::Delivered => Ok(Some(finished(row, Outcome::Sent, None))),
            Verdict::Failed(failure) => Ok(Some(finished(row, Outcome::Failed, Some(failure)))),
            Verdict::Reconsent => {
                self.vault.forget(&sender.subject, &sender.user_id).await?;
                match self.lost_grant(sender).await? {
                    Prepared::Fail(failure) => {
                        Ok(Some(finished(row, Outcome::Failed, Some(failure))))
                    }
                    _ => {
                        let now = self.clock.now_ms();
                        outbox::reschedule(
                            &self.db,
                            &row.outbox_id,
                            &self.id,
                            now,
                            None,
                            true,
                            now,
                        )
                        .await?;
                        Ok(None)
                    }
                }
            }
            Verdict::RetryAfter { wait, failure } => {
                // A cancelled broadcast starts no new attempt.
                if self.cancelled(row).await? {
                    return Ok(Some(finished(row, Outcome::Cancelled, None)));
                }
                self.retry_later(row, failure, wait).await?;
                Ok(None)
            }
        }
    }

    /// Puts a row that was not attempted back in the queue, due at once.
    async fn give_back(&self, row: &Claimed) -> anyhow::Result<Option<Finished>> {
        let now = self.clock.now_ms();
        outbox::reschedule(&self.db, &row.outbox_id, &self.id, now, None, true, now).await?;
        Ok(None)
    }

    /// Puts a row back for another attempt after `wait`, its attempt counted.
    async fn retry_later(
        &self,
        row: &Claimed,
        failure: Failure,
        wait: Duration,
    ) -> anyhow::Result<()> {
        // Per row: an outage of Divar is said once, by `delivery::judge`.
        tracing::debug!(
            failure = failure.as_str(),
            attempt = row.attempts,
            wait_ms = wait.as_millis() as u64,
            "retrying a send"
        );
        let now = self.clock.now_ms();
        let at = now + wait.as_millis() as i64;
        outbox::reschedule(
            &self.db,
            &row.outbox_id,
            &self.id,
            at,
            Some(failure.as_str()),
            false,
            now,
        )
        .await
    }

    async fn cancelled(&self, row: &Claimed) -> anyhow::Result<bool> {
        match &row.source {
            Source::Broadcast(id) => broadcasts::is_cancelled(&self.db, id).await,
            Source::Message(_) => Ok(false),
        }
    }
}

/// A lookup for a batch failed, and was reported.
#[derive(Debug, Clone, Copy)]
struct LookupFailed;

fn report_lookup_failure(error: &anyhow::Error) -> LookupFailed {
    report(error, "could not prepare outbox rows; retrying them later");
    LookupFailed
}

/// How long a worker waits after a failed batch: its next step of backoff.
fn failure_pause(error: &anyhow::Error, backoff: &mut Backoff) -> Duration {
    report_failure(error);
    backoff.next_delay()
}

fn report_failure(error: &anyhow::Error) {
    report(error, "outbox batch failed; backing off");
}

/// The database being away is said once for the whole outage (`observe::reachability`); any
/// other failure is an ERROR each time.
fn report(error: &anyhow::Error, message: &str) {
    if db::is_unavailable(error) {
        reachability::database().failed(&format!("{error:#}"));
    } else {
        tracing::error!(error = format!("{error:#}"), "{message}");
    }
}

/// The batch's rows in chains that go out at once: a chat's single sends are one chain, in the
/// order they were queued (the rows come sorted by it); every other row is a chain of its own.
fn chains(rows: &[Claimed]) -> Vec<Vec<&Claimed>> {
    let mut chains: Vec<Vec<&Claimed>> = Vec::new();
    let mut chats: HashMap<&ConversationId, usize> = HashMap::new();
    for row in rows {
        match &row.source {
            Source::Message(_) => match chats.get(&row.conversation_id) {
                Some(&i) => chains[i].push(row),
                None => {
                    chats.insert(&row.conversation_id, chains.len());
                    chains.push(vec![row]);
                }
            },
            Source::Broadcast(_) => chains.push(vec![row]),
        }
    }
    chains
}

/// A final outcome; the batch writes all of them in one statement at its end.
fn finished(row: &Claimed, status: Outcome, failure: Option<Failure>) -> Finished {
    Finished {
        outbox_id: row.outbox_id.clone(),
        message_id: match &row.source {
            Source::Message(id) => Some(id.clone()),
            Source::Broadcast(_) => None,
        },
        status,
        failure: failure.map(Failure::as_str),
    }
}
