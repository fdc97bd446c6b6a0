//! The add-on's HTTP surface.

pub mod pages;
pub mod routes;

use axum::{
    Router,
    http::{HeaderValue, Request, header},
};
use tower_http::{
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::state::AppState;

/// Bumped into asset URLs so a new release is never served a stale stylesheet.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::router())
        .merge(routes::divar::router())
        .merge(routes::webview::router())
        .fallback(|| async { crate::error::AppError::NotFound })
        .with_state(state)
        .nest_service("/static", ServeDir::new(static_dir()))
}

/// Layers every response gets, the sandbox's included.
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(
            // Only the path: query strings carry OAuth codes and states that must not be logged.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// `./static` when run from the repository or the container's work dir, else the source tree's.
fn static_dir() -> std::path::PathBuf {
    let local = std::path::PathBuf::from("static");
    if local.is_dir() {
        local
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
    }
}
