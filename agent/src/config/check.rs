//! What [`super::validate`] cannot see because it does no I/O: files the configuration names that must
//! exist and be usable before the agent starts. `vigil check-config` and `vigil run` both run these
//! checks (through [`super::load_for_run`]), so a file check-config calls OK does not fail at start-up.
//!
//! Checked: the platform's command key (readable and an Ed25519 public key), the state directories
//! (directories, or creatable), the MQTT password and TLS files, and the HTTPS certificate and key
//! (readable). Not checked here: the device key and the models, which `run` verifies itself with their
//! own advice (`vigil keys init`, `scripts/setup`).

use std::path::Path;

use super::raw::Config;
use super::validate::FieldError;
use crate::evidence::keys::PublicKey;
use crate::input::{self, MAX_TEXT_BYTES};

/// Every problem with the files `config` names (paths already resolved by [`super::load`]).
pub fn check_files(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut add = |path: &str, message: String| errors.push(FieldError { path: path.to_owned(), message });
    let storage = &config.storage;
    for (field, dir) in [
        ("storage.data_dir", Some(storage.data_dir.as_path())),
        ("storage.recordings_dir", storage.recordings_dir.as_deref()),
        ("storage.evidence_dir", storage.evidence_dir.as_deref()),
    ] {
        if let Some(message) = dir.and_then(directory_problem) {
            add(field, message);
        }
    }
    if let Some(mqtt) = &config.mqtt {
        if let Some(key) = &mqtt.platform_public_key {
            if let Err(message) = platform_key(key) {
                add("mqtt.platform_public_key", message);
            }
        }
        let mut files = vec![("mqtt.password_file", mqtt.password_file.as_deref())];
        if let Some(tls) = &mqtt.tls {
            files.push(("mqtt.tls.ca_file", Some(tls.ca_file.as_path())));
            files.push(("mqtt.tls.client_cert", tls.client_cert.as_deref()));
            files.push(("mqtt.tls.client_key", tls.client_key.as_deref()));
        }
        for (field, file) in files {
            if let Some(Err(e)) = file.map(|f| input::read_limited(f, MAX_TEXT_BYTES)) {
                add(field, e.to_string());
            }
        }
    }
    // The HTTPS certificate and key (an older version's ignored [http] names files nobody reads).
    if let Some(http) = config.http() {
        for (field, file) in [("http.tls_cert", http.tls_cert.as_deref()), ("http.tls_key", http.tls_key.as_deref())] {
            if let Some(Err(e)) = file.map(|f| input::read_limited(f, MAX_TEXT_BYTES)) {
                add(field, e.to_string());
            }
        }
    }
    errors
}

/// Why `dir` cannot serve as a directory of state: it is something else, or the nearest existing
/// ancestor (where it would be created) is not a directory.
fn directory_problem(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some(format!("{} exists and is not a directory", dir.display())),
        // Not there, or under something that is not a directory: look at where it would be created.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            let ancestor = dir.ancestors().skip(1).find(|a| a.exists())?;
            (!ancestor.is_dir())
                .then(|| format!("{} cannot be created: {} is not a directory", dir.display(), ancestor.display()))
        }
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

/// The platform key as `app` reads it: the base64 of 32 bytes inline (44 characters ending in '='),
/// else a PEM file.
fn platform_key(text: &str) -> Result<PublicKey, String> {
    if text.len() == 44 && text.ends_with('=') {
        return PublicKey::parse(text).ok_or_else(|| format!("{text:?} is not the base64 of a 32-byte Ed25519 key"));
    }
    let pem = input::read_text_limited(Path::new(text), MAX_TEXT_BYTES).map_err(|e| e.to_string())?;
    PublicKey::parse(&pem).ok_or_else(|| {
        format!("{text}: not an Ed25519 public key (a PEM \"PUBLIC KEY\" as `vigil keys public` prints it)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> Config {
        let text = format!("[site]\nid = \"s\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n{extra}");
        let file = dir.join("vigil.toml");
        std::fs::write(&file, text).unwrap();
        super::super::load(&file).unwrap()
    }

    fn messages(config: &Config) -> Vec<String> {
        check_files(config).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn state_directories_must_be_directories_or_creatable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(messages(&config(dir.path(), "")), Vec::<String>::new(), "absent data_dir is created at start");
        std::fs::write(dir.path().join("state"), b"").unwrap();
        let errors = messages(&config(dir.path(), "evidence_dir = \"state/evidence\"\n"));
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0].starts_with("storage.data_dir: ") && errors[0].ends_with("state exists and is not a directory")
        );
        assert!(errors[1].starts_with("storage.evidence_dir: ") && errors[1].contains("state is not a directory"));
    }

    #[test]
    fn platform_key_must_be_readable_and_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let mqtt = |key: &str| format!("[mqtt]\nhost = \"b\"\nplatform_public_key = \"{key}\"\n");
        let errors = messages(&config(dir.path(), &mqtt("platform.pem")));
        assert!(
            errors.len() == 1
                && errors[0].starts_with("mqtt.platform_public_key: ")
                && errors[0].contains("platform.pem: cannot read"),
            "{errors:#?}"
        );
        std::fs::write(dir.path().join("platform.pem"), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .unwrap();
        let errors = messages(&config(dir.path(), &mqtt("platform.pem")));
        assert!(errors.len() == 1 && errors[0].contains("not an Ed25519 public key"), "{errors:#?}");
        let key = crate::evidence::keys::DeviceKey::init(&dir.path().join("k.pem")).unwrap().public();
        std::fs::write(dir.path().join("platform.pem"), key.to_pem()).unwrap();
        assert_eq!(messages(&config(dir.path(), &mqtt("platform.pem"))), Vec::<String>::new());
        assert_eq!(messages(&config(dir.path(), &mqtt(&key.to_base64()))), Vec::<String>::new());
        let errors = messages(&config(dir.path(), &mqtt(&format!("{}=", "!".repeat(43)))));
        assert!(errors.len() == 1 && errors[0].contains("is not the base64 of a 32-byte Ed25519 key"), "{errors:#?}");
    }
}
