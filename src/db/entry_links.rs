//! One-time links into the webview, made by session initialization: sealed links, spent once
//! when opened, and the previous release's links, whose hash and click are stored.

use sqlx::Row;

use super::{Db, now_ms};
use crate::domain::entry_link::Click;

/// Spends a sealed link and records its click, in one transaction. Exactly one caller gets
/// the click's id; a link spent before gets `None`. The spent row holds no personal data (a
/// hash of the link's random id, and its expiry) and is purged once the link has expired,
/// when its seal alone refuses it.
#[tracing::instrument(skip_all)]
pub async fn spend(db: &Db, click: &Click) -> anyhow::Result<Option<String>> {
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    let spent = sqlx::query(
        "insert into spent_links (link_hash, expires_at, created_at, updated_at)
         values ($1, $2, $3, $3)
         on conflict (link_hash) do nothing",
    )
    .bind(click.id_hash())
    .bind(click.expires_at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() == 0 {
        return Ok(None);
    }
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "insert into session_inits (session_init_id, conversation_id, post_token, user_id, user_side,
             source, revision, extra_data, callback_url, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&id)
    .bind(&click.conversation_id)
    .bind(&click.post_token)
    .bind(&click.user_id)
    .bind(click.user_side)
    .bind(&click.source)
    .bind(&click.revision)
    .bind(serde_json::Value::Object(click.extra_data.clone()).to_string())
    .bind(&click.callback_url)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Consumed {
    /// First use, in time: the click it belongs to.
    Fresh(String),
    AlreadyUsed,
    Expired,
    Unknown,
}

/// Marks a link of the previous release used if it is unused and unexpired. Exactly one
/// caller ever gets `Fresh`.
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
