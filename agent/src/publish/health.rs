//! The box's health as the platform reads it: `vigil.health.v1`, published retained on
//! `<base>/health` (docs/mqtt-api.md, "Health"; schema docs/contract/health.schema.json). The runtime
//! builds it from the same counters `/metrics` reads (`runtime::health`); the publisher sends the newest
//! one on every connection and whenever it changes, never through the outbox.

use serde::Serialize;

use super::events::real;

pub const HEALTH_SCHEMA: &str = "vigil.health.v1";

/// `<base>/health`.
pub fn health_topic(base: &str) -> String {
    format!("{base}/health")
}

/// The payload of `<base>/health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub schema: &'static str,
    pub site: String,
    pub device: String,
    /// When it was measured (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The agent's version (`vigil --version`).
    pub version: String,
    /// Seconds since the process started.
    pub uptime_secs: u64,
    /// What `/readyz` answers: true, or false with `not_ready` naming why.
    pub ready: bool,
    pub not_ready: Vec<String>,
    pub cameras: Vec<CameraHealth>,
    pub outbox: OutboxHealth,
    pub evidence: EvidenceHealth,
    pub storage: StorageHealth,
    pub process: ProcessHealth,
}

/// One configured camera.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraHealth {
    pub id: String,
    /// Frames decoded and no outage announced.
    pub online: bool,
    /// Frames decoded per second since the previous health message (3 decimals).
    pub fps: f64,
    /// The tamper conditions that hold now: `covered`, `frozen`, `moved` (empty: none).
    pub tamper: Vec<&'static str>,
    /// Pipeline restarts after a failure, end or stall since the agent started.
    pub restarts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxHealth {
    /// Records not yet acknowledged by the broker (None: the outbox could not be read).
    pub undelivered: Option<u64>,
    /// Age of the oldest of them in seconds (0 when none waits; None: the outbox could not be read).
    pub oldest_undelivered_age_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceHealth {
    /// Evidence requests saved and not yet written and announced.
    pub pending: u64,
    /// Bundles written since the agent started.
    pub bundles_written: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageHealth {
    /// Free bytes (for the agent's user) on the data directory's file system (None: unreadable).
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessHealth {
    /// CPU time used, user and system, in seconds (3 decimals).
    pub cpu_seconds: f64,
    /// Resident memory in bytes.
    pub resident_memory_bytes: u64,
}

impl ProcessHealth {
    pub fn new(cpu_seconds: f64, resident_memory_bytes: u64) -> ProcessHealth {
        ProcessHealth { cpu_seconds: real(cpu_seconds), resident_memory_bytes }
    }
}

impl CameraHealth {
    pub fn new(id: &str, online: bool, fps: f64, tamper: Vec<&'static str>, restarts: u64) -> CameraHealth {
        CameraHealth { id: id.to_owned(), online, fps: real(fps), tamper, restarts }
    }
}
