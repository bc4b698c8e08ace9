//! Tamper conditions as decisions: source's tamper detector reports a condition raised or cleared
//! ([`TamperChange`]); here it becomes `camera_tamper` / `camera_tamper_cleared`.

use std::time::SystemTime;

use super::DecisionKind;
use crate::source::tamper::TamperChange;

/// The decision a tamper change makes. `onset` is when a raised condition began
/// ([`crate::source::tamper::TamperDetector::onset`]); a cleared one ignores it.
pub fn decision_kind(change: TamperChange, onset: SystemTime) -> DecisionKind {
    match change {
        TamperChange::Raised(tamper) => DecisionKind::CameraTamper { tamper, onset },
        TamperChange::Cleared(tamper) => DecisionKind::CameraTamperCleared { tamper },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Decision, TamperKind};
    use std::time::Duration;

    #[test]
    fn raised_is_camera_tamper_and_cleared_is_camera_tamper_cleared_of_the_same_kind() {
        let kinds = [TamperKind::Covered, TamperKind::Frozen, TamperKind::Moved];
        for kind in kinds {
            for (change, name) in
                [(TamperChange::Raised(kind), "camera_tamper"), (TamperChange::Cleared(kind), "camera_tamper_cleared")]
            {
                let onset = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
                let at = onset + Duration::from_secs(5);
                let decision = Decision::new("door", at, decision_kind(change, onset));
                assert_eq!(decision.name(), name);
                assert_eq!(decision.needs_evidence(), name == "camera_tamper", "evidence for a raised condition only");
                let json = serde_json::to_value(&decision).unwrap();
                assert_eq!(json["tamper"], kind.as_str(), "{json}");
                assert_eq!(change.kind(), kind);
                // The raise carries when the condition began, for its evidence to start there.
                assert_eq!(decision.onset(), (name == "camera_tamper").then_some(onset));
            }
        }
    }
}
