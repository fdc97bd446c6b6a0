use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{observe::reachability, state::AppState};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
}

/// The process is up and serving.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process takes traffic: not draining, its workers running, its database reachable. A load
/// balancer stops routing here when it answers 503.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let unavailable = |status: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status })),
        )
    };
    if state.lifecycle.is_draining() {
        return unavailable("draining");
    }
    if state.lifecycle.stopped_workers() > 0 {
        return unavailable("a background worker stopped");
    }
    // Asked of the database itself, not of a worker that may be in its backoff: ready again
    // as soon as the database is.
    let database = reachability::database();
    let began = std::time::Instant::now();
    match tokio::time::timeout(Duration::from_secs(3), state.deps.db.ping()).await {
        Ok(Ok(())) => {
            database.reached_by(began);
            (StatusCode::OK, Json(json!({ "status": "ready" })))
        }
        Ok(Err(error)) => {
            database.failed(&format!("{error:#}"));
            unavailable("database unreachable")
        }
        Err(_) => {
            database.failed(&"no answer within 3 s");
            unavailable("database did not answer in time")
        }
    }
}
