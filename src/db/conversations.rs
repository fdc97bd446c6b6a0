//! Conversations and posts seen through session initialization, and the clicks themselves.

use sqlx::Row;

use super::Db;
use crate::domain::{ConversationId, PostToken, SessionInit, UserId, UserSide};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Conversation {
    pub conversation_id: ConversationId,
    pub post_token: Option<PostToken>,
    pub seller_user_id: Option<UserId>,
    pub buyer_user_id: Option<UserId>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordedSessionInit {
    pub session_init_id: String,
    pub conversation_id: Option<ConversationId>,
    pub post_token: Option<PostToken>,
    pub user_id: Option<UserId>,
    pub user_side: Option<UserSide>,
    pub source: String,
    pub revision: String,
    pub extra_data: String,
    pub callback_url: Option<String>,
    pub created_at: i64,
}

/// What a click tells about its conversation: created, or completed with what this payload
/// knows. The one write of session initialization (the click itself travels in its sealed
/// link, see `domain::entry_link`); nothing when the click names no conversation.
#[tracing::instrument(skip_all, fields(conversation_id = ?init.conversation_id))]
pub async fn record_click(db: &Db, init: &SessionInit, now: i64) -> anyhow::Result<()> {
    let Some(conversation_id) = &init.conversation_id else {
        return Ok(());
    };
    // A later click may know more (e.g. the other side's id); never erase what we knew.
    sqlx::query(
        "insert into conversations (conversation_id, post_token, seller_user_id, buyer_user_id, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $5)
         on conflict (conversation_id) do update set
             post_token = coalesce(excluded.post_token, conversations.post_token),
             seller_user_id = coalesce(excluded.seller_user_id, conversations.seller_user_id),
             buyer_user_id = coalesce(excluded.buyer_user_id, conversations.buyer_user_id),
             updated_at = excluded.updated_at",
    )
    .bind(conversation_id)
    .bind(&init.post_token)
    .bind(&init.seller_id)
    .bind(&init.buyer_id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find(
    db: &Db,
    conversation_id: &ConversationId,
) -> anyhow::Result<Option<Conversation>> {
    Ok(sqlx::query_as(
        "select conversation_id, post_token, seller_user_id, buyer_user_id, created_at, updated_at
         from conversations where conversation_id = $1",
    )
    .bind(conversation_id)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn list_for_post(db: &Db, post_token: &PostToken) -> anyhow::Result<Vec<Conversation>> {
    Ok(sqlx::query_as(
        "select conversation_id, post_token, seller_user_id, buyer_user_id, created_at, updated_at
         from conversations where post_token = $1 order by updated_at desc, conversation_id",
    )
    .bind(post_token)
    .fetch_all(db.pool())
    .await?)
}

pub async fn find_session_init(db: &Db, id: &str) -> anyhow::Result<Option<RecordedSessionInit>> {
    Ok(sqlx::query_as(
        "select session_init_id, conversation_id, post_token, user_id, user_side, source, revision,
             extra_data, callback_url, created_at
         from session_inits where session_init_id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// Links a conversation to its post (from a webhook); refreshes its last activity.
pub async fn record_seen(
    db: &Db,
    conversation_id: &ConversationId,
    post_token: &PostToken,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into conversations (conversation_id, post_token, seller_user_id, buyer_user_id, created_at, updated_at)
         values ($1, $2, null, null, $3, $3)
         on conflict (conversation_id) do update set post_token = excluded.post_token, updated_at = excluded.updated_at",
    )
    .bind(conversation_id)
    .bind(post_token)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Who a broadcast of a post reaches: the post's conversations known at `as_of`, except those
/// recorded with another seller (the seller's other account, or a post that changed hands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    pub conversation_ids: Vec<ConversationId>,
    pub other_seller: usize,
}

impl Recipients {
    /// Names the exact list (SHA-256 of the ids, in order): the confirm form carries it, so the
    /// broadcast goes to the very conversations the seller saw counted.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for id in &self.conversation_ids {
            hash.update(id.as_str().as_bytes());
            hash.update([0]);
        }
        hash.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The confirm step and the broadcast it confirms both ask with the same `as_of`, so the count
/// the seller saw is the list that is sent to.
pub async fn recipients_for_post(
    db: &Db,
    post_token: &PostToken,
    seller_user_id: &UserId,
    as_of: i64,
) -> anyhow::Result<Recipients> {
    let rows = sqlx::query(
        "select conversation_id, seller_user_id from conversations
         where post_token = $1 and created_at <= $2 order by created_at, conversation_id",
    )
    .bind(post_token)
    .bind(as_of)
    .fetch_all(db.pool())
    .await?;
    let mut recipients = Recipients::default();
    for row in rows {
        let seller: Option<UserId> = row.try_get("seller_user_id")?;
        if seller.is_some_and(|s| &s != seller_user_id) {
            recipients.other_seller += 1;
        } else {
            recipients
                .conversation_ids
                .push(row.try_get("conversation_id")?);
        }
    }
    Ok(recipients)
}

/// Files a click that named nobody (Divar's touch-points body) under the user Divar said
/// consented, so it is found and erased with the rest of that user's data. The conversation's
/// seller and buyer are left as they were: the click's side was claimed for whoever clicked,
/// and the person who opened the link may be the other party.
pub async fn identify_click(
    db: &Db,
    session_init_id: &str,
    user_id: &UserId,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "update session_inits set user_id = $1, updated_at = $2
         where session_init_id = $3 and user_id is null",
    )
    .bind(user_id)
    .bind(now)
    .bind(session_init_id)
    .execute(db.pool())
    .await?;
    Ok(())
}
