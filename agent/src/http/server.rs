//! The server: the router with its limits and the operations endpoints beside it ([`super::ops`]),
//! bound to `[http] listen`, TLS or (loopback, or explicitly allowed) plain, started by the runtime and
//! stopped at the first phase of its shutdown: it stops accepting, and requests in flight (an upload
//! being checked) finish.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use tokio::sync::watch;
use tower::ServiceBuilder;

use super::console::{self, ConsoleApi};
use super::error::ApiError;
use super::limits::{self, RateLimiter, UploadGate};
use super::listener::{self, ClientAddr};
use super::ops::{self, Operations};
use super::phones::{self, PhoneApi};
use super::tls::{self, CertInfo, TlsError};
use super::{HttpSettings, assets, console_page};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("http.listen {addr}: cannot listen: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Uploads that may wait for a check slot, beyond the ones being checked. Waiting ones hold only their
/// headers (the body stays in the kernel's buffers), so the line can be long; a burst of a whole
/// ward's phones coming back online waits rather than being refused.
pub const MAX_WAITING_UPLOADS: usize = 64;

/// How many times the phones' `rate_limit_per_minute` one address may make of console requests.
pub const CONSOLE_RATE_FACTOR: u32 = 10;

/// The routes and their limits, set once (the console's when `console` is given).
pub fn router(settings: &HttpSettings, api: PhoneApi, console: Option<ConsoleApi>) -> Router {
    let gate = Arc::new(UploadGate::new(settings.max_concurrent_uploads, MAX_WAITING_UPLOADS));
    let limiter = Arc::new(RateLimiter::new(settings.rate_limit_per_minute));
    // The console's page refreshes each camera's frame every few seconds and seeks in clips: its own
    // allowance, ten times the phones' (its sign-in has its own lock-out).
    let console_limiter =
        Arc::new(RateLimiter::new(settings.rate_limit_per_minute.saturating_mul(CONSOLE_RATE_FACTOR)));
    let timeout = Duration::from_secs(settings.request_timeout_secs);
    let phones = Router::new()
        .route("/", get(|| async { Redirect::to("/ward/") }))
        .route("/api/phones/enrol", post(phones::enrol))
        .route("/api/phones/ward", get(phones::ward))
        .route("/api/phones/checkins", post(phones::checkin).route_layer(from_fn_with_state(gate, limits::upload_gate)))
        .merge(assets::router())
        .with_state(api.clone())
        .route_layer(from_fn_with_state(limiter, limits::rate_limit));
    let routes = match console {
        Some(console) => phones.merge(
            console::router(console)
                .merge(console_page::router())
                .route_layer(from_fn_with_state(console_limiter, limits::rate_limit)),
        ),
        None => phones,
    };
    routes
        .fallback(|request: Request| async move { ApiError::NotFound(request.uri().path().to_owned()).into_response() })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::MethodNotAllowed(format!("{} {}", request.method(), request.uri().path())).into_response()
        })
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(limits::access_log))
                .layer(from_fn_with_state(timeout, limits::timeout))
                .layer(from_fn_with_state(api.max_body_bytes, limits::declared_size)),
        )
}

/// The running server.
pub struct Server {
    pub local_addr: SocketAddr,
    /// What enrolment links start with.
    pub public_url: String,
    /// The certificate served (None: plain HTTP).
    pub cert: Option<CertInfo>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds and starts serving (on the current tokio runtime). `data_dir` holds the self-signed
    /// certificate when none is configured. `/healthz` is always served; `/readyz` and `/metrics` when
    /// `ops` is given (see [`ops`]); the console's API when `console` is.
    pub fn start(
        settings: &HttpSettings,
        data_dir: &Path,
        api: PhoneApi,
        console: Option<ConsoleApi>,
        ops: Option<Arc<dyn Operations>>,
    ) -> Result<Server, ServerError> {
        let listen_error = |source| ServerError::Listen { addr: settings.listen.clone(), source };
        let addr =
            settings.listen_addr().ok_or_else(|| listen_error(std::io::Error::other("not an address and port")))?;
        let host = super::settings::host_name();
        let (tls, cert) = if settings.plain_http {
            (None, None)
        } else {
            let names = tls::certificate_names(settings, &host);
            let (config, cert) = tls::server_config(settings, data_dir, &names)?;
            (Some(config), Some(cert))
        };
        let std_listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        std_listener.set_nonblocking(true).map_err(listen_error)?;
        let tcp = tokio::net::TcpListener::from_std(std_listener).map_err(listen_error)?;
        let local_addr = tcp.local_addr().map_err(listen_error)?;
        let (stop, stopped) = watch::channel(false);
        // Idle longer than a whole request may take: nothing legitimate is cut off.
        let idle = Duration::from_secs(settings.request_timeout_secs + 15);
        let incoming = listener::incoming(tcp, tls, stopped.clone(), idle).map_err(listen_error)?;
        // The operations endpoints are merged outside the phones' limits (see `ops`).
        let app =
            router(settings, api, console).merge(ops::router(ops)).into_make_service_with_connect_info::<ClientAddr>();
        let mut signal = stopped;
        let task = tokio::spawn(async move {
            let graceful = async move {
                let _ = signal.wait_for(|s| *s).await;
            };
            let _ = axum::serve(incoming, app).with_graceful_shutdown(graceful).await;
        });
        // Port 0 (tests) is the port the system chose.
        let public_url = match settings.listen_addr() {
            Some(a) if a.port() == 0 => {
                HttpSettings { listen: local_addr.to_string(), ..settings.clone() }.public_url_or(&host)
            }
            _ => settings.public_url_or(&host),
        };
        match &cert {
            Some(cert) => tracing::info!(address = %local_addr, public_url = %public_url,
                certificate = %cert.cert_file.display(), sha256_fingerprint = %cert.fingerprint,
                self_signed = cert.self_signed, "HTTPS server listening"),
            None => tracing::warn!(address = %local_addr, public_url = %public_url,
                "plain HTTP server listening (no TLS: [http] plain_http)"),
        }
        Ok(Server { local_addr, public_url, cert, stop, task })
    }

    /// Stops accepting; requests in flight finish, within `grace`. False when some were still running.
    pub async fn stop(self, grace: Duration) -> bool {
        self.stop.send_replace(true);
        match tokio::time::timeout(grace, self.task).await {
            Ok(_) => {
                tracing::info!("HTTP server stopped");
                true
            }
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "HTTP requests still running at the deadline; left behind"
                );
                false
            }
        }
    }
}
