//! Messages sent through the add-on, keyed by the compose form's idempotency key.

use sqlx::Row;

use super::{Db, outbox};
use crate::domain::{ConversationId, UserId, status::MessageStatus};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    pub message_id: String,
    pub idempotency_key: String,
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub failure: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub enum Inserted {
    New,
    /// The key was used before: this is that message.
    Existing(MessageRow),
}

/// Records a message and queues it for the outbox in one transaction, unless its idempotency
/// key is already taken (a double submit): then nothing is written and the first is returned.
pub async fn insert_queued(db: &Db, row: &MessageRow, now: i64) -> anyhow::Result<Inserted> {
    let mut tx = db.pool().begin().await?;
    let done = sqlx::query(
        "insert into messages (message_id, idempotency_key, conversation_id, user_id, body, status, failure,
             attempts, created_at, updated_at)
         values ($1, $2, $3, $4, $5, 'sending', null, 0, $6, $6)
         on conflict (idempotency_key) do nothing",
    )
    .bind(&row.message_id)
    .bind(&row.idempotency_key)
    .bind(&row.conversation_id)
    .bind(&row.user_id)
    .bind(&row.body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        let existing = sqlx::query_as(&format!("{SELECT} where idempotency_key = $1"))
            .bind(&row.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Inserted::Existing(existing));
    }
    let send = outbox::SingleSend {
        message_id: &row.message_id,
        conversation_id: &row.conversation_id,
        user_id: &row.user_id,
        idempotency_key: &row.idempotency_key,
    };
    outbox::enqueue_message(&mut tx, send, now).await?;
    tx.commit().await?;
    Ok(Inserted::New)
}

/// Which failed messages to queue again.
pub enum Requeue<'a> {
    /// One message the person asked to send again (not a blocked chat's).
    One(&'a str),
    /// Every message of this conversation that failed for want of consent, now given again.
    AfterReconsent { conversation_id: &'a ConversationId },
}

/// Moves failed messages of `user_id` back to `sending` and their outbox rows back to the
/// queue, under their original idempotency keys. Returns the ids of the messages queued.
pub async fn requeue(
    db: &Db,
    user_id: &UserId,
    which: Requeue<'_>,
    now: i64,
) -> anyhow::Result<Vec<String>> {
    let mut tx = db.pool().begin().await?;
    let query = match which {
        Requeue::One(message_id) => sqlx::query(
            "update messages set status = 'sending', failure = null, updated_at = $1
             where user_id = $2 and message_id = $3 and status = 'failed' and body <> '{}'
               and (failure is null or failure <> 'recipient_restricted')
             returning message_id, conversation_id, idempotency_key",
        )
        .bind(now)
        .bind(user_id)
        .bind(message_id),
        Requeue::AfterReconsent { conversation_id } => sqlx::query(
            "update messages set status = 'sending', failure = null, updated_at = $1
             where user_id = $2 and conversation_id = $3 and status = 'failed' and failure = 'reconsent'
               and body <> '{}'
             returning message_id, conversation_id, idempotency_key",
        )
        .bind(now)
        .bind(user_id)
        .bind(conversation_id),
    };
    let rows = query.fetch_all(&mut *tx).await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("message_id")?;
        // Its row is gone when the purge deleted finished outbox rows before the message's
        // text (KENAR_OUTBOX_RETENTION_DAYS shorter than KENAR_MESSAGE_RETENTION_DAYS): queue it
        // anew.
        if !outbox::requeue_message(&mut tx, &id, now).await? {
            let conversation_id: ConversationId = row.try_get("conversation_id")?;
            let key: String = row.try_get("idempotency_key")?;
            let send = outbox::SingleSend {
                message_id: &id,
                conversation_id: &conversation_id,
                user_id,
                idempotency_key: &key,
            };
            outbox::enqueue_message(&mut tx, send, now).await?;
        }
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// A person's single sends still waiting to go (`services::limits`).
pub async fn queued_count(db: &Db, user_id: &UserId) -> anyhow::Result<i64> {
    let row =
        sqlx::query("select count(*) from messages where user_id = $1 and status = 'sending'")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?;
    Ok(row.try_get(0)?)
}

/// A person's sends since `since`: their single messages, their broadcasts' recipients, and the
/// replies their auto-replies queued (each when it was queued: an auto-reply runs for days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendsSince {
    pub count: i64,
    /// When the oldest of them was made, if any.
    pub oldest: Option<i64>,
}

pub async fn sends_since(db: &Db, user_id: &UserId, since: i64) -> anyhow::Result<SendsSince> {
    let row = sqlx::query(
        "select cast(coalesce(sum(n), 0) as bigint) as count, min(oldest) as oldest from (
             select count(*) as n, min(created_at) as oldest from messages
             where user_id = $1 and created_at >= $2
             union all
             select cast(coalesce(sum(total), 0) as bigint) as n, min(created_at) as oldest
             from broadcasts where user_id = $1 and kind = 'broadcast' and created_at >= $2
             union all
             select count(*) as n, min(o.created_at) as oldest
             from outbox o join broadcasts b on b.broadcast_id = o.broadcast_id
             where b.user_id = $1 and b.kind = 'auto_reply' and o.created_at >= $2) sends",
    )
    .bind(user_id)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok(SendsSince {
        count: row.try_get("count")?,
        oldest: row.try_get("oldest")?,
    })
}

/// The message a composer form with this idempotency key recorded, if any.
pub async fn find_by_key(db: &Db, idempotency_key: &str) -> anyhow::Result<Option<MessageRow>> {
    Ok(
        sqlx::query_as(&format!("{SELECT} where idempotency_key = $1"))
            .bind(idempotency_key)
            .fetch_optional(db.pool())
            .await?,
    )
}

pub async fn find(db: &Db, message_id: &str) -> anyhow::Result<Option<MessageRow>> {
    Ok(sqlx::query_as(&format!("{SELECT} where message_id = $1"))
        .bind(message_id)
        .fetch_optional(db.pool())
        .await?)
}

/// The messages of these ids that exist, in no particular order: one read for a batch.
pub async fn find_many(db: &Db, message_ids: &[&str]) -> anyhow::Result<Vec<MessageRow>> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{SELECT} where message_id in ({})",
        super::placeholders(1, message_ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in message_ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(db.pool()).await?)
}

/// Newest first.
pub async fn list_for_conversation(
    db: &Db,
    conversation_id: &ConversationId,
    limit: i64,
) -> anyhow::Result<Vec<MessageRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} where conversation_id = $1 order by created_at desc, message_id limit $2"
    ))
    .bind(conversation_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

const SELECT: &str =
    "select message_id, idempotency_key, conversation_id, user_id, body, status, failure,
    attempts, created_at, updated_at from messages";
