//! Where the simulated Divar reads the time: token lifetimes, code expiry, the per-minute limit,
//! and the times it logs. System time by default; a test holds the same handle and moves it
//! forward instead of waiting (`sandbox.clock().advance(..)`, or `POST /sandbox/_control/clock`
//! from another process).

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

/// System time plus however far it was moved forward. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this sandbox sees it.
    pub fn now_ms(&self) -> i64 {
        system_ms() + self.ahead_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward: a token issued with an hour to live is expired after
    /// `advance(Duration::from_secs(3600))`. Time keeps flowing from there.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(by, Ordering::Relaxed);
    }

    /// How far this clock runs ahead of system time.
    pub fn ahead(&self) -> Duration {
        Duration::from_millis(self.ahead_ms.load(Ordering::Relaxed).max(0) as u64)
    }
}

fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::default();
        let held = clock.clone();
        let before = clock.now_ms();
        held.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() >= before + 3_600_000);
        assert_eq!(clock.ahead(), Duration::from_secs(3600));
    }
}
