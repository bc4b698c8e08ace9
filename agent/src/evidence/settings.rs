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
    /// An RFC 3161 time-stamping authority (`http://…` or `https://…`): each chain entry's manifest
    /// hash is sent to it and its token stored as `timestamp.tsr` beside the manifest. Unset: no tokens.
    pub tsa_url: Option<String>,
    /// The longest wait between attempts while the TSA cannot be reached (default 300 s).
    #[serde(default = "default_tsa_retry_max")]
    pub tsa_retry_max_secs: u64,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            key_file: None,
            pre_roll_secs: default_pre_roll(),
            post_roll_secs: default_post_roll(),
            tsa_url: None,
            tsa_retry_max_secs: default_tsa_retry_max(),
        }
    }
}

fn default_pre_roll() -> u64 {
    10
}

fn default_post_roll() -> u64 {
    10
}

fn default_tsa_retry_max() -> u64 {
    300
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
        if let Some(url) = &self.tsa_url
            && let Err(e) = check_tsa_url(url)
        {
            problems.push(("tsa_url", e));
        }
        if !(1..=86_400).contains(&self.tsa_retry_max_secs) {
            problems
                .push(("tsa_retry_max_secs", format!("must be 1 to 86400 seconds, got {}", self.tsa_retry_max_secs)));
        }
        problems
    }
}

/// An `http://` or `https://` URL with a host; the message says what is wrong (credentials hidden).
fn check_tsa_url(url: &str) -> Result<(), String> {
    let shown = crate::redact::redact_url(url);
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or_else(|| {
        format!("must be an http:// or https:// URL of an RFC 3161 time-stamping service, got {shown:?}")
    })?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must not contain spaces or control characters, got {shown:?}"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => (host, Some(after.strip_prefix(':').unwrap_or(after))),
            None => ("", None),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err(format!("has no host name, got {shown:?}"));
    }
    if let Some(port) = port
        && port.parse::<u16>().ok().is_none_or(|p| p == 0)
    {
        return Err(format!("has an invalid port {port:?}, got {shown:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(url: &str) -> Vec<String> {
        let settings = EvidenceSettings { tsa_url: Some(url.to_owned()), ..Default::default() };
        settings.problems().into_iter().map(|(field, message)| format!("{field}: {message}")).collect()
    }

    #[test]
    fn tsa_url_is_validated_with_clear_errors() {
        for good in ["http://127.0.0.1:8318/tsa", "https://tsa.example.org", "http://[::1]:80/", "http://tsa/x?y#z"] {
            assert_eq!(problems_of(good), Vec::<String>::new(), "{good}");
        }
        assert_eq!(
            problems_of("ftp://tsa.example.org"),
            [
                "tsa_url: must be an http:// or https:// URL of an RFC 3161 time-stamping service, got \"ftp://tsa.example.org\""
            ]
        );
        assert_eq!(
            problems_of("tsa.example.org"),
            [
                "tsa_url: must be an http:// or https:// URL of an RFC 3161 time-stamping service, got \"tsa.example.org\""
            ]
        );
        assert_eq!(problems_of("http:///tsa"), ["tsa_url: has no host name, got \"http:///tsa\""]);
        assert_eq!(
            problems_of("http://tsa:99999/"),
            ["tsa_url: has an invalid port \"99999\", got \"http://tsa:99999/\""]
        );
        assert_eq!(problems_of("http://tsa:/"), ["tsa_url: has an invalid port \"\", got \"http://tsa:/\""]);
        assert_eq!(
            problems_of("http://ts a/"),
            ["tsa_url: must not contain spaces or control characters, got \"http://ts a/\""]
        );
        // Credentials are never echoed.
        let shown = problems_of("http://user:hunter2@:80/");
        assert!(shown[0].starts_with("tsa_url: has no host name") && !shown[0].contains("hunter2"), "{shown:?}");
        let settings = EvidenceSettings { tsa_retry_max_secs: 0, ..Default::default() };
        assert_eq!(settings.problems(), [("tsa_retry_max_secs", "must be 1 to 86400 seconds, got 0".to_owned())]);
    }
}
