//! The purge task: every `KENAR_PURGE_INTERVAL_SECS`, what is past its retention window goes
//! (see `db::purge`). Replicas may all run it: every statement is safe to repeat.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    clock::SharedClock,
    config::Retention,
    db::{
        self, Db,
        erasure::{self, UserTable},
        purge::{self, Cutoffs},
    },
    observe::reachability::{self, Backoff},
};

fn before(now: i64, window: Duration) -> i64 {
    now - i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

/// The cut-offs for a purge at `now`.
pub fn cutoffs(retention: &Retention, now: i64) -> Cutoffs {
    Cutoffs {
        now,
        clicks_before: before(now, retention.clicks),
        bodies_before: before(now, retention.message_bodies),
        finished_before: before(now, retention.finished_sends),
        conversations_before: before(now, retention.conversations),
        grants_before: before(now, kenar::oauth::REFRESH_TOKEN_LIFETIME),
    }
}

/// One pass at `now`: what is past its window goes.
pub async fn purge_once(db: &Db, retention: &Retention, now: i64) -> anyhow::Result<purge::Purged> {
    purge::purge(db, cutoffs(retention, now)).await
}

/// Purges every `retention.purge_every` (on tokio's timer), with cut-offs from `clock`: the
/// core's windows, and the days each of `tables` declared it is kept. A pass the database did not
/// answer is tried again with backoff (up to the interval), not an hour later.
pub async fn run_until_stopped(
    db: Db,
    retention: Retention,
    tables: Vec<&'static UserTable>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // In its backoff: on again as soon as the database answers someone.
            _ = reachability::database().recovered(), if backoff.is_backing_off() => {}
            () = shutdown.cancelled() => return,
        }
        let began = std::time::Instant::now();
        wait = match purge_pass(&db, &retention, &tables, clock.now_ms()).await {
            Ok(()) => {
                reachability::database().reached_by(began);
                backoff.reset();
                retention.purge_every
            }
            Err(error) if db::is_unavailable(&error) => {
                reachability::database().failed(&format!("{error:#}"));
                backoff.next_delay().min(retention.purge_every)
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "purging failed; retrying at the next interval"
                );
                retention.purge_every
            }
        };
    }
}

async fn purge_pass(
    db: &Db,
    retention: &Retention,
    tables: &[&'static UserTable],
    now: i64,
) -> anyhow::Result<()> {
    match erasure::purge_expired(db, tables, now).await? {
        0 => {}
        rows => tracing::info!(rows, "purged feature rows past their kept days"),
    }
    let purged = purge_once(db, retention, now).await?;
    if purged.total() > 0 {
        tracing::info!(?purged, "purged data past its retention window");
    } else {
        tracing::debug!("nothing to purge");
    }
    Ok(())
}
