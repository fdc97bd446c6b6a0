//! The command line: `serve`, `sandbox`, `migrate`, `rekey`.

use std::{collections::BTreeMap, process::ExitCode};

use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::{
    config::{self, ConfigError, LogFormat, Settings},
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
    /// Run the add-on server for production. Each setting comes from its flag or its environment
    /// variable (or `.env`; see `.env.example`). Refuses to start, naming every problem, when any
    /// is missing, malformed or unsafe.
    Serve(SettingsArgs),
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
    Rekey(SettingsArgs),
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

/// The settings as `serve` and `rekey` were given them (a flag, or else its variable), still as
/// text by variable name: clap would stop at the first bad value, so [`Settings::from_lookup`]
/// parses them, naming every problem. `--help` shows the declarations of [`Settings`].
#[derive(Debug, Clone)]
pub struct SettingsArgs(BTreeMap<String, SecretString>);

impl Args for SettingsArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let as_text = |arg: clap::Arg| {
            arg.required(false)
                .value_parser(clap::value_parser!(String))
        };
        let cmd = Settings::augment_args(cmd).mut_args(as_text);
        let groups: Vec<_> = cmd.get_groups().map(|g| g.get_id().to_string()).collect();
        let relax =
            |cmd: clap::Command, id| cmd.mut_group(id, |g| g.required(false).multiple(true));
        groups.iter().fold(cmd, relax)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let declared = Settings::augment_args(clap::Command::new("settings"));
        let given = declared.get_arguments().filter_map(|arg| {
            let id = arg.get_id().as_str();
            if matches.value_source(id)? == clap::parser::ValueSource::DefaultValue {
                return None;
            }
            let values: Vec<_> = matches.get_raw(id)?.map(|v| v.to_string_lossy()).collect();
            Some((
                arg.get_env()?.to_string_lossy().into_owned(),
                values.join(",").into(),
            ))
        });
        Ok(Self(given.collect()))
    }
    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl SettingsArgs {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.expose_secret().to_string())
    }

    /// The settings, or (exit code 2) every problem, without their values.
    fn settings_or_exit(&self, production: bool) -> Settings {
        let mut settings = Settings::from_lookup(|name| self.get(name));
        if production {
            settings = settings.and_then(|s| s.fit_for_production(|name| self.get(name)));
        }
        settings.unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(2);
        })
    }
}

impl Cli {
    /// Parses the command line. The commands that read the settings load `./.env` first (it
    /// never overrides the environment), then parse again so that clap sees its lines.
    pub fn load() -> Self {
        let cli = Self::parse();
        if !matches!(
            cli.command,
            Command::Serve(_) | Command::Rekey(_) | Command::Migrate(_)
        ) {
            return cli;
        }
        if let Err(error) = load_dotenv() {
            eprintln!("{error}");
            std::process::exit(2);
        }
        Self::parse()
    }
}

/// Loads `./.env` into the environment, if there is one. A line it cannot read is reported with
/// its number (never its text, which may hold a secret): dotenvy stops there, so a silent
/// failure would drop every later line and blame a variable that is in the file.
fn load_dotenv() -> Result<(), ConfigError> {
    let problem = match dotenvy::dotenv() {
        Ok(_) => return Ok(()),
        Err(error) if error.not_found() => return Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            // dotenvy reports the logical line, which an open quote runs on into the next ones.
            let first = line.lines().next().unwrap_or_default().trim();
            let text = std::fs::read_to_string(".env").unwrap_or_default();
            let number = text
                .lines()
                .position(|l| !first.is_empty() && l.trim() == first);
            let at = number.map_or("a line".to_string(), |n| format!("line {}", n + 1));
            format!(
                "{at} is not `NAME=value` (quote a value that holds spaces, `#` or quotes); that line and every one after it were not loaded"
            )
        }
        Err(dotenvy::Error::Io(io)) => format!("cannot be read ({})", io.kind()),
        Err(_) => "cannot be read".into(),
    };
    let mut error = ConfigError::default();
    error.refuse(".env", &problem);
    Err(error)
}

/// Logging for the commands that run without the settings: `LOG_FORMAT` and `RUST_LOG` as set.
fn init_logging_from_env() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty());
    telemetry::init(
        LogFormat::from_env(),
        filter.as_deref().unwrap_or(config::DEFAULT_LOG_FILTER),
    );
}

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Healthcheck(args) => return healthcheck(args).await,
        Command::Rekey(args) => rekey(args).await,
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

async fn serve(args: SettingsArgs) -> anyhow::Result<()> {
    let settings = args.settings_or_exit(true);
    telemetry::init(settings.log_format, &settings.log_filter);
    let listener = TcpListener::bind(settings.bind_addr).await?;
    let app = Application::build(settings, listener, None).await?;
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

async fn rekey(args: SettingsArgs) -> anyhow::Result<()> {
    let settings = args.settings_or_exit(false);
    telemetry::init(settings.log_format, &settings.log_filter);
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
    init_logging_from_env();
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
    let migrated = db.migrate().await?;
    db.close().await;
    if migrated.applied.is_empty() {
        println!(
            "{target}: schema up to date at {}; nothing to apply",
            migrated.schema_version
        );
    } else {
        println!(
            "migrations applied to {target}: {} (schema now at {})",
            migrated.applied.join(", "),
            migrated.schema_version
        );
    }
    Ok(())
}

#[cfg(feature = "sandbox")]
async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    init_logging_from_env();
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
