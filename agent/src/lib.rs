//! Vigil: an edge agent that watches hospital cameras for insurance fraud and delivers signed evidence.
//!
//! The pipeline (DESIGN.md section 3) is one module per stage; `runtime` wires them together (the CLI, `vigil`, lives in the binary).

pub mod analyze;
pub mod cache;
pub mod clock;
pub mod clock_sync;
pub mod config;
pub mod console;
pub mod decide;
pub mod evidence;
pub mod fsio;
pub mod fuzzing;
pub mod gallery;
pub mod hashing;
pub mod histogram;
pub mod http;
pub mod input;
pub mod memory;
pub mod outbox;
pub mod phones;
pub mod publish;
pub mod redact;
pub mod runtime;
pub mod source;
pub mod storage_lock;
#[cfg(test)]
mod test_targets;
pub mod times;
