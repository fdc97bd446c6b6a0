//! Settings, declared once: each field below is a clap argument with its environment variable,
//! its default and its parser, and its doc comment is its `kenar-chat serve --help` text. clap
//! stops at the first bad value, so [`Settings::from_lookup`] runs each setting's parser on its
//! own first and names every problem at once.

use std::{fmt, net::SocketAddr, time::Duration};

use clap::{ArgAction::Set, Args, Command, FromArgMatches};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use crate::crypto::{KeyRing, TokenKey};

/// How the add-on names itself in calls to Divar.
pub const USER_AGENT: &str = concat!("kenar-chat/", env!("CARGO_PKG_VERSION"));
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/kenar.db";
/// sqlx's pool warns once per broken connection; a database outage is said once by
/// `observe::reachability` instead, so only the pool's errors pass.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sqlx_core::pool=error,tower_http=info";

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Settings")]
pub struct Settings {
    /// The app's `slug` in the Kenar panel; the OAuth `client_id`.
    #[arg(long, env = "KENAR_APP_SLUG", value_parser = slug)]
    pub app_slug: String,
    /// API key from the panel, sent as `x-api-key`.
    #[arg(long, env = "KENAR_API_KEY", value_parser = secret, hide_env_values = true)]
    pub api_key: SecretString,
    /// The app's OAuth secret (`client_secret`).
    #[arg(long, env = "KENAR_OAUTH_SECRET", value_parser = secret, hide_env_values = true)]
    pub oauth_secret: SecretString,
    /// The panel's "Divar Identification Key"; Divar sends it in `Authorization`.
    #[arg(long, env = "DIVAR_IDENTIFICATION_KEY", value_parser = secret, hide_env_values = true)]
    pub identification_key: SecretString,
    /// Public base URL (https in production); the OAuth redirect URI is APP_BASE_URL/oauth/callback.
    #[arg(long, env = "APP_BASE_URL", value_parser = parse_base_url)]
    pub app_base_url: Url,
    #[command(flatten)]
    pub token_keys: KeyRing,
    /// `postgres://…` or `sqlite://…`.
    #[arg(long, env = "DATABASE_URL", value_parser = database_url, default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: SecretString,
    /// Connections in the pool. Unset: 10 on PostgreSQL, 1 on SQLite.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_parser = whole(1u32, 1000))]
    pub database_max_connections: Option<u32>,
    /// Seconds a request waits for a connection; then 503 with `Retry-After`.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT", value_parser = secs(1, 600), default_value = "3")]
    pub database_acquire_timeout: Duration,
    /// Apply migrations when `serve` starts; `false` leaves it to `kenar-chat migrate`.
    #[arg(long, env = "KENAR_MIGRATE_ON_START", value_parser = switch, action = Set, default_value = "true")]
    pub migrate_on_start: bool,
    /// Divar's open-platform API.
    #[arg(long, env = "KENAR_API_BASE_URL", value_parser = parse_base_url, default_value = "https://open-api.divar.ir")]
    pub kenar_api_base_url: Url,
    /// Divar's OAuth server.
    #[arg(long, env = "KENAR_OAUTH_BASE_URL", value_parser = parse_base_url, default_value = "https://oauth.divar.ir")]
    pub kenar_oauth_base_url: Url,
    /// Divar's chat upload host, where photos and files go before a message carries them.
    #[arg(long, env = "KENAR_CHAT_UPLOAD_BASE_URL", value_parser = parse_base_url, default_value = "https://chat.divar.ir")]
    pub chat_upload_base_url: Url,
    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", value_parser = addr, default_value = "0.0.0.0:8080")]
    pub bind_addr: SocketAddr,
    /// `pretty`, `json` (one object per line), or `auto`: pretty in a terminal, else json.
    #[arg(long, env = "LOG_FORMAT", value_parser = LogFormat::parse, default_value = "auto")]
    pub log_format: LogFormat,
    /// Which logs are written, in tracing's `RUST_LOG` syntax.
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,
    /// Let `serve` run with an http:// APP_BASE_URL on a non-loopback address (a trusted network
    /// stands between the TLS proxy and the app).
    #[arg(long, env = "KENAR_ALLOW_INSECURE_HTTP", value_parser = switch, action = Set, default_value = "false")]
    pub allow_insecure_http: bool,
    /// How long a Kenar API call may take before it counts as failed.
    #[arg(skip = Duration::from_secs(10))]
    pub http_timeout: Duration,
    /// Where "back to Divar" goes when a flow ends (docs/divar-platform.md, "Returning to Divar").
    #[arg(long, env = "KENAR_COMPLETION_URL", value_parser = http_url, default_value = "https://open-platform-redirect.divar.ir/completion")]
    pub completion_url: Url,
    /// Comma-separated hosts (and their subdomains) a click's `callback_url` may point at.
    #[arg(long, env = "DIVAR_RETURN_HOSTS", value_parser = host, value_delimiter = ',', default_value = "divar.ir")]
    pub return_hosts: Vec<String>,
    /// How long the link session initialization hands out stays usable.
    #[arg(skip = Duration::from_secs(5 * 60))]
    pub entry_link_ttl: Duration,
    /// Message sends per minute this instance makes to Divar, all kinds; 0 = unlimited. With
    /// several replicas give each its share of the app's limit.
    #[arg(long, env = "KENAR_RATE_LIMIT_PER_MINUTE", value_parser = whole(0u32, 1_000_000), default_value = "300")]
    pub rate_limit_per_minute: u32,
    /// Where `GET /metrics` (Prometheus) is served, on a listener of its own (e.g.
    /// 127.0.0.1:9090), never the public one. Unset: nowhere.
    #[arg(long, env = "METRICS_ADDR", value_parser = addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// How often database-derived gauges (outbox, broadcasts, pool) are sampled.
    #[arg(skip = Duration::from_secs(10))]
    pub metrics_sample_every: Duration,
    #[command(flatten, next_help_heading = "Outbox")]
    pub outbox: OutboxSettings,
    #[command(
        flatten,
        next_help_heading = "What one person may use of the app's sends"
    )]
    pub limits: PersonLimits,
    #[command(
        flatten,
        next_help_heading = "Consent scopes, on top of the sending ones"
    )]
    pub consent: ConsentExtras,
    #[command(flatten, next_help_heading = "Server limits")]
    pub server: ServerLimits,
    #[command(flatten, next_help_heading = "Retention")]
    pub retention: Retention,
    #[command(flatten, next_help_heading = "Who runs the add-on (the privacy page)")]
    pub operator: Operator,
}

/// `TOKEN_ENCRYPTION_KEYS`, or the single `TOKEN_ENCRYPTION_KEY` (the usual start): one of them.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct TokenKeyArgs {
    /// Keys that seal stored tokens, comma-separated, the current one first: each 32 random
    /// bytes, base64 (`openssl rand -base64 32`). Set this or TOKEN_ENCRYPTION_KEY.
    #[arg(long, env = "TOKEN_ENCRYPTION_KEYS", value_parser = KeyRing::parse_base64_list, hide_env_values = true)]
    token_keys: Option<KeyRing>,
    /// One key: TOKEN_ENCRYPTION_KEYS with a single key, the usual start (rotate by moving to
    /// TOKEN_ENCRYPTION_KEYS).
    #[arg(long, env = "TOKEN_ENCRYPTION_KEY", value_parser = one_key, hide_env_values = true)]
    token_key: Option<KeyRing>,
}

impl Args for KeyRing {
    fn augment_args(cmd: Command) -> Command {
        TokenKeyArgs::augment_args(cmd)
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        TokenKeyArgs::augment_args(cmd)
    }
}

impl FromArgMatches for KeyRing {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let args = TokenKeyArgs::from_arg_matches(matches)?;
        let missing = || clap::Error::new(clap::error::ErrorKind::MissingRequiredArgument);
        args.token_keys.or(args.token_key).ok_or_else(missing)
    }
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// How the outbox works through its rows (`worker::outbox`; the retry schedule is in
/// `services::delivery`).
#[derive(Args, Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Outbox workers in this process, each sending a batch of rows at once; one more, the
    /// express worker, sends single messages only.
    #[arg(long = "outbox-workers", env = "KENAR_OUTBOX_WORKERS", value_parser = whole(1usize, 64), default_value = "4")]
    pub workers: usize,
    /// Rows one worker claims and sends together: at most `(workers + 1) × batch` calls in flight.
    #[arg(skip = 16usize)]
    pub batch: usize,
    /// Seconds a claimed row stays with its worker; a crashed worker's rows are taken over after.
    #[arg(long = "outbox-lease", env = "KENAR_OUTBOX_LEASE_SECS", value_parser = secs(1, 3600), default_value = "30")]
    pub lease: Duration,
    /// Attempts per broadcast conversation before a 429/5xx/timeout counts as failed (a single
    /// message gets 4, with shorter waits: a person is watching).
    #[arg(long = "outbox-max-attempts", value_name = "N", env = "KENAR_OUTBOX_MAX_ATTEMPTS", value_parser = attempts, default_value = "8")]
    pub retry: RetryPolicy,
    /// Single sends: a person is waiting, so fewer and shorter waits.
    #[arg(skip = RetryPolicy::default())]
    pub interactive_retry: RetryPolicy,
    /// Sleep when there is nothing to do (a single send wakes a worker at once).
    #[arg(skip = Duration::from_millis(250))]
    pub idle: Duration,
}

/// What one person may use of the app's send budget: Divar's limit is per app, shared by every
/// seller and buyer, so one person's flood must not use it up (docs/messaging.md, "Fairness").
#[derive(Args, Debug, Clone, Copy)]
pub struct PersonLimits {
    /// Single sends one person may have waiting in the queue at once.
    #[arg(long = "max-queued-sends", env = "KENAR_MAX_QUEUED_SENDS", value_parser = whole(1u32, 1_000_000), default_value = "600")]
    pub queued_sends: u32,
    /// Broadcasts one seller may have running or paused at once (an auto-reply is not counted:
    /// a post has at most one).
    #[arg(long = "max-running-broadcasts", env = "KENAR_MAX_RUNNING_BROADCASTS", value_parser = whole(1u32, 1_000), default_value = "3")]
    pub running_broadcasts: u32,
    /// Messages one person may send in 24 hours: single sends, and a broadcast's recipients.
    #[arg(long = "max-sends-per-day", env = "KENAR_MAX_SENDS_PER_DAY", value_parser = whole(1u32, 10_000_000), default_value = "10000")]
    pub sends_per_day: u32,
    /// Sends (single or broadcast) one person may submit a minute, in bursts of up to 20.
    #[arg(long = "max-submits-per-minute", env = "KENAR_MAX_SUBMITS_PER_MINUTE", value_parser = whole(1u32, 100_000), default_value = "60")]
    pub submits_per_minute: u32,
    /// Form posts (each edit, preview or send) one browser session may make a minute, in
    /// bursts of up to 40: bounds a session's work before it reaches a person's limits.
    #[arg(long = "max-form-posts-per-minute", env = "KENAR_MAX_FORM_POSTS_PER_MINUTE", value_parser = whole(1u32, 100_000), default_value = "120")]
    pub form_posts_per_minute: u32,
}

/// How often and how patiently a send is tried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let (min_delay, max_delay) = (Duration::from_millis(250), Duration::from_secs(8));
        Self {
            max_attempts: 4,
            min_delay,
            max_delay,
        }
    }
}

/// Each scope must also be granted to the app in the Kenar panel, or Divar refuses the whole
/// consent request (docs/divar-platform.md, "Who consented" and "Events").
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentExtras {
    /// Ask for `USER_ID` and file a grant under the account that gave it; off: the click's user
    /// is trusted, and a click that names nobody cannot connect.
    #[arg(long = "ask-user-id", value_name = "BOOL", env = "KENAR_ASK_USER_ID", value_parser = switch, action = Set, default_value = "true")]
    pub user_id: bool,
    /// Ask for `NOTIFICATION_ACCESS_REVOCATION`, so a withdrawn access is reported and that
    /// person's data erased.
    #[arg(long = "ask-revocation-notice", value_name = "BOOL", env = "KENAR_ASK_REVOCATION_NOTICE", value_parser = switch, action = Set, default_value = "true")]
    pub revocation_notice: bool,
    /// Ask a post's owner for `USER_POSTS_GET` too, so Divar reports the post's removal and its
    /// post-wide messages stop.
    #[arg(long = "ask-post-updates", value_name = "BOOL", env = "KENAR_ASK_POST_UPDATES", value_parser = switch, action = Set, default_value = "true")]
    pub post_updates: bool,
}

impl ConsentExtras {
    /// The extras of a post's consent, on top of [`Self::scopes`].
    pub fn post_scopes(self) -> impl Iterator<Item = &'static str> {
        self.post_updates.then_some("USER_POSTS_GET").into_iter()
    }

    pub fn scopes(self) -> impl Iterator<Item = &'static str> {
        [
            (self.user_id, "USER_ID"),
            (self.revocation_notice, "NOTIFICATION_ACCESS_REVOCATION"),
        ]
        .into_iter()
        .filter_map(|(on, scope)| on.then_some(scope))
    }
}

/// What one client or one connection may take of the server.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Seconds a connection has to send a whole request head before it is closed.
    #[arg(long, env = "KENAR_HEADER_READ_TIMEOUT_SECS", value_parser = secs(1, 300), default_value = "10")]
    pub header_read_timeout: Duration,
    /// Seconds before a request not answered gets 503 (database statements have their own limits).
    #[arg(long, env = "KENAR_REQUEST_TIMEOUT_SECS", value_parser = secs(1, 3600), default_value = "30")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "KENAR_MAX_CONNECTIONS", value_parser = whole(1usize, 1_000_000), default_value = "1024")]
    pub max_connections: usize,
    /// Requests per minute one client may make to `/s/…` and `/oauth/callback` after its burst.
    #[arg(long, env = "KENAR_THROTTLE_PER_MINUTE", value_parser = whole(1u32, 1_000_000), default_value = "120")]
    pub throttle_per_minute: u32,
    /// The burst those routes allow one client; generous, as many phones share one address
    /// behind a carrier's NAT.
    #[arg(long, env = "KENAR_THROTTLE_BURST", value_parser = whole(1u32, 1_000_000), default_value = "60")]
    pub throttle_burst: u32,
    /// Only behind a proxy you run: the header it writes the client's address in (e.g.
    /// X-Forwarded-For; its last entry is used). Unset: the TCP peer is the client.
    #[arg(long, env = "KENAR_CLIENT_IP_HEADER", value_parser = header_name)]
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// On SIGTERM `/readyz` fails at once; new connections are still taken this many seconds.
    #[arg(long, env = "KENAR_SHUTDOWN_DELAY", value_parser = secs(0, 600), default_value = "5")]
    pub shutdown_delay: Duration,
    /// Then requests and sends in flight get this many seconds before the process exits.
    #[arg(long, env = "KENAR_SHUTDOWN_TIMEOUT", value_parser = secs(1, 3600), default_value = "30")]
    pub shutdown_timeout: Duration,
}

/// How long what people leave behind is kept (`worker::purge`).
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How often the purge task runs, in seconds.
    #[arg(long, env = "KENAR_PURGE_INTERVAL_SECS", value_parser = secs(10, 86_400), default_value = "3600")]
    pub purge_every: Duration,
    /// Hours a click (who opened the add-on from where) is kept after its link was opened.
    #[arg(long = "click-retention", value_name = "HOURS", env = "KENAR_CLICK_RETENTION_HOURS", value_parser = hours(1, 24 * 365), default_value = "24")]
    pub clicks: Duration,
    /// Days before the text and buttons of finished messages and broadcasts are cleared. Divar
    /// asks apps to keep chat messages for the least time: a week lets a person see and resend
    /// what went out.
    #[arg(long = "message-retention", value_name = "DAYS", env = "KENAR_MESSAGE_RETENTION_DAYS", value_parser = days(1, 3650), default_value = "7")]
    pub message_bodies: Duration,
    /// Days before the records of finished sends (each message's and each conversation's
    /// outcome) and finished broadcasts are deleted whole.
    #[arg(long = "outbox-retention", value_name = "DAYS", env = "KENAR_OUTBOX_RETENTION_DAYS", value_parser = days(1, 3650), default_value = "30")]
    pub finished_sends: Duration,
    /// Days a conversation's link to its post (and who its two sides are) is kept after the
    /// add-on last heard of it; a post-wide message reaches the conversations known then.
    #[arg(long = "conversation-retention", value_name = "DAYS", env = "KENAR_CONVERSATION_RETENTION_DAYS", value_parser = days(1, 3650), default_value = "30")]
    pub conversations: Duration,
}

/// Who keeps people's data, as the privacy page names them: Divar's data policy asks every app
/// that keeps personal data to say so publicly (docs/divar-platform.md, *Policies*). Required
/// when `APP_BASE_URL` is a public https address.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct Operator {
    /// The person or company that runs this add-on.
    #[arg(long = "operator-name", env = "KENAR_OPERATOR_NAME", value_parser = plain_text)]
    pub name: Option<String>,
    /// How people reach the operator about their data: an email address, a phone number or a
    /// web address.
    #[arg(long = "privacy-contact", env = "KENAR_PRIVACY_CONTACT", value_parser = plain_text)]
    pub contact: Option<String>,
}

/// A group's declared defaults.
fn defaults<T: Args + FromArgMatches>() -> T {
    read(&|_| None, &mut ConfigError::default()).expect("the declared defaults parse")
}

macro_rules! default_from_declarations {
    ($($group:ty),*) => {$(
        impl Default for $group {
            fn default() -> Self {
                defaults()
            }
        }
    )*};
}
default_from_declarations!(
    OutboxSettings,
    PersonLimits,
    ConsentExtras,
    ServerLimits,
    Retention
);

/// Parses the settings of `T` from `lookup` (a variable's value by name; a blank one counts as
/// unset) without reading the process environment. Each value is first parsed on its own, so
/// that every bad or missing one is recorded in `problems`, never with its value.
fn read<T: Args + FromArgMatches>(
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut ConfigError,
) -> Option<T> {
    let declared = T::augment_args(Command::new("settings"));
    let value = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let env = |id: &clap::Id| {
        let arg = declared.get_arguments().find(|arg| arg.get_id() == id)?;
        Some(arg.get_env()?.to_string_lossy().into_owned())
    };
    let mut argv = vec!["settings".to_string()];
    for arg in declared.get_arguments() {
        let (Some(name), Some(long)) = (env(arg.get_id()), arg.get_long()) else {
            continue;
        };
        let Some(value) = value(&name) else {
            if arg.is_required_set() {
                problems.refuse(&name, "is missing");
            }
            continue;
        };
        let flag = format!("--{long}={}", value.trim());
        let alone = arg.clone().env(None::<&str>).required(false);
        match Command::new("one")
            .arg(alone)
            .try_get_matches_from(["one", &flag])
        {
            Ok(_) => argv.push(flag),
            Err(e) => problems.refuse(
                &name,
                &std::error::Error::source(&e).map_or("is not valid".into(), |s| s.to_string()),
            ),
        }
    }
    // Groups of one-of settings (`#[group(required = true, multiple = false)]`).
    for group in declared
        .get_groups()
        .filter(|group| group.is_required_set())
    {
        let names: Vec<_> = group.get_args().filter_map(env).collect();
        match names
            .iter()
            .filter(|name| value(name).is_some())
            .collect::<Vec<_>>()[..]
        {
            [] => problems.refuse(names.last()?, "is missing"),
            [first, ref others @ ..] => others.iter().for_each(|name| {
                problems.refuse(
                    name,
                    &format!("is set beside {first}; keep only one of them"),
                )
            }),
        }
    }
    if !problems.problems.is_empty() {
        return None;
    }
    let declared = declared.mut_args(|arg| arg.env(None::<&str>));
    let parsed = declared
        .try_get_matches_from(argv)
        .and_then(|m| T::from_arg_matches(&m));
    parsed
        .map_err(|e| problems.refuse("settings", &e.kind().to_string()))
        .ok()
}

impl Settings {
    /// Reads the settings from `lookup` (a variable's value by name): the process environment,
    /// or a map in tests. Names every problem at once and echoes no value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = ConfigError::default();
        read(&lookup, &mut problems).ok_or(problems)
    }

    /// `serve` refuses values that parse but would be unsafe in production: the `.env.example`
    /// placeholders, a key that is not random, a short identification key, a reserved example
    /// host, plain http on a public address (unless `allow_insecure_http`). Every reason is named
    /// at once and no value is echoed; `lookup` tells which key variable was used.
    pub fn fit_for_production(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let placeholder =
            "is still the placeholder from .env.example; paste the value from the Kenar panel";
        let identification_key = self.identification_key.expose_secret();
        let same_bytes = |key: &TokenKey| key.expose().iter().all(|b| *b == key.expose()[0]);
        let keys = match lookup("TOKEN_ENCRYPTION_KEYS") {
            Some(_) => "TOKEN_ENCRYPTION_KEYS",
            None => "TOKEN_ENCRYPTION_KEY",
        };
        let host = self.app_base_url.host_str().unwrap_or_default();
        let plain_http = self.app_base_url.scheme() == "http" && !is_loopback_host(host);
        let public_https = self.app_base_url.scheme() == "https" && !is_loopback_host(host);
        let unnamed = "must be set on a public https address: the privacy page says who keeps people's data and how to reach them, as Divar's data policy requires";
        let rules = [
            (
                is_placeholder(&self.app_slug),
                "KENAR_APP_SLUG",
                placeholder,
            ),
            (
                is_placeholder(self.api_key.expose_secret()),
                "KENAR_API_KEY",
                placeholder,
            ),
            (
                is_placeholder(self.oauth_secret.expose_secret()),
                "KENAR_OAUTH_SECRET",
                placeholder,
            ),
            (
                is_placeholder(identification_key),
                "DIVAR_IDENTIFICATION_KEY",
                placeholder,
            ),
            (
                identification_key.chars().count() < 16,
                "DIVAR_IDENTIFICATION_KEY",
                "is shorter than 16 characters; the Kenar panel's key is longer, so this is not it",
            ),
            (
                self.token_keys.keys().iter().any(same_bytes),
                keys,
                "is not random (every byte is the same); make one with `openssl rand -base64 32`",
            ),
            (
                is_placeholder_host(host),
                "APP_BASE_URL",
                "is a placeholder address; set the https address Divar reaches this add-on at",
            ),
            (
                plain_http && !self.allow_insecure_http,
                "APP_BASE_URL",
                "uses http:// on a public address: tokens and cookies would cross the network in clear; use https (or set KENAR_ALLOW_INSECURE_HTTP=1 if a trusted network stands between)",
            ),
            (
                public_https && self.operator.name.is_none(),
                "KENAR_OPERATOR_NAME",
                unnamed,
            ),
            (
                public_https && self.operator.contact.is_none(),
                "KENAR_PRIVACY_CONTACT",
                unnamed,
            ),
            (
                self.operator.name.as_deref().is_some_and(is_placeholder),
                "KENAR_OPERATOR_NAME",
                "is still the placeholder from .env.example; the privacy page shows it to everyone",
            ),
            (
                self.operator.contact.as_deref().is_some_and(is_placeholder),
                "KENAR_PRIVACY_CONTACT",
                "is still the placeholder from .env.example; the privacy page shows it to everyone",
            ),
        ];
        let broken = rules.into_iter().filter(|(broken, ..)| *broken);
        let problems: Vec<_> = broken
            .map(|(_, name, why)| (name.into(), why.into()))
            .collect();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// What the OAuth client needs, from the panel's credentials and this server's address.
    pub fn oauth_credentials(&self) -> kenar::oauth::OAuthCredentials {
        kenar::oauth::OAuthCredentials {
            client_id: self.app_slug.clone(),
            client_secret: self.oauth_secret.clone(),
            base_url: self.kenar_oauth_base_url.clone(),
            redirect_uri: self.redirect_uri(),
        }
    }

    /// The OAuth redirect URI to register in the Kenar panel.
    pub fn redirect_uri(&self) -> Url {
        self.url("/oauth/callback")
    }

    /// The add-on's address of `path` as text, for a `path` that needs no escaping (ours, with a
    /// base64url token at most): no second parse of a URL as long as a sealed entry link.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.app_base_url.as_str().trim_end_matches('/'))
    }

    /// An absolute URL on this add-on for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.app_base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// Whether "back to Divar" may follow a click's `callback_url` to `url`.
    pub fn is_return_url_allowed(&self, url: &Url) -> bool {
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let allowed =
            |a: &String| !a.is_empty() && (host == *a || host.ends_with(&format!(".{a}")));
        // Divar's own pages are https on the default port; the completion URL's origin (the
        // sandbox's, in development) is taken as configured.
        let exact = (url.scheme() == "https" && url.port().is_none())
            || url.origin() == self.completion_url.origin();
        exact && self.return_hosts.iter().any(allowed)
    }

    pub fn cookies_secure(&self) -> bool {
        self.app_base_url.scheme() == "https"
    }

    /// `scheme://host[:port]` of `APP_BASE_URL`, as browsers write it in `Origin`.
    pub fn public_origin(&self) -> String {
        self.app_base_url.origin().ascii_serialization()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::detect()),
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err("must be `pretty`, `json` or `auto`".into()),
        }
    }

    /// Pretty in a terminal, JSON lines anywhere else (a container, a pipe, a file), so no colour
    /// codes end up in a log collector.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            Self::Pretty
        } else {
            Self::Json
        }
    }

    /// For the commands that log without the settings.
    pub fn from_env() -> Self {
        Self::parse(&std::env::var("LOG_FORMAT").unwrap_or_default())
            .unwrap_or_else(|_| Self::detect())
    }
}

/// Every problem found in the configuration, so an operator fixes them in one go.
#[derive(Debug, Default)]
pub struct ConfigError {
    pub problems: Vec<(String, String)>,
}

impl ConfigError {
    pub fn refuse(&mut self, name: &str, problem: &str) {
        self.problems.push((name.into(), problem.into()));
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let s = if n == 1 { "" } else { "s" };
        writeln!(
            f,
            "invalid configuration ({n} problem{s}); set these environment variables (or put them in .env, see .env.example):"
        )?;
        for (var, problem) in &self.problems {
            writeln!(f, "  {var}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The `.env.example` values and their usual variants.
fn is_placeholder(value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    let markers = [
        "replace-me",
        "replace_me",
        "replace_with",
        "changeme",
        "change-me",
        "my-fake-app-slug",
    ];
    markers.iter().any(|marker| value.contains(marker)) || value.starts_with("fake-")
}

/// Names reserved for examples and tests (RFC 2606), which no real add-on is served from.
fn is_placeholder_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let reserved = [".example.com", ".example", ".invalid", ".test"];
    host == "example.com" || reserved.iter().any(|suffix| host.ends_with(suffix))
}

fn is_loopback_host(host: &str) -> bool {
    let ip = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>();
    host == "localhost" || ip.is_ok_and(|ip| ip.is_loopback())
}

// Parsers: each names what is wrong without echoing the value.

fn secret(value: &str) -> Result<SecretString, String> {
    Ok(value.into())
}

/// Text a page shows: one line, not empty, of a sensible length.
fn plain_text(value: &str) -> Result<String, String> {
    let value = value.trim();
    let ok =
        !value.is_empty() && value.chars().count() <= 200 && !value.chars().any(char::is_control);
    ok.then(|| value.to_string())
        .ok_or_else(|| "must be one line of 1 to 200 characters".into())
}

fn host(value: &str) -> Result<String, String> {
    Ok(value.trim().to_ascii_lowercase())
}

fn one_key(value: &str) -> Result<KeyRing, String> {
    TokenKey::parse_base64(value).map(|key| KeyRing::new(key, Vec::new()))
}

fn slug(slug: &str) -> Result<String, String> {
    let ok = slug.len() <= 100
        && slug
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let problem = "must be the app slug from the Kenar panel (letters, digits, - _ .)";
    ok.then(|| slug.to_string()).ok_or_else(|| problem.into())
}

fn whole<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy + Send + Sync + 'static,
{
    move |value| {
        let n = value.parse().ok().filter(|n| min <= *n && *n <= max);
        n.ok_or_else(|| format!("must be a whole number from {min} to {max}"))
    }
}

fn secs(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |value| whole(min, max)(value).map(Duration::from_secs)
}

fn hours(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |value| whole(min, max)(value).map(|h| Duration::from_secs(h * 3600))
}

fn days(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |value| whole(min, max)(value).map(|d| Duration::from_secs(d * 86_400))
}

fn attempts(value: &str) -> Result<RetryPolicy, String> {
    let max_attempts = whole(1, 100)(value)?;
    Ok(RetryPolicy {
        max_attempts,
        ..RetryPolicy::default()
    })
}

fn switch(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

fn addr(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| "must be an address and port such as 127.0.0.1:8080".into())
}

fn header_name(value: &str) -> Result<axum::http::HeaderName, String> {
    value
        .try_into()
        .map_err(|_| "must be a header name such as X-Forwarded-For".into())
}

fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("is not a URL ({e})"))?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(_)) => Ok(url),
        _ => Err("must be an http:// or https:// URL with a host".into()),
    }
}

/// A base URL: http(s), a host, no query or fragment. The path is kept without a trailing slash.
pub fn parse_base_url(value: &str) -> Result<Url, String> {
    let mut url = http_url(value.trim())?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query string or fragment".into());
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

fn database_url(value: &str) -> Result<SecretString, String> {
    let known = ["postgres://", "postgresql://", "sqlite:"];
    if known.iter().any(|scheme| value.starts_with(scheme)) {
        Ok(value.into())
    } else {
        Err("must start with postgres:// or sqlite://".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    use std::collections::HashMap;

    fn valid() -> HashMap<&'static str, String> {
        HashMap::from([
            ("KENAR_APP_SLUG", "my-app".to_string()),
            ("KENAR_API_KEY", "key".to_string()),
            ("KENAR_OAUTH_SECRET", "secret".to_string()),
            ("DIVAR_IDENTIFICATION_KEY", "ident".to_string()),
            ("APP_BASE_URL", "https://addon.example.com/".to_string()),
            ("TOKEN_ENCRYPTION_KEY", B64.encode([7u8; 32])),
        ])
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn a_complete_environment_loads_with_defaults() {
        let s = load(&valid()).unwrap();
        assert_eq!(
            s.redirect_uri().as_str(),
            "https://addon.example.com/oauth/callback"
        );
        assert_eq!(s.kenar_api_base_url.as_str(), "https://open-api.divar.ir/");
        assert_eq!(s.bind_addr.to_string(), "0.0.0.0:8080");
        assert!(s.cookies_secure());
        assert_eq!((s.outbox.workers, s.outbox.retry.max_attempts), (4, 8));
        assert_eq!(s.retention.clicks, Duration::from_secs(24 * 3600));
        assert_eq!(s.server.max_connections, 1024);
    }

    /// Back to Divar only over https on the default port, to Divar's hosts.
    #[test]
    fn a_return_url_is_divar_over_https_on_the_default_port() {
        let s = load(&valid()).unwrap();
        let allowed = |url: &str| s.is_return_url_allowed(&Url::parse(url).unwrap());
        assert!(allowed("https://divar.ir/chat/abc"));
        assert!(allowed("https://www.divar.ir/v/xyz"));
        assert!(allowed("https://divar.ir:443/x"), "443 is the default port");
        for refused in [
            "http://divar.ir/",
            "https://divar.ir:1234/",
            "ftp://divar.ir/",
            "https://evil.example/",
            "https://divar.ir.evil.example/",
        ] {
            assert!(!allowed(refused), "{refused}");
        }
    }

    #[test]
    fn a_link_is_the_url_of_its_path_under_the_base() {
        for base in [
            "https://addon.example.com/",
            "https://addon.example.com/kenar/",
        ] {
            let mut vars = valid();
            vars.insert("APP_BASE_URL", base.to_string());
            let s = load(&vars).unwrap();
            let path = "/s/AbC-_123";
            assert_eq!(s.link(path), s.url(path).as_str(), "{base}");
        }
    }

    #[test]
    fn an_empty_environment_names_every_missing_variable() {
        let err = load(&HashMap::new()).unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "KENAR_APP_SLUG",
                "KENAR_API_KEY",
                "KENAR_OAUTH_SECRET",
                "DIVAR_IDENTIFICATION_KEY",
                "APP_BASE_URL",
                "TOKEN_ENCRYPTION_KEY"
            ]
        );
    }

    #[test]
    fn malformed_values_are_all_reported() {
        let mut vars = valid();
        vars.insert("TOKEN_ENCRYPTION_KEY", B64.encode([1u8; 16]));
        vars.insert("APP_BASE_URL", "ftp://x".into());
        vars.insert("BIND_ADDR", "nowhere".into());
        vars.insert("LOG_FORMAT", "xml".into());
        vars.insert("DATABASE_URL", "mysql://x".into());
        let err = load(&vars).unwrap_err();
        let text = err.to_string();
        for name in [
            "TOKEN_ENCRYPTION_KEY",
            "APP_BASE_URL",
            "BIND_ADDR",
            "LOG_FORMAT",
            "DATABASE_URL",
        ] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
        assert!(text.contains("16 bytes"));
        assert!(
            text.contains("5 problems") && !text.contains("nowhere"),
            "{text}"
        );
    }

    /// Every setting but free text is checked, and named by its own variable.
    #[test]
    fn each_bad_value_is_named_by_its_variable() {
        let err = Settings::from_lookup(|_| Some("\u{1}bad".into())).unwrap_err();
        let mut named: Vec<_> = err.problems.iter().map(|(n, _)| n.as_str()).collect();
        named.sort();
        let command = Settings::augment_args(Command::new("settings"));
        let free_text = [
            "KENAR_API_KEY",
            "KENAR_OAUTH_SECRET",
            "DIVAR_IDENTIFICATION_KEY",
            "RUST_LOG",
            "DIVAR_RETURN_HOSTS",
        ];
        let mut checked: Vec<_> = command
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_str().unwrap())
            .filter(|e| !free_text.contains(e))
            .collect();
        checked.push("TOKEN_ENCRYPTION_KEY"); // also named for being set beside TOKEN_ENCRYPTION_KEYS
        checked.sort();
        assert_eq!(named, checked);
    }

    #[test]
    fn blank_values_count_as_unset() {
        let mut vars = valid();
        vars.insert("BIND_ADDR", " ".into());
        vars.insert("KENAR_OUTBOX_WORKERS", "".into());
        let s = load(&vars).unwrap();
        assert_eq!((s.bind_addr.port(), s.outbox.workers), (8080, 4));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let debug = format!("{:?}", load(&valid()).unwrap());
        assert!(!debug.contains("secret\""), "{debug}");
        assert!(!debug.contains("ident\""), "{debug}");
        assert!(!debug.contains(&B64.encode([7u8; 32])));
    }
}
