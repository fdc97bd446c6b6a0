//! Posts Divar reported removed (docs/divar-platform.md, "Events"): the only thing the add-on
//! keeps about a post itself.

use sqlx::Row;

use super::Db;
use crate::domain::PostToken;

/// Records that Divar reported `post_token` removed (`RETIRE` or `ARCHIVE`). Whether this is
/// news: a repeated report changes nothing.
pub async fn retire(
    db: &Db,
    post_token: &PostToken,
    change: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let inserted = sqlx::query(
        "insert into retired_posts (post_token, change, created_at, updated_at)
         values ($1, $2, $3, $3) on conflict (post_token) do nothing",
    )
    .bind(post_token)
    .bind(change)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn is_retired(db: &Db, post_token: &PostToken) -> anyhow::Result<bool> {
    let row = sqlx::query("select count(*) from retired_posts where post_token = $1")
        .bind(post_token)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// Divar reported the post published again: it is no longer taken as removed.
pub async fn reopen(db: &Db, post_token: &PostToken) -> anyhow::Result<bool> {
    let deleted = sqlx::query("delete from retired_posts where post_token = $1")
        .bind(post_token)
        .execute(db.pool())
        .await?;
    Ok(deleted.rows_affected() == 1)
}
