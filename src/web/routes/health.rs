use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::state::AppState;

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
    match tokio::time::timeout(Duration::from_secs(3), state.deps.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unreachable" })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "database did not answer in time" })),
        ),
    }
}
