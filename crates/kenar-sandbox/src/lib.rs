//! A simulated Divar for developing Kenar add-ons without a Divar account, tunnel or internet:
//! an OAuth 2.0 server, the open-platform chat API, chat screens whose buttons call the add-on's
//! session initialization, event webhooks, and JSON inspection endpoints. Everything lives under
//! `/sandbox` and in memory.
//!
//! Any add-on, in any language, can use it through the `kenar-sandbox` binary; a Rust add-on can
//! also mount [`Sandbox::router`] next to its own routes (as `kenar-chat sandbox` does). It
//! shares only Divar's types with the `kenar` client crate; request bodies are checked against
//! Divar's own OpenAPI document, so the client and the sandbox cannot share a misunderstanding.

mod api;
pub mod clock;
mod inspect;
pub mod media;
mod oauth;
mod outbound;
mod screens;
mod validate;
pub mod world;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use url::Url;

pub use clock::Clock;
use world::{Knobs, Revision, World};

/// Changes with every release, so browsers fetch new CSS.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `HH:MM` in Tehran (UTC+03:30, no daylight saving since 2022), in Persian digits.
pub fn tehran_time(epoch_ms: i64) -> String {
    let seconds = (epoch_ms / 1000 + 12_600).rem_euclid(86_400);
    format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
        .chars()
        .map(|c| {
            c.to_digit(10)
                .and_then(|d| char::from_u32(0x06F0 + d))
                .unwrap_or(c)
        })
        .collect()
}

pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;
/// Where the sandbox is mounted; the add-on's Kenar base URLs point here.
pub const PREFIX: &str = "/sandbox";

/// The app as registered in the (simulated) Kenar panel.
#[derive(Debug, Clone)]
pub struct AppRegistration {
    pub slug: String,
    /// Shown above the app's messages in the chat (the panel's `Display` field).
    pub title: String,
    pub api_key: String,
    pub oauth_secret: String,
    pub identification_key: String,
    pub redirect_uris: Vec<String>,
    pub session_init_url: Url,
    pub events_url: Url,
    /// The panel's «لینک درخواست دیوار برای دریافت اکشن پویا»: asked when a
    /// `get_dynamic_action` button is tapped.
    pub dynamic_action_url: Url,
}

/// Where the add-on listens, as registered in the panel. [`AddonUrls::under`] lays them out as
/// kenar-chat does; any of them may be replaced.
#[derive(Debug, Clone)]
pub struct AddonUrls {
    pub session_init_url: Url,
    pub redirect_uri: Url,
    pub events_url: Url,
    pub dynamic_action_url: Url,
}

impl AddonUrls {
    /// `base/divar/session-init`, `base/oauth/callback`, `base/divar/events` and
    /// `base/divar/dynamic-action`, keeping any path `base` has.
    pub fn under(base: &Url) -> Self {
        let join = |path: &str| {
            let mut url = base.clone();
            let prefix = url.path().trim_end_matches('/').to_string();
            url.set_path(&format!("{prefix}{path}"));
            url.set_query(None);
            url
        };
        Self {
            session_init_url: join("/divar/session-init"),
            redirect_uri: join("/oauth/callback"),
            events_url: join("/divar/events"),
            dynamic_action_url: join("/divar/dynamic-action"),
        }
    }
}

impl AppRegistration {
    /// Fresh random credentials for an add-on at `urls`.
    pub fn generate(urls: AddonUrls) -> Self {
        Self {
            slug: "kenar-chat-sandbox".into(),
            title: "گفت‌وگو یار".into(),
            api_key: world::random_token("sbx_key_"),
            oauth_secret: world::random_token("sbx_secret_"),
            identification_key: world::random_token("sbx_ident_"),
            redirect_uris: vec![urls.redirect_uri.to_string()],
            session_init_url: urls.session_init_url,
            events_url: urls.events_url,
            dynamic_action_url: urls.dynamic_action_url,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub access_token_ttl: Duration,
    pub rate_limit_per_minute: u32,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3600),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
        }
    }
}

/// A handle on the simulated Divar; clones share one world.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    app: AppRegistration,
    /// Our own public base, for links back into the chat screens.
    base_url: Url,
    /// The world holds a clone: both read the same time.
    clock: Clock,
    world: Mutex<World>,
    http: reqwest::Client,
}

impl Sandbox {
    pub fn new(app: AppRegistration, base_url: Url, options: SandboxOptions) -> Self {
        let knobs = Knobs {
            access_token_ttl_secs: options.access_token_ttl.as_secs().max(1),
            rotation_grace_secs: world::DEFAULT_ROTATION_GRACE_SECS,
            rate_limit_per_minute: options.rate_limit_per_minute,
            session_init_revision: Revision::V2,
            fail_5xx_percent: 0,
            fail_429_percent: 0,
            slow_percent: 0,
            slow_ms: 0,
            app_lacks_scopes: Vec::new(),
            uploads_fail: false,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("building an HTTP client with static settings");
        let clock = Clock::default();
        Self {
            inner: Arc::new(Inner {
                app,
                base_url,
                world: Mutex::new(World::seeded(knobs, clock.clone())),
                clock,
                http,
            }),
        }
    }

    pub fn app(&self) -> &AppRegistration {
        &self.inner.app
    }

    /// The time this sandbox goes by; a test moves it forward instead of waiting.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Milliseconds since the Unix epoch, by [`Sandbox::clock`].
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Locks the world. Never hold the guard across an `.await`.
    pub fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An absolute URL to a sandbox page; `path` may carry a query (`/chats/x?as=buyer`).
    pub fn url(&self, path: &str) -> String {
        let mut url = self.inner.base_url.clone();
        // `set_path` would encode a `?` as `%3F`: the query goes in on its own.
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        url.set_path(&format!("{PREFIX}{path}"));
        url.set_query(query);
        url.to_string()
    }

    fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// All sandbox routes, already under [`PREFIX`].
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .merge(oauth::router())
            .merge(api::router())
            .merge(media::router())
            .merge(screens::router())
            .merge(inspect::router())
            .route("/static/{file}", axum::routing::get(asset))
            .with_state(self.clone());
        // A nested router's "/" matches only the bare prefix; the index lives at "/sandbox/".
        let index = Router::new()
            .route(
                &format!("{PREFIX}/"),
                axum::routing::get(screens::show_index),
            )
            .route(
                PREFIX,
                axum::routing::get(|| async { axum::response::Redirect::permanent("/sandbox/") }),
            )
            .with_state(self.clone());
        Router::new().nest(PREFIX, routes).merge(index)
    }
}

/// The sandbox's own stylesheet, built into the binary (its pages use the system's fonts).
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "sandbox.css" => (
            include_bytes!("../static/sandbox.css"),
            "text/css; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
