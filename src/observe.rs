//! Prometheus metrics: the recorder (`metrics` + `metrics-exporter-prometheus`), the names every
//! layer records under, and the `/metrics` listener on `METRICS_ADDR` (never the public one).
//! The families and their labels are listed in docs/operations.md, "Metrics".

pub mod reachability;
pub mod throttle;

use std::{net::SocketAddr, sync::OnceLock};

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const HTTP_REQUESTS: &str = "kenar_http_requests_total";
pub const HTTP_DURATION: &str = "kenar_http_request_duration_seconds";
pub const API_CALLS: &str = "kenar_api_calls_total";
pub const TOKEN_REFRESHES: &str = "kenar_token_refreshes_total";
pub const SESSION_INITS: &str = "kenar_session_inits_total";
pub const OUTBOX_ROWS: &str = "kenar_outbox_rows";
pub const OUTBOX_OLDEST_DUE: &str = "kenar_outbox_oldest_due_seconds";
pub const OUTBOX_IN_FLIGHT: &str = "kenar_outbox_in_flight";
pub const BROADCASTS: &str = "kenar_broadcasts";
pub const DB_CONNECTIONS: &str = "kenar_db_connections";
pub const DB_ACQUIRE: &str = "kenar_db_acquire_seconds";
pub const WORKERS_RUNNING: &str = "kenar_workers_running";
pub const WORKERS_STOPPED: &str = "kenar_workers_stopped_total";
pub const DATABASE_UP: &str = "kenar_database_up";
pub const DATABASE_FAILURES: &str = "kenar_database_failures_total";
pub const DIVAR_API_UP: &str = "kenar_divar_api_up";
pub const DIVAR_API_FAILURES: &str = "kenar_divar_api_failures_total";
pub const LIMIT_HITS: &str = "kenar_limit_hits_total";

/// Latency buckets in seconds, for the request and acquire histograms.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it: tests start many apps in one
/// process). Without it every `metrics::` call is a no-op.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application's): then this
            // handle renders an empty page, which is honest.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // Families that may have nothing to count yet are exposed at 0 from the start, so
            // alerts on them have a series to read.
            for outcome in ["refreshed", "refused", "unavailable"] {
                metrics::counter!(TOKEN_REFRESHES, "outcome" => outcome).increment(0);
            }
            metrics::counter!(WORKERS_STOPPED).increment(0);
            reachability::database().expose();
            reachability::divar_api().expose();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer, by route template and method"
    );
    describe_counter!(
        API_CALLS,
        "Calls to Divar's Kenar API, by operation and outcome (HTTP status, or `unavailable` for 5xx/timeouts)"
    );
    describe_counter!(
        TOKEN_REFRESHES,
        "Access-token refreshes, by outcome (refreshed, refused, unavailable)"
    );
    describe_counter!(
        SESSION_INITS,
        "Session initializations accepted, by payload revision"
    );
    describe_gauge!(OUTBOX_ROWS, "Outbox rows by status (sampled)");
    describe_gauge!(
        OUTBOX_OLDEST_DUE,
        Unit::Seconds,
        "How long the oldest due, unclaimed outbox row has waited (sampled)"
    );
    describe_gauge!(
        OUTBOX_IN_FLIGHT,
        "Outbox rows claimed by a worker right now (sampled)"
    );
    describe_gauge!(BROADCASTS, "Broadcasts by status (sampled)");
    describe_gauge!(
        DB_CONNECTIONS,
        "Database pool connections, by state (in_use, idle)"
    );
    describe_histogram!(
        DB_ACQUIRE,
        Unit::Seconds,
        "Time the sampler waited for a pool connection"
    );
    describe_gauge!(
        WORKERS_RUNNING,
        "Background workers running (outbox, purge, sampler)"
    );
    describe_counter!(
        WORKERS_STOPPED,
        "Background workers that stopped while the process went on"
    );
    describe_gauge!(
        DATABASE_UP,
        "1 while the database answers, 0 from a failed attempt to reach it until one succeeds"
    );
    describe_counter!(
        DATABASE_FAILURES,
        "Attempts (loops, requests, probes) that could not reach the database"
    );
    describe_gauge!(
        DIVAR_API_UP,
        "1 while Divar's API answers sends, 0 from a send it did not answer (5xx, timeout) until one goes through"
    );
    describe_counter!(
        DIVAR_API_FAILURES,
        "Sends Divar's API did not answer (5xx, timeout, connection error)"
    );
}

/// Serves `GET /metrics` on `listener` until `stop`.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, stop: CancellationToken) {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "metrics are served");
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(%error, "the metrics listener stopped");
    }
}
