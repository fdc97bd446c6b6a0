//! One-time links into the webview are sealed and carry their click (see
//! `domain::entry_link`); opening one spends it here, once.

use super::Db;
use crate::domain::entry_link::Click;

/// Spends a sealed link and records its click, in one transaction. Exactly one caller gets
/// the click's id; a link spent before gets `None`. The spent row holds no personal data (a
/// hash of the link's random id, and its expiry) and is purged once the link has expired,
/// when its seal alone refuses it.
#[tracing::instrument(skip_all)]
pub async fn spend(db: &Db, click: &Click, now: i64) -> anyhow::Result<Option<String>> {
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
