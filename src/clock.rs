//! The one source of "now". Whatever stores or compares a time (expiry, leases, backoff,
//! retention, pacing) reads it from a [`Clock`] it was given, so a test can hold time still
//! and move it on instead of waiting.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use tokio::sync::Notify;

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

    /// Waits until this clock has moved on by `by`: on tokio's timer by default; a manual
    /// clock wakes when a test moves it far enough.
    fn sleep(&self, by: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(by))
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
/// moves the application's clock with [`ManualClock::advance`] or [`ManualClock::set`]. What
/// sleeps on it ([`Clock::sleep`]) wakes when it is moved far enough, and a test can see when the
/// next sleeper is due ([`ManualClock::next_wake`]).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Held>);

#[derive(Debug, Default)]
struct Held {
    now_ms: AtomicI64,
    moved: Notify,
    /// When each pending sleep ends, by a number of its own.
    sleepers: Mutex<BTreeMap<u64, i64>>,
    next_sleeper: AtomicU64,
}

impl ManualClock {
    /// Stopped at `now_ms` (Unix ms).
    pub fn at(now_ms: i64) -> Self {
        let held = Held::default();
        held.now_ms.store(now_ms, Ordering::Release);
        Self(Arc::new(held))
    }

    /// Stopped at the system clock's present time, so times it gives look like real ones.
    pub fn starting_now() -> Self {
        Self::at(SystemClock.now_ms())
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.now_ms.fetch_add(by, Ordering::AcqRel);
        self.0.moved.notify_waiters();
    }

    /// Moves the clock to `now_ms`; tests that go back in time should know what waits on it.
    pub fn set(&self, now_ms: i64) {
        self.0.now_ms.store(now_ms, Ordering::Release);
        self.0.moved.notify_waiters();
    }

    /// When the earliest sleep on this clock ends (Unix ms), if anything sleeps on it: where to
    /// move the clock for the next thing that waits for time to happen.
    pub fn next_wake(&self) -> Option<i64> {
        self.0.sleepers.lock().unwrap().values().min().copied()
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms.load(Ordering::Acquire)
    }

    fn sleep(&self, by: Duration) -> BoxFuture<'static, ()> {
        let held = self.0.clone();
        // Whole milliseconds, rounded up: the sleep never ends before `by` has passed.
        let by = i64::try_from(by.as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
        let until = held.now_ms.load(Ordering::Acquire).saturating_add(by);
        let id = held.next_sleeper.fetch_add(1, Ordering::Relaxed);
        held.sleepers.lock().unwrap().insert(id, until);
        // Forgets the sleeper however the sleep ends, woken or dropped.
        let registered = Registered { held, id };
        Box::pin(async move {
            loop {
                let moved = registered.held.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if registered.held.now_ms.load(Ordering::Acquire) >= until {
                    return;
                }
                moved.await;
            }
        })
    }
}

/// A pending sleep on a [`ManualClock`], listed until it ends or is dropped.
struct Registered {
    held: Arc<Held>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.held.sleepers.lock().unwrap().remove(&self.id);
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

    #[tokio::test]
    async fn a_sleep_on_a_manual_clock_ends_when_the_clock_is_moved_far_enough() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.next_wake(), None);
        let sleep = tokio::spawn(clock.sleep(Duration::from_millis(500)));
        // Listed as soon as it is made, before it is first polled.
        assert_eq!(clock.next_wake(), Some(1_500));
        clock.advance(Duration::from_millis(499));
        tokio::task::yield_now().await;
        assert!(!sleep.is_finished(), "not yet due");
        assert_eq!(clock.next_wake(), Some(1_500));
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), sleep)
            .await
            .expect("woken by the move")
            .unwrap();
        assert_eq!(clock.next_wake(), None, "a finished sleep is forgotten");
        drop(clock.sleep(Duration::from_secs(1)));
        assert_eq!(clock.next_wake(), None, "and so is a dropped one");
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
