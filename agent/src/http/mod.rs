//! The HTTPS server inside `vigil run` (axum + rustls): the ward phones' page and API now; the console
//! and operations endpoints later. Limits (body size, timeouts, concurrency, rate) are set once, as
//! layers; every error answers with a stable code and a human message.

pub mod assets;
pub mod settings;

pub use settings::HttpSettings;
