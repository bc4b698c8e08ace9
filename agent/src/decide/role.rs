//! What a camera watches, which decides the checks that run on it (DESIGN.md section 1).

use serde::Deserialize;

/// A camera's role. Spelled in snake case in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraRole {
    /// Billing / insurance settlement counter: face at the window vs the claimed insured id.
    SettlementWindow,
    /// Haemodialysis room: chairs as regions, patient matched at session start, physicians seen.
    DialysisRoom,
    /// Inpatient room: beds as regions, roll-calls.
    Ward,
}

impl CameraRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraRole::SettlementWindow => "settlement_window",
            CameraRole::DialysisRoom => "dialysis_room",
            CameraRole::Ward => "ward",
        }
    }
}
