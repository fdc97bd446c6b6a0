//! The client side of Divar's Kenar platform: OAuth and the open-platform API.

pub mod api;
pub mod oauth;

use std::time::Duration;

/// One HTTP client for all calls to Divar: pooled, with timeouts, never following redirects
/// (the oauth2 crate's advice against SSRF).
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("kenar-chat/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
