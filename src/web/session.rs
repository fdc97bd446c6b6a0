//! Typed access to the server-side session: what Divar told us about the visit, and an OAuth
//! consent in progress. No raw string keys outside this file.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower_sessions::Session;

use crate::{
    db::{grants::Subject, sessions::USER_ID_KEY},
    domain::{ConversationId, PostToken, UserId, UserSide},
    web::error::AppError,
};

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

/// Remembered between sending the person to Divar's consent page and their return.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingConsent {
    pub state: String,
    pub pkce_verifier: String,
    /// The conversation for a conversation grant.
    pub conversation_id: Option<ConversationId>,
    /// Set for a post-wide grant.
    pub post_token: Option<PostToken>,
    /// The user the click named, if it named one; the grant goes to whoever Divar says consented.
    pub user_id: Option<UserId>,
    pub scope: String,
}

impl PendingConsent {
    /// What the grant will cover: the post when one was asked for, else the conversation.
    pub fn subject(&self) -> Option<Subject> {
        match (&self.post_token, &self.conversation_id) {
            (Some(post_token), _) => Some(Subject::Post(post_token.clone())),
            (None, Some(conversation_id)) => Some(Subject::Conversation(conversation_id.clone())),
            (None, None) => None,
        }
    }
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
            .insert(USER_ID_KEY, user_id)
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

/// The current visit; without one the person is told to open the add-on from Divar again.
pub struct CurrentVisit(pub Visit);

impl<S: Send + Sync> FromRequestParts<S> for CurrentVisit {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = TypedSession::from_request_parts(parts, state).await?;
        session
            .visit()
            .await?
            .map(CurrentVisit)
            .ok_or(AppError::NoVisit)
    }
}

/// A visit from a chat, the person perhaps not yet known: Divar's touch-points click names
/// nobody, so who it is becomes known at consent. Enough for the landing page and consent.
pub struct ChatEntry {
    pub visit: Visit,
    pub conversation_id: ConversationId,
}

impl<S: Send + Sync> FromRequestParts<S> for ChatEntry {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentVisit(visit) = CurrentVisit::from_request_parts(parts, state).await?;
        let conversation_id = visit
            .conversation_id
            .clone()
            .ok_or(AppError::NoConversation)?;
        Ok(Self {
            visit,
            conversation_id,
        })
    }
}

/// A visit from a chat by a known user: what sending to one conversation needs.
pub struct ChatVisit {
    pub visit: Visit,
    pub conversation_id: ConversationId,
    pub user_id: UserId,
}

impl<S: Send + Sync> FromRequestParts<S> for ChatVisit {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ChatEntry {
            visit,
            conversation_id,
        } = ChatEntry::from_request_parts(parts, state).await?;
        let user_id = visit.user_id.clone().ok_or(AppError::NotSignedIn)?;
        Ok(Self {
            visit,
            conversation_id,
            user_id,
        })
    }
}

/// A visit by the owner of a post: what messaging every conversation of that post needs.
pub struct SellerVisit {
    pub visit: Visit,
    pub post_token: PostToken,
    pub user_id: UserId,
}

impl<S: Send + Sync> FromRequestParts<S> for SellerVisit {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PostEntry { visit, post_token } = PostEntry::from_request_parts(parts, state).await?;
        let user_id = visit.user_id.clone().ok_or(AppError::NotSignedIn)?;
        Ok(Self {
            visit,
            post_token,
            user_id,
        })
    }
}

/// A visit by a post's owner, perhaps not yet known by id (see [`ChatEntry`]).
pub struct PostEntry {
    pub visit: Visit,
    pub post_token: PostToken,
}

impl<S: Send + Sync> FromRequestParts<S> for PostEntry {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentVisit(visit) = CurrentVisit::from_request_parts(parts, state).await?;
        let post_token = visit.post_token.clone().ok_or(AppError::NoConversation)?;
        // Divar tells us the side: `Supply`/`SUPPLY` in the API-Version 2 bodies, `supplier.id`
        // in the original one. The post-wide grant itself is checked by Divar at consent.
        if visit.user_side != Some(UserSide::Seller) {
            return Err(AppError::NotPostOwner);
        }
        Ok(Self { visit, post_token })
    }
}
