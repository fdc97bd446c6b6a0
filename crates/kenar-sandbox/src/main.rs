//! `kenar-sandbox`: a simulated Divar for any Kenar add-on, in any language. See `--help`.

use std::{io::Write, net::SocketAddr};

use anyhow::Context;
use clap::Parser;
use kenar_sandbox::{AddonUrls, AppRegistration, Sandbox, SandboxOptions};
use url::Url;

/// A local Divar for developing a Kenar add-on: OAuth consent, the chat API, chat screens and
/// webhooks, all in memory. It is a sandbox: its tokens and keys are fake and shown to anyone who
/// can reach it.
#[derive(Parser)]
#[command(name = "kenar-sandbox", version)]
struct Args {
    /// Where the sandbox listens. Anything but loopback needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8090", env = "SANDBOX_BIND")]
    bind: SocketAddr,
    /// The add-on's base URL; its session-init, OAuth redirect and events URLs are laid out under
    /// it as kenar-chat does (/divar/session-init, /oauth/callback, /divar/events,
    /// /divar/dynamic-action).
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "SANDBOX_ADDON_URL"
    )]
    addon_url: Url,
    /// Replaces the derived session-initialization URL.
    #[arg(long)]
    session_init_url: Option<Url>,
    /// Replaces the derived OAuth redirect URI.
    #[arg(long)]
    redirect_uri: Option<Url>,
    /// Replaces the derived event webhook URL.
    #[arg(long)]
    events_url: Option<Url>,
    /// Replaces the derived dynamic-action URL.
    #[arg(long)]
    dynamic_action_url: Option<Url>,
    /// Listen on a non-loopback address although anyone who reaches it sees the fake tokens.
    #[arg(long)]
    allow_remote: bool,
    /// The sandbox's own address as the add-on and browsers reach it (its links and the printed
    /// Divar URLs), e.g. http://192.168.1.5:8090. Default: the bound address (127.0.0.1 for an
    /// unspecified one).
    #[arg(long)]
    public_url: Option<Url>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the banner, for people and scripts to read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if !args.bind.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "refusing to listen on {}: the sandbox lists its fake tokens to anyone who can reach it. \
             Use a loopback address, or pass --allow-remote if you mean it.",
            args.bind
        );
    }
    let mut urls = AddonUrls::under(&args.addon_url);
    if let Some(url) = args.session_init_url {
        urls.session_init_url = url;
    }
    if let Some(url) = args.redirect_uri {
        urls.redirect_uri = url;
    }
    if let Some(url) = args.events_url {
        urls.events_url = url;
    }
    if let Some(url) = args.dynamic_action_url {
        urls.dynamic_action_url = url;
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    let base = match args.public_url {
        Some(url) => url,
        None if addr.ip().is_unspecified() => {
            Url::parse(&format!("http://127.0.0.1:{}/", addr.port()))?
        }
        None => Url::parse(&format!("http://{addr}/"))?,
    };
    let app = AppRegistration::generate(urls);
    let sandbox = Sandbox::new(app.clone(), base.clone(), SandboxOptions::default());
    // Never fail on a closed stdout (e.g. piped into `head`): the server matters, not the banner.
    let _ = writeln!(std::io::stdout(), "{}", banner(&app, &sandbox));
    let router = sandbox.router();
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// What to paste into the add-on's configuration. Printing the secrets is the point: they are a
/// sandbox's, valid nowhere else.
fn banner(app: &AppRegistration, sandbox: &Sandbox) -> String {
    let divar = sandbox.url("");
    let divar = divar.trim_end_matches('/');
    format!(
        "kenar-sandbox: a simulated Divar (fake credentials, in memory, for development only)\n\
         \n  open the sandbox:        {home}\n\
         \n  app credentials (as the Kenar panel would show them):\n\
         \x20   app slug (client_id):   {slug}\n\
         \x20   API key:                {api_key}\n\
         \x20   OAuth secret:           {secret}\n\
         \x20   identification key:     {ident}\n\
         \n  Divar's endpoints for the add-on:\n\
         \x20   API base URL:           {divar}\n\
         \x20   OAuth base URL:         {divar}   (consent at {divar}/oauth2/auth, tokens at {divar}/oauth2/token)\n\
         \x20   chat upload host:       {divar}   (uploads at {divar}/upload/{{image|file|voice|video}})\n\
         \n  the add-on as registered:\n\
         \x20   session-init URL:       {init}\n\
         \x20   OAuth redirect URI:     {redirect}\n\
         \x20   events URL:             {events}\n\
         \x20   dynamic-action URL:     {dynamic}\n\
         \n  the same as JSON:        {home}_inspect/app\n",
        home = sandbox.url("/"),
        slug = app.slug,
        api_key = app.api_key,
        secret = app.oauth_secret,
        ident = app.identification_key,
        init = app.session_init_url,
        redirect = app.redirect_uris.join(", "),
        events = app.events_url,
        dynamic = app.dynamic_action_url,
        divar = divar,
    )
}
