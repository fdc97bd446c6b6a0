//! Broadcasts and their outbox: one row per conversation, claimed by workers under a lease.

use sqlx::{Any, Row, Transaction, any::AnyRow};

use super::{Backend, Db, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub broadcast_id: String,
    pub post_token: String,
    pub user_id: String,
    pub body: String,
    pub status: String,
    pub paused_reason: Option<String>,
    pub total: i64,
    pub created_at: i64,
}

/// A row a worker has claimed and must finish, reschedule or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub outbox_id: String,
    pub broadcast_id: String,
    pub conversation_id: String,
    pub idempotency_key: String,
    /// Including the attempt just claimed.
    pub attempts: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
}

pub enum Created {
    New(String),
    /// The confirm form was submitted before: that broadcast.
    Existing(String),
}

/// Outbox rows per insert statement: 3 parameters each, well under both engines' limits
/// (SQLite 32,766, PostgreSQL 65,535).
const OUTBOX_INSERT_CHUNK: usize = 500;

/// Broadcasts of at least this many rows refresh PostgreSQL's statistics (see below).
const ANALYZE_AFTER_ROWS: usize = 200;

/// Writes a broadcast and its outbox rows in one transaction.
pub async fn create_broadcast(
    db: &Db,
    idempotency_key: &str,
    post_token: &str,
    user_id: &str,
    body: &str,
    conversation_ids: &[String],
) -> anyhow::Result<Created> {
    let now = now_ms();
    let broadcast_id = uuid::Uuid::new_v4().to_string();
    let mut tx: Transaction<'_, Any> = db.pool().begin().await?;
    let inserted = sqlx::query(
        "insert into broadcasts (broadcast_id, idempotency_key, post_token, user_id, body, status, paused_reason,
             total, created_at, updated_at)
         values ($1, $2, $3, $4, $5, 'running', null, $6, $7, $7)
         on conflict (idempotency_key) do nothing",
    )
    .bind(&broadcast_id)
    .bind(idempotency_key)
    .bind(post_token)
    .bind(user_id)
    .bind(body)
    .bind(conversation_ids.len() as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let existing: String =
            sqlx::query("select broadcast_id from broadcasts where idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_one(&mut *tx)
                .await?
                .try_get("broadcast_id")?;
        return Ok(Created::Existing(existing));
    }
    // Many rows per statement: one round trip per chunk instead of one per conversation.
    for chunk in conversation_ids.chunks(OUTBOX_INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 3 + 3 * i;
                format!(
                    "(${n}, $1, ${}, ${}, 'pending', null, 0, $2, null, null, $2, $2)",
                    n + 1,
                    n + 2
                )
            })
            .collect();
        let sql = format!(
            "insert into outbox (outbox_id, broadcast_id, conversation_id, idempotency_key, status, failure,
                 attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
             values {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&broadcast_id).bind(now);
        // Time-ordered ids append to the indexes instead of landing all over them.
        for conversation_id in chunk {
            query = query
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(conversation_id)
                .bind(uuid::Uuid::now_v7().to_string());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    if db.backend() == Backend::Postgres && conversation_ids.len() >= ANALYZE_AFTER_ROWS {
        // PostgreSQL plans by table statistics, and until autovacuum's next ANALYZE (up to a
        // minute later) they still describe an outbox without these rows: claims then sort
        // every pending row of the broadcast and outcome updates scan them all instead of
        // using the primary key. Refresh them now, as the manual advises after a bulk load.
        // The broadcast is already stored: a failure here only costs speed until autovacuum.
        if let Err(error) = sqlx::query("analyze broadcasts, outbox")
            .execute(db.pool())
            .await
        {
            tracing::warn!(%error, "could not refresh the outbox statistics");
        }
    }
    Ok(Created::New(broadcast_id))
}

/// Where outbox bookkeeping (claims, outcomes, completion) runs.
///
/// PostgreSQL: a transaction whose commit does not wait for the WAL flush. Should the database
/// server itself crash right after, a claim, an outcome or a completion is lost, which only means
/// a row is claimed and sent again under the same idempotency key; waiting would cost a disk
/// flush per batch. SQLite: straight on the pool; each statement commits on its own and, in WAL
/// mode with `synchronous = normal`, a commit does not wait for the disk either. A separate
/// BEGIN and COMMIT would only add two round trips to SQLite's connection thread.
enum Bookkeeping<'a> {
    Postgres(Transaction<'static, Any>),
    Sqlite(&'a sqlx::AnyPool),
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

impl<'a> Bookkeeping<'a> {
    async fn begin(db: &'a Db) -> anyhow::Result<Self> {
        Ok(match db.backend() {
            Backend::Postgres => {
                // One round trip: the setting travels with BEGIN.
                let tx = db
                    .pool()
                    .begin_with("begin; set local synchronous_commit = off")
                    .await?;
                Self::Postgres(tx)
            }
            Backend::Sqlite => Self::Sqlite(db.pool()),
        })
    }

    async fn fetch_all(&mut self, query: AnyQuery<'_>) -> anyhow::Result<Vec<AnyRow>> {
        Ok(match self {
            Self::Postgres(tx) => query.fetch_all(&mut **tx).await?,
            Self::Sqlite(pool) => query.fetch_all(*pool).await?,
        })
    }

    async fn execute(&mut self, query: AnyQuery<'_>) -> anyhow::Result<u64> {
        Ok(match self {
            Self::Postgres(tx) => query.execute(&mut **tx).await?,
            Self::Sqlite(pool) => query.execute(*pool).await?,
        }
        .rows_affected())
    }

    async fn commit(self) -> anyhow::Result<()> {
        if let Self::Postgres(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// Claims up to `limit` due rows of running broadcasts for `lease_ms`. Two workers never get
/// the same row: PostgreSQL skips rows another transaction holds; SQLite runs one writer at a
/// time, and the outer `where` repeats the lease condition, so a racing claim updates nothing.
pub async fn claim_batch(
    db: &Db,
    worker: &str,
    lease_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let now = now_ms();
    // The one dialect switch of the outbox: only PostgreSQL has SKIP LOCKED.
    let lock_clause = match db.backend() {
        Backend::Postgres => "for update of o skip locked",
        Backend::Sqlite => "",
    };
    // The pick is a CTE: PostgreSQL evaluates it once, so LIMIT bounds the claim (a plain
    // `IN (subquery)` may be re-run and claim more rows than asked for).
    let sql = format!(
        "with picked as (
             select o.outbox_id from outbox o
             where o.status = 'pending' and o.next_attempt_at <= $3
               and (o.locked_until is null or o.locked_until < $3)
               and exists (select 1 from broadcasts b
                           where b.broadcast_id = o.broadcast_id and b.status = 'running')
             order by o.next_attempt_at, o.outbox_id
             limit $4 {lock_clause})
         update outbox set locked_until = $1, locked_by = $2, attempts = attempts + 1, updated_at = $3
         from picked
         where outbox.outbox_id = picked.outbox_id
           and outbox.status = 'pending' and (outbox.locked_until is null or outbox.locked_until < $3)
         returning outbox.outbox_id, outbox.broadcast_id, outbox.conversation_id, outbox.idempotency_key,
             outbox.attempts"
    );
    let mut book = Bookkeeping::begin(db).await?;
    let rows = book
        .fetch_all(
            sqlx::query(&sql)
                .bind(now + lease_ms)
                .bind(worker)
                .bind(now)
                .bind(limit),
        )
        .await?;
    book.commit().await?;
    rows.iter()
        .map(|r| -> anyhow::Result<Claimed> {
            Ok(Claimed {
                outbox_id: r.try_get("outbox_id")?,
                broadcast_id: r.try_get("broadcast_id")?,
                conversation_id: r.try_get("conversation_id")?,
                idempotency_key: r.try_get("idempotency_key")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// A final outcome for a row a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub outbox_id: String,
    /// `sent`, `failed` or `cancelled`.
    pub status: &'static str,
    pub failure: Option<&'static str>,
}

/// Records final outcomes for rows this worker holds, one statement per distinct outcome.
/// Returns false when some lease was lost (another worker took the row over).
pub async fn finish_many(db: &Db, worker: &str, outcomes: &[Finished]) -> anyhow::Result<bool> {
    if outcomes.is_empty() {
        return Ok(true);
    }
    type Outcome<'a> = (&'a str, Option<&'a str>);
    let mut groups: Vec<(Outcome, Vec<&str>)> = Vec::new();
    for outcome in outcomes {
        let key = (outcome.status, outcome.failure);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ids)) => ids.push(&outcome.outbox_id),
            None => groups.push((key, vec![&outcome.outbox_id])),
        }
    }
    let mut book = Bookkeeping::begin(db).await?;
    let mut updated = 0;
    for ((status, failure), ids) in groups {
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 5)).collect();
        let sql = format!(
            "update outbox set status = $1, failure = $2, locked_until = null, locked_by = null, updated_at = $3
             where locked_by = $4 and status = 'pending' and outbox_id in ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(status)
            .bind(failure)
            .bind(now_ms())
            .bind(worker);
        for id in ids {
            query = query.bind(id);
        }
        updated += book.execute(query).await?;
    }
    book.commit().await?;
    Ok(updated == outcomes.len() as u64)
}

/// Puts a row back for a later attempt (or, with `refund`, as if it was never tried).
pub async fn reschedule(
    db: &Db,
    outbox_id: &str,
    worker: &str,
    at: i64,
    failure: Option<&str>,
    refund: bool,
) -> anyhow::Result<()> {
    sqlx::query(
        "update outbox set next_attempt_at = $1, failure = $2, locked_until = null, locked_by = null,
             attempts = attempts - $3, updated_at = $4
         where outbox_id = $5 and locked_by = $6 and status = 'pending'",
    )
    .bind(at)
    .bind(failure)
    .bind(if refund { 1i64 } else { 0 })
    .bind(now_ms())
    .bind(outbox_id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find_broadcast(db: &Db, broadcast_id: &str) -> anyhow::Result<Option<Broadcast>> {
    let row = sqlx::query(&format!("{BROADCAST} where broadcast_id = $1"))
        .bind(broadcast_id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(broadcast_from_row).transpose()
}

pub async fn list_broadcasts(
    db: &Db,
    post_token: &str,
    user_id: &str,
) -> anyhow::Result<Vec<Broadcast>> {
    let rows = sqlx::query(&format!(
        "{BROADCAST} where post_token = $1 and user_id = $2 order by created_at desc limit 50"
    ))
    .bind(post_token)
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(broadcast_from_row).collect()
}

pub async fn set_broadcast_status(
    db: &Db,
    broadcast_id: &str,
    from: &[&str],
    to: &str,
    reason: Option<&str>,
) -> anyhow::Result<bool> {
    let allowed = from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let done = sqlx::query(&format!(
        "update broadcasts set status = $1, paused_reason = $2, updated_at = $3
         where broadcast_id = $4 and status in ({allowed})"
    ))
    .bind(to)
    .bind(reason)
    .bind(now_ms())
    .bind(broadcast_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Pauses every running broadcast of a seller's post (their token stopped working).
pub async fn pause_for_grant(
    db: &Db,
    post_token: &str,
    user_id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "update broadcasts set status = 'paused', paused_reason = $1, updated_at = $2
         where post_token = $3 and user_id = $4 and status = 'running'",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(post_token)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Resumes a seller's paused broadcasts after they reconnect (one whose rows all ended while
/// it was paused is done).
pub async fn resume_for_grant(db: &Db, post_token: &str, user_id: &str) -> anyhow::Result<()> {
    sqlx::query(
        "update broadcasts set paused_reason = null, updated_at = $1,
             status = case when exists (select 1 from outbox
                                        where outbox.broadcast_id = broadcasts.broadcast_id
                                          and outbox.status = 'pending')
                           then 'running' else 'done' end
         where post_token = $2 and user_id = $3 and status = 'paused'",
    )
    .bind(now_ms())
    .bind(post_token)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Cancels a broadcast: its pending rows are never sent.
pub async fn cancel(db: &Db, broadcast_id: &str) -> anyhow::Result<bool> {
    let mut tx = db.pool().begin().await?;
    let now = now_ms();
    let changed = sqlx::query(
        "update broadcasts set status = 'cancelled', updated_at = $1
         where broadcast_id = $2 and status in ('running', 'paused')",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update outbox set status = 'cancelled', updated_at = $1
         where broadcast_id = $2 and status = 'pending' and (locked_until is null or locked_until < $1)",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed.rows_affected() == 1)
}

/// Marks running broadcasts done once nothing of them is pending. Workers call it when the
/// queue runs dry after they finished rows, not after every batch.
pub async fn complete_finished(db: &Db) -> anyhow::Result<u64> {
    let mut book = Bookkeeping::begin(db).await?;
    let done = book
        .execute(
            sqlx::query(
                "update broadcasts set status = 'done', updated_at = $1
                 where status = 'running'
                   and not exists (select 1 from outbox
                                   where outbox.broadcast_id = broadcasts.broadcast_id
                                     and outbox.status = 'pending')",
            )
            .bind(now_ms()),
        )
        .await?;
    book.commit().await?;
    Ok(done)
}

pub async fn progress(db: &Db, broadcast_id: &str) -> anyhow::Result<Progress> {
    let rows = sqlx::query(
        "select status, count(*) as n from outbox where broadcast_id = $1 group by status",
    )
    .bind(broadcast_id)
    .fetch_all(db.pool())
    .await?;
    let mut progress = Progress::default();
    for row in rows {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        match status.as_str() {
            "pending" => progress.pending = n,
            "sent" => progress.sent = n,
            "failed" => progress.failed = n,
            _ => progress.cancelled = n,
        }
    }
    Ok(progress)
}

/// Conversations whose delivery failed, with why.
pub async fn failures(db: &Db, broadcast_id: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "select conversation_id, failure from outbox where broadcast_id = $1 and status = 'failed'
         order by conversation_id limit 500",
    )
    .bind(broadcast_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("conversation_id")?,
                r.try_get::<Option<String>, _>("failure")?
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

const BROADCAST: &str =
    "select broadcast_id, post_token, user_id, body, status, paused_reason, total, created_at
    from broadcasts";

fn broadcast_from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<Broadcast> {
    Ok(Broadcast {
        broadcast_id: r.try_get("broadcast_id")?,
        post_token: r.try_get("post_token")?,
        user_id: r.try_get("user_id")?,
        body: r.try_get("body")?,
        status: r.try_get("status")?,
        paused_reason: r.try_get("paused_reason")?,
        total: r.try_get("total")?,
        created_at: r.try_get("created_at")?,
    })
}
