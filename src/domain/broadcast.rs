//! A seller's broadcast as the use cases and pages see it: the record, how far it got, and the
//! conversations that did not get it (read by `db::broadcasts`).

use super::{
    PostToken, UserId,
    status::{BroadcastKind, BroadcastStatus},
};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Broadcast {
    pub broadcast_id: String,
    pub post_token: PostToken,
    pub user_id: UserId,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: BroadcastStatus,
    #[sqlx(try_from = "String")]
    pub kind: BroadcastKind,
    /// Why it stopped before its end ([`STOPPED_FOR_RECONSENT`], [`POST_REMOVED`]).
    pub stop_reason: Option<String>,
    pub total: i64,
    pub created_at: i64,
    /// The composer form's key it was started with.
    pub idempotency_key: String,
}

/// A paused broadcast waits for its seller to connect again.
pub const STOPPED_FOR_RECONSENT: &str = "reconsent";
/// A cancelled broadcast stopped because Divar reported its post removed.
pub const POST_REMOVED: &str = "post_removed";

impl Broadcast {
    pub fn is_auto_reply(&self) -> bool {
        self.kind == BroadcastKind::AutoReply
    }

    /// Cancelled because its post was removed from Divar.
    pub fn post_removed(&self) -> bool {
        self.stop_reason.as_deref() == Some(POST_REMOVED)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Progress {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// A conversation of a broadcast that did not get the message.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedRecipient {
    pub failure: Option<String>,
    pub attempts: i64,
    /// When the last attempt ended.
    #[sqlx(rename = "updated_at")]
    pub failed_at: i64,
    /// When the add-on first learnt of the conversation (it has no other person-facing name).
    #[sqlx(rename = "seen_at")]
    pub conversation_seen_at: Option<i64>,
}
