//! Forgetting a person: everything the add-on keeps about one Divar user, in one transaction.

use super::Db;
use crate::domain::UserId;

/// How many rows of each kind an erasure removed (or cleared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub grants: u64,
    pub messages: u64,
    pub broadcasts: u64,
    pub outbox_rows: u64,
    pub clicks: u64,
    pub templates: u64,
    pub web_sessions: u64,
    /// Conversations kept (they are the other person's too) with this user's id cleared.
    pub conversations_cleared: u64,
}

/// Deletes the user's tokens, the messages and broadcasts they sent (with their outbox rows, so
/// a running broadcast stops), their clicks, templates and web sessions, and
/// clears their id from conversations. Running it again changes nothing.
pub async fn erase_user(db: &Db, user_id: &UserId) -> anyhow::Result<Erased> {
    let mut tx = db.pool().begin().await?;
    let mut run = async |sql: &str| -> anyhow::Result<u64> {
        Ok(sqlx::query(sql)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    };
    // Outbox rows would go with their message or broadcast (`on delete cascade`); deleting them
    // first is what counts them.
    let mut erased = Erased {
        outbox_rows: run("delete from outbox where message_id in
                  (select message_id from messages where user_id = $1)")
        .await?,
        messages: run("delete from messages where user_id = $1").await?,
        ..Erased::default()
    };
    erased.outbox_rows += run("delete from outbox where broadcast_id in
              (select broadcast_id from broadcasts where user_id = $1)")
    .await?;
    erased.broadcasts = run("delete from broadcasts where user_id = $1").await?;
    erased.clicks = run("delete from session_inits where user_id = $1").await?;
    erased.templates = run("delete from templates where user_id = $1").await?;
    erased.grants = run("delete from grants where user_id = $1").await?;
    erased.conversations_cleared = run("update conversations
         set seller_user_id = case when seller_user_id = $1 then null else seller_user_id end,
             buyer_user_id = case when buyer_user_id = $1 then null else buyer_user_id end
         where seller_user_id = $1 or buyer_user_id = $1")
    .await?;
    erased.web_sessions = run("delete from web_sessions where user_id = $1").await?;
    tx.commit().await?;
    Ok(erased)
}
