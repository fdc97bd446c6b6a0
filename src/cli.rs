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
    Migrate,
    /// Seal every stored token again under the first key of TOKEN_ENCRYPTION_KEYS, so older
    /// keys can be removed. Reads the same configuration as `serve`; run it after deploying a
    /// ring with the new key first and the old one after it.
    Rekey,
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
        Command::Migrate => migrate().await,
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

async fn migrate() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    telemetry::init(LogFormat::from_env());
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| config::DEFAULT_DATABASE_URL.to_string());
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    db.close().await;
    println!("migrations applied");
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
