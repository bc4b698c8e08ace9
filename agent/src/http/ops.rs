//! The operations endpoints: `GET /healthz` (the process answers: 200), `GET /readyz` (200 when the
//! agent is ready, else 503 naming what is not) and `GET /metrics` (Prometheus text). What they report
//! comes from the runtime through [`Operations`]; they sit outside the phones' rate limit, so a
//! scraper never competes with a ward's phones for it. Served on the HTTPS server beside the phones'
//! routes, and by [`OpsListener`] on a plain-HTTP listener of their own (`[metrics]`; the default when
//! `[http]` is off).

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

#[derive(Debug, thiserror::Error)]
#[error("metrics.listen {addr}: cannot listen: {source}")]
pub struct ListenError {
    pub addr: String,
    pub source: std::io::Error,
}

/// The operations endpoints alone, plain HTTP, on their own listener: started by the runtime, stopped
/// at the first phase of its shutdown.
pub struct OpsListener {
    pub local_addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl OpsListener {
    /// Binds `listen` and serves [`router`] on the current tokio runtime.
    pub fn start(listen: &str, ops: Arc<dyn Operations>) -> Result<OpsListener, ListenError> {
        let error = |source| ListenError { addr: listen.to_owned(), source };
        let addr: std::net::SocketAddr =
            listen.parse().map_err(|_| error(std::io::Error::other("not an address and port")))?;
        let std_listener = std::net::TcpListener::bind(addr).map_err(error)?;
        std_listener.set_nonblocking(true).map_err(error)?;
        let tcp = tokio::net::TcpListener::from_std(std_listener).map_err(error)?;
        let local_addr = tcp.local_addr().map_err(error)?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let app = router(Some(ops));
        let task = tokio::spawn(async move {
            let graceful = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(tcp, app).with_graceful_shutdown(graceful).await {
                tracing::error!(error = %e, "the metrics listener failed; /metrics is no longer served");
            }
        });
        tracing::info!(address = %local_addr, "metrics listener serving /metrics, /healthz, /readyz (plain HTTP)");
        Ok(OpsListener { local_addr, stop, task })
    }

    /// Stops accepting; scrapes in flight finish within `grace`.
    pub async fn stop(self, grace: std::time::Duration) {
        self.stop.send_replace(true);
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("metrics requests still running at the deadline; left behind");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// Readiness as the runtime would answer it, settable by the test.
    struct Agent(Mutex<Vec<String>>);

    impl Operations for Agent {
        fn metrics(&self) -> String {
            "# TYPE vigil_up gauge\nvigil_up 1\n# EOF\n".into()
        }
        fn not_ready(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    async fn get(router: &Router, uri: &str) -> (StatusCode, String, String) {
        let response = router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let kind = response.headers().get(header::CONTENT_TYPE).map_or("", |v| v.to_str().unwrap()).to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, kind, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_names_what_is_not_ready_and_metrics_is_openmetrics_text() {
        let agent = Arc::new(Agent(Mutex::new(vec!["outbox: disk I/O error".into()])));
        let router = router(Some(agent.clone()));
        let (status, _, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, serde_json::json!({ "ready": false, "not_ready": ["outbox: disk I/O error"] }));
        agent.0.lock().unwrap().clear();
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        let (status, kind, body) = get(&router, "/metrics").await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, METRICS_CONTENT_TYPE));
        assert!(body.ends_with("# EOF\n"), "{body}");

        // Without the runtime's operations only the process's liveness is served.
        let bare = super::router(None);
        assert_eq!(get(&bare, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&bare, "/metrics").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_listener_serves_the_endpoints_and_names_an_address_it_cannot_take() {
        let agent: Arc<dyn Operations> = Arc::new(Agent(Mutex::new(Vec::new())));
        let listener = OpsListener::start("127.0.0.1:0", agent.clone()).unwrap();
        let url = format!("http://{}/metrics", listener.local_addr);
        let body = tokio::task::spawn_blocking(move || ureq::get(&url).call().unwrap().body_mut().read_to_string())
            .await
            .unwrap()
            .unwrap();
        assert!(body.contains("vigil_up 1"), "{body}");
        // The port is taken: the error names the setting and the address.
        let taken = listener.local_addr.to_string();
        let err = OpsListener::start(&taken, agent.clone()).err().expect("the port is taken").to_string();
        assert!(err.starts_with(&format!("metrics.listen {taken}: cannot listen")), "{err}");
        let err = OpsListener::start("localhost", agent).err().expect("no port").to_string();
        assert!(err.contains("not an address and port"), "{err}");
        listener.stop(std::time::Duration::from_secs(5)).await;
    }
}
