//! Builds the application from settings and runs it until told to stop.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use kenar::{api::KenarApi, oauth::KenarOAuth};

use crate::{
    config::Settings,
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
            TokenCipher::new(&settings.token_key),
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
        Ok(Self {
            listener,
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
        let workers = self.outbox.spawn_pool(shutdown.clone());
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
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
