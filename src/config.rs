//! Settings read once at start from the environment (and an optional `.env`), checked, then shared.

use std::{fmt, net::SocketAddr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use crate::crypto::{KeyRing, TokenKey};

/// How the add-on names itself in calls to Divar.
pub const USER_AGENT: &str = concat!("kenar-chat/", env!("CARGO_PKG_VERSION"));
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/kenar.db";
pub const DEFAULT_API_BASE_URL: &str = "https://open-api.divar.ir";
pub const DEFAULT_OAUTH_BASE_URL: &str = "https://oauth.divar.ir";
pub const DEFAULT_BIND_ADDR: &str = "0.0.0.0:8080";
/// Where Divar wants people sent when a flow ends (docs/divar-platform.md, "Returning to Divar").
pub const DEFAULT_COMPLETION_URL: &str = "https://open-platform-redirect.divar.ir/completion";
pub const DEFAULT_RETURN_HOSTS: &str = "divar.ir";
/// Divar does not publish its per-app limit (it is shown in the panel); set yours.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: &str = "300";

#[derive(Debug, Clone)]
pub struct Settings {
    /// The app's slug in the Kenar panel; the OAuth `client_id`.
    pub app_slug: String,
    pub api_key: SecretString,
    pub oauth_secret: SecretString,
    /// Divar puts this in `Authorization` of session-init and webhook calls.
    pub identification_key: SecretString,
    /// Public base URL, without a trailing slash in its path.
    pub app_base_url: Url,
    /// Seals stored tokens: the first key seals, all of them open (`TOKEN_ENCRYPTION_KEYS`).
    pub token_keys: KeyRing,
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`; unset: 10 on PostgreSQL, 1 on SQLite.
    pub database_max_connections: Option<u32>,
    /// `DATABASE_ACQUIRE_TIMEOUT` (seconds): how long a request waits for a connection.
    pub database_acquire_timeout: Duration,
    /// `KENAR_MIGRATE_ON_START`: apply migrations when starting (else `kenar-chat migrate` does).
    pub migrate_on_start: bool,
    pub kenar_api_base_url: Url,
    pub kenar_oauth_base_url: Url,
    pub bind_addr: SocketAddr,
    pub log_format: LogFormat,
    /// How long a Kenar API call may take before it counts as failed.
    pub http_timeout: Duration,
    /// "Back to Divar" goes here unless the click carried an allowed `callback_url`.
    pub completion_url: Url,
    /// Hosts (and their subdomains) a click's `callback_url` may point at.
    pub return_hosts: Vec<String>,
    /// How long the link session initialization hands out stays usable.
    pub entry_link_ttl: Duration,
    /// Sends per minute this instance may make to Divar, all kinds together; 0 = unlimited.
    pub rate_limit_per_minute: u32,
    pub outbox: OutboxSettings,
    /// The scopes asked for besides the sending ones.
    pub consent: ConsentExtras,
    /// Timeouts, the connection cap and per-client throttling of the HTTP server.
    pub server: ServerLimits,
    /// How long what people leave behind is kept.
    pub retention: Retention,
    /// `METRICS_ADDR`: where `/metrics` is served (a listener of its own); unset: nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// How often database-derived gauges (outbox, broadcasts, pool) are sampled.
    pub metrics_sample_every: Duration,
}

/// Retention windows of the purge task (`worker::purge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub purge_every: Duration,
    /// Clicks (who opened the add-on from where, with the button's data) after their one-time
    /// link expired.
    pub clicks: Duration,
    /// Text and buttons of finished messages and broadcasts.
    pub message_bodies: Duration,
    /// Finished outbox rows and broadcasts, whole.
    pub finished_sends: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Self {
            purge_every: Duration::from_secs(60 * 60),
            clicks: Duration::from_secs(DAY),
            message_bodies: Duration::from_secs(30 * DAY),
            finished_sends: Duration::from_secs(30 * DAY),
        }
    }
}

/// What one client or one connection may take of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// A connection that has not sent a whole request head by then is closed.
    pub header_read_timeout: Duration,
    /// A request not answered by then gets 503 (its work is not cut mid-transaction: the
    /// database statements have their own limits).
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests per minute one client may make to `/s/…` and `/oauth/callback` after its burst.
    pub throttle_per_minute: u32,
    pub throttle_burst: u32,
    /// Where the client's address is, when a trusted proxy sets it (e.g. `X-Forwarded-For`,
    /// whose last entry is taken: the one our proxy added). Unset: the peer address.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// On SIGTERM, `/readyz` fails at once and new connections are still taken this long, so
    /// load balancers stop sending before the listener closes.
    pub shutdown_delay: Duration,
    /// Then in-flight requests and sends get this long before the process exits regardless.
    pub shutdown_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            // Generous: many phones share one address behind a carrier's NAT.
            throttle_per_minute: 120,
            throttle_burst: 60,
            client_ip_header: None,
            shutdown_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// The 32-byte AES-256 key that seals stored OAuth tokens.
/// Scopes the add-on asks for on top of the sending ones (docs/divar-platform.md, "Who
/// consented" and "Events"). Each must also be granted to the app in the Kenar panel, or
/// Divar refuses the whole consent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentExtras {
    /// `USER_ID`: learn who consented, so a grant is filed under the account that gave it and a
    /// click that names nobody can still be connected. Off: the click's user is trusted.
    pub user_id: bool,
    /// `NOTIFICATION_ACCESS_REVOCATION`: be told when the person withdraws access (with
    /// `USER_ID`), so everything kept about them is erased.
    pub revocation_notice: bool,
}

impl Default for ConsentExtras {
    fn default() -> Self {
        Self {
            user_id: true,
            revocation_notice: true,
        }
    }
}

impl ConsentExtras {
    pub fn scopes(self) -> impl Iterator<Item = &'static str> {
        [
            (self.user_id, "USER_ID"),
            (self.revocation_notice, "NOTIFICATION_ACCESS_REVOCATION"),
        ]
        .into_iter()
        .filter_map(|(on, scope)| on.then_some(scope))
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
            "" => Ok(Self::detect()),
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err("must be `pretty` or `json`".into()),
        }
    }

    /// Unset: pretty in a terminal, JSON lines anywhere else (a container, a pipe, a file), so
    /// no colour codes end up in a log collector.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            Self::Pretty
        } else {
            Self::Json
        }
    }

    /// Read before the settings, so that a configuration error is itself logged in the right format.
    pub fn from_env() -> Self {
        std::env::var("LOG_FORMAT")
            .ok()
            .and_then(|v| Self::parse(&v).ok())
            .unwrap_or_else(Self::detect)
    }
}

/// Every problem found in the configuration, so an operator fixes them in one go.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}); set these environment variables (or put them in .env, see .env.example):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for (var, problem) in &self.problems {
            writeln!(f, "  {var}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Loads `.env` (if present) and then the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable source; `lookup` returns a variable's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str| -> Option<String> {
            match lookup(name).map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    problems.push((name.to_string(), "is missing".to_string()));
                    None
                }
            }
        };
        let app_slug = required("KENAR_APP_SLUG");
        let api_key = required("KENAR_API_KEY");
        let oauth_secret = required("KENAR_OAUTH_SECRET");
        let identification_key = required("DIVAR_IDENTIFICATION_KEY");
        let app_base_url = required("APP_BASE_URL");
        // A ring (current first) or, as before rotation existed, one key.
        let key_list = lookup("TOKEN_ENCRYPTION_KEYS")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let token_key = match &key_list {
            Some(_) => {
                if lookup("TOKEN_ENCRYPTION_KEY").is_some_and(|v| !v.trim().is_empty()) {
                    problems.push((
                        "TOKEN_ENCRYPTION_KEY".into(),
                        "is set beside TOKEN_ENCRYPTION_KEYS; keep only TOKEN_ENCRYPTION_KEYS (current key first)".into(),
                    ));
                }
                None
            }
            None => required("TOKEN_ENCRYPTION_KEY"),
        };

        let optional = |name: &str, default: &str| -> String {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let database_url = optional("DATABASE_URL", DEFAULT_DATABASE_URL);
        let api_base = optional("KENAR_API_BASE_URL", DEFAULT_API_BASE_URL);
        let oauth_base = optional("KENAR_OAUTH_BASE_URL", DEFAULT_OAUTH_BASE_URL);
        let bind_addr = optional("BIND_ADDR", DEFAULT_BIND_ADDR);
        let log_format = optional("LOG_FORMAT", "");
        let completion_url = optional("KENAR_COMPLETION_URL", DEFAULT_COMPLETION_URL);
        let rate_limit = optional("KENAR_RATE_LIMIT_PER_MINUTE", DEFAULT_RATE_LIMIT_PER_MINUTE);
        let outbox_workers = optional("KENAR_OUTBOX_WORKERS", "4");
        let outbox_attempts = optional("KENAR_OUTBOX_MAX_ATTEMPTS", "8");
        let outbox_lease = optional("KENAR_OUTBOX_LEASE_SECS", "30");
        let return_hosts = optional("DIVAR_RETURN_HOSTS", DEFAULT_RETURN_HOSTS);
        let ask_user_id = optional("KENAR_ASK_USER_ID", "true");
        let ask_revocation = optional("KENAR_ASK_REVOCATION_NOTICE", "true");
        let header_timeout = optional("KENAR_HEADER_READ_TIMEOUT_SECS", "10");
        let request_timeout = optional("KENAR_REQUEST_TIMEOUT_SECS", "30");
        let max_connections = optional("KENAR_MAX_CONNECTIONS", "1024");
        let throttle_per_minute = optional("KENAR_THROTTLE_PER_MINUTE", "120");
        let throttle_burst = optional("KENAR_THROTTLE_BURST", "60");
        let client_ip_header = optional("KENAR_CLIENT_IP_HEADER", "");
        let shutdown_delay = optional("KENAR_SHUTDOWN_DELAY", "5");
        let db_max = optional("DATABASE_MAX_CONNECTIONS", "");
        let db_acquire = optional("DATABASE_ACQUIRE_TIMEOUT", "3");
        let migrate_on_start = optional("KENAR_MIGRATE_ON_START", "true");
        let metrics_addr = optional("METRICS_ADDR", "");
        let shutdown_timeout = optional("KENAR_SHUTDOWN_TIMEOUT", "30");
        let purge_every = optional("KENAR_PURGE_INTERVAL_SECS", "3600");
        let click_hours = optional("KENAR_CLICK_RETENTION_HOURS", "24");
        let message_days = optional("KENAR_MESSAGE_RETENTION_DAYS", "30");
        let outbox_days = optional("KENAR_OUTBOX_RETENTION_DAYS", "30");

        let mut check = |name: &str, result: Result<(), String>| {
            if let Err(problem) = result {
                problems.push((name.to_string(), problem));
            }
        };
        if let Some(slug) = &app_slug {
            check("KENAR_APP_SLUG", validate_slug(slug));
        }
        let app_base_url = app_base_url.and_then(|v| {
            let parsed = parse_base_url(&v);
            check(
                "APP_BASE_URL",
                parsed.as_ref().map(|_| ()).map_err(Clone::clone),
            );
            parsed.ok()
        });
        let token_keys = match (key_list, token_key) {
            (Some(list), _) => {
                let parsed = KeyRing::parse_base64_list(&list);
                check(
                    "TOKEN_ENCRYPTION_KEYS",
                    parsed.as_ref().map(|_| ()).map_err(Clone::clone),
                );
                parsed.ok()
            }
            (None, key) => key.and_then(|v| {
                let parsed = TokenKey::parse_base64(&v).map(|key| KeyRing::new(key, Vec::new()));
                check(
                    "TOKEN_ENCRYPTION_KEY",
                    parsed.as_ref().map(|_| ()).map_err(Clone::clone),
                );
                parsed.ok()
            }),
        };
        check("DATABASE_URL", validate_database_url(&database_url));
        let api_base = parse_base_url(&api_base);
        check(
            "KENAR_API_BASE_URL",
            api_base.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let oauth_base = parse_base_url(&oauth_base);
        check(
            "KENAR_OAUTH_BASE_URL",
            oauth_base.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let bind_addr = bind_addr
            .parse::<SocketAddr>()
            .map_err(|_| "must be an address and port such as 0.0.0.0:8080".to_string());
        check(
            "BIND_ADDR",
            bind_addr.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let completion_url = Url::parse(&completion_url)
            .map_err(|e| format!("is not a URL ({e})"))
            .and_then(|u| {
                if matches!(u.scheme(), "http" | "https") {
                    Ok(u)
                } else {
                    Err("must be an http(s) URL".to_string())
                }
            });
        check(
            "KENAR_COMPLETION_URL",
            completion_url.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let return_hosts: Vec<String> = return_hosts
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let number = |name: &str, value: &str, min: u32, max: u32| -> Result<u32, String> {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("must be a whole number from {min} to {max}"))
                .inspect_err(|_| tracing::debug!(name, "invalid number"))
        };
        let rate_limit = number("KENAR_RATE_LIMIT_PER_MINUTE", &rate_limit, 0, 1_000_000);
        check(
            "KENAR_RATE_LIMIT_PER_MINUTE",
            rate_limit.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let outbox_workers = number("KENAR_OUTBOX_WORKERS", &outbox_workers, 1, 64);
        check(
            "KENAR_OUTBOX_WORKERS",
            outbox_workers.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let outbox_attempts = number("KENAR_OUTBOX_MAX_ATTEMPTS", &outbox_attempts, 1, 100);
        check(
            "KENAR_OUTBOX_MAX_ATTEMPTS",
            outbox_attempts.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let outbox_lease = number("KENAR_OUTBOX_LEASE_SECS", &outbox_lease, 1, 3600);
        check(
            "KENAR_OUTBOX_LEASE_SECS",
            outbox_lease.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let switch = |value: &str| -> Result<bool, String> {
            match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err("must be true or false".to_string()),
            }
        };
        let ask_user_id = switch(&ask_user_id);
        check(
            "KENAR_ASK_USER_ID",
            ask_user_id.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let ask_revocation = switch(&ask_revocation);
        let migrate_on_start = switch(&migrate_on_start);
        check(
            "KENAR_MIGRATE_ON_START",
            migrate_on_start.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let migrate_on_start = migrate_on_start.unwrap_or(true);
        check(
            "KENAR_ASK_REVOCATION_NOTICE",
            ask_revocation.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let mut limit = |name: &str, value: &str, min: u32, max: u32| -> u32 {
            let parsed = number(name, value, min, max);
            check(name, parsed.as_ref().map(|_| ()).map_err(Clone::clone));
            parsed.unwrap_or(min)
        };
        let server = ServerLimits {
            header_read_timeout: Duration::from_secs(
                limit("KENAR_HEADER_READ_TIMEOUT_SECS", &header_timeout, 1, 300).into(),
            ),
            request_timeout: Duration::from_secs(
                limit("KENAR_REQUEST_TIMEOUT_SECS", &request_timeout, 1, 3600).into(),
            ),
            max_connections: limit("KENAR_MAX_CONNECTIONS", &max_connections, 1, 1_000_000)
                as usize,
            throttle_per_minute: limit(
                "KENAR_THROTTLE_PER_MINUTE",
                &throttle_per_minute,
                1,
                1_000_000,
            ),
            throttle_burst: limit("KENAR_THROTTLE_BURST", &throttle_burst, 1, 1_000_000),
            client_ip_header: None,
            shutdown_delay: Duration::from_secs(
                limit("KENAR_SHUTDOWN_DELAY", &shutdown_delay, 0, 600).into(),
            ),
            shutdown_timeout: Duration::from_secs(
                limit("KENAR_SHUTDOWN_TIMEOUT", &shutdown_timeout, 1, 3600).into(),
            ),
        };
        let retention = Retention {
            purge_every: Duration::from_secs(
                limit("KENAR_PURGE_INTERVAL_SECS", &purge_every, 10, 86_400).into(),
            ),
            clicks: Duration::from_secs(
                u64::from(limit(
                    "KENAR_CLICK_RETENTION_HOURS",
                    &click_hours,
                    1,
                    24 * 365,
                )) * 3600,
            ),
            message_bodies: Duration::from_secs(
                u64::from(limit(
                    "KENAR_MESSAGE_RETENTION_DAYS",
                    &message_days,
                    1,
                    3650,
                )) * 86_400,
            ),
            finished_sends: Duration::from_secs(
                u64::from(limit("KENAR_OUTBOX_RETENTION_DAYS", &outbox_days, 1, 3650)) * 86_400,
            ),
        };
        let database_max_connections =
            (!db_max.is_empty()).then(|| limit("DATABASE_MAX_CONNECTIONS", &db_max, 1, 1000));
        let database_acquire_timeout =
            Duration::from_secs(limit("DATABASE_ACQUIRE_TIMEOUT", &db_acquire, 1, 600).into());
        let client_ip_header = (!client_ip_header.is_empty())
            .then(|| axum::http::HeaderName::try_from(client_ip_header.as_str()))
            .transpose()
            .map_err(|_| "must be a header name such as X-Forwarded-For".to_string());
        check(
            "KENAR_CLIENT_IP_HEADER",
            client_ip_header.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let server = ServerLimits {
            client_ip_header: client_ip_header.ok().flatten(),
            ..server
        };
        let metrics_addr = (!metrics_addr.is_empty())
            .then(|| metrics_addr.parse::<SocketAddr>())
            .transpose()
            .map_err(|_| "must be an address and port such as 127.0.0.1:9090".to_string());
        check(
            "METRICS_ADDR",
            metrics_addr.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let metrics_addr = metrics_addr.ok().flatten();
        let log_format = LogFormat::parse(&log_format);
        check(
            "LOG_FORMAT",
            log_format.as_ref().map(|_| ()).map_err(Clone::clone),
        );

        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Every `None`/`Err` above pushed a problem, so these cannot fail here.
        let (
            Some(app_slug),
            Some(api_key),
            Some(oauth_secret),
            Some(identification_key),
            Some(app_base_url),
            Some(token_keys),
            Ok(kenar_api_base_url),
            Ok(kenar_oauth_base_url),
            Ok(bind_addr),
            Ok(log_format),
            Ok(completion_url),
            Ok(rate_limit_per_minute),
            Ok(outbox_workers),
            Ok(outbox_attempts),
            Ok(outbox_lease),
            Ok(ask_user_id),
            Ok(ask_revocation),
        ) = (
            app_slug,
            api_key,
            oauth_secret,
            identification_key,
            app_base_url,
            token_keys,
            api_base,
            oauth_base,
            bind_addr,
            log_format,
            completion_url,
            rate_limit,
            outbox_workers,
            outbox_attempts,
            outbox_lease,
            ask_user_id,
            ask_revocation,
        )
        else {
            unreachable!("every invalid value was recorded as a problem");
        };
        Ok(Self {
            app_slug,
            api_key: api_key.into(),
            oauth_secret: oauth_secret.into(),
            identification_key: identification_key.into(),
            app_base_url,
            token_keys,
            database_url: database_url.into(),
            database_max_connections,
            database_acquire_timeout,
            migrate_on_start,
            kenar_api_base_url,
            kenar_oauth_base_url,
            bind_addr,
            log_format,
            http_timeout: Duration::from_secs(10),
            completion_url,
            return_hosts,
            entry_link_ttl: Duration::from_secs(5 * 60),
            rate_limit_per_minute,
            outbox: OutboxSettings {
                workers: outbox_workers as usize,
                lease: Duration::from_secs(outbox_lease.into()),
                retry: RetryPolicy {
                    max_attempts: outbox_attempts,
                    ..Default::default()
                },
                ..Default::default()
            },
            consent: ConsentExtras {
                user_id: ask_user_id,
                revocation_notice: ask_revocation,
            },
            server,
            retention,
            metrics_addr,
            metrics_sample_every: Duration::from_secs(10),
        })
    }

    /// `serve` refuses values that parse but would be unsafe in production: the `.env.example`
    /// placeholders, a key that is not random, a short identification key, plain http on a
    /// public address (unless `KENAR_ALLOW_INSECURE_HTTP=1`). Every reason is named at once and
    /// no value is echoed.
    pub fn fit_for_production(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut refuse = |name: &str, problem: &str| problems.push((name.into(), problem.into()));
        for (name, value) in [
            ("KENAR_APP_SLUG", self.app_slug.as_str()),
            ("KENAR_API_KEY", self.api_key.expose_secret()),
            ("KENAR_OAUTH_SECRET", self.oauth_secret.expose_secret()),
            (
                "DIVAR_IDENTIFICATION_KEY",
                self.identification_key.expose_secret(),
            ),
        ] {
            if is_placeholder(value) {
                refuse(
                    name,
                    "is still the placeholder from .env.example; paste the value from the Kenar panel",
                );
            }
        }
        if self.identification_key.expose_secret().chars().count() < MIN_IDENTIFICATION_KEY {
            refuse(
                "DIVAR_IDENTIFICATION_KEY",
                "is shorter than 16 characters; the Kenar panel's key is longer, so this is not it",
            );
        }
        if self
            .token_keys
            .keys()
            .iter()
            .any(|key| key.expose().iter().all(|b| *b == key.expose()[0]))
        {
            refuse(
                if lookup("TOKEN_ENCRYPTION_KEYS").is_some() {
                    "TOKEN_ENCRYPTION_KEYS"
                } else {
                    "TOKEN_ENCRYPTION_KEY"
                },
                "is not random (every byte is the same); make one with `openssl rand -base64 32`",
            );
        }
        let host = self.app_base_url.host_str().unwrap_or_default();
        if is_placeholder_host(host) {
            refuse(
                "APP_BASE_URL",
                "is a placeholder address; set the https address Divar reaches this add-on at",
            );
        }
        let allow_http = lookup("KENAR_ALLOW_INSECURE_HTTP").is_some_and(|v| {
            matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
        });
        if self.app_base_url.scheme() == "http" && !is_loopback_host(host) && !allow_http {
            refuse(
                "APP_BASE_URL",
                "uses http:// on a public address: tokens and cookies would cross the network in clear; use https (or set KENAR_ALLOW_INSECURE_HTTP=1 if a trusted network stands between)",
            );
        }
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
        matches!(url.scheme(), "https" | "http")
            && self
                .return_hosts
                .iter()
                .any(|allowed| host == *allowed || host.ends_with(&format!(".{allowed}")))
    }

    pub fn cookies_secure(&self) -> bool {
        self.app_base_url.scheme() == "https"
    }

    /// `scheme://host[:port]` of `APP_BASE_URL`, as browsers write it in `Origin`.
    pub fn public_origin(&self) -> String {
        self.app_base_url.origin().ascii_serialization()
    }
}

/// Loads `./.env` into the environment, if there is one. A line it cannot read is reported with
/// its number (never its text, which may hold a secret): dotenvy stops there, so a silent
/// failure would drop every later line and blame a variable that is in the file.
pub fn load_dotenv() -> Result<(), ConfigError> {
    let problem = match dotenvy::dotenv() {
        Ok(_) => return Ok(()),
        Err(error) if error.not_found() => return Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            // dotenvy reports the logical line, which an open quote runs on into the next ones.
            let first = line.lines().next().unwrap_or_default().trim();
            let number = std::fs::read_to_string(".env").ok().and_then(|text| {
                text.lines()
                    .position(|l| !first.is_empty() && l.trim() == first)
                    .map(|i| i + 1)
            });
            let at = number.map_or("a line".to_string(), |n| format!("line {n}"));
            format!(
                "{at} is not `NAME=value` (quote a value that holds spaces, `#` or quotes); that line and every one after it were not loaded"
            )
        }
        Err(error) => format!("cannot be read ({})", error_kind(&error)),
    };
    Err(ConfigError {
        problems: vec![(".env".into(), problem)],
    })
}

/// The kind of an I/O failure, without any text from the file.
fn error_kind(error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::Io(io) => io.kind().to_string(),
        _ => "unreadable".into(),
    }
}

/// Divar's identification keys are long random strings; anything this short is a mistake.
const MIN_IDENTIFICATION_KEY: usize = 16;

/// The `.env.example` values and their usual variants.
fn is_placeholder(value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    [
        "replace-me",
        "replace_me",
        "replace_with",
        "changeme",
        "change-me",
        "my-fake-app-slug",
    ]
    .iter()
    .any(|marker| value.contains(marker))
        || value.starts_with("fake-")
}

/// Names reserved for examples and tests (RFC 2606), which no real add-on is served from.
fn is_placeholder_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == "example.com"
        || [".example.com", ".example", ".invalid", ".test"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn validate_slug(slug: &str) -> Result<(), String> {
    let ok = slug.len() <= 100
        && slug
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("must be the app slug from the Kenar panel (letters, digits, - _ .)".into())
    }
}

/// A base URL: http(s), a host, no query or fragment. The path is kept without a trailing slash.
pub fn parse_base_url(value: &str) -> Result<Url, String> {
    let mut url = Url::parse(value.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query string or fragment".into());
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

fn validate_database_url(value: &str) -> Result<(), String> {
    if value.starts_with("postgres://")
        || value.starts_with("postgresql://")
        || value.starts_with("sqlite:")
    {
        Ok(())
    } else {
        Err("must start with postgres:// or sqlite://".into())
    }
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
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// How the outbox works through its rows. (Its behaviour is in `worker::outbox`; the retry
/// schedule in `services::delivery`.)
#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Workers that take every kind of row; one more, the express worker, takes single sends
    /// only, so a person's message never waits behind a broadcast's batch.
    pub workers: usize,
    /// Rows one worker claims at a time (one claim, one token lookup and one outcome write for
    /// all of them) and sends together: at most `(workers + 1) × batch` calls are in flight.
    pub batch: usize,
    /// How long a claimed row stays with its worker before others may take it over.
    pub lease: Duration,
    /// Broadcast rows: patient, nobody is watching each one.
    pub retry: RetryPolicy,
    /// Single sends: a person is waiting, so fewer and shorter waits.
    pub interactive_retry: RetryPolicy,
    /// Sleep when there is nothing to do (a single send wakes a worker at once).
    pub idle: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            batch: 16,
            lease: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: 8,
                ..RetryPolicy::default()
            },
            interactive_retry: RetryPolicy::default(),
            idle: Duration::from_millis(250),
        }
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
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = load(&valid()).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("secret\""), "{debug}");
        assert!(!debug.contains("ident\""), "{debug}");
        assert!(!debug.contains(&B64.encode([7u8; 32])));
    }
}
