//! The command line: `serve`, `sandbox`, `migrate`, `rekey`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::{
    config::{self, LogFormat, Settings},
    db::Db,
    startup::{Application, shutdown_on_signals},
    telemetry,
};

#[derive(Parser, Debug)]
#[command(
    name = "kenar-chat",
    version,
    about = "A Kenar (Divar open platform) chat add-on server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the add-on server for production. All configuration comes from the environment
    /// (or `.env`); see `.env.example`. Refuses to start, naming every problem, when any is
    /// missing or malformed.
    Serve,
    /// Run the add-on together with a simulated Divar (OAuth server, chat API and chat screens)
    /// on one port, for development and demos. Needs no configuration and no internet: it makes
    /// its own app credentials, keys and SQLite database, and prints the URL to open.
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Apply database migrations to DATABASE_URL (default sqlite://data/kenar.db) and exit.
    Migrate(MigrateArgs),
    /// Ask the running instance whether it takes traffic (`/readyz`): exit 0 when it does, 1
    /// when it does not or cannot be reached. For Docker's HEALTHCHECK.
    Healthcheck(HealthcheckArgs),
    /// Seal every stored token again under the first key of TOKEN_ENCRYPTION_KEYS, so older
    /// keys can be removed. Reads the same configuration as `serve`; run it after deploying a
    /// ring with the new key first and the old one after it.
    Rekey,
}

#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// The readiness URL. Default: /readyz on BIND_ADDR's port, on loopback.
    #[arg(long)]
    pub url: Option<url::Url>,
}

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Without DATABASE_URL, migrate the default SQLite file (sqlite://data/kenar.db) instead of
    /// refusing: a forgotten variable must not create an empty database somewhere.
    #[arg(long)]
    pub default_database: bool,
}

#[cfg(feature = "sandbox")]
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Address to listen on. Anything but loopback needs --allow-remote: the sandbox has no
    /// real security and lists its fake tokens to whoever reaches it.
    #[arg(long, env = "SANDBOX_BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Listen on a non-loopback address although anyone who reaches it sees the fake tokens.
    #[arg(long)]
    pub allow_remote: bool,
    /// Database for the add-on. The default file is recreated at every start, because the
    /// simulated Divar keeps its own state in memory and makes new keys each run.
    #[arg(
        long,
        env = "SANDBOX_DATABASE_URL",
        default_value = "sqlite://data/sandbox.db"
    )]
    pub database_url: String,
    /// Lifetime of the access tokens the simulated Divar issues, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub access_token_ttl: u64,
    /// Sends per minute the simulated Divar accepts from the app before answering 429.
    #[arg(long, default_value_t = crate::sandbox::DEFAULT_RATE_LIMIT_PER_MINUTE)]
    pub rate_limit: u32,
}

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve => serve().await,
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Healthcheck(args) => return healthcheck(args).await,
        Command::Rekey => rekey().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "stopped with an error");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = match Settings::from_env()
        .and_then(|settings| settings.fit_for_production(|name| std::env::var(name).ok()))
    {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    telemetry::init(settings.log_format);
    let listener = TcpListener::bind(settings.bind_addr).await?;
    let app = Application::build(settings, listener, None).await?;
    tracing::info!(addr = %app.local_addr()?, "kenar-chat is serving");
    app.run_until_stopped(shutdown_on_signals()).await
}

async fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let url = args.url.map(|u| u.to_string()).unwrap_or_else(|| {
        let port = std::env::var("BIND_ADDR")
            .ok()
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map_or(8080, |a| a.port());
        format!("http://127.0.0.1:{port}/readyz")
    });
    let answer = async {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?
            .get(&url)
            .send()
            .await
    };
    match answer.await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("{url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{url} could not be reached: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn rekey() -> anyhow::Result<()> {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    telemetry::init(settings.log_format);
    let report = crate::startup::rekey(&settings).await?;
    println!(
        "{} grant(s) sealed again under the current key; {} open under no configured key",
        report.resealed, report.unopenable
    );
    if report.unopenable > 0 {
        println!(
            "  those are left as they are: their people will be asked to connect again on next use. To keep them, put the key that sealed them back in TOKEN_ENCRYPTION_KEYS (after the current one) and run rekey again."
        );
    }
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    if let Err(error) = config::load_dotenv() {
        eprintln!("{error}");
        std::process::exit(2);
    }
    telemetry::init(LogFormat::from_env());
    let url = match std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(url) => url,
        None if args.default_database => config::DEFAULT_DATABASE_URL.to_string(),
        None => {
            eprintln!(
                "DATABASE_URL is not set: say which database to migrate (or pass --default-database for {})",
                config::DEFAULT_DATABASE_URL
            );
            std::process::exit(2);
        }
    };
    let target = crate::db::describe_url(&url);
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    let newest = db.newest_migration().await?.unwrap_or_default();
    db.close().await;
    println!("migrations applied to {target} (newest: {newest})");
    Ok(())
}

#[cfg(feature = "sandbox")]
async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::from_env());
    if !args.bind.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "refusing to listen on {}: the sandbox lists its fake tokens to anyone who can reach it. \
             Use a loopback address, or pass --allow-remote if you mean it.",
            args.bind
        );
    }
    if args.database_url == "sqlite://data/sandbox.db" {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("data/sandbox.db{suffix}"));
        }
    }
    let listener = TcpListener::bind(args.bind).await?;
    let options = crate::sandbox::SandboxOptions {
        access_token_ttl: std::time::Duration::from_secs(args.access_token_ttl),
        rate_limit_per_minute: args.rate_limit,
    };
    let launched = crate::sandbox::launch(listener, &args.database_url, options).await?;
    println!();
    println!("  kenar-chat sandbox is running: the add-on and a simulated Divar on one port.");
    println!(
        "  Open {}sandbox/ in your browser (Ctrl-C stops it).",
        launched.base_url
    );
    println!();
    launched.app.run_until_stopped(shutdown_on_signals()).await
}
