//! `kenar-chat sandbox`: the add-on and the simulated Divar (the `kenar-sandbox` crate) on one
//! listener, wired to each other. Only with the `sandbox` feature.

use std::time::Duration;

pub use kenar_sandbox::*;
use secrecy::SecretString;
use tokio::net::TcpListener;
use url::Url;

use crate::{
    config::{Settings, TokenKey, parse_base_url},
    startup::{Application, BuildOptions},
};

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
    launch_built(
        listener,
        database_url,
        options,
        customize,
        BuildOptions::default(),
    )
    .await
}

/// [`launch_with`], the add-on built with `build` (its clock, its outbox workers); the
/// sandbox's router takes the place of `build.extra`.
pub async fn launch_built(
    listener: TcpListener,
    database_url: &str,
    options: SandboxOptions,
    customize: impl FnOnce(&mut Settings),
    build: BuildOptions,
) -> anyhow::Result<Launched> {
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let base_url = Url::parse(&format!("http://{host}:{}/", addr.port()))?;
    let registration = AppRegistration::generate(AddonUrls::under(&base_url));
    let sandbox = Sandbox::new(registration.clone(), base_url.clone(), options);
    let divar_base = parse_base_url(&format!("{}sandbox", base_url)).map_err(anyhow::Error::msg)?;
    let mut settings = Settings {
        app_slug: registration.slug.clone(),
        api_key: SecretString::from(registration.api_key.clone()),
        oauth_secret: SecretString::from(registration.oauth_secret.clone()),
        identification_key: SecretString::from(registration.identification_key.clone()),
        app_base_url: parse_base_url(base_url.as_str()).map_err(anyhow::Error::msg)?,
        token_keys: crate::config::KeyRing::new(TokenKey::generate(), Vec::new()),
        database_url: SecretString::from(database_url.to_string()),
        database_max_connections: None,
        database_acquire_timeout: Duration::from_secs(3),
        migrate_on_start: true,
        kenar_api_base_url: divar_base.clone(),
        kenar_oauth_base_url: divar_base.clone(),
        // The sandbox is its own upload host too, under the same address.
        chat_upload_base_url: divar_base,
        bind_addr: addr,
        log_format: crate::config::LogFormat::from_env(),
        log_filter: crate::config::DEFAULT_LOG_FILTER.into(),
        allow_insecure_http: false,
        http_timeout: Duration::from_secs(10),
        completion_url: Url::parse(&sandbox.url("/completion"))?,
        return_hosts: vec!["divar.ir".into(), host.clone()],
        entry_link_ttl: Duration::from_secs(5 * 60),
        rate_limit_per_minute: 0,
        outbox: Default::default(),
        limits: Default::default(),
        consent: Default::default(),
        // Never behind a load balancer: stop at once.
        server: crate::config::ServerLimits {
            shutdown_delay: Duration::ZERO,
            ..Default::default()
        },
        retention: Default::default(),
        // The privacy page says the operator is not named yet: a fork sets its own.
        operator: Default::default(),
        metrics_addr: None,
        metrics_sample_every: Duration::from_secs(10),
    };
    customize(&mut settings);
    let build = BuildOptions {
        extra: Some(sandbox.router()),
        ..build
    };
    let app = Application::build_with(settings.clone(), listener, build).await?;
    Ok(Launched {
        app,
        sandbox,
        base_url,
        settings,
    })
}
