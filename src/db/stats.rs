//! Counts for the metrics sampler (`worker::sampler`): read-only, each one statement.

use sqlx::Row;

use super::Db;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxSample {
    /// Rows per status.
    pub by_status: Vec<(String, i64)>,
    /// When the oldest row that is due and unclaimed became due (Unix ms).
    pub oldest_due_at: Option<i64>,
    /// Rows a worker holds right now.
    pub in_flight: i64,
}

pub async fn outbox(db: &Db, now: i64) -> anyhow::Result<OutboxSample> {
    let by_status = sqlx::query("select status, count(*) as n from outbox group by status")
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let row = sqlx::query(
        "select min(case when next_attempt_at <= $1 and (locked_until is null or locked_until < $1)
                         then next_attempt_at end) as oldest,
                coalesce(sum(case when locked_until >= $1 then 1 else 0 end), 0) as in_flight
         from outbox where status = 'pending'",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    Ok(OutboxSample {
        by_status,
        oldest_due_at: row.try_get("oldest")?,
        in_flight: row.try_get("in_flight")?,
    })
}

/// Broadcasts per status.
pub async fn broadcasts(db: &Db) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(
        sqlx::query("select status, count(*) as n from broadcasts group by status")
            .fetch_all(db.pool())
            .await?
            .iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?,
    )
}
