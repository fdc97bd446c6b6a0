//! Throttling by who asks. Per client address: the routes a stranger can hammer, `/s/{token}`
//! (each probe of a random token is a database write) and `/oauth/callback`. Per browser
//! session: every form post of the pages (each edit, preview or send renders or writes), before
//! any of its work. `governor` keyed limiters (GCRA): a burst, then a steady rate. What one
//! *person* may send is `services::limits`: a person can hold several sessions.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use tower_sessions::{Session, session::Id};

use crate::{
    clock::SharedClock,
    config::{PersonLimits, ServerLimits},
    services::limits::KeyedRate,
    web::error::AppError,
};

/// Beyond this many remembered clients, forget those whose allowance is full again, at most
/// once a minute (each pass visits every key).
const FORGET_AFTER: usize = 10_000;
const FORGET_EVERY_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Throttle {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    client_ip_header: Option<HeaderName>,
    last_forget_ms: Arc<AtomicI64>,
}

impl Throttle {
    pub fn new(limits: &ServerLimits) -> Self {
        let per_minute = NonZeroU32::new(limits.throttle_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.throttle_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            )),
            client_ip_header: limits.client_ip_header.clone(),
            last_forget_ms: Arc::default(),
        }
    }

    /// The client (see `web::client_ip`); an IPv6 client counts by its /64, since one host may
    /// hold a whole /64.
    fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        super::client_ip(headers, peer, self.client_ip_header.as_ref()).map(|ip| match ip {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
            v4 => v4,
        })
    }

    fn forget_idle_clients(&self) {
        if self.limiter.len() <= FORGET_AFTER {
            return;
        }
        // Memory upkeep on the machine's clock, like the limiter's own (governor's).
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let last = self.last_forget_ms.load(Ordering::Relaxed);
        if now - last >= FORGET_EVERY_MS
            && self
                .last_forget_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
    }
}

/// Lets a request through, or answers 429 with `Retry-After` and a Persian page.
pub async fn guard(State(throttle): State<Throttle>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let Some(client) = throttle.client(request.headers(), peer) else {
        // No address at all (not served by our listener): nothing to count by.
        return next.run(request).await;
    };
    if let Err(not_until) = throttle.limiter.check_key(&client) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        tracing::warn!("throttled a client probing entry links or callbacks");
        return AppError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        }
        .into_response();
    }
    throttle.forget_idle_clients();
    next.run(request).await
}

/// Form posts one browser session may make at once before the per-minute rate applies (at
/// least a second's worth of the rate).
const FORM_POST_BURST: u32 = 40;

/// The per-session rate of form posts.
#[derive(Clone)]
pub struct SessionThrottle(KeyedRate<Id>);

impl SessionThrottle {
    pub fn new(limits: &PersonLimits, clock: SharedClock) -> Self {
        Self(KeyedRate::new(
            limits.form_posts_per_minute,
            FORM_POST_BURST,
            clock,
        ))
    }
}

/// Lets a session's form post through, or answers 429 with `Retry-After` and a Persian page.
/// A post without a session passes: it has nothing to act on, and the page refuses it.
pub async fn session_guard(
    State(throttle): State<SessionThrottle>,
    request: Request,
    next: Next,
) -> Response {
    let id = (request.method() == axum::http::Method::POST)
        .then(|| request.extensions().get::<Session>().and_then(Session::id))
        .flatten();
    let Some(id) = id else {
        return next.run(request).await;
    };
    if let Err(wait) = throttle.0.check(&id) {
        metrics::counter!(crate::observe::LIMIT_HITS, "limit" => "form_posts_per_minute")
            .increment(1);
        tracing::info!(
            limit = "form_posts_per_minute",
            "a session's form posts met a limit"
        );
        return AppError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        }
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(header: Option<&str>) -> Throttle {
        Throttle::new(&ServerLimits {
            client_ip_header: header.map(|h| h.parse().unwrap()),
            ..ServerLimits::default()
        })
    }

    #[test]
    fn the_client_is_what_our_proxy_wrote_last() {
        let peer: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        // The client's own line first, then the one our proxy appended.
        headers.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        headers.append("x-forwarded-for", "6.6.6.6, 198.51.100.7".parse().unwrap());
        let t = throttle(Some("x-forwarded-for"));
        assert_eq!(t.client(&headers, Some(peer)), "198.51.100.7".parse().ok());
        // Without the header, or with junk in it, the peer counts: never nobody.
        assert_eq!(t.client(&HeaderMap::new(), Some(peer)), Some(peer.ip()));
        let mut junk = HeaderMap::new();
        junk.insert("x-forwarded-for", "unknown".parse().unwrap());
        assert_eq!(t.client(&junk, Some(peer)), Some(peer.ip()));
        let mut with_port = HeaderMap::new();
        with_port.insert("x-forwarded-for", "203.0.113.9:5555".parse().unwrap());
        assert_eq!(t.client(&with_port, Some(peer)), "203.0.113.9".parse().ok());
        // Not configured: the header is ignored.
        assert_eq!(throttle(None).client(&headers, Some(peer)), Some(peer.ip()));
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let t = throttle(None);
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:1".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:1".parse().unwrap();
        let key = |p| t.client(&HeaderMap::new(), Some(p));
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
    }
}
