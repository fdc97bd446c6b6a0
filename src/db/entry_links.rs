//! One-time links into the webview, made by session initialization.

use sqlx::Row;

use super::Db;

#[derive(Debug, PartialEq, Eq)]
pub enum Consumed {
    /// First use, in time: the click it belongs to.
    Fresh(String),
    AlreadyUsed,
    Expired,
    Unknown,
}

/// Marks the link used if it is unused and unexpired. Exactly one caller ever gets `Fresh`.
pub async fn consume(db: &Db, link_hash: &str, now: i64) -> anyhow::Result<Consumed> {
    let claimed = sqlx::query(
        "update entry_links set used_at = $1, updated_at = $1
         where link_hash = $2 and used_at is null and expires_at > $1",
    )
    .bind(now)
    .bind(link_hash)
    .execute(db.pool())
    .await?;
    let row = sqlx::query(
        "select session_init_id, used_at, expires_at from entry_links where link_hash = $1",
    )
    .bind(link_hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(Consumed::Unknown);
    };
    if claimed.rows_affected() == 1 {
        return Ok(Consumed::Fresh(row.try_get("session_init_id")?));
    }
    let expires_at: i64 = row.try_get("expires_at")?;
    Ok(if expires_at <= now {
        Consumed::Expired
    } else {
        Consumed::AlreadyUsed
    })
}
