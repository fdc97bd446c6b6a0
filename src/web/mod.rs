//! The add-on's HTTP surface.

pub mod csrf;
pub mod error;
pub mod pages;
pub mod routes;
pub mod session;
pub mod throttle;

use axum::{
    Router,
    extract::MatchedPath,
    http::{HeaderValue, Request, header},
};
use tower_http::{
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::{config::Settings, db::sessions::DbSessionStore, state::AppState};

/// Bumped into asset URLs so a new release is never served a stale stylesheet.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router(state: AppState) -> Router {
    // Routes a stranger can hammer, each request a database write: throttled per client.
    let throttled = Router::new()
        .merge(routes::webview::entry_router())
        .merge(routes::consent::callback_router())
        .route_layer(axum::middleware::from_fn_with_state(
            throttle::Throttle::new(&state.settings.server),
            throttle::guard,
        ));
    let pages = Router::new()
        .merge(throttled)
        .merge(routes::webview::router())
        .merge(routes::consent::router())
        .merge(routes::compose::router())
        .merge(routes::templates::router())
        .merge(routes::messages::router())
        .merge(routes::broadcast::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::guard,
        ))
        .layer(page_headers(&state.settings))
        .layer(session_layer(&state));
    let hsts = state.settings.cookies_secure();
    let app = Router::new()
        .merge(routes::health::router())
        .merge(routes::divar::router())
        .merge(pages)
        .fallback(|| async { error::AppError::NotFound })
        // Whatever a page did not set itself: 404s and JSON answers are not cached or framed.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ))
        .with_state(state)
        .nest_service(
            "/static",
            tower::ServiceBuilder::new()
                // Asset URLs change with each release (`?v=`), so a day's caching is safe.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ))
                .service(ServeDir::new(static_dir())),
        );
    if hsts {
        // Only over https: browsers then refuse plain http to this host for a year.
        app.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        app
    }
}

/// Sessions in the database; the cookie is HttpOnly, SameSite=Lax (it must survive the
/// top-level redirect back from Divar's consent page), Secure with a `__Host-` name on https,
/// and expires after 15 minutes without activity (Divar's security checklist).
fn session_layer(state: &AppState) -> SessionManagerLayer<DbSessionStore> {
    let secure = state.settings.cookies_secure();
    SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(if secure {
            "__Host-kenar_session"
        } else {
            "kenar_session"
        })
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(15)))
}

/// Private pages are never cached, and may only load our own assets and post our own forms
/// (plus Divar's OAuth server, which the consent form redirects to).
fn page_headers(
    settings: &Settings,
) -> tower::layer::util::Stack<
    SetResponseHeaderLayer<HeaderValue>,
    SetResponseHeaderLayer<HeaderValue>,
> {
    let oauth = settings.kenar_oauth_base_url.origin().ascii_serialization();
    let csp = format!(
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' {oauth}"
    );
    let csp = HeaderValue::from_str(&csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    tower::layer::util::Stack::new(
        SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, max-age=0"),
        ),
        SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp),
    )
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
            // The route, not the path: paths carry one-time entry tokens (`/s/{token}`) and
            // query strings OAuth codes, neither of which may reach a log.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("(no route)", MatchedPath::as_str);
                    tracing::info_span!("http", method = %request.method(), route)
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
