//! A seller's words for their post's «هنوز موجود است؟» button (`services::availability`).

use sqlx::Row;

use super::Db;
use crate::domain::{PostToken, UserId, availability::Wording};

/// The post's words, if its seller wrote any.
pub async fn find(db: &Db, post_token: &PostToken) -> anyhow::Result<Option<Wording>> {
    let row = sqlx::query(
        "select available_text, removed_text from availability_answers where post_token = $1",
    )
    .bind(post_token)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(Wording {
            available: row.try_get("available_text")?,
            removed: row.try_get("removed_text")?,
        })
    })
    .transpose()
}

/// Keeps the seller's words for the post, replacing earlier ones.
pub async fn save(
    db: &Db,
    post_token: &PostToken,
    user_id: &UserId,
    wording: &Wording,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into availability_answers
             (post_token, user_id, available_text, removed_text, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $5)
         on conflict (post_token) do update set user_id = excluded.user_id,
             available_text = excluded.available_text, removed_text = excluded.removed_text,
             updated_at = excluded.updated_at",
    )
    .bind(post_token)
    .bind(user_id)
    .bind(&wording.available)
    .bind(&wording.removed)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Forgets the post's words: the add-on's answer again.
pub async fn delete(db: &Db, post_token: &PostToken) -> anyhow::Result<()> {
    sqlx::query("delete from availability_answers where post_token = $1")
        .bind(post_token)
        .execute(db.pool())
        .await?;
    Ok(())
}
