use std::time::Duration;

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use crate::{db::Db, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up and serving.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can reach its database; a load balancer stops routing here when it cannot.
async fn readyz(State(db): State<Db>) -> (StatusCode, Json<Value>) {
    match tokio::time::timeout(Duration::from_secs(3), db.ping()).await {
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
