//! All SQL lives under this module. One code path serves PostgreSQL and SQLite through sqlx's
//! `Any` driver; the few statements that must differ switch on [`Backend`] right where they are.

pub mod availability;
pub mod broadcasts;
pub mod conversations;
pub mod erasure;
pub mod grants;
pub mod messages;
pub mod outbox;
pub mod posts;
pub mod purge;
pub mod sessions;
pub mod spent_links;
pub mod stats;
pub mod templates;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    AnyPool, Connection, Executor,
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

/// A pooled connection idle this long is pinged before it is handed out.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What [`Db::migrate`] did: the migrations it applied (`"0007 retired posts"`), and the
/// schema's version after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub applied: Vec<String>,
    pub schema_version: i64,
}

/// The connection pool's size and patience (`DATABASE_MAX_CONNECTIONS`,
/// `DATABASE_ACQUIRE_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// `None`: 10 on PostgreSQL, 1 on SQLite (one writer at a time is all SQLite allows).
    pub max_connections: Option<u32>,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// `$first, $first+1, …`: `count` numbered parameters for an `in (…)` list, from `first` on.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a failure means the database cannot be reached right now (so the answer is 503 and
/// a retry later, not 500): no connection, or the server shutting down or starting up (SQLSTATE
/// classes 08 and 57P).
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
                _ => false,
            })
    })
}

/// Whether the database refused our login (SQLSTATE 28P01, 28000): a wrong password, not an
/// outage.
pub fn is_login_refused(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(|e| {
            matches!(e, sqlx::Error::Database(db)
                if db.code().is_some_and(|code| code == "28P01" || code == "28000"))
        })
    })
}

/// Where a database URL points, for messages: scheme, host, port and database, never the user
/// or password.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme().starts_with("postgres") => format!(
            "{}://{}:{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432),
            parsed.path()
        ),
        _ if url.starts_with("sqlite:") => url.split('?').next().unwrap_or(url).to_string(),
        _ => "(an unparsable DATABASE_URL)".to_string(),
    }
}

/// What a refused login most often means in the compose stack, and the way out.
const PASSWORD_HINT: &str = "With docker-compose.yml, POSTGRES_PASSWORD takes effect only when \
the database volume is first created: changing it in .env later does not change the database's \
password. Put the first password back in .env, or set the new one in the database too: \
`docker compose exec db psql -U kenar -d kenar -c \"ALTER USER kenar PASSWORD 'the-new-password'\"` \
(docs/operations.md, \"Changing the database password\").";

impl Db {
    /// Connects to `url` (`postgres://…` or `sqlite://…`) with the default pool. A SQLite file
    /// and its folder are created when missing.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, PoolSettings::default()).await
    }

    /// [`Db::connect`] with a pool sized by `pool`. A failure names the database (without
    /// credentials) and, when the pool only says it timed out, the cause from one direct try.
    pub async fn connect_with(url: &str, pool_settings: PoolSettings) -> anyhow::Result<Self> {
        let target = describe_url(url);
        match Self::open(url, pool_settings).await {
            Ok(db) => Ok(db),
            Err(error) if is_unavailable(&error) => {
                // The pool only says it timed out: one direct try tells why.
                let (cause, refused) = match AnyConnectOptions::from_str(url) {
                    Ok(options) => {
                        use sqlx::ConnectOptions;
                        match tokio::time::timeout(pool_settings.acquire_timeout, options.connect())
                            .await
                        {
                            Ok(Err(e)) => {
                                let cause = format!("{e}");
                                (cause, is_login_refused(&anyhow::Error::new(e)))
                            }
                            Ok(Ok(_)) => ("it answered only just now; try again".into(), false),
                            Err(_) => ("no answer in time".into(), false),
                        }
                    }
                    Err(e) => (format!("{e}"), false),
                };
                if refused {
                    return Err(error.context(format!(
                        "the database at {target} refused the login ({cause}). {PASSWORD_HINT}"
                    )));
                }
                Err(error.context(format!("cannot reach the database at {target}: {cause}")))
            }
            Err(error) if is_login_refused(&error) => Err(error.context(format!(
                "the database at {target} refused the login. {PASSWORD_HINT}"
            ))),
            Err(error) => Err(error.context(format!("opening the database at {target}"))),
        }
    }

    async fn open(url: &str, pool_settings: PoolSettings) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite_url(url)?)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing DATABASE_URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(pool_settings.max_connections.unwrap_or(match backend {
                Backend::Postgres => 10,
                // One writer at a time is all SQLite allows; a single connection queues
                // writers in the pool instead of in SQLite's sleeping busy handler.
                Backend::Sqlite => 1,
            }))
            .acquire_timeout(pool_settings.acquire_timeout)
            // sqlx pings a connection when it comes back to the pool; its default ping on
            // checkout too was one more round trip for every request and every outbox step
            // (README, "Session initialization under load"). Only a connection that sat idle,
            // which the server may have dropped meanwhile, is checked before use.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
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

    /// Applies this release's migrations. A schema that already has newer ones (a newer replica
    /// migrated it during a rolling upgrade) is accepted: a release's migrations only expand the
    /// schema in a way the release before still works with (docs/operations.md, "Migrations").
    pub async fn migrate(&self) -> anyhow::Result<Migrated> {
        let before = self.applied_migrations().await?;
        let migrator = sqlx::migrate::Migrator {
            migrations: MIGRATOR.migrations.clone(),
            ignore_missing: true,
            locking: MIGRATOR.locking,
            no_tx: MIGRATOR.no_tx,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying migrations")?;
        self.tune_storage().await?;
        let known = MIGRATOR
            .migrations
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let newest = self.newest_migration().await?.unwrap_or(0);
        if newest > known {
            tracing::warn!(
                newest,
                known,
                "the database has migrations newer than this release knows; running on it as the upgrade policy allows"
            );
        }
        let applied = MIGRATOR
            .migrations
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect();
        Ok(Migrated {
            applied,
            schema_version: newest,
        })
    }

    /// Storage settings SQLite has no counterpart for, so kept beside the migrations instead of in
    /// them. On PostgreSQL the outbox keeps half of each page free. A claim's lease changes no
    /// indexed column, so when the row's page has room its new version goes there (a HOT update)
    /// instead of into each of the table's indexes. A claim leases rows queued together, whole
    /// pages of them, so a page needs room for a second version of each of its rows
    /// (docs/benchmarks.md, *The outbox's fill factor*). Only pages written from then on take it;
    /// a fill factor an operator set otherwise is put back. Read first, so a start alters nothing
    /// when it is set. The `alter` waits at most 5 s for its lock (a vacuum or an ANALYZE may hold
    /// it; other replicas' reads and writes do not): the server then starts without it, and says
    /// so, rather than not at all.
    async fn tune_storage(&self) -> anyhow::Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let tuned: bool = sqlx::query_scalar(
            "select coalesce(reloptions, '{}') @> array['fillfactor=50'] from pg_class
             where oid = 'outbox'::regclass",
        )
        .fetch_one(&self.pool)
        .await
        .context("reading the outbox's storage settings")?;
        if tuned {
            return Ok(());
        }
        let altered = async {
            let mut tx = self
                .pool
                .begin_with("begin; set local lock_timeout = '5s'")
                .await?;
            sqlx::query("alter table outbox set (fillfactor = 50)")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = altered {
            tracing::warn!(%error, "could not set the outbox's fill factor; claims are slower until a later start sets it");
        }
        Ok(())
    }

    /// The versions recorded as applied; none when the table does not exist yet (a fresh
    /// database). Any other failure is an error, not "nothing applied".
    async fn applied_migrations(&self) -> anyhow::Result<Vec<i64>> {
        use sqlx::Row;
        match sqlx::query("select version from _sqlx_migrations where success")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => Ok(rows
                .iter()
                .filter_map(|r| r.try_get("version").ok())
                .collect()),
            // PostgreSQL: undefined_table; SQLite: "no such table".
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01")
                    || e.message().contains("no such table") =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(anyhow::Error::new(e).context("reading the applied migrations")),
        }
    }

    /// The server's version, for the start log: PostgreSQL's `server_version`, or SQLite's
    /// library version.
    pub async fn server_version(&self) -> anyhow::Result<String> {
        use sqlx::Row;
        let sql = match self.backend {
            Backend::Postgres => "select current_setting('server_version') as v",
            Backend::Sqlite => "select sqlite_version() as v",
        };
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        Ok(row.try_get("v")?)
    }

    /// The newest migration applied to the database, if any.
    pub async fn newest_migration(&self) -> anyhow::Result<Option<i64>> {
        use sqlx::Row;
        let row = sqlx::query("select max(version) as v from _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("v")?)
    }

    /// A cheap round trip, for the readiness probe.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connections open in the pool, and how many of them are idle.
    pub fn pool_state(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
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
