//! What every handler may reach: the use cases' dependencies and the process's lifecycle.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use crate::services::Deps;

/// Built once, in `Application::build`; each request clones only the `Arc` (a deep copy of the
/// OAuth client, the vault and the ciphers showed in the session-init profile:
/// docs/benchmarks.md, "Session initialization").
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub deps: Deps,
    pub lifecycle: Lifecycle,
}

/// What `/readyz` reports besides the database: a drain under way, or a background worker
/// that stopped while the process goes on.
#[derive(Clone, Default)]
pub struct Lifecycle(Arc<LifecycleState>);

#[derive(Default)]
struct LifecycleState {
    draining: AtomicBool,
    stopped_workers: AtomicUsize,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    pub fn worker_stopped(&self) {
        self.0.stopped_workers.fetch_add(1, Ordering::AcqRel);
    }

    pub fn stopped_workers(&self) -> usize {
        self.0.stopped_workers.load(Ordering::Acquire)
    }
}
