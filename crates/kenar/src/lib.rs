//! Divar's Kenar open platform, for a Rust add-on: the protocol's types and an async client.
//!
//! - [`ids`]: conversation ids, post tokens, user ids and sides, validated at the boundary.
//! - [`session_init`]: the three documented bodies of the session-initialization call.
//! - [`event`]: the webhook events Divar sends.
//! - [`dynamic_action`]: what Divar asks when a `get_dynamic_action` button is tapped, and the
//!   reply.
//! - [`message`]: a chat message with button grids and their actions, as the send API takes it.
//! - [`icons`]: the icon names Divar draws on buttons.
//! - [`scopes`]: OAuth scope names and their syntax.
//! - [`upload`]: photos and files for chat: the kinds and limits, the upload token and the upload.
//! - [`oauth`] and [`api`]: the client — authorization-code flow with PKCE and refresh (through the
//!   `oauth2` crate), sending messages, asking who granted a token, subscribing to events.
//!
//! The facts behind each type, with the kenar-docs page each comes from, are in the repository's
//! `docs/divar-platform.md`. This crate depends on no web framework and no database; the optional
//! feature `sqlx` (off by default) maps the ids and [`UserSide`] to text columns, read back
//! through the same checks.
//!
//! ```
//! use kenar::{SessionInit, UserSide, message::{Action, Button, ButtonGrid, Message}};
//!
//! // Divar asks where to send someone who tapped your button (any of the documented bodies).
//! let body = br#"{"source": "CHAT", "conversation_id": "c-1", "user_side": "DEMAND",
//!     "completion_url": "https://open-platform-redirect.divar.ir/completion",
//!     "provider_data": {"booking": "42"}}"#;
//! let click = SessionInit::parse(body, Some("2")).unwrap();
//! assert_eq!(click.user_side, Some(UserSide::Buyer));
//! assert_eq!(click.extra_data["booking"], "42");
//!
//! // A message with a button for the receiver, as the send API takes it.
//! let message = Message {
//!     text: "بازدید شما ثبت شد.".into(),
//!     sender_buttons: ButtonGrid::default(),
//!     receiver_buttons: ButtonGrid::new(vec![vec![Button {
//!         caption: "جزئیات".into(),
//!         icon: "INFO".into(),
//!         action: Action::ServerLink(serde_json::json!({"booking": "42"}).as_object().unwrap().clone()),
//!     }]])
//!     .unwrap(),
//! };
//! let body = message.to_json();
//! assert_eq!(body["receiver_buttons"]["rows"][0]["buttons"][0]["action"]["open_server_link"]["data"]["booking"], "42");
//! ```
//!
//! Sending it (`no_run`: it needs Divar, or `kenar-sandbox`, to answer):
//!
//! ```no_run
//! # async fn send(message: kenar::message::Message) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use secrecy::SecretString;
//!
//! let http = kenar::http_client(Duration::from_secs(10), "my-addon/1.0")?;
//! let api = kenar::api::KenarApi::new(
//!     http,
//!     "https://open-api.divar.ir".parse()?,
//!     SecretString::from("<API key from the Kenar panel>"),
//! );
//! let token = SecretString::from("<the user's access token>");
//! let chat = kenar::ConversationId::parse("62c82c02-6a71-4501-a1fd-4bf226b3aa78")?;
//! api.send_message(&chat, &token, &message.to_json(), "a-unique-idempotency-key").await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod dynamic_action;
pub mod event;
pub mod icons;
pub mod ids;
pub mod json;
pub mod message;
pub mod oauth;
pub mod scopes;
pub mod session_init;
pub mod upload;

use std::time::Duration;

pub use ids::{ConversationId, PostToken, UserId, UserSide};
pub use session_init::{PayloadRevision, SessionInit};

/// The README's example, compiled with the doc tests so it keeps up with the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

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
