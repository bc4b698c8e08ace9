//! The HTTPS server inside `vigil run` (axum + rustls): the ward phones' page and API, the console's
//! API, and the operations endpoints. Limits (body size, timeouts, concurrency, rate) are set once, as
//! layers; every error answers with a stable code and a human message.
//!
//! - [`server`]: the router, its limits, start and graceful stop;
//! - [`listener`]: accepting connections, TLS handshakes off the accept loop;
//! - [`tls`]: the certificate (configured, or self-signed once);
//! - [`limits`]: access log, rate limit, timeout, size, the upload line;
//! - [`phones`]: the phones' API; [`console`]: the console's sign-in, CSRF and role guard; [`assets`]: the phone page's files;
//!   [`console_page`]: the console page's files;
//! - [`console_cameras`]: the console's cameras (health, latest frame, regions, references);
//! - [`console_events`]: the console's events and evidence (list, stream, verification, files, legal hold);
//! - [`console_people`]: the console's roster view, enrolment from uploaded photos, removal;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`error`]: the one error type and its JSON body.

pub mod assets;
pub mod console;
pub mod console_cameras;
pub mod console_events;
pub mod console_page;
pub mod console_people;
pub mod error;
pub mod limits;
pub mod listener;
pub mod ops;
pub mod phones;
pub mod server;
pub mod settings;
pub mod tls;

pub use console::ConsoleApi;
pub use error::ApiError;
pub use ops::Operations;
pub use phones::PhoneApi;
pub use server::{Server, ServerError};
pub use settings::{HttpSettings, MetricsSettings};
