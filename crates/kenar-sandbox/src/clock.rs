//! Where the simulated Divar reads the time: token lifetimes, code expiry, the per-minute limit,
//! and the times it logs. System time by default; a test holds the same handle and moves it
//! forward instead of waiting (`sandbox.clock().advance(..)`, or `POST /sandbox/_control/clock`
//! from another process). A test whose add-on runs on a manual clock holds this one at the same
//! time (`hold_at`) and moves the two together.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

/// System time plus however far it was moved forward, or, once held, a time that moves only
/// when told. Clones share both.
#[derive(Debug, Clone)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
    /// The time it stands at (Unix ms) once held; [`FLOWING`] until then.
    held_at_ms: Arc<AtomicI64>,
}

/// `held_at_ms` of a clock that follows system time.
const FLOWING: i64 = i64::MIN;

impl Default for Clock {
    fn default() -> Self {
        Self {
            ahead_ms: Arc::default(),
            held_at_ms: Arc::new(AtomicI64::new(FLOWING)),
        }
    }
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this sandbox sees it.
    pub fn now_ms(&self) -> i64 {
        match self.held_at_ms.load(Ordering::Acquire) {
            FLOWING => system_ms() + self.ahead_ms.load(Ordering::Relaxed),
            held => held,
        }
    }

    /// Moves the clock forward: a token issued with an hour to live is expired after
    /// `advance(Duration::from_secs(3600))`. A flowing clock keeps flowing from there; a held
    /// one stands at the new time.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let held = self
            .held_at_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held != FLOWING).then(|| held.saturating_add(by))
            });
        if held.is_err() {
            self.ahead_ms.fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Stops the clock at `now_ms` (Unix ms): from then on it moves only by
    /// [`Clock::advance`]. For a test whose add-on runs on a clock of the test's own, so the
    /// two read the same time.
    pub fn hold_at(&self, now_ms: i64) {
        self.held_at_ms.store(now_ms, Ordering::Release);
    }

    /// How far this clock runs ahead of system time.
    pub fn ahead(&self) -> Duration {
        let ahead = match self.held_at_ms.load(Ordering::Acquire) {
            FLOWING => self.ahead_ms.load(Ordering::Relaxed),
            held => held - system_ms(),
        };
        Duration::from_millis(ahead.max(0) as u64)
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

    #[test]
    fn a_held_clock_moves_only_when_advanced() {
        let clock = Clock::default();
        let held = clock.clone();
        held.hold_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        held.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now_ms(), 2_500);
    }
}
