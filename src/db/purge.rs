//! Forgetting on schedule: what the add-on no longer needs is deleted, or its text cleared, once
//! its retention window has passed (Divar asks apps to keep people's data no longer than needed).

use super::Db;

/// Rows older than these instants (Unix ms) go.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    pub now: i64,
    /// Clicks recorded (their link opened) before this.
    pub clicks_before: i64,
    /// Text and buttons of messages and broadcasts finished before this.
    pub bodies_before: i64,
    /// Outbox rows, messages and broadcasts finished before this.
    pub finished_before: i64,
    /// Conversations last heard of before this.
    pub conversations_before: i64,
    /// Grants whose tokens were last issued before this, their access token expired: the
    /// refresh token is past its life too, so the grant can never send again.
    pub grants_before: i64,
}

/// How many rows of each kind one purge removed (or cleared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub web_sessions: u64,
    /// Spent one-time links whose link has expired (their seal refuses them now).
    pub spent_links: u64,
    pub clicks: u64,
    pub message_bodies: u64,
    pub broadcast_bodies: u64,
    pub outbox_rows: u64,
    pub messages: u64,
    pub broadcasts: u64,
    pub conversations: u64,
    pub paused_broadcasts: u64,
    pub grants: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.web_sessions
            + self.spent_links
            + self.clicks
            + self.message_bodies
            + self.broadcast_bodies
            + self.outbox_rows
            + self.messages
            + self.broadcasts
            + self.conversations
            + self.paused_broadcasts
            + self.grants
    }
}

/// One pass, in one transaction. A finished message first loses only its text and buttons
/// (cleared to `{}`, which pages read as an empty message and which is never sent again) and
/// keeps its status for the person's history; later it goes whole. A finished broadcast keeps
/// its counts until it is deleted whole with its outbox rows.
pub async fn purge(db: &Db, at: Cutoffs) -> anyhow::Result<Purged> {
    let mut tx = db.pool().begin().await?;
    let mut run = async |sql: &str, cutoff: i64| -> anyhow::Result<u64> {
        Ok(sqlx::query(sql)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    };
    // A broadcast paused for its seller to reconnect waits at most the records' window; then it
    // ends as cancelled, as if at that moment, so its text and records go by the rules below.
    run(
        "update outbox set status = 'cancelled', updated_at = $1
         where status = 'pending' and broadcast_id in
             (select broadcast_id from broadcasts where status = 'paused' and updated_at < $1)",
        at.finished_before,
    )
    .await?;
    let paused_broadcasts = run(
        "update broadcasts set status = 'cancelled', updated_at = $1
         where status = 'paused' and updated_at < $1",
        at.finished_before,
    )
    .await?;
    let purged = Purged {
        web_sessions: run("delete from web_sessions where expires_at < $1", at.now).await?,
        spent_links: run("delete from spent_links where expires_at < $1", at.now).await?,
        clicks: run(
            "delete from session_inits where created_at < $1",
            at.clicks_before,
        )
        .await?,
        message_bodies: run(
            "update messages set body = '{}' where body <> '{}' and updated_at < $1
               and status in ('sent', 'failed')",
            at.bodies_before,
        )
        .await?,
        broadcast_bodies: run(
            "update broadcasts set body = '{}' where body <> '{}' and updated_at < $1
               and status in ('done', 'cancelled')",
            at.bodies_before,
        )
        .await?,
        outbox_rows: run(
            "delete from outbox where updated_at < $1 and status in ('sent', 'failed', 'cancelled')
               and (message_id is not null
                    or broadcast_id in (select broadcast_id from broadcasts
                                        where status in ('done', 'cancelled') and updated_at < $1))",
            at.finished_before,
        )
        .await?,
        // After the outbox rows: a message's row goes with the message (on delete cascade).
        messages: run(
            "delete from messages where updated_at < $1 and status in ('sent', 'failed')",
            at.finished_before,
        )
        .await?,
        broadcasts: run(
            "delete from broadcasts where updated_at < $1 and status in ('done', 'cancelled')
               and not exists (select 1 from outbox o where o.broadcast_id = broadcasts.broadcast_id)",
            at.finished_before,
        )
        .await?,
        // A click still kept names its conversation (a foreign key): the conversation waits.
        conversations: run(
            "delete from conversations where updated_at < $1
               and not exists (select 1 from session_inits s
                               where s.conversation_id = conversations.conversation_id)",
            at.conversations_before,
        )
        .await?,
        paused_broadcasts,
        grants: 0,
    };
    let grants = sqlx::query("delete from grants where updated_at < $1 and access_expires_at < $2")
        .bind(at.grants_before)
        .bind(at.now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let purged = Purged { grants, ..purged };
    tx.commit().await?;
    Ok(purged)
}
