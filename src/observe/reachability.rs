//! Whether what the process depends on (the database, Divar's API) can be reached, said once: one
//! WARN when it is lost, a reminder a minute while it stays lost, one INFO (with how long it was
//! down) when it is back, and a gauge and a counter of failed attempts. Every loop and request
//! reports what it saw here instead of logging each failure itself, so an outage of an hour is a
//! handful of lines, not tens of thousands. Process-wide, like the metrics it sets.
//!
//! [`Backoff`] is the other half: how long a loop waits before its next try while it fails.

use std::{
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// How often a lasting outage is logged again.
const REMINDER_EVERY: Duration = Duration::from_secs(60);

/// Something the process depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Database,
    DivarApi,
}

impl Dependency {
    fn up_gauge(self) -> &'static str {
        match self {
            Self::Database => super::DATABASE_UP,
            Self::DivarApi => super::DIVAR_API_UP,
        }
    }

    fn failures_counter(self) -> &'static str {
        match self {
            Self::Database => super::DATABASE_FAILURES,
            Self::DivarApi => super::DIVAR_API_FAILURES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::DivarApi => "divar_api",
        }
    }
}

#[derive(Debug)]
struct Down {
    since: Instant,
    last_line: Instant,
    failures: u64,
}

/// What is known of one dependency; see the module's documentation.
#[derive(Debug)]
pub struct Reachability {
    dependency: Dependency,
    /// `down.is_none()`, readable without the lock: every success asks it.
    up: AtomicBool,
    down: Mutex<Option<Down>>,
    /// Wakes loops in their backoff as soon as anything reaches the dependency again.
    back: tokio::sync::Notify,
}

static DATABASE: LazyLock<Reachability> = LazyLock::new(|| Reachability::new(Dependency::Database));
static DIVAR_API: LazyLock<Reachability> =
    LazyLock::new(|| Reachability::new(Dependency::DivarApi));

/// The database's reachability, for the whole process.
pub fn database() -> &'static Reachability {
    &DATABASE
}

/// Divar's API's reachability (sends that could not reach it), for the whole process.
pub fn divar_api() -> &'static Reachability {
    &DIVAR_API
}

impl Reachability {
    fn new(dependency: Dependency) -> Self {
        Self {
            dependency,
            up: AtomicBool::new(true),
            down: Mutex::new(None),
            back: tokio::sync::Notify::new(),
        }
    }

    /// Sets the gauge to "up" and the counter to 0, so both have a series from the start.
    pub fn expose(&self) {
        metrics::gauge!(self.dependency.up_gauge()).set(if self.is_up() { 1.0 } else { 0.0 });
        metrics::counter!(self.dependency.failures_counter()).increment(0);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// An attempt failed because the dependency could not be reached: the first failure of an
    /// outage is logged, later ones only once a minute.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        metrics::counter!(self.dependency.failures_counter()).increment(1);
        let now = Instant::now();
        let mut down = self.down.lock().expect("never poisoned");
        match down.as_mut() {
            None => {
                *down = Some(Down {
                    since: now,
                    last_line: now,
                    failures: 1,
                });
                self.up.store(false, Ordering::Release);
                metrics::gauge!(self.dependency.up_gauge()).set(0.0);
                let dependency = self.dependency.name();
                tracing::warn!(
                    dependency,
                    error = %error,
                    "unreachable; retrying with backoff (a reminder every minute until it is back)"
                );
            }
            Some(down) => {
                down.failures += 1;
                if now.duration_since(down.last_line) >= REMINDER_EVERY {
                    down.last_line = now;
                    let dependency = self.dependency.name();
                    tracing::warn!(
                        dependency,
                        down_secs = now.duration_since(down.since).as_secs(),
                        failed_attempts = down.failures,
                        error = %error,
                        "still unreachable"
                    );
                }
            }
        }
    }

    /// Resolves when an outage ends (someone reached the dependency again): a loop waiting out its
    /// backoff resumes then instead of at the end of its wait.
    pub async fn recovered(&self) {
        self.back.notified().await
    }

    /// An attempt reached the dependency: after an outage, one line says it is back.
    pub fn reached(&self) {
        self.reached_by(Instant::now());
    }

    /// An attempt that began at `began` reached the dependency. One that began before the outage
    /// was noticed proves nothing (it may have used a connection the server was closing), so
    /// the outage is not declared over for a moment between two failures.
    pub fn reached_by(&self, began: Instant) {
        if self.is_up() {
            return;
        }
        let mut down = self.down.lock().expect("never poisoned");
        if down.as_ref().is_some_and(|down| began < down.since) {
            return;
        }
        if let Some(ended) = down.take() {
            self.up.store(true, Ordering::Release);
            self.back.notify_waiters();
            metrics::gauge!(self.dependency.up_gauge()).set(1.0);
            let dependency = self.dependency.name();
            tracing::info!(
                dependency,
                down_secs = ended.since.elapsed().as_secs_f64(),
                failed_attempts = ended.failures,
                "reachable again"
            );
        }
    }
}

/// A loop's wait between failed tries: exponential from 1 s, with jitter, capped at 30 s;
/// [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    cap: Duration,
    current: Option<ExponentialBackoff>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Waits from `min` up to `cap`. backon's jitter adds up to one more delay, so its own
    /// maximum is two thirds of `cap` and the result is clamped: at the cap, loops still spread
    /// over [⅔ cap, cap] instead of retrying in step.
    pub fn new(min: Duration, cap: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::default()
                .with_min_delay(min)
                .with_max_delay(cap * 2 / 3)
                .with_jitter()
                .without_max_times(),
            cap,
            current: None,
        }
    }

    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let builder = self.builder;
        self.current
            .get_or_insert_with(|| builder.build())
            .next()
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Whether the last try failed (a wait is under way).
    pub fn is_backing_off(&self) -> bool {
        self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<_> = (0..10).map(|_| backoff.next_delay()).collect();
        // Jitter adds up to one more delay: the first is in [1 s, 2 s).
        assert!(waits[0] >= Duration::from_secs(1) && waits[0] < Duration::from_secs(2));
        assert!(waits[4] >= Duration::from_secs(16), "{waits:?}");
        assert!(
            waits[6..]
                .iter()
                .all(|w| *w >= Duration::from_secs(20) && *w <= Duration::from_secs(30)),
            "capped at 30 s, still spread: {waits:?}"
        );
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_secs(2));
    }

    #[test]
    fn an_outage_is_one_state_change_each_way() {
        let reach = Reachability::new(Dependency::Database);
        assert!(reach.is_up());
        reach.failed(&"connection refused");
        reach.failed(&"connection refused");
        assert!(!reach.is_up());
        assert_eq!(reach.down.lock().unwrap().as_ref().unwrap().failures, 2);
        let before = Instant::now() - Duration::from_secs(1);
        reach.reached_by(before);
        assert!(
            !reach.is_up(),
            "an attempt older than the outage proves nothing"
        );
        reach.reached();
        assert!(reach.is_up());
    }
}
