//! The token vault's rows. Tokens arrive here already sealed (see `crate::crypto`); this module
//! never sees them in plain text.

use sqlx::{FromRow, Row, any::AnyRow};

use super::Db;
use crate::domain::{ConversationId, PostToken, UserId};

/// What a grant covers: one conversation, or every conversation of a post.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Conversation(ConversationId),
    Post(PostToken),
}

impl Subject {
    /// The `subject_kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conversation(_) => "conversation",
            Self::Post(_) => "post",
        }
    }

    /// The `subject_id` column.
    pub fn id(&self) -> &str {
        match self {
            Self::Conversation(id) => id.as_str(),
            Self::Post(token) => token.as_str(),
        }
    }
}

/// Two columns make one subject, so this one mapping is written out.
impl FromRow<'_, AnyRow> for Subject {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let kind: String = row.try_get("subject_kind")?;
        Ok(match kind.as_str() {
            "conversation" => Self::Conversation(row.try_get("subject_id")?),
            "post" => Self::Post(row.try_get("subject_id")?),
            other => {
                return Err(sqlx::Error::ColumnDecode {
                    index: "subject_kind".into(),
                    source: format!("`{other}` is not a grant subject").into(),
                });
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedGrant {
    pub grant_id: String,
    #[sqlx(flatten)]
    pub subject: Subject,
    pub user_id: UserId,
    pub scope: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_expires_at: i64,
    pub key_version: i64,
}

/// Stores a new grant, replacing what the same user granted for the same subject before.
pub async fn save(db: &Db, grant: &SealedGrant, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "insert into grants (grant_id, subject_kind, subject_id, user_id, scope, access_token, refresh_token,
             access_expires_at, key_version, refresh_lease_until, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, null, $10, $10)
         on conflict (user_id, subject_kind, subject_id) do update set
             grant_id = excluded.grant_id, scope = excluded.scope, access_token = excluded.access_token,
             refresh_token = excluded.refresh_token, access_expires_at = excluded.access_expires_at,
             key_version = excluded.key_version, refresh_lease_until = null, updated_at = excluded.updated_at",
    )
    .bind(&grant.grant_id)
    .bind(grant.subject.kind())
    .bind(grant.subject.id())
    .bind(&grant.user_id)
    .bind(&grant.scope)
    .bind(&grant.access_token)
    .bind(&grant.refresh_token)
    .bind(grant.access_expires_at)
    .bind(grant.key_version)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find(
    db: &Db,
    subject: &Subject,
    user_id: &UserId,
) -> anyhow::Result<Option<SealedGrant>> {
    Ok(sqlx::query_as(
        "select grant_id, subject_kind, subject_id, user_id, scope, access_token, refresh_token,
             access_expires_at, key_version
         from grants where subject_kind = $1 and subject_id = $2 and user_id = $3",
    )
    .bind(subject.kind())
    .bind(subject.id())
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// The grants of these subjects and users that exist, in no particular order: one read for a
/// batch of sends.
pub async fn find_many(db: &Db, wanted: &[(Subject, UserId)]) -> anyhow::Result<Vec<SealedGrant>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<String> = (0..wanted.len())
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    // Row values against a VALUES list: both engines read it from the grants' unique index.
    let sql = format!(
        "select grant_id, subject_kind, subject_id, user_id, scope, access_token, refresh_token,
             access_expires_at, key_version
         from grants where (user_id, subject_kind, subject_id) in (values {})",
        rows.join(", ")
    );
    let mut query = sqlx::query_as(&sql);
    for (subject, user_id) in wanted {
        query = query.bind(user_id).bind(subject.kind()).bind(subject.id());
    }
    Ok(query.fetch_all(db.pool()).await?)
}

/// Takes the right to refresh `grant_id` until `until`, unless another process holds it or has
/// already rotated the refresh token read as `refresh_token` (then the caller reads the grant
/// again and uses the winner's tokens: refreshing with a spent token would lose the grant).
pub async fn take_refresh_lease(
    db: &Db,
    grant_id: &str,
    refresh_token: &str,
    now: i64,
    until: i64,
) -> anyhow::Result<bool> {
    let taken = sqlx::query(
        "update grants set refresh_lease_until = $1
         where grant_id = $2 and refresh_token = $4
           and (refresh_lease_until is null or refresh_lease_until < $3)",
    )
    .bind(until)
    .bind(grant_id)
    .bind(now)
    .bind(refresh_token)
    .execute(db.pool())
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Persists a rotated pair and gives up the lease. The grant id stays, so the new ciphertexts
/// must be sealed for it.
pub async fn store_refreshed(
    db: &Db,
    grant_id: &str,
    access_token: &str,
    refresh_token: Option<&str>,
    access_expires_at: i64,
    key_version: i64,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "update grants set access_token = $1, refresh_token = coalesce($2, refresh_token),
             access_expires_at = $3, key_version = $4, refresh_lease_until = null, updated_at = $5
         where grant_id = $6",
    )
    .bind(access_token)
    .bind(refresh_token)
    .bind(access_expires_at)
    .bind(key_version)
    .bind(now)
    .bind(grant_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Replaces a grant's ciphertexts with the same tokens sealed under another key, unless the
/// grant changed since it was read with `old_access` (a refresh got there first: every seal
/// has its own nonce, so an unchanged ciphertext means an unchanged row).
pub async fn reseal(
    db: &Db,
    grant_id: &str,
    old_access: &str,
    access_token: &str,
    refresh_token: Option<&str>,
    new_version: i64,
    now: i64,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "update grants set access_token = $1, refresh_token = $2, key_version = $3, updated_at = $4
         where grant_id = $5 and access_token = $6",
    )
    .bind(access_token)
    .bind(refresh_token)
    .bind(new_version)
    .bind(now)
    .bind(grant_id)
    .bind(old_access)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every grant not sealed under `version`, for `kenar-chat rekey`.
pub async fn not_sealed_under(db: &Db, version: i64) -> anyhow::Result<Vec<SealedGrant>> {
    Ok(sqlx::query_as(
        "select grant_id, subject_kind, subject_id, user_id, scope, access_token, refresh_token,
             access_expires_at, key_version
         from grants where key_version <> $1 order by grant_id",
    )
    .bind(version)
    .fetch_all(db.pool())
    .await?)
}

/// Drops one grant (not a newer one the same user made for the same subject since).
pub async fn delete_by_id(db: &Db, grant_id: &str) -> anyhow::Result<()> {
    sqlx::query("delete from grants where grant_id = $1")
        .bind(grant_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn release_lease(db: &Db, grant_id: &str) -> anyhow::Result<()> {
    sqlx::query("update grants set refresh_lease_until = null where grant_id = $1")
        .bind(grant_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, subject: &Subject, user_id: &UserId) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "delete from grants where subject_kind = $1 and subject_id = $2 and user_id = $3",
    )
    .bind(subject.kind())
    .bind(subject.id())
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether the owner of `post` has a grant for it holding `scope` (e.g. `USER_POSTS_GET`, without
/// which Divar does not report the post's removal).
pub async fn post_grant_holds(db: &Db, post: &PostToken, scope: &str) -> anyhow::Result<bool> {
    let row = sqlx::query(
        "select count(*) from grants
         where subject_kind = 'post' and subject_id = $1 and (' ' || scope || ' ') like $2",
    )
    .bind(post)
    .bind(format!("% {scope} %"))
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}
