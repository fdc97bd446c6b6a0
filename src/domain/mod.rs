//! Validated value types. A value of one of these types has passed its checks at the edge.
//! Divar's own types live in the `kenar` crate; these are the add-on's.

pub mod availability;
pub mod broadcast;
pub mod button_kit;
pub mod compose;
pub mod entry_link;
pub mod message;
pub mod status;

pub use kenar::{
    ConversationId, PayloadRevision, PostToken, SessionInit, UserId, UserSide, event, icons, ids,
    session_init,
};

/// The top-level key under which a web session's data names its visitor: the web layer writes
/// it, and the session store copies it into an indexed column, so erasing a person finds their
/// sessions without reading every session.
pub const SESSION_USER_KEY: &str = "user_id";

/// Writes every digit of `text` as a Persian digit (۰–۹): what a person reads is Persian.
pub fn persian_digits(text: &str) -> String {
    text.chars()
        .map(|c| {
            c.to_digit(10)
                .and_then(|d| char::from_u32(0x06F0 + d))
                .unwrap_or(c)
        })
        .collect()
}
