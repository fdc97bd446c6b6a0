//! Divar's Kenar open platform, for a Rust add-on: the protocol's types and an async client.
//!
//! - [`ids`]: conversation ids, post tokens, user ids and sides, validated at the boundary.
//! - [`session_init`]: the three documented bodies of the session-initialization call.
//! - [`event`]: the webhook events Divar sends.
//! - [`message`]: a chat message with button grids and their actions, as the send API takes it.
//! - [`icons`]: the icon names Divar draws on buttons.
//! - [`scopes`]: OAuth scope names and their syntax.
//! - [`oauth`] and [`api`]: the client — authorization-code flow with PKCE and refresh (through the
//!   `oauth2` crate), sending messages, asking who granted a token, subscribing to events.
//!
//! The facts behind each type, with the kenar-docs page each comes from, are in the repository's
//! `docs/divar-platform.md`. This crate depends on no web framework and no database.

pub mod api;
pub mod event;
pub mod icons;
pub mod ids;
pub mod message;
pub mod oauth;
pub mod scopes;
pub mod session_init;

use std::time::Duration;

pub use ids::{ConversationId, PostToken, UserId, UserSide};
pub use session_init::{PayloadRevision, SessionInit};

/// One HTTP client for all calls to Divar: pooled, with timeouts, never following redirects
/// (the oauth2 crate's advice against SSRF). `user_agent` names the add-on.
pub fn http_client(timeout: Duration, user_agent: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
}
