//! One-time links into the webview. Session initialization seals the click into the link and
//! writes at most one row, the conversation (so a click costs one database write on the path
//! Divar waits on); opening the link checks its seal and expiry, spends it and records the click.

use std::time::Duration;

use crate::{
    clock::SharedClock,
    crypto::LinkSealer,
    db::{self, Db},
    domain::{SessionInit, entry_link::Click},
};

/// Longer than any link we seal (the session-init body is capped at 16 KiB); refused unread.
const MAX_LINK_LEN: usize = 32 * 1024;

#[derive(Clone, Debug)]
pub struct EntryLinks {
    db: Db,
    sealer: LinkSealer,
    ttl: Duration,
    clock: SharedClock,
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
    pub fn new(db: Db, sealer: LinkSealer, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            db,
            sealer,
            ttl,
            clock,
        }
    }

    /// Records what the click tells about its conversation and returns the link's token.
    #[tracing::instrument(skip_all)]
    pub async fn issue(&self, init: &SessionInit) -> anyhow::Result<String> {
        let now = self.clock.now_ms();
        db::conversations::record_click(&self.db, init, now).await?;
        let expires_at = now + i64::try_from(self.ttl.as_millis())?;
        let click = Click::new(init, expires_at);
        Ok(self.sealer.seal(&serde_json::to_vec(&click)?))
    }

    /// Opens a link once. A forged or altered link is `Unknown` before the database is asked.
    #[tracing::instrument(skip_all)]
    pub async fn open(&self, token: &str) -> anyhow::Result<Entry> {
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
        let now = self.clock.now_ms();
        if click.expires_at <= now {
            return Ok(Entry::Expired);
        }
        Ok(match db::spent_links::spend(&self.db, &click, now).await? {
            Some(session_init_id) => Entry::Fresh {
                session_init_id,
                click: Box::new(click),
            },
            None => Entry::AlreadyUsed,
        })
    }
}
