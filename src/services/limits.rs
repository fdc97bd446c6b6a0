//! What one person may use of the app's sends (docs/messaging.md, "Fairness"). Divar's rate
//! limit is per app, shared by every seller and buyer: without these, one person queueing
//! thousands of messages would hold up everyone else's. Each limit is a setting
//! (`config::PersonLimits`); a hit is refused before anything is recorded, so nothing the
//! person already queued is touched, and counted in `kenar_limit_hits_total{limit}`.

use std::{hash::Hash, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    Quota, RateLimiter, clock::Clock as _, middleware::NoOpMiddleware,
    state::keyed::DashMapStateStore,
};

use crate::{config::PersonLimits, db, domain::UserId};

use super::{Deps, pacing::PaceClock};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Submits one person may make at once before the per-minute rate applies (at least a second's
/// worth of the rate).
const SUBMIT_BURST: u32 = 20;

/// Which limit a send met, and when the person may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    /// Too many submits in a short time: again after `retry_after`.
    Submits { retry_after: Duration },
    /// As many single sends waiting as allowed: again once some have gone.
    QueuedSends { limit: u32 },
    /// As many broadcasts running as allowed: again once one ends or is cancelled.
    RunningBroadcasts { limit: u32 },
    /// As many sends in 24 hours as allowed: again at `again_at` (epoch ms).
    SendsPerDay { limit: u32, again_at: i64 },
    /// One broadcast to more people than a whole day allows: never, as it is.
    LargerThanADay { limit: u32, recipients: usize },
}

impl LimitHit {
    fn name(&self) -> &'static str {
        match self {
            Self::Submits { .. } => "submits_per_minute",
            Self::QueuedSends { .. } => "queued_sends",
            Self::RunningBroadcasts { .. } => "running_broadcasts",
            Self::SendsPerDay { .. } | Self::LargerThanADay { .. } => "sends_per_day",
        }
    }
}

/// A rate per key on the application's clock (a test's manual one moves it): `per_minute`, in
/// bursts of `burst` or a second's worth of the rate, whichever is more. Keys whose allowance
/// is full again are forgotten once there are many.
#[derive(Clone)]
pub struct KeyedRate<K: Hash + Eq + Clone>(
    Arc<RateLimiter<K, DashMapStateStore<K>, PaceClock, NoOpMiddleware<Duration>>>,
);

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    pub fn new(per_minute: u32, burst: u32, clock: crate::clock::SharedClock) -> Self {
        let burst = burst.max(per_minute / 60).min(per_minute);
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::dashmap_with_clock(
            Quota::per_minute(per_minute).allow_burst(burst),
            PaceClock::new(clock),
        )))
    }

    /// Takes one from `key`'s allowance, or says how long until it has one again.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let limiter = &self.0;
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))?;
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        Ok(())
    }
}

/// The per-person submit rate.
#[derive(Clone)]
pub struct SubmitThrottle(KeyedRate<String>);

impl SubmitThrottle {
    pub fn new(limits: &PersonLimits, clock: crate::clock::SharedClock) -> Self {
        Self(KeyedRate::new(
            limits.submits_per_minute,
            SUBMIT_BURST,
            clock,
        ))
    }

    fn check(&self, user: &UserId) -> Result<(), LimitHit> {
        self.0
            .check(&user.as_str().to_string())
            .map_err(|retry_after| LimitHit::Submits { retry_after })
    }
}

fn counted(hit: LimitHit) -> LimitHit {
    metrics::counter!(crate::observe::LIMIT_HITS, "limit" => hit.name()).increment(1);
    tracing::info!(limit = hit.name(), "a person's send met a limit");
    hit
}

/// Before a single send is recorded: the submit rate, the queued sends, the sends of the day.
pub async fn single_send(deps: &Deps, user: &UserId) -> anyhow::Result<Result<(), LimitHit>> {
    let limits = deps.settings.limits;
    if let Err(hit) = deps.submits.check(user) {
        return Ok(Err(counted(hit)));
    }
    if db::messages::queued_count(&deps.db, user).await? >= i64::from(limits.queued_sends) {
        return Ok(Err(counted(LimitHit::QueuedSends {
            limit: limits.queued_sends,
        })));
    }
    per_day(deps, user, 1).await
}

/// Before a broadcast to `recipients` conversations starts: the submit rate, the running
/// broadcasts, the sends of the day.
pub async fn broadcast(
    deps: &Deps,
    user: &UserId,
    recipients: usize,
) -> anyhow::Result<Result<(), LimitHit>> {
    let limits = deps.settings.limits;
    if let Err(hit) = deps.submits.check(user) {
        return Ok(Err(counted(hit)));
    }
    if db::broadcasts::running_count(&deps.db, user).await? >= i64::from(limits.running_broadcasts)
    {
        return Ok(Err(counted(LimitHit::RunningBroadcasts {
            limit: limits.running_broadcasts,
        })));
    }
    per_day(deps, user, recipients).await
}

async fn per_day(
    deps: &Deps,
    user: &UserId,
    adding: usize,
) -> anyhow::Result<Result<(), LimitHit>> {
    let limit = deps.settings.limits.sends_per_day;
    if adding > limit as usize {
        return Ok(Err(counted(LimitHit::LargerThanADay {
            limit,
            recipients: adding,
        })));
    }
    let now = deps.now();
    let day = db::messages::sends_since(&deps.db, user, now - DAY_MS).await?;
    if day.count + adding as i64 <= i64::from(limit) {
        return Ok(Ok(()));
    }
    // The day's window moves on from its oldest send.
    let again_at = day.oldest.unwrap_or(now) + DAY_MS;
    Ok(Err(counted(LimitHit::SendsPerDay { limit, again_at })))
}
