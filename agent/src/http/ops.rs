//! The operations endpoints: `GET /healthz` (the process answers: 200), `GET /readyz` (200 when the
//! agent is ready, else 503 naming what is not) and `GET /metrics` (Prometheus text). What they report
//! comes from the runtime through [`Operations`]; they sit outside the phones' rate limit, so a
//! scraper never competes with a ward's phones for it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the operations endpoints read, provided by the runtime.
pub trait Operations: Send + Sync + 'static {
    /// The metrics, in the Prometheus (OpenMetrics) text format.
    fn metrics(&self) -> String;
    /// What is not ready yet, each as a short phrase; empty when the agent is ready.
    fn not_ready(&self) -> Vec<String>;
}

/// The content type of [`Operations::metrics`].
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/healthz` always; `/readyz` and `/metrics` when the runtime provides them.
pub fn router(ops: Option<Arc<dyn Operations>>) -> Router {
    let healthz = Router::new().route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }));
    match ops {
        Some(ops) => {
            healthz.merge(Router::new().route("/readyz", get(readyz)).route("/metrics", get(metrics)).with_state(ops))
        }
        None => healthz,
    }
}

#[derive(serde::Serialize)]
struct Readiness {
    ready: bool,
    not_ready: Vec<String>,
}

async fn readyz(State(ops): State<Arc<dyn Operations>>) -> Response {
    // Readiness reads the outbox (a blocking lock and a query): off the async workers.
    let not_ready = match tokio::task::spawn_blocking(move || ops.not_ready()).await {
        Ok(not_ready) => not_ready,
        Err(e) => vec![format!("readiness check failed: {e}")],
    };
    let status = if not_ready.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready: not_ready.is_empty(), not_ready })).into_response()
}

async fn metrics(State(ops): State<Arc<dyn Operations>>) -> Response {
    match tokio::task::spawn_blocking(move || ops.metrics()).await {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be gathered");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be gathered\n").into_response()
        }
    }
}
