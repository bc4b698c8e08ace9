//! The `[evidence]` section of the configuration (`config` embeds it): defaults and documentation
//! here, once; [`EvidenceSettings::problems`] says what is wrong with it.

use std::path::PathBuf;

use serde::Deserialize;

/// Evidence bundles: the signing key and how much video goes around an event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSettings {
    /// The device's Ed25519 signing key (PKCS#8 PEM, mode 0600), made by `vigil keys init`.
    /// Default: `<data_dir>/keys/device-ed25519.pem`.
    pub key_file: Option<PathBuf>,
    /// Seconds of video before the event in its clip (default 10); for a tamper, before the condition
    /// began (its onset), which is the hold time before it was raised.
    #[serde(default = "default_pre_roll")]
    pub pre_roll_secs: u64,
    /// Seconds of video after the event in its clip (default 10).
    #[serde(default = "default_post_roll")]
    pub post_roll_secs: u64,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings { key_file: None, pre_roll_secs: default_pre_roll(), post_roll_secs: default_post_roll() }
    }
}

fn default_pre_roll() -> u64 {
    10
}

fn default_post_roll() -> u64 {
    10
}

impl EvidenceSettings {
    /// Every problem with these settings: (field within `[evidence]`, message). Pure: no file is read.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.key_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            problems.push(("key_file", "must not be empty".to_owned()));
        }
        for (field, value) in [("pre_roll_secs", self.pre_roll_secs), ("post_roll_secs", self.post_roll_secs)] {
            if value > 300 {
                problems.push((field, format!("must be at most 300 seconds, got {value}")));
            }
        }
        problems
    }
}
