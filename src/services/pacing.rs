//! One token bucket for every message call this instance makes to Divar.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Paces outgoing sends to at most `per_minute` in any 60-second window; `None` is unlimited.
#[derive(Clone, Default)]
pub struct Pacer(Option<Arc<DefaultDirectRateLimiter>>);

impl Pacer {
    pub fn per_minute(per_minute: u32) -> Self {
        if per_minute == 0 {
            return Self(None);
        }
        // No burst, and 2% slower than the limit: a burst of N at the start of a window plus
        // the refill inside it would exceed N, and network jitter can bunch evenly spaced sends.
        let period = Duration::from_micros(60_000_000 * 102 / 100 / u64::from(per_minute));
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::MIN);
        Self(Some(Arc::new(RateLimiter::direct(quota))))
    }

    /// Waits for this instance's turn to send.
    pub async fn ready(&self) {
        if let Some(limiter) = &self.0 {
            limiter.until_ready().await;
        }
    }
}
