//! Broadcasts: a seller's message to every conversation of their post, and how far each got.
//! Their delivery rows are the outbox's (`db::outbox`).

use sqlx::{Any, Row, Transaction};

use super::{Backend, Db, outbox};
use crate::domain::{
    ConversationId, PostToken, UserId,
    broadcast::{Broadcast, FailedRecipient, POST_REMOVED, Progress},
    status::BroadcastStatus,
};

pub enum Created {
    New(String),
    /// The confirm form was submitted before: that broadcast.
    Existing(String),
}

/// Broadcasts of at least this many rows refresh PostgreSQL's statistics (see below).
const ANALYZE_AFTER_ROWS: usize = 200;

/// Writes a broadcast (its id made by the caller: its buttons carry it) and its outbox rows in
/// one transaction.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &Db,
    broadcast_id: &str,
    idempotency_key: &str,
    post_token: &PostToken,
    user_id: &UserId,
    body: &str,
    conversation_ids: &[ConversationId],
    now: i64,
) -> anyhow::Result<Created> {
    let mut tx: Transaction<'_, Any> = db.pool().begin().await?;
    let inserted = sqlx::query(
        "insert into broadcasts (broadcast_id, idempotency_key, post_token, user_id, body, status, stop_reason,
             total, created_at, updated_at)
         values ($1, $2, $3, $4, $5, 'running', null, $6, $7, $7)
         on conflict (idempotency_key) do nothing",
    )
    .bind(broadcast_id)
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
    outbox::enqueue_broadcast(&mut tx, broadcast_id, conversation_ids, now).await?;
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
    Ok(Created::New(broadcast_id.to_string()))
}

/// Turns on a post's automatic first reply (replacing the one on, if any): a broadcast of kind
/// `auto_reply` with no rows yet, which [`add_to_auto_reply`] gives one per new conversation.
pub async fn start_auto_reply(
    db: &Db,
    broadcast_id: &str,
    idempotency_key: &str,
    post_token: &PostToken,
    user_id: &UserId,
    body: &str,
    now: i64,
) -> anyhow::Result<Created> {
    let mut tx: Transaction<'_, Any> = db.pool().begin().await?;
    if let Some(existing) =
        sqlx::query("select broadcast_id from broadcasts where idempotency_key = $1")
            .bind(idempotency_key)
            .fetch_optional(&mut *tx)
            .await?
    {
        return Ok(Created::Existing(existing.try_get("broadcast_id")?));
    }
    // The one on before is turned off, as the seller would by hand: its rows not yet sent are
    // not sent.
    sqlx::query(
        "update outbox set status = 'cancelled', updated_at = $1
         where status = 'pending' and (locked_until is null or locked_until < $1)
           and broadcast_id in (select broadcast_id from broadcasts
                                where post_token = $2 and kind = 'auto_reply'
                                  and status in ('running', 'paused'))",
    )
    .bind(now)
    .bind(post_token)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update broadcasts set status = 'cancelled', updated_at = $1
         where post_token = $2 and kind = 'auto_reply' and status in ('running', 'paused')",
    )
    .bind(now)
    .bind(post_token)
    .execute(&mut *tx)
    .await?;
    // A second submit racing this one (the same key), or another auto-reply of the post turned
    // on at the same moment (the partial unique index): theirs stands.
    let inserted = sqlx::query(
        "insert into broadcasts (broadcast_id, idempotency_key, post_token, user_id, body, status, kind,
             stop_reason, total, created_at, updated_at)
         values ($1, $2, $3, $4, $5, 'running', 'auto_reply', null, 0, $6, $6)
         on conflict do nothing",
    )
    .bind(broadcast_id)
    .bind(idempotency_key)
    .bind(post_token)
    .bind(user_id)
    .bind(body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if inserted.rows_affected() == 0 {
        let theirs = sqlx::query(
            "select broadcast_id from broadcasts
             where idempotency_key = $1
                or (post_token = $2 and kind = 'auto_reply' and status in ('running', 'paused'))",
        )
        .bind(idempotency_key)
        .bind(post_token)
        .fetch_one(db.pool())
        .await?;
        return Ok(Created::Existing(theirs.try_get("broadcast_id")?));
    }
    Ok(Created::New(broadcast_id.to_string()))
}

/// A conversation of `post_token` Divar just announced: when the post's auto-reply is on and
/// the conversation is new since it was turned on (and not recorded with another seller), one
/// outbox row for it. Whether a row was added: a buyer who writes again, or a repeated event,
/// adds none.
pub async fn add_to_auto_reply(
    db: &Db,
    post_token: &PostToken,
    conversation_id: &ConversationId,
    now: i64,
) -> anyhow::Result<bool> {
    let mut tx: Transaction<'_, Any> = db.pool().begin().await?;
    let on = sqlx::query(
        "select b.broadcast_id from broadcasts b join conversations c on c.conversation_id = $2
         where b.post_token = $1 and b.kind = 'auto_reply' and b.status in ('running', 'paused')
           and c.created_at >= b.created_at
           and (c.seller_user_id is null or c.seller_user_id = b.user_id)",
    )
    .bind(post_token)
    .bind(conversation_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(on) = on else {
        return Ok(false);
    };
    let broadcast_id: String = on.try_get("broadcast_id")?;
    if !outbox::enqueue_once(&mut tx, &broadcast_id, conversation_id, now).await? {
        return Ok(false);
    }
    sqlx::query("update broadcasts set total = total + 1, updated_at = $1 where broadcast_id = $2")
        .bind(now)
        .bind(&broadcast_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The broadcast a confirm form with this idempotency key created, if any.
pub async fn id_for_key(db: &Db, idempotency_key: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("select broadcast_id from broadcasts where idempotency_key = $1")
        .bind(idempotency_key)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| r.try_get("broadcast_id"))
        .transpose()
        .map_err(Into::into)
}

/// The broadcast `broadcast_id`, if it went to `conversation_id`: where a tap on one of its
/// buttons in that conversation leads (they carry its id; those sent before they did carry the
/// composer's key, still found by it, and only from a conversation it reached).
pub async fn sent_to(
    db: &Db,
    broadcast_id: &str,
    conversation_id: &ConversationId,
) -> anyhow::Result<Option<Broadcast>> {
    Ok(sqlx::query_as(&format!(
        "{BROADCAST} where (broadcast_id = $1 or idempotency_key = $1)
           and exists (select 1 from outbox o
                       where o.broadcast_id = broadcasts.broadcast_id and o.conversation_id = $2)"
    ))
    .bind(broadcast_id)
    .bind(conversation_id)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn find(db: &Db, broadcast_id: &str) -> anyhow::Result<Option<Broadcast>> {
    Ok(
        sqlx::query_as(&format!("{BROADCAST} where broadcast_id = $1"))
            .bind(broadcast_id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// A broadcast with how far it got.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WithProgress {
    #[sqlx(flatten)]
    pub broadcast: Broadcast,
    #[sqlx(flatten)]
    pub progress: Progress,
}

/// A seller's broadcasts of a post, newest first (the latest 50), each with its progress: one
/// query, not one per broadcast.
pub async fn list_for_post(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
) -> anyhow::Result<Vec<WithProgress>> {
    let count = |status: &str| {
        format!("coalesce(sum(case when o.status = '{status}' then 1 else 0 end), 0) as {status}")
    };
    Ok(sqlx::query_as(&format!(
        "select b.broadcast_id, b.post_token, b.user_id, b.body, b.status, b.kind, b.stop_reason,
             b.total, b.created_at, b.idempotency_key, {}, {}, {}, {}
         from (select * from broadcasts where post_token = $1 and user_id = $2
               order by created_at desc limit 50) b
         left join outbox o on o.broadcast_id = b.broadcast_id
         group by b.broadcast_id, b.post_token, b.user_id, b.body, b.status, b.kind, b.stop_reason,
             b.total, b.created_at, b.idempotency_key
         order by b.created_at desc, b.broadcast_id",
        count("pending"),
        count("sent"),
        count("failed"),
        count("cancelled"),
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
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "update broadcasts set status = 'paused', stop_reason = $1, updated_at = $2
         where post_token = $3 and user_id = $4 and status = 'running'",
    )
    .bind(reason)
    .bind(now)
    .bind(post_token)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Resumes a seller's paused broadcasts after they reconnect (one whose rows all ended while
/// it was paused is done; an auto-reply runs on).
pub async fn resume_for_grant(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "update broadcasts set stop_reason = null, updated_at = $1,
             status = case when kind = 'auto_reply' then 'running'
                           when exists (select 1 from outbox
                                        where outbox.broadcast_id = broadcasts.broadcast_id
                                          and outbox.status = 'pending')
                           then 'running' else 'done' end
         where post_token = $2 and user_id = $3 and status = 'paused'",
    )
    .bind(now)
    .bind(post_token)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Cancels every running or paused broadcast of a post Divar reported removed, with that
/// reason; their pending rows are never sent. How many it cancelled (0 for a repeated report).
pub async fn cancel_for_removed_post(
    db: &Db,
    post_token: &PostToken,
    now: i64,
) -> anyhow::Result<u64> {
    let mut tx = db.pool().begin().await?;
    let stopping = "select broadcast_id from broadcasts
                    where post_token = $2 and status in ('running', 'paused')";
    sqlx::query(&format!(
        "update outbox set status = 'cancelled', updated_at = $1
         where broadcast_id in ({stopping}) and status = 'pending'
           and (locked_until is null or locked_until < $1)"
    ))
    .bind(now)
    .bind(post_token)
    .execute(&mut *tx)
    .await?;
    let changed = sqlx::query(
        "update broadcasts set status = 'cancelled', stop_reason = $3, updated_at = $1
         where post_token = $2 and status in ('running', 'paused')",
    )
    .bind(now)
    .bind(post_token)
    .bind(POST_REMOVED)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed.rows_affected())
}

/// Cancels a broadcast: its pending rows are never sent.
pub async fn cancel(db: &Db, broadcast_id: &str, now: i64) -> anyhow::Result<bool> {
    let mut tx = db.pool().begin().await?;
    let changed = sqlx::query(
        "update broadcasts set status = 'cancelled', stop_reason = null, updated_at = $1
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
pub async fn retry_failed(db: &Db, broadcast_id: &str, now: i64) -> anyhow::Result<u64> {
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

/// A seller's broadcasts running or paused (auto-replies not counted: a post has at most one).
pub async fn running_count(db: &Db, user_id: &UserId) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "select count(*) from broadcasts
         where user_id = $1 and kind = 'broadcast' and status in ('running', 'paused')",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get(0)?)
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
    "select broadcast_id, post_token, user_id, body, status, kind, stop_reason, total, created_at,
        idempotency_key
    from broadcasts";
