//! Camera health as decisions: source reports outages and recording failures
//! ([`HealthReport`]); here they become `camera_offline` / `camera_online` / `recording_stopped` /
//! `recording_resumed`, at the time source stamped them.

use std::sync::mpsc;

use super::{Decision, DecisionKind};
use crate::source::health::{HealthChange, HealthReport, HealthSink};

/// The decision a health report makes.
pub fn decision(report: HealthReport) -> Decision {
    let kind = match report.change {
        HealthChange::Offline { reason, .. } => DecisionKind::CameraOffline { reason: reason.to_string() },
        HealthChange::Online { .. } => DecisionKind::CameraOnline,
        HealthChange::RecordingStopped { reason } => DecisionKind::RecordingStopped { reason },
        HealthChange::RecordingResumed { stopped } => {
            DecisionKind::RecordingResumed { stopped_secs: stopped.as_secs() }
        }
    };
    Decision::new(&report.camera, report.at, kind)
}

/// A camera reporting straight into a decision channel.
impl HealthSink for mpsc::Sender<Decision> {
    fn report(&self, report: HealthReport) {
        // The channel closes only at shutdown; nobody is left to tell then.
        let _ = self.send(decision(report));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::health::Reporter;
    use crate::source::supervisor::RetryReason;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn report(change: HealthChange) -> HealthReport {
        HealthReport { camera: "door".into(), at: UNIX_EPOCH + Duration::from_secs(1_800_000_000), change }
    }

    #[test]
    fn each_health_change_becomes_its_decision_at_the_reported_time() {
        let (tx, rx) = mpsc::channel();
        let sink: &dyn HealthSink = &tx;
        let offline = |reason, by| HealthChange::Offline { reason, by };
        sink.report(report(offline(RetryReason::Eos, Reporter::Supervisor)));
        sink.report(report(offline(RetryReason::Timeout(Duration::from_secs(20)), Reporter::Watchdog)));
        sink.report(report(HealthChange::Online { down: Duration::from_secs(9) }));
        sink.report(report(HealthChange::RecordingStopped { reason: "No space left on device".into() }));
        sink.report(report(HealthChange::RecordingResumed { stopped: Duration::from_millis(61_900) }));
        let decisions: Vec<Decision> = rx.try_iter().collect();
        let names: Vec<_> = decisions.iter().map(Decision::name).collect();
        assert_eq!(
            names,
            ["camera_offline", "camera_offline", "camera_online", "recording_stopped", "recording_resumed"]
        );
        assert!(decisions.iter().all(|d| d.camera == "door"
            && d.at == SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
            && !d.evidence));
        // The reasons read as they always have on the wire.
        let reasons: Vec<_> = decisions
            .iter()
            .filter_map(|d| match &d.kind {
                DecisionKind::CameraOffline { reason } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(reasons, ["end of stream", "no frame for 20 s"]);
        assert!(
            matches!(&decisions[3].kind, DecisionKind::RecordingStopped { reason } if reason == "No space left on device")
        );
        assert!(matches!(decisions[4].kind, DecisionKind::RecordingResumed { stopped_secs: 61 }));
    }
}
