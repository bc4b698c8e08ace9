//! `[console]`: whether the console's sign-in is served, how long a session lives, and the lock-out
//! after failed sign-ins. [`ConsoleSettings::problems`] says what is wrong with it.

use std::time::Duration;

use serde::Deserialize;

/// The installer's and supervisor's console (docs/console.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Serve `/console/` on the HTTPS server of `[http]` (default true; nothing is served without
    /// `[http]`).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Minutes a session may stay unused before it must sign in again (default 30).
    #[serde(default = "default_session_idle_mins")]
    pub session_idle_mins: u64,
    /// Hours a session lives however much it is used (default 12: one shift).
    #[serde(default = "default_session_max_hours")]
    pub session_max_hours: u64,
    /// Failed sign-ins, for one name or from one address, that lock it out (default 5).
    #[serde(default = "default_lockout_failures")]
    pub lockout_failures: u32,
    /// How long a lock-out lasts, in minutes (default 15; fractions allowed, e.g. 0.5).
    #[serde(default = "default_lockout_mins")]
    pub lockout_mins: f64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: default_enabled(),
            session_idle_mins: default_session_idle_mins(),
            session_max_hours: default_session_max_hours(),
            lockout_failures: default_lockout_failures(),
            lockout_mins: default_lockout_mins(),
        }
    }
}

fn default_enabled() -> bool {
    true
}
fn default_session_idle_mins() -> u64 {
    30
}
fn default_session_max_hours() -> u64 {
    12
}
fn default_lockout_failures() -> u32 {
    5
}
fn default_lockout_mins() -> f64 {
    15.0
}

impl ConsoleSettings {
    /// Every problem with these settings: (field within `[console]`, message). Pure: no file is read.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=1440).contains(&self.session_idle_mins) {
            problems.push(("session_idle_mins", format!("must be 1..1440, got {}", self.session_idle_mins)));
        }
        if !(1..=168).contains(&self.session_max_hours) {
            problems.push(("session_max_hours", format!("must be 1..168, got {}", self.session_max_hours)));
        }
        if self.session_idle_mins > self.session_max_hours * 60 {
            problems.push((
                "session_idle_mins",
                format!(
                    "{} minutes is longer than session_max_hours ({} h): a session would never go idle",
                    self.session_idle_mins, self.session_max_hours
                ),
            ));
        }
        if !(3..=100).contains(&self.lockout_failures) {
            problems.push(("lockout_failures", format!("must be 3..100, got {}", self.lockout_failures)));
        }
        if !(self.lockout_mins >= 0.05 && self.lockout_mins <= 1440.0) {
            problems.push(("lockout_mins", format!("must be 0.05..1440 minutes, got {}", self.lockout_mins)));
        }
        problems
    }

    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_mins * 60)
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.session_max_hours * 3600)
    }

    pub fn lockout(&self) -> Duration {
        Duration::from_secs_f64(self.lockout_mins.clamp(0.0, 1440.0) * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_field_is_named() {
        assert!(ConsoleSettings::default().problems().is_empty());
        let bad: ConsoleSettings =
            toml::from_str("session_idle_mins = 0\nsession_max_hours = 200\nlockout_failures = 1\nlockout_mins = 0")
                .unwrap();
        let fields: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["session_idle_mins", "session_max_hours", "lockout_failures", "lockout_mins"]);
        let idle: ConsoleSettings = toml::from_str("session_idle_mins = 120\nsession_max_hours = 1").unwrap();
        assert!(idle.problems()[0].1.contains("never go idle"), "{:?}", idle.problems());
    }
}
