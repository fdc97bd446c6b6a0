//! One extractor per intent. Each reads the visit from the session and refuses a request that is
//! not what the handler is for with a Persian page that says what to do (`web::error`).
//!
//! - [`Visitor`]: anyone with a visit (opened from Divar through a one-time link)
//! - [`ChatVisitor`]: a visit from a chat, the person perhaps not yet known by id
//! - [`Seller`]: a visit from a chat about a post, by its seller (the post's owner)
//! - [`PostOwner`]: a visit from a post, by its owner, perhaps not yet known by id
//! - [`Known`]: any of these, with the person known by id (what writing needs)

use std::ops::Deref;

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::domain::{ConversationId, PostToken, UserId, UserSide, compose::Writer};

use super::{
    error::AppError,
    session::{TypedSession, Visit},
};

/// A request whose session holds a visit; without one the person is told to open the add-on
/// from Divar again.
pub struct Visitor(pub Visit);

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = TypedSession::from_request_parts(parts, state).await?;
        session.visit().await?.map(Visitor).ok_or(AppError::NoVisit)
    }
}

/// A visit from a chat. Divar's touch-points click names nobody, so who it is may become known
/// only at consent.
pub struct ChatVisitor {
    pub visit: Visit,
    pub conversation: ConversationId,
}

impl<S: Send + Sync> FromRequestParts<S> for ChatVisitor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Visitor(visit) = Visitor::from_request_parts(parts, state).await?;
        let conversation = visit.conversation_id.clone().ok_or(AppError::NotInChat)?;
        Ok(Self {
            visit,
            conversation,
        })
    }
}

/// A visit from a chat about a post, on the seller's side: the post's owner, in one of its
/// conversations.
pub struct Seller {
    pub visit: Visit,
    pub conversation: ConversationId,
    pub post: PostToken,
}

impl<S: Send + Sync> FromRequestParts<S> for Seller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ChatVisitor {
            visit,
            conversation,
        } = ChatVisitor::from_request_parts(parts, state).await?;
        match (&visit.post_token, visit.user_side) {
            (Some(post), Some(UserSide::Seller)) => Ok(Self {
                post: post.clone(),
                visit,
                conversation,
            }),
            _ => Err(AppError::NotPostOwner),
        }
    }
}

/// A visit opened from a post by its owner (Divar says the side: `Supply`/`SUPPLY` in the
/// current bodies, `supplier.id` in the original one; Divar checks the post-wide grant itself
/// at consent).
pub struct PostOwner {
    pub visit: Visit,
    pub post: PostToken,
}

impl<S: Send + Sync> FromRequestParts<S> for PostOwner {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Visitor(visit) = Visitor::from_request_parts(parts, state).await?;
        let post = visit.post_token.clone().ok_or(AppError::NotInChat)?;
        if visit.user_side != Some(UserSide::Seller) {
            return Err(AppError::NotPostOwner);
        }
        Ok(Self { visit, post })
    }
}

/// What every visit extractor holds.
pub trait HasVisit {
    fn visit(&self) -> &Visit;
}

impl HasVisit for ChatVisitor {
    fn visit(&self) -> &Visit {
        &self.visit
    }
}

impl HasVisit for Seller {
    fn visit(&self) -> &Visit {
        &self.visit
    }
}

impl HasVisit for PostOwner {
    fn visit(&self) -> &Visit {
        &self.visit
    }
}

/// A visitor known by id: what writing, sending and a person's own pages need.
pub struct Known<T> {
    pub visitor: T,
    pub user: UserId,
}

impl<T> Deref for Known<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.visitor
    }
}

impl<S, T> FromRequestParts<S> for Known<T>
where
    S: Send + Sync,
    T: FromRequestParts<S, Rejection = AppError> + HasVisit + Send,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let visitor = T::from_request_parts(parts, state).await?;
        let user = visitor
            .visit()
            .user_id
            .clone()
            .ok_or(AppError::NotSignedIn)?;
        Ok(Self { visitor, user })
    }
}

impl Known<ChatVisitor> {
    /// The composer's context: who writes, on which side, in which conversation, about which post.
    pub fn writer(&self) -> Writer {
        Writer {
            user: self.user.clone(),
            side: self.visit.user_side,
            conversation: Some(self.conversation.clone()),
            post: self.visit.post_token.clone(),
        }
    }
}

impl Known<PostOwner> {
    /// The post-wide composer's context: the owner writes to every conversation of the post.
    pub fn writer(&self) -> Writer {
        Writer {
            user: self.user.clone(),
            side: Some(UserSide::Seller),
            conversation: None,
            post: Some(self.post.clone()),
        }
    }
}
