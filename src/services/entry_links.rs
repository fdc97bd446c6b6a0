//! One-time links into the webview. Session initialization seals the click into the link and
//! writes at most one row, the conversation (so a click costs one database write on the path
//! Divar waits on); opening the link checks its seal and expiry, spends it and records the click.

use std::time::Duration;

use crate::{
    crypto::LinkSealer,
    db::{self, Db, conversations::RecordedSessionInit, entry_links::Consumed},
    domain::{SessionInit, entry_link::Click, entry_link::EntryLinkToken},
};

/// Longer than any link we seal (the session-init body is capped at 16 KiB); refused unread.
const MAX_LINK_LEN: usize = 32 * 1024;

#[derive(Clone, Debug)]
pub struct EntryLinks {
    db: Db,
    sealer: LinkSealer,
    ttl: Duration,
}

/// What opening a link found.
#[derive(Debug)]
pub enum Entry {
    /// First use, in time: the click, recorded under `session_init_id`.
    Fresh {
        session_init_id: String,
        click: Box<Click>,
    },
    AlreadyUsed,
    Expired,
    /// Not a link we made, or altered: the seal does not open.
    Unknown,
}

impl EntryLinks {
    pub fn new(db: Db, sealer: LinkSealer, ttl: Duration) -> Self {
        Self { db, sealer, ttl }
    }

    /// Records what the click tells about its conversation and returns the link's token.
    #[tracing::instrument(skip_all)]
    pub async fn issue(&self, init: &SessionInit) -> anyhow::Result<String> {
        db::conversations::record_click(&self.db, init).await?;
        let expires_at = db::now_ms() + i64::try_from(self.ttl.as_millis())?;
        let click = Click::new(init, expires_at);
        Ok(self.sealer.seal(&serde_json::to_vec(&click)?))
    }

    /// Opens a link once. A forged or altered link is `Unknown` before the database is asked.
    #[tracing::instrument(skip_all)]
    pub async fn open(&self, token: &str, now: i64) -> anyhow::Result<Entry> {
        if let Some(legacy) = EntryLinkToken::parse(token) {
            return self.open_legacy(&legacy, now).await;
        }
        if token.len() > MAX_LINK_LEN {
            return Ok(Entry::Unknown);
        }
        let Ok(plaintext) = self.sealer.open(token) else {
            return Ok(Entry::Unknown);
        };
        // Sealed by us, so it parses; a value that does not is treated as unknown, not a 500.
        let Ok(click) = serde_json::from_slice::<Click>(&plaintext) else {
            tracing::warn!("a sealed entry link whose payload does not parse");
            return Ok(Entry::Unknown);
        };
        if click.expires_at <= now {
            return Ok(Entry::Expired);
        }
        Ok(match db::entry_links::spend(&self.db, &click).await? {
            Some(session_init_id) => Entry::Fresh {
                session_init_id,
                click: Box::new(click),
            },
            None => Entry::AlreadyUsed,
        })
    }

    /// A link the previous release made: its hash and click are rows.
    async fn open_legacy(&self, token: &EntryLinkToken, now: i64) -> anyhow::Result<Entry> {
        let session_init_id = match db::entry_links::consume(&self.db, &token.hash(), now).await? {
            Consumed::Fresh(id) => id,
            Consumed::AlreadyUsed => return Ok(Entry::AlreadyUsed),
            Consumed::Expired => return Ok(Entry::Expired),
            Consumed::Unknown => return Ok(Entry::Unknown),
        };
        let init: RecordedSessionInit =
            db::conversations::find_session_init(&self.db, &session_init_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("an entry link without its click"))?;
        let extra_data = match serde_json::from_str(&init.extra_data)? {
            serde_json::Value::Object(map) => map,
            _ => Default::default(),
        };
        Ok(Entry::Fresh {
            session_init_id,
            click: Box::new(Click {
                id: String::new(),
                expires_at: now,
                revision: init.revision,
                source: init.source,
                conversation_id: init.conversation_id,
                post_token: init.post_token,
                user_id: init.user_id,
                user_side: init.user_side,
                extra_data,
                callback_url: init.callback_url,
            }),
        })
    }
}
