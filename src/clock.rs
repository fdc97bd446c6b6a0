//! The one source of "now". Whatever stores or compares a time (expiry, leases, backoff,
//! retention, pacing) reads it from a [`Clock`] it was given, so a test can hold time still
//! and move it on instead of waiting.

use std::{
    fmt::Debug,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// A time source.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch: the one timestamp format both engines store alike.
    fn now_ms(&self) -> i64;

    /// A reading for measuring waits (pacing), from an arbitrary origin; it never goes back.
    /// By default [`Clock::now_ms`]; the system clock reads the monotonic clock instead, so a
    /// step of the wall clock neither stalls nor rushes the pacer.
    fn monotonic(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or_default())
    }
}

/// What the application holds: one clock shared by everything it builds.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        ORIGIN.elapsed()
    }
}

/// A clock that moves only when told to. Clones share one time, so a test keeps a clone and
/// moves the application's clock with [`ManualClock::advance`] or [`ManualClock::set`].
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Stopped at `now_ms` (Unix ms).
    pub fn at(now_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now_ms)))
    }

    /// Stopped at the system clock's present time, so times it gives look like real ones.
    pub fn starting_now() -> Self {
        Self::at(SystemClock.now_ms())
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::AcqRel);
    }

    /// Moves the clock to `now_ms`; tests that go back in time should know what waits on it.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::Release);
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::at(1_000);
        let shared = clock.shared();
        assert_eq!(shared.now_ms(), 1_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(shared.now_ms(), 2_500);
        assert_eq!(shared.monotonic(), Duration::from_millis(2_500));
        clock.set(10);
        assert_eq!(shared.now_ms(), 10);
    }

    #[test]
    fn the_system_clock_reads_epoch_milliseconds() {
        let now = SystemClock.now_ms();
        // After 2020-01-01 and before 2100.
        assert!(now > 1_577_836_800_000 && now < 4_102_444_800_000, "{now}");
        let (a, b) = (SystemClock.monotonic(), SystemClock.monotonic());
        assert!(b >= a);
    }
}
