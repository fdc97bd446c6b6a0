//! Typed access to the server-side session: what Divar told us about the visit, and an OAuth
//! consent in progress. No raw string keys outside this file.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower_sessions::Session;

use crate::{
    domain::{ConversationId, PostToken, SESSION_USER_KEY, UserId, UserSide},
    services::consent::PendingConsent,
    web::error::AppError,
};

/// A session ends after this long without a request (Divar's security checklist asks for 15
/// minutes: docs/divar-platform.md, *Policies*).
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub(super) const VISIT: &str = "visit";
const PENDING_CONSENT: &str = "pending_consent";

/// The click that opened the add-on, bound to this browser by the one-time link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Visit {
    pub session_init_id: String,
    pub conversation_id: Option<ConversationId>,
    pub post_token: Option<PostToken>,
    pub user_id: Option<UserId>,
    pub user_side: Option<UserSide>,
    pub callback_url: Option<String>,
    pub extra_data: Map<String, Value>,
    /// Every form of this visit carries it (see `web::csrf`).
    pub csrf_token: String,
}

impl Visit {
    /// A new visit from a click just opened, with its own form token.
    pub fn new(session_init_id: String, click: crate::domain::entry_link::Click) -> Self {
        Self {
            session_init_id,
            conversation_id: click.conversation_id,
            post_token: click.post_token,
            user_id: click.user_id,
            user_side: click.user_side,
            callback_url: click.callback_url,
            extra_data: click.extra_data,
            csrf_token: new_form_token(),
        }
    }
}

/// A fresh form token for a new visit (`web::csrf` checks it): 256 random bits, URL-safe.
fn new_form_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub struct TypedSession(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for TypedSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state)
            .await
            .map(TypedSession)
            .map_err(|(_, message)| {
                AppError::Unexpected(anyhow::anyhow!("session layer missing: {message}"))
            })
    }
}

fn store_error(e: tower_sessions::session::Error) -> AppError {
    AppError::Unexpected(anyhow::Error::new(e).context("session store"))
}

impl TypedSession {
    pub async fn visit(&self) -> Result<Option<Visit>, AppError> {
        self.0.get(VISIT).await.map_err(store_error)
    }

    /// Starts a new visit under a fresh session id, dropping whatever the session held.
    pub async fn begin_visit(&self, visit: Visit) -> Result<(), AppError> {
        self.0.clear().await;
        self.0.cycle_id().await.map_err(store_error)?;
        if let Some(user_id) = &visit.user_id {
            self.set_user_id(user_id).await?;
        }
        self.0.insert(VISIT, visit).await.map_err(store_error)
    }

    /// Files the session under its visitor, so erasing the person finds it.
    async fn set_user_id(&self, user_id: &UserId) -> Result<(), AppError> {
        self.0
            .insert(SESSION_USER_KEY, user_id)
            .await
            .map_err(store_error)
    }

    pub async fn set_pending_consent(&self, pending: PendingConsent) -> Result<(), AppError> {
        self.0
            .insert(PENDING_CONSENT, pending)
            .await
            .map_err(store_error)
    }

    pub async fn pending_consent(&self) -> Result<Option<PendingConsent>, AppError> {
        self.0.get(PENDING_CONSENT).await.map_err(store_error)
    }

    /// Used up by the callback that matched it, and only by that one.
    pub async fn clear_pending_consent(&self) -> Result<(), AppError> {
        self.0
            .remove::<PendingConsent>(PENDING_CONSENT)
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// Starts the idle period over: the composer's script asks for it while the person types,
    /// since typing is no request and the session would otherwise end under them.
    pub async fn keep_alive(&self) -> Result<(), AppError> {
        if self.visit().await?.is_none() {
            return Err(AppError::NoVisit);
        }
        let idle = time::Duration::try_from(SESSION_IDLE).expect("a short period");
        // Marks the session changed: tower-sessions saves it with a new expiry.
        self.0
            .set_expiry(Some(tower_sessions::Expiry::OnInactivity(idle)));
        Ok(())
    }

    /// A fresh session id after a privilege change (a grant was stored).
    pub async fn renew(&self) -> Result<(), AppError> {
        self.0.cycle_id().await.map_err(store_error)
    }

    /// Records who the visitor turned out to be (Divar said so after consent).
    pub async fn identify(&self, user_id: &UserId) -> Result<(), AppError> {
        if let Some(mut visit) = self.visit().await? {
            visit.user_id = Some(user_id.clone());
            self.0.insert(VISIT, visit).await.map_err(store_error)?;
            self.set_user_id(user_id).await?;
        }
        Ok(())
    }

    /// Forgets the visit and anything in progress: the browser is not the person the click named.
    pub async fn end(&self) -> Result<(), AppError> {
        self.0.clear().await;
        self.0.cycle_id().await.map_err(store_error)
    }
}
