//! tower-sessions records in the database, so sessions survive restarts and are shared by
//! replicas. Only a SHA-256 of each session id is stored: a copy of the table (a backup, a
//! replica's disk) does not let anyone take over a session. The visitor's Divar user id, kept
//! under [`USER_ID_KEY`] in the session's data, is copied to the row's `user_id` column, so
//! erasure finds a person's sessions by key.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::{Error, Result},
};

use super::Db;
use crate::clock::SharedClock;

/// The top-level key of a session's data that holds the visitor's Divar user id (a JSON
/// string), when known. The web layer writes it; the store files the session under it.
pub use crate::domain::SESSION_USER_KEY as USER_ID_KEY;

/// Expired sessions are not loaded; the purge (`db::purge`) deletes them.
#[derive(Debug, Clone)]
pub struct DbSessionStore {
    db: Db,
    clock: SharedClock,
}

impl DbSessionStore {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }
}

/// The row key of a session: the hash of its id, never the id (the cookie's value) itself.
fn key(id: &Id) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// tower-sessions dates a session's expiry on the system clock; the store keeps it on its own
/// clock (the same one in production, a test's manual one in tests), as the time left from now.
fn expiry_ms(record: &Record, now_ms: i64) -> i64 {
    let left = (record.expiry_date - OffsetDateTime::now_utc()).whole_milliseconds();
    now_ms.saturating_add(i64::try_from(left).unwrap_or(i64::MAX))
}

/// The stored expiry back on the system clock, for tower-sessions.
fn expiry_date(expires_at: i64, now_ms: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::milliseconds(expires_at.saturating_sub(now_ms))
}

/// Whose session it is, from [`USER_ID_KEY`].
fn user_id(record: &Record) -> Option<&str> {
    record.data.get(USER_ID_KEY).and_then(|v| v.as_str())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
        let now = self.clock.now_ms();
        // A colliding random id is vanishingly rare; pick another one if it happens.
        loop {
            let inserted = sqlx::query(
                "insert into web_sessions (session_id, user_id, data, expires_at, created_at, updated_at)
                 values ($1, $2, $3, $4, $5, $5) on conflict (session_id) do nothing",
            )
            .bind(key(&record.id))
            .bind(user_id(record))
            .bind(&data)
            .bind(expiry_ms(record, now))
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
        let now = self.clock.now_ms();
        sqlx::query(
            "insert into web_sessions (session_id, user_id, data, expires_at, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $5)
             on conflict (session_id) do update set
                 user_id = excluded.user_id, data = excluded.data, expires_at = excluded.expires_at,
                 updated_at = excluded.updated_at",
        )
        .bind(key(&record.id))
        .bind(user_id(record))
        .bind(data)
        .bind(expiry_ms(record, now))
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let now = self.clock.now_ms();
        let row = sqlx::query(
            "select data, expires_at from web_sessions where session_id = $1 and expires_at > $2",
        )
        .bind(key(id))
        .bind(now)
        .fetch_optional(self.db.pool())
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: String = row.try_get("data").map_err(backend)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(backend)?;
        let data: HashMap<String, serde_json::Value> =
            serde_json::from_str(&data).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date: expiry_date(expires_at, now),
        }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        sqlx::query("delete from web_sessions where session_id = $1")
            .bind(key(id))
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
