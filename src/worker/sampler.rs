//! Samples what only the database knows into gauges: outbox rows by status, the age of the
//! oldest due row, rows in flight, broadcasts by status, and the pool's connections.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::{
    clock::SharedClock,
    db::{self, Db, stats},
    observe::{
        self,
        reachability::{self, Backoff},
    },
};

/// Every status a gauge is kept for, so one that empties reads 0 instead of its last value.
const OUTBOX_STATUSES: [&str; 4] = ["pending", "sent", "failed", "cancelled"];
const BROADCAST_STATUSES: [&str; 4] = ["running", "paused", "done", "cancelled"];

pub async fn run_until_stopped(
    db: Db,
    every: Duration,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = reachability::database().recovered(), if backoff.is_backing_off() => {}
            () = shutdown.cancelled() => return,
        }
        let began = Instant::now();
        wait = match sample(&db, clock.now_ms()).await {
            Ok(()) => {
                reachability::database().reached_by(began);
                backoff.reset();
                every
            }
            Err(error) => {
                if db::is_unavailable(&error) {
                    reachability::database().failed(&format!("{error:#}"));
                } else {
                    tracing::debug!(error = format!("{error:#}"), "sampling metrics failed");
                }
                backoff.next_delay().max(every)
            }
        };
    }
}

async fn sample(db: &Db, now: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let connection = db.pool().acquire().await;
    metrics::histogram!(observe::DB_ACQUIRE).record(started.elapsed().as_secs_f64());
    drop(connection?);
    let (size, idle) = db.pool_state();
    metrics::gauge!(observe::DB_CONNECTIONS, "state" => "idle").set(idle as f64);
    metrics::gauge!(observe::DB_CONNECTIONS, "state" => "in_use")
        .set(f64::from(size).max(idle as f64) - idle as f64);

    let outbox = stats::outbox(db, now).await?;
    for status in OUTBOX_STATUSES {
        let n = outbox
            .by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(observe::OUTBOX_ROWS, "status" => status).set(n as f64);
    }
    let waited_ms = outbox.oldest_due_at.map_or(0, |due| (now - due).max(0));
    metrics::gauge!(observe::OUTBOX_OLDEST_DUE).set(waited_ms as f64 / 1000.0);
    metrics::gauge!(observe::OUTBOX_IN_FLIGHT).set(outbox.in_flight as f64);
    let broadcasts = stats::broadcasts(db).await?;
    for status in BROADCAST_STATUSES {
        let n = broadcasts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(observe::BROADCASTS, "status" => status).set(n as f64);
    }
    Ok(())
}
