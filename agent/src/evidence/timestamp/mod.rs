//! RFC 3161 trusted time for chain entries (docs/evidence.md, "Trusted time"): after an entry is
//! written, a TSA signs SHA-256(manifest.json) with its own clock, and the reply is stored beside the
//! manifest as `timestamp.tsr`. The entry is valid without it; a TSA that cannot be reached only
//! delays the token (entries without one are retried with backoff).
//!
//! - `der`: the little DER needed; `token`: the request and the checks of a reply ([`check_token`]
//!   for `vigil verify`); `client`: the HTTP exchange; `stamper`: the queue and the worker loop.

pub mod client;
mod der;
pub mod stamper;
pub mod token;

pub use stamper::{Stamper, StamperSettings};
pub use token::{TokenInfo, check_token};

/// The token's file name in an entry directory.
pub const TOKEN_FILE: &str = "timestamp.tsr";
