//! The simulated Divar: an OAuth 2.0 server, the open-platform chat API, chat screens whose
//! buttons call back into the add-on, and JSON inspection endpoints. Everything lives under
//! `/sandbox` and in memory. Nothing outside this folder depends on it, so a fork can delete it.

mod api;
mod inspect;
mod oauth;
mod outbound;
pub mod scopes;
mod screens;
mod validate;
pub mod world;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::Router;
use secrecy::SecretString;
use tokio::net::TcpListener;
use url::Url;

use crate::{
    config::{Settings, TokenKey, parse_base_url},
    startup::Application,
};
use world::{Knobs, Revision, World};

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
}

impl AppRegistration {
    /// Fresh random credentials for an add-on served at `base`.
    pub fn generate(base: &Url) -> Self {
        let join = |path: &str| {
            let mut url = base.clone();
            url.set_path(path);
            url
        };
        Self {
            slug: "kenar-chat-sandbox".into(),
            title: "گفت‌وگو یار".into(),
            api_key: world::random_token("sbx_key_"),
            oauth_secret: world::random_token("sbx_secret_"),
            identification_key: world::random_token("sbx_ident_"),
            redirect_uris: vec![join("/oauth/callback").to_string()],
            session_init_url: join("/divar/session-init"),
            events_url: join("/divar/events"),
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
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("building an HTTP client with static settings");
        Self {
            inner: Arc::new(Inner {
                app,
                base_url,
                world: Mutex::new(World::seeded(knobs)),
                http,
            }),
        }
    }

    pub fn app(&self) -> &AppRegistration {
        &self.inner.app
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
            .merge(screens::router())
            .merge(inspect::router())
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

/// The add-on and the simulated Divar, wired to each other on one listener.
pub struct Launched {
    pub app: Application,
    pub sandbox: Sandbox,
    /// The add-on's base URL, with a trailing slash.
    pub base_url: Url,
    pub settings: Settings,
}

/// Builds everything `kenar-chat sandbox` runs. Tests call it too.
pub async fn launch(
    listener: TcpListener,
    database_url: &str,
    options: SandboxOptions,
) -> anyhow::Result<Launched> {
    launch_with(listener, database_url, options, |_| {}).await
}

/// [`launch`], with a last say over the add-on's settings (tests shorten lifetimes with it).
pub async fn launch_with(
    listener: TcpListener,
    database_url: &str,
    options: SandboxOptions,
    customize: impl FnOnce(&mut Settings),
) -> anyhow::Result<Launched> {
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let base_url = Url::parse(&format!("http://{host}:{}/", addr.port()))?;
    let registration = AppRegistration::generate(&base_url);
    let sandbox = Sandbox::new(registration.clone(), base_url.clone(), options);
    let divar_base = parse_base_url(&format!("{}sandbox", base_url)).map_err(anyhow::Error::msg)?;
    let mut settings = Settings {
        app_slug: registration.slug.clone(),
        api_key: SecretString::from(registration.api_key.clone()),
        oauth_secret: SecretString::from(registration.oauth_secret.clone()),
        identification_key: SecretString::from(registration.identification_key.clone()),
        app_base_url: parse_base_url(base_url.as_str()).map_err(anyhow::Error::msg)?,
        token_key: TokenKey::generate(),
        database_url: SecretString::from(database_url.to_string()),
        kenar_api_base_url: divar_base.clone(),
        kenar_oauth_base_url: divar_base,
        bind_addr: addr,
        log_format: crate::config::LogFormat::from_env(),
        http_timeout: Duration::from_secs(10),
        completion_url: Url::parse(&sandbox.url("/completion"))?,
        return_hosts: vec!["divar.ir".into(), host.clone()],
        entry_link_ttl: Duration::from_secs(5 * 60),
        rate_limit_per_minute: 0,
        outbox: Default::default(),
        consent: Default::default(),
    };
    customize(&mut settings);
    let app = Application::build(settings.clone(), listener, Some(sandbox.router())).await?;
    Ok(Launched {
        app,
        sandbox,
        base_url,
        settings,
    })
}
