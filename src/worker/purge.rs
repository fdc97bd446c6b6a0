//! The purge task: every `KENAR_PURGE_INTERVAL_SECS`, what is past its retention window goes
//! (see `db::purge`). Replicas may all run it: every statement is safe to repeat.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    clock::SharedClock,
    config::Retention,
    db::{
        Db,
        erasure::{self, UserTable},
        purge::{self, Cutoffs},
    },
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
/// core's windows, and the days each of `tables` declared it is kept.
pub async fn run_until_stopped(
    db: Db,
    retention: Retention,
    tables: Vec<&'static UserTable>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(retention.purge_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = clock.now_ms();
        match erasure::purge_expired(&db, &tables, now).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "purged feature rows past their kept days"),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "purging feature rows failed")
            }
        }
        match purge_once(&db, &retention, now).await {
            Ok(purged) if purged.total() > 0 => {
                tracing::info!(?purged, "purged data past its retention window");
            }
            Ok(_) => tracing::debug!("nothing to purge"),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "purging failed; retrying at the next interval"
            ),
        }
    }
}
