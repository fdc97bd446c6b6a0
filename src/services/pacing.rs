//! One token bucket for every message call this instance makes to Divar, with a lane for sends a
//! person is waiting for. The bucket runs on the application's clock (`governor` reads it
//! through [`PaceClock`]) and waits for a turn on it (`Clock::sleep`), so under a test's manual
//! clock a send goes out as soon as the test moves the clock to its turn.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock as _, ReasonablyRealtime},
    middleware::NoOpMiddleware,
    state::{InMemoryState, NotKeyed},
};
use tokio::sync::Notify;

use crate::clock::SharedClock;

/// The application's clock as `governor` reads it: `Clock::monotonic`, which never goes back.
#[derive(Debug, Clone)]
pub struct PaceClock(SharedClock);

impl PaceClock {
    pub fn new(clock: SharedClock) -> Self {
        Self(clock)
    }
}

impl governor::clock::Clock for PaceClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

impl ReasonablyRealtime for PaceClock {}

type Limiter = RateLimiter<NotKeyed, InMemoryState, PaceClock, NoOpMiddleware<Duration>>;

/// Who is waiting for a send: a person (single sends) or nobody in particular (broadcasts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Interactive,
    Bulk,
}

/// Interactive sends in a row before a waiting bulk send gets one turn: while people's messages
/// keep coming, broadcasts still move, at a fifth of the budget.
const INTERACTIVE_RUN: u32 = 4;

/// Paces outgoing sends to at most `per_minute` in any 60-second window; `None` is unlimited.
/// Interactive sends take the next free turn ahead of waiting bulk sends, but after
/// [`INTERACTIVE_RUN`] of them in a row a waiting bulk send gets one.
#[derive(Clone)]
pub struct Pacer {
    limiter: Option<Arc<Limiter>>,
    clock: SharedClock,
    per_minute: u32,
    /// Waiters take turns first-come first-served within a lane, so no sender starves (an
    /// outbox worker holding leased rows must get its turn before the leases run out).
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Interactive sends waiting for a turn; bulk sends stand back while there are any.
    interactive: Arc<AtomicUsize>,
    interactive_arrived: Arc<Notify>,
    interactive_done: Arc<Notify>,
    /// Turns given so far.
    turns: Arc<AtomicU64>,
    /// Bulk sends waiting for a turn.
    bulk_waiting: Arc<AtomicUsize>,
    /// Interactive turns given since the last bulk one.
    streak: Arc<AtomicU64>,
    /// A bulk send is owed the next turn: interactive ones stand back until it took it.
    share_due: Arc<AtomicBool>,
    share_taken: Arc<Notify>,
}

/// Counts a bulk waiter for as long as it waits.
struct BulkWaiting<'a>(&'a Pacer);

impl Drop for BulkWaiting<'_> {
    fn drop(&mut self) {
        self.0.bulk_waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts an interactive waiter for as long as it waits.
struct Waiting<'a>(&'a Pacer);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.interactive.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.interactive_done.notify_waiters();
        }
    }
}

impl Pacer {
    /// Never waits.
    pub fn unlimited(clock: SharedClock) -> Self {
        Self {
            limiter: None,
            clock,
            per_minute: 0,
            turn: Arc::default(),
            interactive: Arc::default(),
            interactive_arrived: Arc::default(),
            interactive_done: Arc::default(),
            turns: Arc::default(),
            bulk_waiting: Arc::default(),
            streak: Arc::default(),
            share_due: Arc::default(),
            share_taken: Arc::default(),
        }
    }

    pub fn per_minute(per_minute: u32, clock: SharedClock) -> Self {
        if per_minute == 0 {
            return Self::unlimited(clock);
        }
        // No burst, and 2% slower than the limit: a burst of N at the start of a window plus
        // the refill inside it would exceed N, and network jitter can bunch evenly spaced sends.
        let period = Duration::from_micros(60_000_000 * 102 / 100 / u64::from(per_minute));
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::MIN);
        Self {
            limiter: Some(Arc::new(RateLimiter::direct_with_clock(
                quota,
                PaceClock(clock.clone()),
            ))),
            per_minute,
            ..Self::unlimited(clock)
        }
    }

    /// The limit, or `None` when sends are not paced.
    pub fn limit_per_minute(&self) -> Option<u32> {
        self.limiter.as_ref().map(|_| self.per_minute)
    }

    /// Turns this pacer has given (none when sends are not paced). With
    /// [`Pacer::interactive_waiting`], what a test moving a manual clock reads to know that the
    /// sends it let go are done and that the next one waits for the clock.
    pub fn turns_given(&self) -> u64 {
        self.turns.load(Ordering::Acquire)
    }

    /// Sends a person is waiting for that wait for a turn.
    pub fn interactive_waiting(&self) -> usize {
        self.interactive.load(Ordering::Acquire)
    }

    /// Waits for this instance's turn to send; returns how long that took.
    pub async fn ready(&self, lane: Lane) -> Duration {
        let Some(limiter) = &self.limiter else {
            return Duration::ZERO;
        };
        let started = self.clock.monotonic();
        match lane {
            Lane::Interactive => {
                self.interactive.fetch_add(1, Ordering::AcqRel);
                let _waiting = Waiting(self);
                // A bulk send sleeping on the turn gives it up.
                self.interactive_arrived.notify_waiters();
                let mut turn = self.turn.lock().await;
                // Looked at again after each wait: every interactive send that queued behind the
                // share stands back until a bulk send has had it.
                while self.streak.load(Ordering::Acquire) >= u64::from(INTERACTIVE_RUN)
                    && self.bulk_waiting.load(Ordering::Acquire) > 0
                {
                    // A bulk send's share: let it take the next turn, then go on.
                    self.share_due.store(true, Ordering::Release);
                    self.interactive_done.notify_waiters();
                    drop(turn);
                    self.share_given().await;
                    turn = self.turn.lock().await;
                }
                while let Err(not_until) = limiter.check() {
                    let wait = not_until.wait_time_from(limiter.clock().now());
                    self.clock.sleep(wait).await;
                }
                self.streak.fetch_add(1, Ordering::AcqRel);
                self.turns.fetch_add(1, Ordering::AcqRel);
                drop(turn);
            }
            Lane::Bulk => {
                self.bulk_waiting.fetch_add(1, Ordering::AcqRel);
                let _waiting = BulkWaiting(self);
                loop {
                    self.interactive_gone().await;
                    let _turn = self.turn.lock().await;
                    if self.bulk_turn(limiter).await {
                        break;
                    }
                    // An interactive send came: let it have the turn, then queue again.
                }
            }
        }
        self.clock.monotonic().saturating_sub(started)
    }

    /// Waits for the limiter holding the turn, unless an interactive send arrives first (then
    /// false: the caller gives the turn up). A bulk send owed its share keeps the turn.
    async fn bulk_turn(&self, limiter: &Limiter) -> bool {
        loop {
            let arrived = self.interactive_arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let owed = self.share_due.load(Ordering::Acquire);
            if !owed && self.interactive.load(Ordering::Acquire) > 0 {
                return false;
            }
            match limiter.check() {
                Ok(()) => {
                    // Counted while the turn is still held, before the next waiter can take it.
                    self.turns.fetch_add(1, Ordering::AcqRel);
                    self.streak.store(0, Ordering::Release);
                    if self.share_due.swap(false, Ordering::AcqRel) {
                        self.share_taken.notify_waiters();
                    }
                    return true;
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(limiter.clock().now());
                    if owed {
                        self.clock.sleep(wait).await;
                    } else {
                        tokio::select! {
                            () = self.clock.sleep(wait) => {}
                            _ = arrived => return false,
                        }
                    }
                }
            }
        }
    }

    /// Until no interactive send waits, or a bulk send is owed its share.
    async fn interactive_gone(&self) {
        loop {
            let notified = self.interactive_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.interactive.load(Ordering::Acquire) == 0
                || self.share_due.load(Ordering::Acquire)
            {
                return;
            }
            notified.await;
        }
    }

    /// Until the bulk send owed a turn took it (or no bulk send waits any more).
    async fn share_given(&self) {
        loop {
            let taken = self.share_taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            if !self.share_due.load(Ordering::Acquire) {
                return;
            }
            if self.bulk_waiting.load(Ordering::Acquire) == 0 {
                self.share_due.store(false, Ordering::Release);
                return;
            }
            // A bulk waiter that gave up (its batch cancelled) never takes it: look again soon.
            tokio::select! {
                _ = taken => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::{Clock, ManualClock, SystemClock};

    #[tokio::test]
    async fn interactive_sends_go_before_waiting_bulk_sends() {
        // 600/min: one turn every ~102 ms.
        let pacer = Pacer::per_minute(600, SystemClock::shared());
        pacer.ready(Lane::Bulk).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.spawn(async move {
                pacer.ready(Lane::Bulk).await;
                order.lock().unwrap().push(format!("bulk{i}"));
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..2 {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.spawn(async move {
                pacer.ready(Lane::Interactive).await;
                order.lock().unwrap().push(format!("person{i}"));
            });
        }
        while tasks.join_next().await.is_some() {}
        let order = order.lock().unwrap().clone();
        // A bulk send waiting for the turn gives it up: the people go first.
        assert_eq!(order[..2], ["person0", "person1"], "{order:?}");
    }

    #[tokio::test]
    async fn a_waiting_bulk_send_gets_a_turn_after_a_run_of_interactive_ones() {
        // 600/min: one turn every ~102 ms.
        let pacer = Pacer::per_minute(600, SystemClock::shared());
        pacer.ready(Lane::Bulk).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..2 {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.spawn(async move {
                pacer.ready(Lane::Bulk).await;
                order.lock().unwrap().push(format!("bulk{i}"));
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..10 {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.spawn(async move {
                pacer.ready(Lane::Interactive).await;
                order.lock().unwrap().push(format!("person{i}"));
            });
            tokio::task::yield_now().await;
        }
        while tasks.join_next().await.is_some() {}
        let order = order.lock().unwrap().clone();
        // People first, but never more than four in a row while a broadcast waits.
        let first_bulk = order.iter().position(|o| o.starts_with("bulk")).unwrap();
        assert!(
            (1..=INTERACTIVE_RUN as usize).contains(&first_bulk),
            "{order:?}"
        );
        let mut run = 0;
        for (at, who) in order.iter().enumerate() {
            run = if who.starts_with("person") {
                run + 1
            } else {
                0
            };
            let bulk_left = order[at..].iter().any(|o| o.starts_with("bulk"));
            assert!(run <= INTERACTIVE_RUN as usize || !bulk_left, "{order:?}");
        }
    }

    #[tokio::test]
    async fn unpaced_sends_never_wait() {
        let pacer = Pacer::per_minute(0, SystemClock::shared());
        assert_eq!(pacer.ready(Lane::Bulk).await, Duration::ZERO);
        assert_eq!(pacer.limit_per_minute(), None);
    }

    #[tokio::test]
    async fn a_manual_clock_paces_the_sends_of_both_lanes() {
        let clock = ManualClock::starting_now();
        // 60/min: one turn every 1.02 s of the clock.
        let pacer = Pacer::per_minute(60, clock.shared());
        pacer.ready(Lane::Bulk).await;
        for lane in [Lane::Bulk, Lane::Interactive] {
            let next = tokio::spawn({
                let pacer = pacer.clone();
                async move { pacer.ready(lane).await }
            });
            // The send waits for its turn on the clock.
            let due = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if let Some(due) = clock.next_wake() {
                        return due;
                    }
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the send sleeps on the clock");
            assert_eq!(due, clock.now_ms() + 1_020, "{lane:?}");
            clock.advance(Duration::from_millis(1_019));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(!next.is_finished(), "{lane:?}: not its turn yet");
            clock.advance(Duration::from_millis(1));
            // Less than the turn's 1.02 s of real time: the move itself wakes it.
            let waited = tokio::time::timeout(Duration::from_millis(500), next)
                .await
                .expect("a turn once the clock moved")
                .unwrap();
            assert_eq!(waited, Duration::from_millis(1_020), "{lane:?}");
        }
    }
}
