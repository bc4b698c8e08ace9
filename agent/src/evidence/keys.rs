//! The device's Ed25519 identity: created once by `vigil keys init`, kept in a 0600 PKCS#8 PEM file,
//! refused when others can read it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no device key at {0}: create one with `vigil keys init --config FILE`")]
    Missing(PathBuf),
    #[error("device key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("device key {0} already exists; refusing to replace the identity of this device")]
    Exists(PathBuf),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub struct DeviceKey {
    pair: Ed25519KeyPair,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn unpem(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text.split(&begin).nth(1)?.split(&end).next()?;
    B64.decode(body.split_whitespace().collect::<String>()).ok()
}

impl DeviceKey {
    /// Creates a new key file (mode 0600, never overwriting one).
    pub fn init(path: &Path) -> Result<DeviceKey, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        if path.exists() {
            return Err(KeyError::Exists(path.to_owned()));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Invalid { path: path.to_owned(), message: "key generation failed".into() })?;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        file.write_all(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Self::load(path)
    }

    /// Loads the key, refusing a missing file or one readable by group or others.
    pub fn load(path: &Path) -> Result<DeviceKey, KeyError> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyError::Missing(path.to_owned())),
            Err(source) => return Err(KeyError::Io { path: path.to_owned(), source }),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen { path: path.to_owned(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?;
        let invalid = |message: &str| KeyError::Invalid { path: path.to_owned(), message: message.to_owned() };
        let der = unpem(&text, "PRIVATE KEY").ok_or_else(|| invalid("not a PEM PRIVATE KEY"))?;
        // OpenSSL and Python write PKCS#8 v1 (no public key inside); ring writes v2. Accept both.
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|_| invalid("not an Ed25519 PKCS#8 key"))?;
        Ok(DeviceKey { pair })
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }

    pub fn public(&self) -> PublicKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(raw)
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem("PUBLIC KEY", &der)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Reads a PEM `PUBLIC KEY` or the base64 of the 32 raw bytes.
    pub fn parse(text: &str) -> Option<PublicKey> {
        let raw = match unpem(text, "PUBLIC KEY") {
            Some(der) if der.len() == 44 && der[..12] == SPKI_PREFIX => der[12..].to_vec(),
            Some(_) => return None,
            None => B64.decode(text.trim()).ok()?,
        };
        Some(PublicKey(raw.try_into().ok()?))
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0).verify(message, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_load_sign_verify_and_refuse_open_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/device.pem");
        let key = DeviceKey::init(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(DeviceKey::init(&path), Err(KeyError::Exists(_))));
        let sig = key.sign(b"hello");
        let public = PublicKey::parse(&key.public().to_pem()).unwrap();
        assert!(public.verify(b"hello", &sig) && !public.verify(b"hellO", &sig));
        assert_eq!(PublicKey::parse(&key.public().to_base64()), Some(public));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DeviceKey::load(&path).err().unwrap().to_string();
        assert!(err.contains("readable by others") && err.contains("chmod 600"), "{err}");
        assert!(matches!(DeviceKey::load(&dir.path().join("none")), Err(KeyError::Missing(_))));
    }
}
