//! All SQL lives under this module. One code path serves PostgreSQL and SQLite through sqlx's
//! `Any` driver; the few statements that must differ switch on [`Backend`] right where they are.

pub mod conversations;
pub mod entry_links;
pub mod erasure;
pub mod grants;
pub mod messages;
pub mod outbox;
pub mod purge;
pub mod sessions;
pub mod templates;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    sqlite::SqliteConnectOptions,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Connects to `url` (`postgres://…` or `sqlite://…`). A SQLite file and its folder are
    /// created when missing.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite_url(url)?)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing DATABASE_URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Postgres => 10,
                // One writer at a time is all SQLite allows; a single connection queues
                // writers in the pool instead of in SQLite's sleeping busy handler.
                Backend::Sqlite => 1,
            })
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy timeout makes a
                        // second writer wait instead of failing with SQLITE_BUSY.
                        conn.execute("pragma journal_mode = wal; pragma busy_timeout = 5000; pragma foreign_keys = on; pragma synchronous = normal;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("connecting to the database")?;
        Ok(Self { pool, backend })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying migrations")?;
        Ok(())
    }

    /// A cheap round trip, for the readiness probe.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure the SQLite file's folder exists and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let options = SqliteConnectOptions::from_str(url).context("parsing the SQLite DATABASE_URL")?;
    let path = options.get_filename();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Milliseconds since the Unix epoch: the one timestamp format both engines store alike.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
