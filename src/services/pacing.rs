//! One token bucket for every message call this instance makes to Divar.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Paces outgoing sends to at most `per_minute` in any 60-second window; `None` is unlimited.
#[derive(Clone, Default)]
pub struct Pacer {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    per_minute: u32,
    /// Waiters take turns first-come first-served, so no sender starves (an outbox worker
    /// holding leased rows must get its turn before the leases run out).
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Pacer {
    pub fn per_minute(per_minute: u32) -> Self {
        if per_minute == 0 {
            return Self::default();
        }
        // No burst, and 2% slower than the limit: a burst of N at the start of a window plus
        // the refill inside it would exceed N, and network jitter can bunch evenly spaced sends.
        let period = Duration::from_micros(60_000_000 * 102 / 100 / u64::from(per_minute));
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::MIN);
        Self {
            limiter: Some(Arc::new(RateLimiter::direct(quota))),
            per_minute,
            turn: Arc::default(),
        }
    }

    /// The limit, or `None` when sends are not paced.
    pub fn limit_per_minute(&self) -> Option<u32> {
        self.limiter.as_ref().map(|_| self.per_minute)
    }

    /// Waits for this instance's turn to send.
    pub async fn ready(&self) {
        if let Some(limiter) = &self.limiter {
            let _turn = self.turn.lock().await;
            limiter.until_ready().await;
        }
    }
}
