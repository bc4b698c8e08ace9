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
