//! Per-client throttling of the routes a stranger can hammer: `/s/{token}` (each probe of a
//! random token is a database write) and `/oauth/callback`. A `governor` keyed limiter (GCRA)
//! per client address: a burst, then a steady rate.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
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

use crate::{config::ServerLimits, web::error::AppError};

/// Beyond this many remembered clients, forget those whose allowance is full again.
const FORGET_AFTER: usize = 10_000;

#[derive(Clone)]
pub struct Throttle {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    client_ip_header: Option<HeaderName>,
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
        }
    }

    /// The client: the trusted proxy's header when one is configured, else the peer.
    fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        match &self.client_ip_header {
            Some(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok()),
            None => peer.map(|p| p.ip()),
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
        // No address to count by (a misconfigured proxy header): do not lock everyone out.
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
    if throttle.limiter.len() > FORGET_AFTER {
        throttle.limiter.retain_recent();
    }
    next.run(request).await
}
