//! Builds the application from settings and runs it until told to stop.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use kenar::{api::KenarApi, oauth::KenarOAuth, upload::Uploader};

use crate::{
    clock::{SharedClock, SystemClock},
    config::{Retention, ServerLimits, Settings},
    crypto::{LinkSealer, TokenCipher},
    db::{Db, sessions::DbSessionStore},
    features,
    services::{Deps, entry_links::EntryLinks, pacing::Pacer, vault::Vault},
    state::AppState,
    web,
    worker::outbox::OutboxWorker,
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    retention: Retention,
    lifecycle: crate::state::Lifecycle,
    db: Db,
    outbox: OutboxWorker,
    /// The `/metrics` listener (`METRICS_ADDR`), bound at build so its address is known.
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
    metrics_sample_every: std::time::Duration,
    clock: SharedClock,
    outbox_workers: bool,
    /// What the features declared, with the core's entries (the purge reads its tables).
    catalog: Arc<crate::services::Catalog>,
    /// What the start line says besides the address.
    public: StartFacts,
    /// Requests answered so far (the stop line says how many were drained).
    answered: Arc<AtomicU64>,
}

/// The settings the start line names (no secrets).
struct StartFacts {
    base_url: url::Url,
    extra_scopes: String,
}

/// How [`Application::build_with`] differs from a plain start; the default is production's.
pub struct BuildOptions {
    /// Merged into the router as it is (the sandbox mounts itself this way).
    pub extra: Option<Router>,
    /// "Now" for everything the application builds (tests pass a `clock::ManualClock`).
    pub clock: SharedClock,
    /// Whether [`Application::run_until_stopped`] runs the outbox workers. Tests that deliver
    /// step by step (`OutboxWorker::try_execute_task`) turn them off.
    pub outbox_workers: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            extra: None,
            clock: SystemClock::shared(),
            outbox_workers: true,
        }
    }
}

impl Application {
    /// Connects to the database, applies migrations and assembles the routes. `extra` is
    /// merged in as it is (the sandbox mounts itself this way).
    pub async fn build(
        settings: Settings,
        listener: TcpListener,
        extra: Option<Router>,
    ) -> anyhow::Result<Self> {
        let options = BuildOptions {
            extra,
            ..BuildOptions::default()
        };
        Self::build_with(settings, listener, options).await
    }

    /// [`Application::build`] with a say over what tests need to control: the clock, and
    /// whether the outbox runs by itself.
    pub async fn build_with(
        settings: Settings,
        listener: TcpListener,
        options: BuildOptions,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let BuildOptions {
            extra,
            clock,
            outbox_workers,
        } = options;
        if settings.consent.revocation_notice && !settings.consent.user_id {
            tracing::warn!(
                "KENAR_ASK_REVOCATION_NOTICE is on but KENAR_ASK_USER_ID is off: Divar sends revocation notices only for tokens that hold USER_ID too, so none will arrive"
            );
        }
        // Bound first: a taken metrics port stops the start, before anything else happens.
        let metrics = match settings.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding METRICS_ADDR {addr}"))?;
                Some((listener, crate::observe::install()))
            }
            None => None,
        };
        let metrics_sample_every = settings.metrics_sample_every;
        let db = Db::connect_with(
            settings.database_url.expose_secret(),
            crate::db::PoolSettings {
                max_connections: settings.database_max_connections,
                acquire_timeout: settings.database_acquire_timeout,
            },
        )
        .await?;
        let migrated = if settings.migrate_on_start {
            Some(db.migrate().await?)
        } else {
            None
        };
        log_database(&db, &settings, migrated).await?;
        crate::observe::reachability::database().reached();
        let http = kenar::http_client(settings.http_timeout, crate::config::USER_AGENT)?;
        let oauth = KenarOAuth::new(&settings.oauth_credentials(), http.clone())?;
        let vault = Vault::new(
            db.clone(),
            TokenCipher::new(&settings.token_keys),
            oauth.clone(),
            clock.clone(),
        );
        let api = KenarApi::new(
            http,
            settings.kenar_api_base_url.clone(),
            settings.api_key.clone(),
        );
        let pacer = Pacer::per_minute(settings.rate_limit_per_minute, clock.clone());
        let outbox = OutboxWorker::new(
            db.clone(),
            vault.clone(),
            api.clone(),
            pacer.clone(),
            settings.outbox,
            clock.clone(),
        );
        let entry_links = EntryLinks::new(
            db.clone(),
            LinkSealer::new(&settings.token_keys),
            settings.entry_link_ttl,
            clock.clone(),
        );
        let public = StartFacts {
            base_url: settings.app_base_url.clone(),
            extra_scopes: extra_scopes(&settings.consent),
        };
        let state_limits = settings.server.clone();
        let retention = settings.retention;
        let settings_client_ip_header = settings.server.client_ip_header.clone();
        let hsts = settings.cookies_secure();
        let request_timeout = settings.server.request_timeout;
        let lifecycle = crate::state::Lifecycle::default();
        let catalog = Arc::new(features::catalog());
        // An upload streams a file of up to 5 MB from a phone: more time than an API call.
        let upload_http = kenar::http_client(UPLOAD_TIMEOUT, crate::config::USER_AGENT)?;
        let uploader = Uploader::new(upload_http, settings.chat_upload_base_url.clone());
        let submits = crate::services::limits::SubmitThrottle::new(&settings.limits, clock.clone());
        let deps = Deps {
            db: db.clone(),
            uploader,
            settings: Arc::new(settings),
            oauth,
            vault,
            entry_links,
            api,
            wake: outbox.wake_handle(),
            catalog: catalog.clone(),
            submits,
            clock: clock.clone(),
        };
        let state = AppState::new(crate::state::AppParts {
            deps,
            lifecycle: lifecycle.clone(),
        });
        let store = DbSessionStore::new(db.clone(), clock.clone());
        let mut router = web::router(state, features::page_routes(), store);
        if let Some(extra) = extra {
            router = router.merge(extra);
        }
        Ok(Self {
            listener,
            limits: state_limits,
            retention,
            lifecycle,
            metrics,
            metrics_sample_every,
            router: web::with_common_layers(
                router,
                web::Common {
                    client_ip_header: settings_client_ip_header,
                    hsts,
                    request_timeout,
                },
            ),
            db,
            outbox,
            clock,
            outbox_workers,
            catalog,
            public,
            answered: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served, when `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn outbox(&self) -> &OutboxWorker {
        &self.outbox
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Serves and runs the background workers until `shutdown` is cancelled, then drains: `/readyz`
    /// fails at once, connections are still taken for `KENAR_SHUTDOWN_DELAY` (load balancers
    /// notice), then the listener closes, the workers stop claiming (rows waiting for their turn
    /// are given back) and in-flight requests and sends get `KENAR_SHUTDOWN_TIMEOUT` to finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let retention = &self.retention;
        tracing::info!(
            addr = %self.listener.local_addr()?,
            base_url = %self.public.base_url,
            extra_scopes = self.public.extra_scopes,
            click_retention_hours = retention.clicks.as_secs() / 3600,
            message_retention_days = retention.message_bodies.as_secs() / 86_400,
            outbox_retention_days = retention.finished_sends.as_secs() / 86_400,
            conversation_retention_days = retention.conversations.as_secs() / 86_400,
            outbox_workers = self.outbox_workers,
            "kenar-chat is serving"
        );
        let stopping = CancellationToken::new();
        let mut tasks = if self.outbox_workers {
            self.outbox.spawn_pool(stopping.clone())
        } else {
            Vec::new()
        };
        tasks.push(tokio::spawn(crate::worker::purge::run_until_stopped(
            self.db.clone(),
            self.retention,
            self.catalog.tables.clone(),
            self.clock.clone(),
            stopping.clone(),
        )));
        if let Some((listener, handle)) = self.metrics {
            tasks.push(tokio::spawn(crate::worker::sampler::run_until_stopped(
                self.db.clone(),
                self.metrics_sample_every,
                self.clock.clone(),
                stopping.clone(),
            )));
            // Until the very end: the drain itself is worth watching.
            tokio::spawn(crate::observe::serve(listener, handle, stopping.clone()));
        }
        // A worker that ends while the process goes on makes `/readyz` fail.
        let watched: Vec<_> = tasks
            .into_iter()
            .map(|task| {
                let (lifecycle, stopping) = (self.lifecycle.clone(), stopping.clone());
                metrics::gauge!(crate::observe::WORKERS_RUNNING).increment(1.0);
                tokio::spawn(async move {
                    let ended = task.await;
                    metrics::gauge!(crate::observe::WORKERS_RUNNING).decrement(1.0);
                    if !stopping.is_cancelled() {
                        tracing::error!(
                            panicked = ended.is_err(),
                            "a background worker stopped; /readyz now fails"
                        );
                        metrics::counter!(crate::observe::WORKERS_STOPPED).increment(1);
                        lifecycle.worker_stopped();
                    }
                })
            })
            .collect();
        let (delay, timeout) = (self.limits.shutdown_delay, self.limits.shutdown_timeout);
        // What was answered and sent when the drain began, for the stop line.
        let at_drain = Arc::new(std::sync::OnceLock::<(u64, u64)>::new());
        let drain = {
            let (lifecycle, stopping) = (self.lifecycle.clone(), stopping.clone());
            let (answered, outbox, at_drain) =
                (self.answered.clone(), self.outbox.clone(), at_drain.clone());
            async move {
                shutdown.cancelled().await;
                let _ = at_drain.set((answered.load(Ordering::Acquire), outbox.recorded()));
                lifecycle.start_draining();
                tracing::info!(
                    delay_secs = delay.as_secs_f64(),
                    "draining: /readyz answers 503; the listener closes after the delay"
                );
                tokio::time::sleep(delay).await;
                tracing::info!("stopped accepting; finishing requests and sends in flight");
                stopping.cancel();
            }
        };
        let served = serve(
            self.listener,
            self.router,
            &self.limits,
            self.answered.clone(),
            drain,
        )
        .await
        .context("serving HTTP");
        stopping.cancel();
        let workers_done = async {
            for task in watched {
                let _ = task.await;
            }
        };
        let workers_in_time = tokio::time::timeout(timeout, workers_done).await.is_ok();
        if !workers_in_time {
            tracing::warn!("background work still running at the shutdown deadline was cut off");
        }
        self.db.close().await;
        let (answered_before, recorded_before) = at_drain.get().copied().unwrap_or_else(|| {
            (
                self.answered.load(Ordering::Acquire),
                self.outbox.recorded(),
            )
        });
        let requests_drained = self.answered.load(Ordering::Acquire) - answered_before;
        let sends_drained = self.outbox.recorded() - recorded_before;
        let in_time = workers_in_time && matches!(served, Ok(true));
        if let Err(error) = &served {
            tracing::error!(
                error = format!("{error:#}"),
                requests_drained,
                sends_drained,
                "stopped: serving failed"
            );
        } else if in_time {
            tracing::info!(
                requests_drained,
                sends_drained,
                in_time,
                "stopped: the drain finished in time"
            );
        } else {
            tracing::warn!(
                requests_drained,
                sends_drained,
                in_time,
                "stopped: the drain did not finish in time; work still running was cut off"
            );
        }
        served.map(|_| ())
    }
}

/// `kenar-chat rekey`: seals every stored token again under the first key of the ring, so the
/// older keys can then be removed from `TOKEN_ENCRYPTION_KEYS`.
pub async fn rekey(settings: &Settings) -> anyhow::Result<crate::services::vault::Rekeyed> {
    use secrecy::ExposeSecret;
    let db = Db::connect(settings.database_url.expose_secret()).await?;
    db.migrate().await?;
    let http = kenar::http_client(settings.http_timeout, crate::config::USER_AGENT)?;
    let oauth = KenarOAuth::new(&settings.oauth_credentials(), http)?;
    let vault = Vault::new(
        db.clone(),
        TokenCipher::new(&settings.token_keys),
        oauth,
        SystemClock::shared(),
    );
    let report = vault.rekey().await;
    db.close().await;
    report
}

/// A connection older than this finishes its request in flight and closes: a client that
/// never reads its answers cannot hold a slot for ever.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(10 * 60);

/// How long one upload to Divar's chat upload host may take (5 MB on a slow link).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves HTTP/1.1 with what `axum::serve` has no knobs for: a deadline for the request head
/// (a client trickling header lines is cut off), a cap on open connections, a maximum
/// connection age, the peer address in each request (`ConnectInfo`) for per-client throttling,
/// and a bounded shutdown. Stops accepting when `stop` resolves; open connections then finish
/// their requests in flight within `shutdown_timeout`, and are cut after it.
/// Counts every answer in `answered`. Returns whether every connection closed before the
/// deadline.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    answered: Arc<AtomicU64>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<bool> {
    use axum::extract::ConnectInfo;
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let closing = CancellationToken::new();
    let grace = limits.request_timeout;
    tokio::pin!(stop);
    loop {
        // At the cap, stop accepting: new connections wait in the backlog, not in memory.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let answered = answered.clone();
        let service = tower::ServiceBuilder::new()
            .map_request(
                move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            )
            .map_response(move |response| {
                answered.fetch_add(1, Ordering::Relaxed);
                response
            })
            .service(router.clone());
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let closing = closing.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let deadline = tokio::time::sleep(MAX_CONNECTION_AGE);
            tokio::pin!(deadline);
            let mut winding_down = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(error) = ended {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        break;
                    }
                    () = closing.cancelled(), if !winding_down => {
                        connection.as_mut().graceful_shutdown();
                        winding_down = true;
                        deadline.as_mut().reset(tokio::time::Instant::now() + grace);
                    }
                    () = &mut deadline => {
                        if winding_down {
                            break; // it had its grace: cut it
                        }
                        connection.as_mut().graceful_shutdown();
                        winding_down = true;
                        deadline.as_mut().reset(tokio::time::Instant::now() + grace);
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    closing.cancel();
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let closed = tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all))
        .await
        .is_ok();
    if !closed {
        tracing::warn!("connections still open at the shutdown deadline were cut");
    }
    Ok(closed)
}

/// The scopes asked for besides the send scopes, as the start line names them.
fn extra_scopes(consent: &crate::config::ConsentExtras) -> String {
    let on: Vec<&str> = [
        (consent.user_id, "USER_ID"),
        (consent.revocation_notice, "NOTIFICATION_ACCESS_REVOCATION"),
        (consent.post_updates, "USER_POSTS_GET"),
    ]
    .into_iter()
    .filter_map(|(asked, scope)| asked.then_some(scope))
    .collect();
    if on.is_empty() {
        "none".into()
    } else {
        on.join(" ")
    }
}

/// The start's database line: engine, server version, where (no credentials), and what this
/// start did to the schema.
async fn log_database(
    db: &Db,
    settings: &Settings,
    migrated: Option<crate::db::Migrated>,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let engine = match db.backend() {
        crate::db::Backend::Postgres => "PostgreSQL",
        crate::db::Backend::Sqlite => "SQLite",
    };
    let server_version = db.server_version().await?;
    let target = crate::db::describe_url(settings.database_url.expose_secret());
    match migrated {
        Some(migrated) if migrated.applied.is_empty() => tracing::info!(
            engine,
            server_version,
            target,
            schema_version = migrated.schema_version,
            "database ready: schema up to date at {}",
            migrated.schema_version
        ),
        Some(migrated) => tracing::info!(
            engine,
            server_version,
            target,
            schema_version = migrated.schema_version,
            migrations = migrated.applied.join(", "),
            "database ready: applied {} migration(s)",
            migrated.applied.len()
        ),
        None => tracing::info!(
            engine,
            server_version,
            target,
            "database ready: KENAR_MIGRATE_ON_START is off, the schema was left as it is"
        ),
    }
    Ok(())
}

/// Cancels the returned token on Ctrl-C or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
        trigger.cancel();
    });
    token
}
