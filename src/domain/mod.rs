//! Validated value types. A value of one of these types has passed its checks at the edge.

pub mod entry_link;
pub mod event;
pub mod icons;
pub mod ids;
pub mod message;
pub mod session_init;

pub use ids::{ConversationId, PostToken, UserId, UserSide};
pub use session_init::{PayloadRevision, SessionInit};
