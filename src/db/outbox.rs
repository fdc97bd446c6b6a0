//! The outbox: one row per message to deliver (a single send, or one conversation of a
//! broadcast), claimed by workers under a lease.

use sqlx::{Any, FromRow, Row, Transaction, any::AnyRow};

use super::{Backend, Db, now_ms};
use crate::domain::{
    ConversationId, PostToken, UserId,
    status::{BroadcastStatus, MessageStatus, Outcome},
};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Broadcast {
    pub broadcast_id: String,
    pub post_token: PostToken,
    pub user_id: UserId,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: BroadcastStatus,
    pub paused_reason: Option<String>,
    pub total: i64,
    pub created_at: i64,
}

/// What an outbox row delivers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// One conversation of a seller's broadcast.
    Broadcast(String),
    /// A message a person sent from the composer.
    Message(String),
}

/// A row a worker has claimed and must finish, reschedule or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub outbox_id: String,
    pub source: Source,
    pub conversation_id: ConversationId,
    pub idempotency_key: String,
    /// Including the attempt just claimed.
    pub attempts: i64,
}

/// Which rows a worker takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// Single sends first, then broadcast rows.
    All,
    /// Single sends only: the express worker, which a person's send wakes.
    InteractiveOnly,
}

/// `priority` of an outbox row: lower is claimed first.
const PRIORITY_INTERACTIVE: i64 = 0;
const PRIORITY_BULK: i64 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
}

pub enum Created {
    New(String),
    /// The confirm form was submitted before: that broadcast.
    Existing(String),
}

/// Outbox rows per insert statement: 3 parameters each, well under both engines' limits
/// (SQLite 32,766, PostgreSQL 65,535).
const OUTBOX_INSERT_CHUNK: usize = 500;

/// Broadcasts of at least this many rows refresh PostgreSQL's statistics (see below).
const ANALYZE_AFTER_ROWS: usize = 200;

/// Writes a broadcast and its outbox rows in one transaction.
pub async fn create_broadcast(
    db: &Db,
    idempotency_key: &str,
    post_token: &PostToken,
    user_id: &UserId,
    body: &str,
    conversation_ids: &[ConversationId],
) -> anyhow::Result<Created> {
    let now = now_ms();
    let broadcast_id = uuid::Uuid::new_v4().to_string();
    let mut tx: Transaction<'_, Any> = db.pool().begin().await?;
    let inserted = sqlx::query(
        "insert into broadcasts (broadcast_id, idempotency_key, post_token, user_id, body, status, paused_reason,
             total, created_at, updated_at)
         values ($1, $2, $3, $4, $5, 'running', null, $6, $7, $7)
         on conflict (idempotency_key) do nothing",
    )
    .bind(&broadcast_id)
    .bind(idempotency_key)
    .bind(post_token)
    .bind(user_id)
    .bind(body)
    .bind(conversation_ids.len() as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let existing: String =
            sqlx::query("select broadcast_id from broadcasts where idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_one(&mut *tx)
                .await?
                .try_get("broadcast_id")?;
        return Ok(Created::Existing(existing));
    }
    // Many rows per statement: one round trip per chunk instead of one per conversation.
    for chunk in conversation_ids.chunks(OUTBOX_INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 4 + 3 * i;
                format!(
                    "(${n}, $1, null, ${}, ${}, $3, 'pending', null, 0, $2, null, null, $2, $2)",
                    n + 1,
                    n + 2
                )
            })
            .collect();
        let sql = format!(
            "insert into outbox (outbox_id, broadcast_id, message_id, conversation_id, idempotency_key, priority,
                 status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
             values {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(&broadcast_id)
            .bind(now)
            .bind(PRIORITY_BULK);
        // Time-ordered ids append to the indexes instead of landing all over them.
        for conversation_id in chunk {
            query = query
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(conversation_id)
                .bind(uuid::Uuid::now_v7().to_string());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    if db.backend() == Backend::Postgres && conversation_ids.len() >= ANALYZE_AFTER_ROWS {
        // PostgreSQL plans by table statistics, and until autovacuum's next ANALYZE (up to a
        // minute later) they still describe an outbox without these rows: claims then sort
        // every pending row of the broadcast and outcome updates scan them all instead of
        // using the primary key. Refresh them now, as the manual advises after a bulk load.
        // The broadcast is already stored: a failure here only costs speed until autovacuum.
        if let Err(error) = sqlx::query("analyze broadcasts, outbox")
            .execute(db.pool())
            .await
        {
            tracing::warn!(%error, "could not refresh the outbox statistics");
        }
    }
    Ok(Created::New(broadcast_id))
}

/// Queues a single send inside the caller's transaction (the one that records the message),
/// due at once and ahead of broadcast rows.
pub async fn enqueue_message(
    tx: &mut Transaction<'_, Any>,
    message_id: &str,
    conversation_id: &ConversationId,
    idempotency_key: &str,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into outbox (outbox_id, broadcast_id, message_id, conversation_id, idempotency_key, priority,
             status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
         values ($1, null, $2, $3, $4, $5, 'pending', null, 0, $6, null, null, $6, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(message_id)
    .bind(conversation_id)
    .bind(idempotency_key)
    .bind(PRIORITY_INTERACTIVE)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Puts a message's row back in the queue for a fresh series of attempts, inside the caller's
/// transaction (the one that moves the message back to `sending`). False when it has no row.
pub async fn requeue_message(
    tx: &mut Transaction<'_, Any>,
    message_id: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "update outbox set status = 'pending', failure = null, attempts = 0, next_attempt_at = $1,
             locked_until = null, locked_by = null, updated_at = $1
         where message_id = $2",
    )
    .bind(now)
    .bind(message_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where outbox bookkeeping (claims, outcomes, completion) runs.
///
/// PostgreSQL: a transaction whose commit does not wait for the WAL flush. Should the database
/// server itself crash right after, a claim, an outcome or a completion is lost, which only means
/// a row is claimed and sent again under the same idempotency key; waiting would cost a disk
/// flush per batch. SQLite: straight on the pool; each statement commits on its own and, in WAL
/// mode with `synchronous = normal`, a commit does not wait for the disk either. A separate
/// BEGIN and COMMIT would only add two round trips to SQLite's connection thread, unless
/// several statements must take effect together ([`Bookkeeping::begin_atomic`]).
enum Bookkeeping<'a> {
    Transaction(Transaction<'static, Any>),
    Pool(&'a sqlx::AnyPool),
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

impl<'a> Bookkeeping<'a> {
    async fn begin(db: &'a Db) -> anyhow::Result<Self> {
        Ok(match db.backend() {
            Backend::Postgres => {
                // One round trip: the setting travels with BEGIN.
                let tx = db
                    .pool()
                    .begin_with("begin; set local synchronous_commit = off")
                    .await?;
                Self::Transaction(tx)
            }
            Backend::Sqlite => Self::Pool(db.pool()),
        })
    }

    /// Like [`Bookkeeping::begin`], but all or nothing on SQLite too.
    async fn begin_atomic(db: &'a Db) -> anyhow::Result<Self> {
        Ok(match db.backend() {
            Backend::Postgres => Self::begin(db).await?,
            Backend::Sqlite => Self::Transaction(db.pool().begin().await?),
        })
    }

    async fn fetch_all(&mut self, query: AnyQuery<'_>) -> anyhow::Result<Vec<AnyRow>> {
        Ok(match self {
            Self::Transaction(tx) => query.fetch_all(&mut **tx).await?,
            Self::Pool(pool) => query.fetch_all(*pool).await?,
        })
    }

    async fn execute(&mut self, query: AnyQuery<'_>) -> anyhow::Result<u64> {
        Ok(match self {
            Self::Transaction(tx) => query.execute(&mut **tx).await?,
            Self::Pool(pool) => query.execute(*pool).await?,
        }
        .rows_affected())
    }

    async fn commit(self) -> anyhow::Result<()> {
        if let Self::Transaction(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// For a bookkeeping statement that runs alone: on PostgreSQL a CTE to put first in its `with`
/// list, and a join to add to its `from`, that turn off `synchronous_commit` for the
/// statement's own transaction (`set_config(…, true)`), so it needs no BEGIN and COMMIT of its
/// own (see [`Bookkeeping`] for why the commit need not wait for the disk). Nothing on SQLite.
fn async_commit(db: &Db) -> (&'static str, &'static str) {
    match db.backend() {
        Backend::Postgres => (
            "async_commit as (select set_config('synchronous_commit', 'off', true) as done),",
            ", async_commit",
        ),
        Backend::Sqlite => ("", ""),
    }
}

/// Claims up to `limit` due rows for `lease_ms`: single sends first, then rows of running
/// broadcasts. Two workers never get the same row: PostgreSQL skips rows another transaction
/// holds; SQLite runs one writer at a time, and the outer `where` repeats the lease condition,
/// so a racing claim updates nothing.
pub async fn claim_batch(
    db: &Db,
    worker: &str,
    lease_ms: i64,
    limit: i64,
    lanes: Lanes,
) -> anyhow::Result<Vec<Claimed>> {
    let now = now_ms();
    // The dialect switches of the outbox: only PostgreSQL has SKIP LOCKED, and only there a
    // commit waits for the disk (see [`async_commit`]).
    let lock_clause = match db.backend() {
        Backend::Postgres => "for update of o skip locked",
        Backend::Sqlite => "",
    };
    let (async_cte, async_from) = async_commit(db);
    let lane_clause = match lanes {
        Lanes::All => "",
        Lanes::InteractiveOnly => "and o.priority = 0",
    };
    // The pick is a CTE: PostgreSQL evaluates it once, so LIMIT bounds the claim (a plain
    // `IN (subquery)` may be re-run and claim more rows than asked for).
    let sql = format!(
        "with {async_cte} picked as (
             select o.outbox_id from outbox o
             where o.status = 'pending' {lane_clause} and o.next_attempt_at <= $3
               and (o.locked_until is null or o.locked_until < $3)
               and (o.broadcast_id is null
                    or exists (select 1 from broadcasts b
                               where b.broadcast_id = o.broadcast_id and b.status = 'running'))
             order by o.priority, o.next_attempt_at, o.outbox_id
             limit $4 {lock_clause})
         update outbox set locked_until = $1, locked_by = $2, attempts = attempts + 1, updated_at = $3
         from picked {async_from}
         where outbox.outbox_id = picked.outbox_id
           and outbox.status = 'pending' and (outbox.locked_until is null or outbox.locked_until < $3)
         returning outbox.outbox_id, outbox.broadcast_id, outbox.message_id, outbox.conversation_id,
             outbox.idempotency_key, outbox.attempts"
    );
    // One statement, so no transaction around it: one round trip.
    let rows = sqlx::query(&sql)
        .bind(now + lease_ms)
        .bind(worker)
        .bind(now)
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Claimed::try_from(ClaimedRow::from_row(r)?))
        .collect()
}

/// A claimed row as stored: its source is one of two columns.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    outbox_id: String,
    broadcast_id: Option<String>,
    message_id: Option<String>,
    conversation_id: ConversationId,
    idempotency_key: String,
    attempts: i64,
}

impl TryFrom<ClaimedRow> for Claimed {
    type Error = anyhow::Error;

    fn try_from(row: ClaimedRow) -> anyhow::Result<Self> {
        let source = match (row.broadcast_id, row.message_id) {
            (Some(b), None) => Source::Broadcast(b),
            (None, Some(m)) => Source::Message(m),
            _ => anyhow::bail!("an outbox row must belong to one broadcast or one message"),
        };
        Ok(Self {
            outbox_id: row.outbox_id,
            source,
            conversation_id: row.conversation_id,
            idempotency_key: row.idempotency_key,
            attempts: row.attempts,
        })
    }
}

/// A final outcome for a row a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub outbox_id: String,
    /// Set for a single send: its message takes the same outcome.
    pub message_id: Option<String>,
    pub status: Outcome,
    pub failure: Option<&'static str>,
}

/// Records final outcomes for rows this worker holds, one statement per distinct outcome, and
/// the same outcome on the messages of single sends, in one transaction.
/// Returns false when some lease was lost (another worker took the row over).
pub async fn finish_many(db: &Db, worker: &str, outcomes: &[Finished]) -> anyhow::Result<bool> {
    if outcomes.is_empty() {
        return Ok(true);
    }
    type Key = (Outcome, Option<&'static str>);
    let mut groups: Vec<(Key, Vec<&str>)> = Vec::new();
    for outcome in outcomes {
        let key = (outcome.status, outcome.failure);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ids)) => ids.push(&outcome.outbox_id),
            None => groups.push((key, vec![&outcome.outbox_id])),
        }
    }
    let singles = outcomes.iter().any(|o| o.message_id.is_some());
    // The usual batch (one outcome for all, no single send): one statement, one round trip.
    if let ([((status, failure), ids)], false) = (groups.as_slice(), singles) {
        let (async_cte, async_from) = async_commit(db);
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 5)).collect();
        // `settled` is a one-row CTE, so the `from` has a first table on SQLite too.
        let sql = format!(
            "with {async_cte} settled as (select 1 as one)
             update outbox set status = $1, failure = $2, locked_until = null, locked_by = null, updated_at = $3
             from settled {async_from}
             where locked_by = $4 and status = 'pending' and outbox_id in ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(*failure)
            .bind(now_ms())
            .bind(worker);
        for id in ids {
            query = query.bind(*id);
        }
        let updated = query.execute(db.pool()).await?.rows_affected();
        return Ok(updated == outcomes.len() as u64);
    }
    // A single send's outcome goes to its outbox row and its message together, or not at all:
    // a message must never stay "sending" behind a finished row.
    let mut book = if singles {
        Bookkeeping::begin_atomic(db).await?
    } else {
        Bookkeeping::begin(db).await?
    };
    let mut updated = 0;
    for ((status, failure), ids) in groups {
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 5)).collect();
        let sql = format!(
            "update outbox set status = $1, failure = $2, locked_until = null, locked_by = null, updated_at = $3
             where locked_by = $4 and status = 'pending' and outbox_id in ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(failure)
            .bind(now_ms())
            .bind(worker);
        for id in ids {
            query = query.bind(id);
        }
        updated += book.execute(query).await?;
    }
    for outcome in outcomes {
        let Some(message_id) = &outcome.message_id else {
            continue;
        };
        book.execute(
            sqlx::query(
                // Only where the row's outcome took: a worker whose lease was lost (and whose
                // row another worker now holds) must not decide the message's status.
                "update messages set status = $1, failure = $2, updated_at = $3,
                     attempts = (select o.attempts from outbox o where o.message_id = $4)
                 where message_id = $4 and status = 'sending'
                   and exists (select 1 from outbox o where o.message_id = $4 and o.status = $5)",
            )
            .bind(message_status(outcome.status).as_str())
            .bind(outcome.failure)
            .bind(now_ms())
            .bind(message_id)
            .bind(outcome.status.as_str()),
        )
        .await?;
    }
    book.commit().await?;
    Ok(updated == outcomes.len() as u64)
}

/// What a single send's outcome makes of its message. Nothing cancels a single send today; if
/// something did, the person must see it did not go out, never a message stuck "sending".
fn message_status(outcome: Outcome) -> MessageStatus {
    match outcome {
        Outcome::Sent => MessageStatus::Sent,
        Outcome::Failed | Outcome::Cancelled => MessageStatus::Failed,
    }
}

/// Puts a row back for a later attempt (or, with `refund`, as if it was never tried).
pub async fn reschedule(
    db: &Db,
    outbox_id: &str,
    worker: &str,
    at: i64,
    failure: Option<&str>,
    refund: bool,
) -> anyhow::Result<()> {
    sqlx::query(
        "update outbox set next_attempt_at = $1, failure = $2, locked_until = null, locked_by = null,
             attempts = attempts - $3, updated_at = $4
         where outbox_id = $5 and locked_by = $6 and status = 'pending'",
    )
    .bind(at)
    .bind(failure)
    .bind(if refund { 1i64 } else { 0 })
    .bind(now_ms())
    .bind(outbox_id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The broadcast a confirm form with this idempotency key created, if any.
pub async fn broadcast_for_key(db: &Db, idempotency_key: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("select broadcast_id from broadcasts where idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| r.try_get("broadcast_id"))
        .transpose()
        .map_err(Into::into)
}

/// The broadcast made with this idempotency key, if it went to `conversation_id`: where a tap
/// on one of its buttons in that conversation leads.
pub async fn broadcast_sent_to(
    db: &Db,
    idempotency_key: &str,
    conversation_id: &ConversationId,
) -> anyhow::Result<Option<Broadcast>> {
    Ok(sqlx::query_as(&format!(
        "{BROADCAST} where idempotency_key = $1
           and exists (select 1 from outbox o
                       where o.broadcast_id = broadcasts.broadcast_id and o.conversation_id = $2)"
    ))
    .bind(idempotency_key)
    .bind(conversation_id)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn find_broadcast(db: &Db, broadcast_id: &str) -> anyhow::Result<Option<Broadcast>> {
    Ok(
        sqlx::query_as(&format!("{BROADCAST} where broadcast_id = $1"))
            .bind(broadcast_id)
            .fetch_optional(db.pool())
            .await?,
    )
}

pub async fn list_broadcasts(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
) -> anyhow::Result<Vec<Broadcast>> {
    Ok(sqlx::query_as(&format!(
        "{BROADCAST} where post_token = $1 and user_id = $2 order by created_at desc limit 50"
    ))
    .bind(post_token)
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Pauses every running broadcast of a seller's post (their token stopped working).
pub async fn pause_for_grant(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "update broadcasts set status = 'paused', paused_reason = $1, updated_at = $2
         where post_token = $3 and user_id = $4 and status = 'running'",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(post_token)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Resumes a seller's paused broadcasts after they reconnect (one whose rows all ended while
/// it was paused is done).
pub async fn resume_for_grant(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
) -> anyhow::Result<()> {
    sqlx::query(
        "update broadcasts set paused_reason = null, updated_at = $1,
             status = case when exists (select 1 from outbox
                                        where outbox.broadcast_id = broadcasts.broadcast_id
                                          and outbox.status = 'pending')
                           then 'running' else 'done' end
         where post_token = $2 and user_id = $3 and status = 'paused'",
    )
    .bind(now_ms())
    .bind(post_token)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Cancels a broadcast: its pending rows are never sent.
pub async fn cancel(db: &Db, broadcast_id: &str) -> anyhow::Result<bool> {
    let mut tx = db.pool().begin().await?;
    let now = now_ms();
    let changed = sqlx::query(
        "update broadcasts set status = 'cancelled', updated_at = $1
         where broadcast_id = $2 and status in ('running', 'paused')",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update outbox set status = 'cancelled', updated_at = $1
         where broadcast_id = $2 and status = 'pending' and (locked_until is null or locked_until < $1)",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed.rows_affected() == 1)
}

/// Marks running broadcasts done once nothing of them is pending; returns their ids. Workers
/// call it when the queue runs dry after they finished rows, not after every batch.
pub async fn complete_finished(db: &Db) -> anyhow::Result<Vec<String>> {
    let now = now_ms();
    let mut book = Bookkeeping::begin(db).await?;
    // Rows of a cancelled broadcast that a worker still held when it was cancelled, and then
    // gave back or left behind (it died): nobody claims them any more, so settle them here.
    book.execute(
        sqlx::query(
            "update outbox set status = 'cancelled', locked_until = null, locked_by = null, updated_at = $1
             where status = 'pending' and broadcast_id is not null
               and (locked_until is null or locked_until < $1)
               and exists (select 1 from broadcasts b
                           where b.broadcast_id = outbox.broadcast_id and b.status = 'cancelled')",
        )
        .bind(now),
    )
    .await?;
    let done = book
        .fetch_all(
            sqlx::query(
                "update broadcasts set status = 'done', updated_at = $1
                 where status = 'running'
                   and not exists (select 1 from outbox
                                   where outbox.broadcast_id = broadcasts.broadcast_id
                                     and outbox.status = 'pending')
                 returning broadcast_id",
            )
            .bind(now),
        )
        .await?;
    book.commit().await?;
    done.iter()
        .map(|row| Ok(row.try_get("broadcast_id")?))
        .collect()
}

pub async fn progress(db: &Db, broadcast_id: &str) -> anyhow::Result<Progress> {
    let rows = sqlx::query(
        "select status, count(*) as n from outbox where broadcast_id = $1 group by status",
    )
    .bind(broadcast_id)
    .fetch_all(db.pool())
    .await?;
    let mut progress = Progress::default();
    for row in rows {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        match status.as_str() {
            "pending" => progress.pending = n,
            "sent" => progress.sent = n,
            "failed" => progress.failed = n,
            _ => progress.cancelled = n,
        }
    }
    Ok(progress)
}

/// A conversation of a broadcast that did not get the message.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedRecipient {
    pub failure: Option<String>,
    pub attempts: i64,
    /// When the last attempt ended.
    #[sqlx(rename = "updated_at")]
    pub failed_at: i64,
    /// When the add-on first learnt of the conversation (it has no other person-facing name).
    #[sqlx(rename = "seen_at")]
    pub conversation_seen_at: Option<i64>,
}

/// Conversations whose delivery failed, with why and when, oldest conversation first (the
/// first 500).
pub async fn failures(db: &Db, broadcast_id: &str) -> anyhow::Result<Vec<FailedRecipient>> {
    Ok(sqlx::query_as(
        "select o.failure, o.attempts, o.updated_at, c.created_at as seen_at
         from outbox o left join conversations c on c.conversation_id = o.conversation_id
         where o.broadcast_id = $1 and o.status = 'failed'
         order by coalesce(c.created_at, 0), o.conversation_id limit 500",
    )
    .bind(broadcast_id)
    .fetch_all(db.pool())
    .await?)
}

/// How many of a broadcast's failed conversations may be retried, and how many are blocked
/// chats (412), which retrying cannot reach.
pub async fn failure_counts(db: &Db, broadcast_id: &str) -> anyhow::Result<(i64, i64)> {
    let row = sqlx::query(
        "select coalesce(sum(case when failure = 'recipient_restricted' then 0 else 1 end), 0) as retryable,
                coalesce(sum(case when failure = 'recipient_restricted' then 1 else 0 end), 0) as restricted
         from outbox where broadcast_id = $1 and status = 'failed'",
    )
    .bind(broadcast_id)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("retryable")?, row.try_get("restricted")?))
}

/// Queues a finished broadcast's failed rows again, except the blocked chats (a 412 cannot
/// change by retrying). Each row keeps its idempotency key, so a conversation Divar did reach
/// despite the failure is not messaged twice. Returns how many rows were queued.
pub async fn retry_failed(db: &Db, broadcast_id: &str) -> anyhow::Result<u64> {
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    // A broadcast whose text was purged (`db::purge`) has nothing left to send.
    let reopened = sqlx::query(
        "update broadcasts set status = 'running', updated_at = $1
         where broadcast_id = $2 and status = 'done' and body <> '{}'",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(&mut *tx)
    .await?;
    if reopened.rows_affected() == 0 {
        return Ok(0);
    }
    let queued = sqlx::query(
        "update outbox set status = 'pending', failure = null, attempts = 0, next_attempt_at = $1,
             locked_until = null, locked_by = null, updated_at = $1
         where broadcast_id = $2 and status = 'failed'
           and (failure is null or failure <> 'recipient_restricted')",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if queued == 0 {
        // Nothing worth retrying: leave the broadcast as it was.
        tx.rollback().await?;
        return Ok(0);
    }
    tx.commit().await?;
    Ok(queued)
}

/// Whether a broadcast was cancelled, or no longer exists (its seller's data was erased): a
/// worker asks before a row that waited for its turn.
pub async fn is_cancelled(db: &Db, broadcast_id: &str) -> anyhow::Result<bool> {
    let row = sqlx::query("select status from broadcasts where broadcast_id = $1")
        .bind(broadcast_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(row) => {
            BroadcastStatus::try_from(row.try_get::<String, _>("status")?)
                .map_err(anyhow::Error::msg)?
                == BroadcastStatus::Cancelled
        }
        None => true,
    })
}

const BROADCAST: &str =
    "select broadcast_id, post_token, user_id, body, status, paused_reason, total, created_at
    from broadcasts";

/// A seller's broadcasts to a post, newest first (the last 50), each with its progress: one
/// query for the post's page.
pub async fn list_broadcasts_with_progress(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
) -> anyhow::Result<Vec<(Broadcast, Progress)>> {
    let rows = sqlx::query(
        "select b.broadcast_id, b.post_token, b.user_id, b.body, b.status, b.paused_reason, b.total,
                b.created_at,
                coalesce(sum(case when o.status = 'pending' then 1 else 0 end), 0) as pending,
                coalesce(sum(case when o.status = 'sent' then 1 else 0 end), 0) as sent,
                coalesce(sum(case when o.status = 'failed' then 1 else 0 end), 0) as failed,
                coalesce(sum(case when o.status = 'cancelled' then 1 else 0 end), 0) as cancelled
         from broadcasts b left join outbox o on o.broadcast_id = b.broadcast_id
         where b.post_token = $1 and b.user_id = $2
         group by b.broadcast_id, b.post_token, b.user_id, b.body, b.status, b.paused_reason,
                  b.total, b.created_at
         order by b.created_at desc limit 50",
    )
    .bind(post_token)
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let progress = Progress {
                pending: row.try_get("pending")?,
                sent: row.try_get("sent")?,
                failed: row.try_get("failed")?,
                cancelled: row.try_get("cancelled")?,
            };
            Ok((Broadcast::from_row(row)?, progress))
        })
        .collect()
}
