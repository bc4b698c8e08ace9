//! What camera supervision tells the rest of the agent: a camera went offline or came back, its
//! recording stopped or resumed. Source's own observations, stamped with the camera's clock;
//! `decide::camera` turns them into the `camera_offline` / `camera_online` / `recording_stopped` /
//! `recording_resumed` decisions (source never builds a decision).

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use super::supervisor::RetryReason;

/// Who noticed an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    Supervisor,
    Watchdog,
}

/// A change in a camera's health, announced once per episode.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthChange {
    /// The camera stopped delivering frames (error, end of stream, stall, would not start).
    Offline { reason: RetryReason, by: Reporter },
    /// Frames flow again after `Offline`; `down` is how long the outage lasted.
    Online { down: Duration },
    /// Writing the recording failed: the camera is analysed but not recorded.
    RecordingStopped { reason: String },
    /// Recording works again after `RecordingStopped`, which was `stopped` ago.
    RecordingResumed { stopped: Duration },
}

/// A health change of one camera at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub camera: String,
    pub at: SystemTime,
    pub change: HealthChange,
}

/// Where a camera's health reports go. Implementations must not block for long: the supervisor and
/// the watchdog call it from their own threads (a channel send is the expected implementation).
pub trait HealthSink: Send + Sync {
    fn report(&self, report: HealthReport);
}

/// The reports as they are, for code and tests that want source's view rather than decisions.
impl HealthSink for mpsc::Sender<HealthReport> {
    fn report(&self, report: HealthReport) {
        // The receiver goes away only at shutdown; reports after it have nobody to tell.
        let _ = self.send(report);
    }
}
