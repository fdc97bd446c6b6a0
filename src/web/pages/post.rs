//! The post's page for its owner: connect, or the known conversations and the broadcasts so far.

use askama::Template;

use crate::{
    domain::{PostToken, status::BroadcastStatus},
    services::broadcast::{Overview, Summary},
};

use super::{
    broadcast::{status_label, status_tone},
    filters, tehran_time,
};

pub struct BroadcastRow {
    pub broadcast_id: String,
    pub auto_reply: bool,
    /// An auto-reply still on.
    pub on: bool,
    pub text: String,
    pub status: &'static str,
    pub tone: &'static str,
    pub sent: i64,
    pub failed: i64,
    pub total: i64,
    pub time: String,
}

#[derive(Template)]
#[template(path = "pages/post.html")]
pub struct PostPage {
    pub post_token: PostToken,
    pub connected: bool,
    /// Divar reported the post removed: no new broadcast.
    pub removed: bool,
    pub conversation_count: usize,
    pub last_activity: Option<String>,
    pub broadcasts: Vec<BroadcastRow>,
    /// The seller has just disconnected the post.
    pub disconnected: bool,
}

impl PostPage {
    pub fn disconnected(self, disconnected: bool) -> Self {
        Self {
            disconnected,
            ..self
        }
    }

    /// The auto-reply that is on, if any (at most one per post).
    pub fn auto_reply(&self) -> Option<&BroadcastRow> {
        self.broadcasts.iter().find(|b| b.on)
    }
}

impl PostPage {
    pub fn new(post_token: PostToken, overview: Overview) -> Self {
        let row = |Summary {
                       broadcast: b,
                       text,
                       progress: p,
                   }| {
            BroadcastRow {
                auto_reply: b.is_auto_reply(),
                on: b.is_auto_reply()
                    && matches!(b.status, BroadcastStatus::Running | BroadcastStatus::Paused),
                text: text.chars().take(80).collect(),
                status: status_label(&b, p.pending),
                tone: status_tone(b.status),
                sent: p.sent,
                failed: p.failed,
                total: b.total,
                time: tehran_time(b.created_at),
                broadcast_id: b.broadcast_id,
            }
        };
        Self {
            post_token,
            connected: overview.connected,
            removed: overview.removed,
            conversation_count: overview.conversations,
            last_activity: overview.last_activity.map(tehran_time),
            broadcasts: overview.broadcasts.into_iter().map(row).collect(),
            disconnected: false,
        }
    }
}

crate::pages!(PostPage);
