//! Configuration: a TOML file parsed into [`Config`], checked by [`validate`], then made concrete
//! (relative paths resolved against the file's directory) by [`load`].

mod check;
pub mod edit;
mod raw;
mod size;
mod validate;

use std::path::{Path, PathBuf};

pub use crate::redact::redact_url;
pub use check::check_files;
pub use raw::{
    Camera, Config, Dialysis, Evidence, Faces, Geofence, HttpSettings, MetricsSettings, Models, Mqtt, MqttTls,
    OutboxSettings, Persons, PhoneSettings, Physicians, Presence, Retention, Role, Rollcalls, RosterSettings,
    Settlement, Site, Storage, Tamper, Transport, Ward,
};
pub use size::ByteSize;
pub use validate::{FieldError, TEST_PATTERNS, validate};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Syntax, unknown fields and wrong types: the TOML parser stops at the first one.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// Values of the right type that are wrong: all of them.
    #[error("{path}: {} error{}:\n{}", errors.len(), if errors.len() == 1 { "" } else { "s" },
        errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, errors: Vec<FieldError> },
}

impl ConfigError {
    /// Number of distinct problems reported.
    pub fn count(&self) -> usize {
        match self {
            ConfigError::Invalid { errors, .. } => errors.len(),
            _ => 1,
        }
    }
}

/// Reads, parses and validates a configuration file, then resolves relative paths against the file's
/// directory so the agent behaves the same whatever its working directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = crate::input::read_text_limited(path, crate::input::MAX_TEXT_BYTES).map_err(|e| match e {
        crate::input::InputError::Read { source, .. } => ConfigError::Read { path: path.to_owned(), source },
        crate::input::InputError::TooLarge { limit, .. } => ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::other(format!("larger than {limit} bytes: not a configuration file")),
        },
    })?;
    from_text(path, &text)
}

/// [`load`] of text that is not (yet) in the file: parsed and validated as if it were `path`'s content,
/// relative paths resolved against `path`'s directory (`config_apply` checks a new file this way before
/// writing it).
pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut config = parse(path, text)?;
    for warning in config.warnings() {
        tracing::warn!(file = %path.display(), "{warning}");
    }
    let errors = validate(&config);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid { path: path.to_owned(), errors });
    }
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
    config.resolve_paths(&base);
    Ok(config)
}

/// [`load`], then [`check_files`]: what `vigil check-config` and `vigil run` accept, so that a file
/// check-config calls OK does not fail at start-up for a missing key or a state directory that is a file.
pub fn load_for_run(path: &Path) -> Result<Config, ConfigError> {
    with_files_checked(path, load(path)?)
}

/// [`from_text`], then [`check_files`]: what [`load_for_run`] would accept were `text` in `path`.
pub fn for_run_from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    with_files_checked(path, from_text(path, text)?)
}

fn with_files_checked(path: &Path, config: Config) -> Result<Config, ConfigError> {
    let errors = check_files(&config);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid { path: path.to_owned(), errors });
    }
    Ok(config)
}

/// Parses TOML text into the raw configuration, without validating values.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text)
        .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })
}

impl Config {
    /// What in the file is accepted but has no effect: the operator should remove it.
    pub fn warnings(&self) -> Vec<String> {
        self.http.iter().filter_map(|http| http.old_section()).collect()
    }

    /// `[http]` when the agent serves it (absent, or an older version's ignored section: None).
    pub fn http(&self) -> Option<&HttpSettings> {
        self.http.as_ref().filter(|http| http.old_section().is_none())
    }

    /// The metrics listener to start, and whether the file asked for it: `[metrics]` as written
    /// (None when `enabled = false`), else the default on loopback when `[http]` is off (with `[http]`
    /// the metrics are on the HTTPS server).
    pub fn metrics_listener(&self) -> Option<(MetricsSettings, bool)> {
        match &self.metrics {
            Some(metrics) => metrics.enabled.then(|| (metrics.clone(), true)),
            None => self.http().is_none().then(|| (MetricsSettings::default(), false)),
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.storage.data_dir);
        self.storage.recordings_dir.as_mut().map(fix);
        self.storage.evidence_dir.as_mut().map(fix);
        self.models.dir.as_mut().map(fix);
        self.evidence.key_file.as_mut().map(fix);
        self.models.ort_library.as_mut().map(fix);
        self.roster.file.as_mut().map(fix);
        if let Some(http) = &mut self.http {
            http.tls_cert.as_mut().map(fix);
            http.tls_key.as_mut().map(fix);
        }
        if let Some(mqtt) = &mut self.mqtt {
            mqtt.password_file.as_mut().map(fix);
            // A key given inline is the 44-character base64 of 32 bytes; anything else is a file.
            if let Some(key) = &mut mqtt.platform_public_key {
                let inline = key.len() == 44 && key.ends_with('=');
                if !inline && Path::new(key.as_str()).is_relative() {
                    *key = base.join(key.as_str()).to_string_lossy().into_owned();
                }
            }
            if let Some(tls) = &mut mqtt.tls {
                fix(&mut tls.ca_file);
                tls.client_cert.as_mut().map(fix);
                tls.client_key.as_mut().map(fix);
            }
        }
    }
}

impl Storage {
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir.clone().unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    pub fn gallery_file(&self) -> PathBuf {
        self.data_dir.join("gallery.bin")
    }

    pub fn gallery_key_file(&self) -> PathBuf {
        self.data_dir.join("keys/gallery.key")
    }

    pub fn key_file(&self, evidence: &Evidence) -> PathBuf {
        evidence.key_file.clone().unwrap_or_else(|| self.data_dir.join("keys/device-ed25519.pem"))
    }

    pub fn evidence_dir(&self) -> PathBuf {
        self.evidence_dir.clone().unwrap_or_else(|| self.data_dir.join("evidence"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    /// The example documents every option; if it stops parsing, the documentation is wrong.
    #[test]
    fn example_config_parses_and_validates() {
        let config = load(&repo_file("config/vigil.example.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.mqtt.as_ref().is_some_and(|m| m.tls.is_some()), "the example should show [mqtt.tls]");
        assert!(config.cameras.len() >= 3, "the example should show one camera of each role");
        for role in [Role::SettlementWindow, Role::DialysisRoom, Role::Ward] {
            assert!(config.cameras.iter().any(|c| c.role == role), "no {} camera in the example", role.as_str());
        }
        assert!(config.http().is_some_and(|h| h.tls_cert.is_some()), "the example should show [http]");
        let fences = config.wards.iter().map(|w| (w.geofence.center.is_some(), w.geofence.polygon.is_some()));
        assert_eq!(fences.collect::<Vec<_>>(), vec![(true, false), (false, true)], "a circle and a polygon");
    }

    #[test]
    fn demo_config_validates() {
        load(&repo_file("config/demo.toml")).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse(Path::new("x.toml"), "[site]\nid = \"a\"\ndevice_id = \"b\"\ndevcie = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("devcie") && text.contains("line 4"), "{text}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.toml");
        std::fs::write(&file, "[site]\nid = \"a\"\ndevice_id = \"b\"\n[storage]\ndata_dir = \"state\"\n").unwrap();
        let config = load(&file).unwrap();
        assert_eq!(config.storage.data_dir, dir.path().join("state"));
        assert_eq!(config.storage.evidence_dir(), dir.path().join("state/evidence"));
    }

    #[test]
    fn the_metrics_listener_is_on_loopback_by_default_and_elsewhere_only_when_allowed() {
        let base = "[site]\nid = \"a\"\ndevice_id = \"b\"\n";
        let parsed = |extra: &str| parse(Path::new("x.toml"), &format!("{base}{extra}")).unwrap();
        let (default, explicit) = parsed("").metrics_listener().unwrap();
        assert_eq!((default.listen.as_str(), explicit), ("127.0.0.1:9464", false));
        assert!(parsed("[http]\n").metrics_listener().is_none(), "with [http] they are on the HTTPS server");
        let (both, explicit) = parsed("[http]\n[metrics]\nlisten = \"127.0.0.1:9100\"\n").metrics_listener().unwrap();
        assert_eq!((both.listen.as_str(), explicit), ("127.0.0.1:9100", true));
        assert!(parsed("[metrics]\nenabled = false\n").metrics_listener().is_none());

        let errors = validate(&parsed("[metrics]\nlisten = \"0.0.0.0:9464\"\n"));
        assert!(errors.len() == 1 && errors[0].to_string().contains("metrics.listen"), "{errors:?}");
        assert!(errors[0].to_string().contains("insecure_plain_http"), "{errors:?}");
        let errors = validate(&parsed("[metrics]\nlisten = \"9464\"\n"));
        assert!(errors.len() == 1 && errors[0].to_string().contains("address and port"), "{errors:?}");
        assert!(validate(&parsed("[metrics]\nlisten = \"0.0.0.0:9464\"\ninsecure_plain_http = true\n")).is_empty());
        let errors = validate(&parsed(
            "[http]\nlisten = \"127.0.0.1:8443\"\nplain_http = true\n[metrics]\nlisten = \"127.0.0.1:8443\"\n",
        ));
        assert!(errors.len() == 1 && errors[0].to_string().contains("[http]'s listen address"), "{errors:?}");
    }

    /// A box upgraded with a file of an older version (whose `[http]` was documented, never served) still
    /// starts, serves nothing it was not asked for, and says what to change.
    #[test]
    fn an_old_http_section_is_ignored_with_a_warning_naming_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.toml");
        let old = "[site]\nid = \"a\"\ndevice_id = \"b\"\n[http]\nenabled = true\nlisten = \"localhost\"\n\
                   tls_cert = \"http.crt\"\n";
        std::fs::write(&file, old).unwrap();
        let config = load_for_run(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.http().is_none(), "an old [http] must not start a server");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("remove `enabled`") && warnings[0].contains("listen"), "{warnings:?}");
        // Without `enabled`, the same section is a current one, validated as such.
        std::fs::write(&file, old.replace("enabled = true\n", "")).unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("http.listen") && err.contains("http.tls_key"), "{err}");
        // `enabled = false`: nothing was asked for; the advice is to remove the section.
        std::fs::write(&file, old.replace("enabled = true", "enabled = false")).unwrap();
        let config = load_for_run(&file).unwrap();
        assert!(config.http().is_none() && config.warnings()[0].contains("remove the section"));
    }

    /// Plain HTTP on an address phones reach over the network is refused unless explicitly allowed.
    #[test]
    fn plain_http_is_refused_off_loopback() {
        let base = "[site]\nid = \"a\"\ndevice_id = \"b\"\n[http]\nplain_http = true\n";
        let on = |listen: &str, extra: &str| {
            let config = parse(Path::new("x.toml"), &format!("{base}listen = \"{listen}\"\n{extra}")).unwrap();
            validate(&config).into_iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        let errors = on("0.0.0.0:8080", "");
        assert!(errors.len() == 1 && errors[0].contains("http.plain_http"), "{errors:?}");
        assert_eq!(on("127.0.0.1:8080", ""), Vec::<String>::new());
        assert_eq!(on("0.0.0.0:8080", "insecure_plain_http = true"), Vec::<String>::new());
    }

    /// The example file shows no dead section.
    #[test]
    fn the_example_has_no_warnings() {
        let current = load(&repo_file("config/vigil.example.toml")).unwrap();
        assert_eq!(current.warnings(), Vec::<String>::new(), "the example must not show a dead section");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load(Path::new("/nonexistent/vigil.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/vigil.toml"), "{err}");
    }
}

/// The roster is checked against the configured cameras, in the site's offset.
impl crate::decide::roster::Site for Config {
    fn utc_offset_secs(&self) -> Result<i32, String> {
        self.rollcalls.utc_offset().map_err(|e| format!("rollcalls.utc_offset: {e}"))
    }

    fn camera(&self, id: &str) -> Option<crate::decide::roster::SiteCamera<'_>> {
        let camera = self.cameras.iter().find(|c| c.id == id)?;
        Some(crate::decide::roster::SiteCamera {
            role: camera.role,
            regions: camera.regions.keys().map(String::as_str).collect(),
        })
    }
}

impl Presence {
    pub fn settings(&self, persons: &Persons) -> crate::decide::presence::PresenceSettings {
        crate::decide::presence::PresenceSettings {
            min_score: persons.detector_threshold,
            min_inside: self.min_inside,
            min_cover: self.min_cover,
            full_cover: self.full_cover,
            changed_occupied: self.changed_occupied,
            enter_secs: self.enter_secs,
            leave_secs: self.leave_secs,
            max_gap_secs: self.max_gap_secs,
            night_max_colour: self.night_max_colour,
            day_min_colour: self.day_min_colour,
            stale_secs: self.stale_secs,
            ..Default::default()
        }
    }
}
