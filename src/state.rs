use std::sync::Arc;

use axum::extract::FromRef;

use kenar::{api::KenarApi, oauth::KenarOAuth};

use crate::{
    config::Settings,
    db::Db,
    services::{messaging::Messaging, vault::Vault},
};

/// What every handler may need; cheap to clone. Clients are built once, in `Application::build`.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub oauth: KenarOAuth,
    pub vault: Vault,
    pub messaging: Messaging,
    pub api: KenarApi,
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
