//! Settings of the source stage, as the configuration file spells them (`config` embeds them): defaults
//! and documentation live here, once, and [`TamperSettings::problems`] says what is wrong with them.

use serde::Deserialize;

/// When a camera counts as tampered with. Each condition must hold this long before `camera_tamper`
/// is raised, and be gone as long before it is cleared (hysteresis).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TamperSettings {
    /// Seconds of a uniform picture (lens covered, blacked out) before raising `covered` (default 5).
    #[serde(default = "default_covered_secs")]
    pub covered_secs: f64,
    /// Seconds of an unchanging picture before raising `frozen` (default 20). Real scenes always carry
    /// sensor noise; only a stuck encoder or a replayed still gives identical frames.
    #[serde(default = "default_frozen_secs")]
    pub frozen_secs: f64,
    /// Seconds of a view unlike the camera's reference frame before raising `moved` (default 15).
    #[serde(default = "default_moved_secs")]
    pub moved_secs: f64,
    /// Similarity to the reference (zero-mean normalised correlation of edge maps, -1..1) below which the
    /// view counts as moved (default 0.35). Insensitive to lighting changes; people passing lower it a
    /// little, for a short time.
    #[serde(default = "default_moved_similarity")]
    pub moved_similarity: f64,
}

impl Default for TamperSettings {
    fn default() -> Self {
        TamperSettings {
            covered_secs: default_covered_secs(),
            frozen_secs: default_frozen_secs(),
            moved_secs: default_moved_secs(),
            moved_similarity: default_moved_similarity(),
        }
    }
}

fn default_covered_secs() -> f64 {
    5.0
}

fn default_frozen_secs() -> f64 {
    20.0
}

fn default_moved_secs() -> f64 {
    15.0
}

fn default_moved_similarity() -> f64 {
    0.35
}

impl TamperSettings {
    /// Every problem with these settings: (field within `[tamper]`, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (field, value) in
            [("covered_secs", self.covered_secs), ("frozen_secs", self.frozen_secs), ("moved_secs", self.moved_secs)]
        {
            if !(1.0..=3600.0).contains(&value) {
                problems.push((field, format!("must be 1..3600 seconds, got {value}")));
            }
        }
        if !(-1.0..1.0).contains(&self.moved_similarity) {
            problems.push(("moved_similarity", format!("must be in -1..1, got {}", self.moved_similarity)));
        }
        problems
    }
}

/// RTSP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// What a camera decodes. Keyframes cost about a tenth of all frames (issue 4's figures); recording
/// always keeps every frame as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decode {
    /// Keyframes only, always (wards: presence and tamper need a frame every few seconds).
    Keyframes,
    /// Every frame, always, thinned to `analysis_fps` before conversion.
    All,
    /// Keyframes while the camera's duties need no more, every frame while they do (a settlement
    /// watch, a dialysis identity window): the analysis decides ([`super::decode::DecodeControl`]).
    #[default]
    OnDemand,
}

/// What the source stage needs to know of one camera: where its stream is and how to read it. The
/// configuration's camera section (`config::Camera::stream`) yields it with the role's defaults applied.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Camera id, as logs and events name it.
    pub id: String,
    /// `rtsp://…`, `file://…` or `test://…`; may hold credentials (never logged: see [`crate::redact`]).
    pub url: String,
    pub transport: Transport,
    /// Frames a second handed to analysis (fractions honoured by the rate gate).
    pub analysis_fps: f64,
    /// Widest decoded frame handed to analysis; larger frames are scaled down.
    pub analysis_max_width: u32,
    /// Decode keyframes only (presence cameras): about 7x less CPU.
    pub keyframes_only: bool,
    /// A `file://` source starts again at its end instead of ending.
    pub loop_file: bool,
    /// Seconds without a frame before the stream counts as stalled.
    pub stall_secs: u64,
}
