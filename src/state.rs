use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use axum::extract::FromRef;

use kenar::{api::KenarApi, oauth::KenarOAuth};

use crate::{
    clock::SharedClock,
    config::Settings,
    db::Db,
    services::{entry_links::EntryLinks, messaging::Messaging, vault::Vault},
};

/// What every handler may need. Clients are built once, in `Application::build`; each request
/// clones only the `Arc` (a deep copy of the OAuth client, the vault and the ciphers showed in
/// the session-init profile: README, "Session initialization under load").
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
    pub db: Db,
    pub settings: Arc<Settings>,
    pub oauth: KenarOAuth,
    pub vault: Vault,
    pub entry_links: EntryLinks,
    pub messaging: Messaging,
    pub api: KenarApi,
    pub lifecycle: Lifecycle,
    /// "Now" for handlers, the same clock the services and workers read.
    pub clock: SharedClock,
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

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.settings.clone()
    }
}
