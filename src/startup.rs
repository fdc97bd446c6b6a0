//! Builds the application from settings and runs it until told to stop.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use kenar::{api::KenarApi, oauth::KenarOAuth};

use crate::{
    config::{Retention, ServerLimits, Settings},
    crypto::TokenCipher,
    db::Db,
    services::{messaging::Messaging, pacing::Pacer, vault::Vault},
    state::AppState,
    web,
    worker::outbox::OutboxWorker,
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    retention: Retention,
    db: Db,
    outbox: OutboxWorker,
}

impl Application {
    /// Connects to the database, applies migrations and assembles the routes. `extra` is
    /// merged in as it is (the sandbox mounts itself this way).
    pub async fn build(
        settings: Settings,
        listener: TcpListener,
        extra: Option<Router>,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        if settings.consent.revocation_notice && !settings.consent.user_id {
            tracing::warn!(
                "KENAR_ASK_REVOCATION_NOTICE is on but KENAR_ASK_USER_ID is off: Divar sends revocation notices only for tokens that hold USER_ID too, so none will arrive"
            );
        }
        let db = Db::connect(settings.database_url.expose_secret()).await?;
        db.migrate().await?;
        let http = kenar::http_client(settings.http_timeout, crate::config::USER_AGENT)?;
        let oauth = KenarOAuth::new(&settings.oauth_credentials(), http.clone())?;
        let vault = Vault::new(
            db.clone(),
            TokenCipher::new(&settings.token_keys),
            oauth.clone(),
        );
        let api = KenarApi::new(
            http,
            settings.kenar_api_base_url.clone(),
            settings.api_key.clone(),
        );
        let pacer = Pacer::per_minute(settings.rate_limit_per_minute);
        let outbox = OutboxWorker::new(
            db.clone(),
            vault.clone(),
            api.clone(),
            pacer.clone(),
            settings.outbox,
        );
        let messaging = Messaging::new(db.clone(), outbox.wake_handle());
        let state_limits = settings.server.clone();
        let retention = settings.retention;
        let state = AppState {
            db: db.clone(),
            settings: Arc::new(settings),
            oauth,
            vault,
            messaging,
            api,
        };
        let mut router = web::router(state);
        if let Some(extra) = extra {
            router = router.merge(extra);
        }
        // A stuck request answers 503 instead of holding its connection forever; a body that
        // trickles in is cut off the same way.
        let router = router
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                state_limits.request_timeout,
            ))
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                state_limits.request_timeout,
            ));
        Ok(Self {
            listener,
            limits: state_limits,
            retention,
            router: web::with_common_layers(router),
            db,
            outbox,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub fn outbox(&self) -> &OutboxWorker {
        &self.outbox
    }

    /// Serves and runs the outbox workers until `shutdown` is cancelled, then lets in-flight
    /// requests and sends finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut workers = self.outbox.spawn_pool(shutdown.clone());
        workers.push(tokio::spawn(crate::worker::purge::run_until_stopped(
            self.db.clone(),
            self.retention,
            shutdown.clone(),
        )));
        let served = serve(
            self.listener,
            self.router,
            &self.limits,
            shutdown.clone().cancelled_owned(),
        )
        .await
        .context("serving HTTP");
        shutdown.cancel();
        for worker in workers {
            let _ = worker.await;
        }
        self.db.close().await;
        served
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
    let vault = Vault::new(db.clone(), TokenCipher::new(&settings.token_keys), oauth);
    let report = vault.rekey().await;
    db.close().await;
    report
}

/// Serves HTTP/1.1 with what `axum::serve` has no knobs for: a deadline for the request head
/// (a client trickling header lines is cut off), a cap on open connections, and the peer address
/// in each request (`ConnectInfo`) for per-client throttling. Stops accepting when `stop`
/// resolves and lets open connections finish their requests.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
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
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = tower::ServiceBuilder::new()
            .map_request(
                move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            )
            .service(router.clone());
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
