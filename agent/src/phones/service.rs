//! The seam between the HTTP surface and the runtime: the server verifies who sent an upload (the
//! registry, the signature), then hands it to a [`Checkins`] — the runtime's, which runs the checks,
//! writes the evidence bundle, commits the event to the outbox and only then answers.

use std::time::SystemTime;

use serde::Serialize;

use super::protocol::{Phone, UploadMeta};
use super::report::{Check, Mode};

/// An upload whose signature verified against `phone`'s registered key.
#[derive(Debug, Clone)]
pub struct SignedUpload {
    pub phone: Phone,
    /// The phone was revoked: the upload is authentic to it but refused (its bundle and event record
    /// the attempt).
    pub revoked: bool,
    pub meta: UploadMeta,
    /// The body as received, unmodified.
    pub photo: Vec<u8>,
    /// The request's `Content-Type`, as sent.
    pub content_type: Option<String>,
    pub received_at: SystemTime,
}

/// The answer the phone shows (`200` to `POST /api/phones/checkins`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub capture_id: uuid::Uuid,
    /// The event (and evidence bundle) this upload became.
    pub event_id: uuid::Uuid,
    /// `verified` or `rejected`.
    pub verdict: &'static str,
    /// Captured longer before receipt than the skew window (sent late from the phone's queue).
    pub late: bool,
    /// This capture was answered before (a re-send): the same answer, no new event.
    pub repeated: bool,
    pub checks: Vec<Check>,
}

/// What the phone page shows after enrolment: who it is, where, and (bedside) the ward's inpatients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WardView {
    pub phone: String,
    pub phone_name: String,
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physician: Option<String>,
    pub ward: String,
    pub ward_name: String,
    pub inpatients: Vec<Inpatient>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inpatient {
    pub patient: String,
    pub bed: String,
    pub camera: String,
}

/// Why an upload could not be judged at all (not a rejection: nothing was recorded).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The box is stopping or its check workers are gone: try again later (503).
    #[error("the box is not accepting check-ins now: {0}")]
    Unavailable(String),
    /// The evidence or the outbox could not be written (disk full…): nothing was accepted (503).
    #[error("cannot record the check-in: {0}")]
    Storage(String),
    /// The metadata is malformed in a way no check can judge (500-free: 400).
    #[error("{0}")]
    BadRequest(String),
}

/// Runs an upload through the checks and records it. Blocking (face models): the server calls it on
/// a blocking thread, at most `[http] max_concurrent_uploads` at once.
pub trait Checkins: Send + Sync + 'static {
    fn submit(&self, upload: SignedUpload) -> Result<Answer, SubmitError>;
    fn ward_view(&self, phone: &Phone) -> WardView;
}
