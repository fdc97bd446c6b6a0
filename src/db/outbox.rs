//! The delivery queue: one row per message to deliver (a single send, or one conversation of a
//! broadcast), claimed by workers under a lease. The broadcasts themselves are `db::broadcasts`.

use sqlx::{Any, FromRow, Row, Transaction, any::AnyRow};

use super::{Backend, Db, placeholders};
use crate::domain::{
    ConversationId, UserId,
    status::{MessageStatus, Outcome},
};

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
    /// Single sends first, then broadcast rows (tests and benchmarks draining the queue).
    All,
    /// Single sends only, in turns across the people who sent them: the express worker, which
    /// a person's send wakes.
    InteractiveOnly,
    /// Broadcast rows only: the pool's other workers, so single sends are only ever claimed in
    /// their fair order.
    BulkOnly,
}

/// `priority` of an outbox row: lower is claimed first.
const PRIORITY_INTERACTIVE: i64 = 0;
const PRIORITY_BULK: i64 = 1;

/// Outbox rows per insert statement: 3 parameters each, well under both engines' limits
/// (SQLite 32,766, PostgreSQL 65,535).
const OUTBOX_INSERT_CHUNK: usize = 500;

/// Queues one row per conversation of a broadcast inside the caller's transaction (the one
/// that records the broadcast), due at once, behind single sends.
pub async fn enqueue_broadcast(
    tx: &mut Transaction<'_, Any>,
    broadcast_id: &str,
    conversation_ids: &[ConversationId],
    now: i64,
) -> anyhow::Result<()> {
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
            .bind(broadcast_id)
            .bind(now)
            .bind(PRIORITY_BULK);
        // Time-ordered ids append to the indexes instead of landing all over them.
        for conversation_id in chunk {
            query = query
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(conversation_id)
                .bind(uuid::Uuid::now_v7().to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Queues one more conversation of a broadcast (an auto-reply's new buyer), unless it already
/// has its row. Whether it was queued.
pub async fn enqueue_once(
    tx: &mut Transaction<'_, Any>,
    broadcast_id: &str,
    conversation_id: &ConversationId,
    now: i64,
) -> anyhow::Result<bool> {
    let inserted = sqlx::query(
        "insert into outbox (outbox_id, broadcast_id, message_id, conversation_id, idempotency_key, priority,
             status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
         values ($1, $2, null, $3, $4, $5, 'pending', null, 0, $6, null, null, $6, $6)
         on conflict (broadcast_id, conversation_id) do nothing",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(broadcast_id)
    .bind(conversation_id)
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(PRIORITY_BULK)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A single send to queue: its message, and who sent it where.
pub struct SingleSend<'a> {
    pub message_id: &'a str,
    pub conversation_id: &'a ConversationId,
    pub user_id: &'a UserId,
    pub idempotency_key: &'a str,
}

/// Queues a single send inside the caller's transaction (the one that records the message),
/// due at once and ahead of broadcast rows.
pub async fn enqueue_message(
    tx: &mut Transaction<'_, Any>,
    send: SingleSend<'_>,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into outbox (outbox_id, broadcast_id, message_id, conversation_id, user_id, idempotency_key,
             priority, status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
         values ($1, null, $2, $3, $4, $5, $6, 'pending', null, 0, $7, null, null, $7, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(send.message_id)
    .bind(send.conversation_id)
    .bind(send.user_id)
    .bind(send.idempotency_key)
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

/// At most this many rows of one chat in one claim (`$5` of [`FAIR_TURNS`]): the worker sends
/// them one after another, and the batch's outcomes are written when its longest chain ends.
const CHAT_ROWS_PER_CLAIM: i64 = 16;

/// The single sends to claim, each with its sender's turn. Claimed by turn, one person's backlog
/// takes one turn per round and a quiet person's message goes in the next round instead of
/// behind it. A chat's rows are claimed in the order they were queued, only from its oldest
/// pending one on, and only while none of them is out with a worker or waiting for a retry's
/// time: the worker sends them one after another ([`Claimed`] rows of a chat come in order), so
/// a chat's messages reach Divar in the order they were sent, across batches and restarts too.
/// Both people of a chat may send in it: a row's turn is never earlier than that of a row queued
/// before it in its chat, so a claim cut off by its limit takes a prefix of each chat.
/// A sender's rows out at a worker count in their turns: otherwise a backlog's next row would tie
/// with a newcomer's first on every claim and win it as the older row, and a one-row claim (a
/// pacer under 240 a minute) would serve the backlog to its end first.
/// The window functions rank the rows outside the query that locks them, where PostgreSQL does
/// not allow one; only the `limit` first turns go on to be locked.
const FAIR_TURNS: &str = "queue as (
         select outbox_id, conversation_id, user_id,
             row_number() over ahead as place,
             max(next_attempt_at) over ahead as due_at,
             max(case when locked_until >= $3 then 1 else 0 end) over ahead as behind_lease,
             case when locked_until >= $3 then 1 else 0 end as out_now
         from outbox where status = 'pending' and priority = 0
         window ahead as (partition by conversation_id order by outbox_id
                          rows between unbounded preceding and current row)),
     own_turns as (
         select outbox_id, conversation_id, out_now,
             row_number() over (partition by user_id order by outbox_id) as own_turn
         from queue where (due_at <= $3 and behind_lease = 0 and place <= $5) or out_now = 1),
     turns as (
         select outbox_id,
             max(own_turn) over (partition by conversation_id order by outbox_id
                                 rows between unbounded preceding and current row) as turn
         from own_turns where out_now = 0
         order by turn, outbox_id
         limit $4)";

/// Claims up to `limit` due rows for `lease_ms`: single sends first (the express lane takes
/// them in turns across their senders, [`FAIR_TURNS`]), then rows of running broadcasts. Two
/// workers never get the same row: PostgreSQL skips rows another transaction holds (the express
/// lane's claims, one at a time under a lock, wait for them instead); SQLite runs one writer at
/// a time, and the outer `where` repeats the lease condition, so a racing claim updates nothing.
pub async fn claim_batch(
    db: &Db,
    worker: &str,
    lease_ms: i64,
    limit: i64,
    lanes: Lanes,
    now: i64,
) -> anyhow::Result<Vec<Claimed>> {
    // The dialect switches of the outbox: only PostgreSQL has SKIP LOCKED, and only there a
    // commit waits for the disk (see [`async_commit`]).
    let lock_clause = match db.backend() {
        Backend::Postgres => "for update of o skip locked",
        Backend::Sqlite => "",
    };
    let (async_cte, async_from) = async_commit(db);
    // The pick is a CTE: PostgreSQL evaluates it once, so LIMIT bounds the claim (a plain
    // `IN (subquery)` may be re-run and claim more rows than asked for).
    let pick = match lanes {
        // No SKIP LOCKED here: claims take turns under a lock, so a locked row is one whose
        // outcome is being written, and skipping it could take a later row of its chat.
        Lanes::InteractiveOnly => format!(
            "{FAIR_TURNS}, picked as (
             select o.outbox_id from outbox o join turns t on t.outbox_id = o.outbox_id
             where o.status = 'pending' and (o.locked_until is null or o.locked_until < $3)
             order by t.turn, o.outbox_id
             limit $4 {wait_lock})",
            wait_lock = match db.backend() {
                Backend::Postgres => "for update of o",
                Backend::Sqlite => "",
            },
        ),
        Lanes::All | Lanes::BulkOnly => {
            let lane_clause = if lanes == Lanes::BulkOnly {
                "and o.priority = 1"
            } else {
                ""
            };
            format!(
                "picked as (
             select o.outbox_id from outbox o
             where o.status = 'pending' {lane_clause} and o.next_attempt_at <= $3
               and (o.locked_until is null or o.locked_until < $3)
               and (o.broadcast_id is null
                    or exists (select 1 from broadcasts b
                               where b.broadcast_id = o.broadcast_id and b.status = 'running'))
             order by o.priority, o.next_attempt_at, o.outbox_id
             limit $4 {lock_clause})"
            )
        }
    };
    let sql = format!(
        "with {async_cte} {pick}
         update outbox set locked_until = $1, locked_by = $2, attempts = attempts + 1, updated_at = $3
         from picked {async_from}
         where outbox.outbox_id = picked.outbox_id
           and outbox.status = 'pending' and (outbox.locked_until is null or outbox.locked_until < $3)
         returning outbox.outbox_id, outbox.broadcast_id, outbox.message_id, outbox.conversation_id,
             outbox.idempotency_key, outbox.attempts"
    );
    let mut query = sqlx::query(&sql)
        .bind(now + lease_ms)
        .bind(worker)
        .bind(now)
        .bind(limit);
    if lanes == Lanes::InteractiveOnly {
        query = query.bind(CHAT_ROWS_PER_CLAIM);
    }
    let rows = if lanes == Lanes::InteractiveOnly && db.backend() == Backend::Postgres {
        // Two claims at once (two replicas, or the express worker's overlapping batches) would
        // each read the queue before the other commits: one could skip a chat's row the other
        // locked and take the next, and send it first. One interactive claim at a time, so each
        // reads the other's leases (SQLite writes one at a time anyway). The lock and the
        // setting travel with BEGIN: one round trip.
        let mut tx = db
            .pool()
            .begin_with(
                "begin; set local synchronous_commit = off; select pg_advisory_xact_lock(7211)",
            )
            .await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows
    } else {
        // One statement, so no transaction around it: one round trip.
        query.fetch_all(db.pool()).await?
    };
    let mut claimed = rows
        .iter()
        .map(|r| Claimed::try_from(ClaimedRow::from_row(r)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // RETURNING keeps no order: a batch sends its rows in the order they were queued.
    claimed.sort_by(|a, b| a.outbox_id.cmp(&b.outbox_id));
    Ok(claimed)
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
/// the same outcome on the messages of single sends (one statement per outcome and number of
/// attempts), in one transaction.
/// Returns false when some lease was lost (another worker took the row over).
pub async fn finish_many(
    db: &Db,
    worker: &str,
    outcomes: &[Finished],
    now: i64,
) -> anyhow::Result<bool> {
    if outcomes.is_empty() {
        return Ok(true);
    }
    type Key = (Outcome, Option<&'static str>);
    let mut groups: Vec<(Key, Vec<&Finished>)> = Vec::new();
    for outcome in outcomes {
        let key = (outcome.status, outcome.failure);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, same)) => same.push(outcome),
            None => groups.push((key, vec![outcome])),
        }
    }
    let singles = outcomes.iter().any(|o| o.message_id.is_some());
    // The usual batch (one outcome for all, no single send): one statement, one round trip.
    if let ([((status, failure), same)], false) = (groups.as_slice(), singles) {
        let (async_cte, async_from) = async_commit(db);

        // `settled` is a one-row CTE, so the `from` has a first table on SQLite too.
        let sql = format!(
            "with {async_cte} settled as (select 1 as one)
             update outbox set status = $1, failure = $2, locked_until = null, locked_by = null, updated_at = $3
             from settled {async_from}
             where locked_by = $4 and status = 'pending' and outbox_id in ({})",
            placeholders(5, same.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(*failure)
            .bind(now)
            .bind(worker);
        for outcome in same {
            query = query.bind(&outcome.outbox_id);
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
    for ((status, failure), same) in &groups {
        let sql = format!(
            "update outbox set status = $1, failure = $2, locked_until = null, locked_by = null, updated_at = $3
             where locked_by = $4 and status = 'pending' and outbox_id in ({})
             returning message_id, attempts",
            placeholders(5, same.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(*failure)
            .bind(now)
            .bind(worker);
        for outcome in same {
            query = query.bind(&outcome.outbox_id);
        }
        let rows = book.fetch_all(query).await?;
        updated += rows.len() as u64;
        // The messages of the single sends whose outcome took (a worker whose lease was lost,
        // and whose row another worker now holds, must not decide the message's status), one
        // statement per number of attempts: in a batch, usually one.
        let mut by_attempts: Vec<(i64, Vec<String>)> = Vec::new();
        for row in &rows {
            let Some(message_id) = row.try_get::<Option<String>, _>("message_id")? else {
                continue;
            };
            let attempts: i64 = row.try_get("attempts")?;
            match by_attempts.iter_mut().find(|(a, _)| *a == attempts) {
                Some((_, ids)) => ids.push(message_id),
                None => by_attempts.push((attempts, vec![message_id])),
            }
        }
        for (attempts, ids) in by_attempts {
            let sql = format!(
                "update messages set status = $1, failure = $2, updated_at = $3, attempts = $4
                 where status = 'sending' and message_id in ({})",
                placeholders(5, ids.len())
            );
            let mut query = sqlx::query(&sql)
                .bind(message_status(*status).as_str())
                .bind(*failure)
                .bind(now)
                .bind(attempts);
            for id in ids {
                query = query.bind(id);
            }
            book.execute(query).await?;
        }
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
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "update outbox set next_attempt_at = $1, failure = $2, locked_until = null, locked_by = null,
             attempts = attempts - $3, updated_at = $4
         where outbox_id = $5 and locked_by = $6 and status = 'pending'",
    )
    .bind(at)
    .bind(failure)
    .bind(if refund { 1i64 } else { 0 })
    .bind(now)
    .bind(outbox_id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Marks running broadcasts done once nothing of them is pending; returns their ids. Workers
/// call it when the queue runs dry after they finished rows, not after every batch.
pub async fn complete_finished(db: &Db, now: i64) -> anyhow::Result<Vec<String>> {
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
                 where status = 'running' and kind = 'broadcast'
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
