//! Messages sent through the add-on, keyed by the compose form's idempotency key.

use sqlx::Row;

use super::{Db, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub message_id: String,
    pub idempotency_key: String,
    pub conversation_id: String,
    pub user_id: String,
    pub body: String,
    pub status: String,
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

/// Records a message about to be sent, unless its idempotency key is already taken.
pub async fn insert(db: &Db, row: &MessageRow) -> anyhow::Result<Inserted> {
    let now = now_ms();
    let done = sqlx::query(
        "insert into messages (message_id, idempotency_key, conversation_id, user_id, body, status, failure,
             attempts, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, null, 0, $7, $7)
         on conflict (idempotency_key) do nothing",
    )
    .bind(&row.message_id)
    .bind(&row.idempotency_key)
    .bind(&row.conversation_id)
    .bind(&row.user_id)
    .bind(&row.body)
    .bind(&row.status)
    .bind(now)
    .execute(db.pool())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Inserted::New);
    }
    let existing = sqlx::query(&format!("{SELECT} where idempotency_key = $1"))
        .bind(&row.idempotency_key)
        .fetch_one(db.pool())
        .await?;
    Ok(Inserted::Existing(from_row(&existing)?))
}

/// Moves a message to `sending` for another try, unless it is already sending or sent.
pub async fn claim_for_resend(db: &Db, message_id: &str, user_id: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "update messages set status = 'sending', failure = null, updated_at = $1
         where message_id = $2 and user_id = $3 and status = 'failed'",
    )
    .bind(now_ms())
    .bind(message_id)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn record_outcome(
    db: &Db,
    message_id: &str,
    status: &str,
    failure: Option<&str>,
    attempts: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "update messages set status = $1, failure = $2, attempts = attempts + $3, updated_at = $4
         where message_id = $5",
    )
    .bind(status)
    .bind(failure)
    .bind(attempts)
    .bind(now_ms())
    .bind(message_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find(db: &Db, message_id: &str) -> anyhow::Result<Option<MessageRow>> {
    let row = sqlx::query(&format!("{SELECT} where message_id = $1"))
        .bind(message_id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Newest first.
pub async fn list_for_conversation(
    db: &Db,
    conversation_id: &str,
    limit: i64,
) -> anyhow::Result<Vec<MessageRow>> {
    let rows = sqlx::query(&format!(
        "{SELECT} where conversation_id = $1 order by created_at desc, message_id limit $2"
    ))
    .bind(conversation_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

const SELECT: &str =
    "select message_id, idempotency_key, conversation_id, user_id, body, status, failure,
    attempts, created_at, updated_at from messages";

fn from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<MessageRow> {
    Ok(MessageRow {
        message_id: r.try_get("message_id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        conversation_id: r.try_get("conversation_id")?,
        user_id: r.try_get("user_id")?,
        body: r.try_get("body")?,
        status: r.try_get("status")?,
        failure: r.try_get("failure")?,
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}
