//! The `[outbox]` section of the configuration (`config` embeds it): defaults and documentation here,
//! once; [`OutboxSettings::problems`] says what is wrong with it.

use serde::Deserialize;

/// The durable queue of events to deliver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Undelivered events kept at most; beyond it the oldest is dropped, loudly (default 100000).
    #[serde(default = "default_outbox_max")]
    pub max_records: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings { max_records: default_outbox_max() }
    }
}

fn default_outbox_max() -> u64 {
    100_000
}

impl OutboxSettings {
    /// Every problem with these settings: (field within `[outbox]`, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.max_records < 100 {
            problems.push(("max_records", format!("must be at least 100, got {}", self.max_records)));
        }
        problems
    }
}
