//! Validated value types. A value of one of these types has passed its checks at the edge.
//! Divar's own types live in the `kenar` crate; these are the add-on's.

pub mod entry_link;
pub mod message;
pub mod status;

pub use kenar::{
    ConversationId, PayloadRevision, PostToken, SessionInit, UserId, UserSide, event, icons, ids,
    session_init,
};
