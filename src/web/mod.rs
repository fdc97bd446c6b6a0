//! The add-on's HTTP surface.

pub mod assets;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod form;
pub mod pages;
pub mod routes;
pub mod session;
pub mod throttle;

use std::time::Duration;

use axum::{
    Router,
    extract::MatchedPath,
    http::{HeaderName, HeaderValue, Request, Response, header},
};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};
use tracing::{Level, Span};

use tower_sessions::{Expiry, SessionManagerLayer, SessionStore, cookie::SameSite};

use crate::{config::Settings, state::AppState};

use routes::Routes;

/// Every page route: the core's and the features' (`extra`), each behind the session,
/// forged-post and page-header layers. The record is what tests walk.
pub fn page_routes(extra: Routes) -> Routes {
    routes::core_pages().merge(extra)
}

/// The whole HTTP surface: `pages` (see [`page_routes`]) with sessions in `store`, and the
/// routes Divar, probes and browsers' asset requests reach.
pub fn router(state: AppState, pages: Routes, store: impl SessionStore + Clone) -> Router {
    let settings = &state.deps.settings;
    // Routes a stranger can hammer, each request a database write: throttled per client.
    let throttled = routes::webview::entry_routes()
        .merge(routes::consent::callback_routes())
        .map(|r| {
            r.route_layer(axum::middleware::from_fn_with_state(
                throttle::Throttle::new(&settings.server),
                throttle::guard,
            ))
        });
    // Each `Router::layer` call wraps every route once more (a boxed service, and four futures
    // deep per request): the layers of one scope go on in one call, outermost first.
    let pages = pages.merge(throttled).into_router().layer(
        ServiceBuilder::new()
            .layer(compression())
            .layer(session_layer(settings, store))
            .layer(page_headers(settings))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                csrf::guard,
            ))
            // Inside the forged-post check: a forged post is refused without using up the
            // session's allowance.
            .layer(axum::middleware::from_fn_with_state(
                throttle::SessionThrottle::new(&settings.limits, state.deps.clock.clone()),
                throttle::session_guard,
            )),
    );
    // Whatever a page did not set itself: 404s and JSON answers are not cached or framed.
    let unless_set = DefaultHeaders::new([
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        ),
    ]);
    Router::new()
        .merge(routes::health::routes().into_router())
        .merge(routes::divar::routes().into_router())
        .merge(pages)
        .fallback(|| async { error::AppError::NotFound })
        .layer(axum::middleware::map_response(move |response| {
            let unless_set = unless_set.clone();
            async move { unless_set.add_to(response) }
        }))
        .with_state(state)
        .nest_service(
            "/static",
            ServiceBuilder::new()
                .layer(compression())
                .layer(axum::middleware::from_fn(assets::cache_headers))
                .service(ServeDir::new(static_dir())),
        )
}

/// Pages and assets travel compressed (brotli or gzip, as the client accepts). Divar's calls
/// and probes do not: their answers are a few hundred bytes, and compressing each cost more
/// server CPU than the rest of a click (docs/benchmarks.md, *Compression off Divar's calls*).
/// Pages hold a form token beside what a person typed, but nothing a third party can put there,
/// so size differences reveal nothing (BREACH needs attacker input).
fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
}

/// Headers an answer gets unless it set its own: one layer for all of them.
#[derive(Clone)]
struct DefaultHeaders(std::sync::Arc<[(HeaderName, HeaderValue)]>);

impl DefaultHeaders {
    fn new(headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>) -> Self {
        Self(headers.into_iter().collect())
    }

    fn add_to<B>(&self, mut response: Response<B>) -> Response<B> {
        let headers = response.headers_mut();
        for (name, value) in self.0.iter() {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        response
    }
}

/// Sessions in the database; the cookie is HttpOnly, SameSite=Lax (it must survive the
/// top-level redirect back from Divar's consent page), Secure with a `__Host-` name on https,
/// and expires after 15 minutes without activity (Divar's security checklist).
fn session_layer<S: SessionStore + Clone>(settings: &Settings, store: S) -> SessionManagerLayer<S> {
    let secure = settings.cookies_secure();
    SessionManagerLayer::new(store)
        .with_name(if secure {
            "__Host-kenar_session"
        } else {
            "kenar_session"
        })
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(session::SESSION_IDLE).expect("a short period"),
        ))
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

/// How the layers every answer gets are set: the trusted proxy's client header, if configured;
/// whether answers tell browsers to use https only; how long a request may take.
pub struct Common {
    pub client_ip_header: Option<HeaderName>,
    pub hsts: bool,
    pub request_timeout: Duration,
}

/// Layers every response gets, the sandbox's included: a request id, one log line
/// and the request metrics per request, security headers, and a deadline. One `Router::layer`
/// call (see [`router`]).
pub fn with_common_layers(router: Router, common: Common) -> Router {
    let x_request_id = HeaderName::from_static(REQUEST_ID);
    let client_ip_header = common.client_ip_header;
    let mut headers = vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if common.hsts {
        // Only over https: browsers then refuse plain http to this host for a year.
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    let headers = DefaultHeaders::new(headers);
    router.layer(
        ServiceBuilder::new()
            // Outermost: the id exists before the span is made, and is echoed on every answer.
            .layer(SetRequestIdLayer::new(
                x_request_id.clone(),
                MakeRequestUuid,
            ))
            .layer(PropagateRequestIdLayer::new(x_request_id))
            .layer(axum::middleware::from_fn(count_request))
            .layer(
                // The route, not the path: paths carry one-time entry tokens (`/s/{token}`) and
                // query strings OAuth codes, neither of which may reach a log.
                TraceLayer::new_for_http()
                    .make_span_with(move |request: &Request<_>| {
                        request_span(request, client_ip_header.as_ref())
                    })
                    .on_request(())
                    .on_response(|response: &Response<_>, latency: Duration, span: &Span| {
                        let status = response.status().as_u16();
                        let latency_ms = latency.as_secs_f64() * 1000.0;
                        // Probes' spans are at DEBUG: their lines too.
                        if span.metadata().is_some_and(|m| *m.level() == Level::DEBUG) {
                            tracing::debug!(status, latency_ms, "answered");
                        } else {
                            tracing::info!(status, latency_ms, "answered");
                        }
                    })
                    .on_failure(()),
            )
            .map_response(move |response| headers.add_to(response))
            // A stuck request answers 503 instead of holding its connection forever. Its body
            // is read within the handler, so a body that trickles in is cut off the same way
            // (no timer per body frame needed).
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                common.request_timeout,
            )),
    )
}

const REQUEST_ID: &str = "x-request-id";

/// One span per request: method, route template, request id and client address. Health probes
/// get a DEBUG span, so they stay out of an INFO log.
fn request_span<B>(request: &Request<B>, client_ip_header: Option<&HeaderName>) -> Span {
    // With INFO off (e.g. RUST_LOG=warn) the span records nothing: skip working out its fields.
    if !tracing::enabled!(Level::INFO) {
        return Span::none();
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    // A client's own id is kept only when it is a plain token, so it cannot forge log lines.
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .unwrap_or("(invalid)");
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let client = client_ip(request.headers(), peer, client_ip_header)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let method = request.method().as_str();
    if matches!(route, "/healthz" | "/readyz") {
        tracing::debug_span!("http", method, route, request_id, client)
    } else {
        tracing::info_span!("http", method, route, request_id, client)
    }
}

/// The client's address: the last entry of the trusted proxy's header when one is configured
/// (a client can send its own lines of that header, which come first), else the peer.
pub fn client_ip(
    headers: &axum::http::HeaderMap,
    peer: Option<std::net::SocketAddr>,
    client_ip_header: Option<&HeaderName>,
) -> Option<std::net::IpAddr> {
    let from_proxy = client_ip_header.and_then(|name| {
        let last = headers.get_all(name).iter().next_back()?.to_str().ok()?;
        let entry = last.rsplit(',').next()?.trim();
        entry
            .parse::<std::net::IpAddr>()
            .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|a| a.ip()))
            .ok()
    });
    from_proxy.or(peer.map(|p| p.ip()))
}

/// Counts every answer and its latency by route template (never the raw path) and status.
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(crate::observe::HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(crate::observe::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// `./static` when run from the repository or the container's work dir, else the source tree's.
pub(crate) fn static_dir() -> std::path::PathBuf {
    let local = std::path::PathBuf::from("static");
    if local.is_dir() {
        local
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
    }
}
