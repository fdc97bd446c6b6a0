//! Composer drafts a user saved for reuse.

use super::Db;
use crate::domain::UserId;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Template {
    pub template_id: String,
    pub name: String,
    /// The composer's fields as a JSON object of strings.
    pub draft: String,
}

/// Saves a template unless the user already has `cap` of them (checked in the same statement,
/// so two saves at once cannot pass it). `None` when the cap was reached.
pub async fn create(
    db: &Db,
    user_id: &UserId,
    name: &str,
    draft: &str,
    cap: i64,
    now: i64,
) -> anyhow::Result<Option<String>> {
    let id = uuid::Uuid::new_v4().to_string();
    let done = sqlx::query(
        "insert into templates (template_id, user_id, name, draft, created_at, updated_at)
         select $1, $2, $3, $4, $5, $5
         where (select count(*) from templates where user_id = $2) < $6",
    )
    .bind(&id)
    .bind(user_id)
    .bind(name)
    .bind(draft)
    .bind(now)
    .bind(cap)
    .execute(db.pool())
    .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}

pub async fn list(db: &Db, user_id: &UserId) -> anyhow::Result<Vec<Template>> {
    Ok(sqlx::query_as(
        "select template_id, name, draft from templates where user_id = $1 order by created_at desc, template_id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Only the owner's template is found.
pub async fn find(
    db: &Db,
    template_id: &str,
    user_id: &UserId,
) -> anyhow::Result<Option<Template>> {
    Ok(sqlx::query_as(
        "select template_id, name, draft from templates where template_id = $1 and user_id = $2",
    )
    .bind(template_id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn delete(db: &Db, template_id: &str, user_id: &UserId) -> anyhow::Result<bool> {
    let done = sqlx::query("delete from templates where template_id = $1 and user_id = $2")
        .bind(template_id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
