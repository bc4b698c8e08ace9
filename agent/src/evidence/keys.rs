//! The device's Ed25519 identity: created once by `vigil keys init`, kept in a 0600 PKCS#8 PEM file,
//! refused when others can read it.
//!
//! The key is written durably before its public half is printed (the platform registers that): the file
//! and its directory are fsync'd, so a power cut after `keys init` cannot lose a registered identity, and
//! the file appears complete or not at all ([`crate::fsio::create_new`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 5208 / RFC 8410: version 0, algorithm id-Ed25519,
/// the 32-byte seed as an OCTET STRING in an OCTET STRING, no public key); the seed follows.
const PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

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
    /// Left by a crash while an older Vigil created the key (it wrote the file in place).
    #[error(
        "device key {0} is empty or cut short (a crash while it was being created?). If its public key was never \
         registered with the platform, delete the file and run `vigil keys init`; otherwise restore it from a backup"
    )]
    Truncated(PathBuf),
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

/// The PKCS#8 v1 form of ring's v2 document (`30 51 02 01 01 … 04 22 04 20 <seed> 81 21 00 <public>`):
/// the same seed without the public key, which is what OpenSSL (3.0 refuses ring's v2 encoding) and
/// Python `cryptography` read and write.
fn pkcs8_v1(v2: &[u8]) -> Option<Vec<u8>> {
    let seed = v2.get(16..48)?;
    (v2.get(..16)? == [0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20])
        .then(|| [&PKCS8_V1_PREFIX[..], seed].concat())
}

impl DeviceKey {
    /// Creates a new key file (PKCS#8 v1 PEM, mode 0600, never overwriting one).
    pub fn init(path: &Path) -> Result<DeviceKey, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        if path.exists() {
            return Err(KeyError::Exists(path.to_owned()));
        }
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Invalid { path: path.to_owned(), message: "key generation failed".into() })?;
        let v1 = pkcs8_v1(pkcs8.as_ref())
            .ok_or_else(|| KeyError::Invalid { path: path.to_owned(), message: "key generation failed".into() })?;
        match crate::fsio::create_new(path, pem("PRIVATE KEY", &v1).as_bytes(), crate::fsio::PRIVATE_FILE) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(KeyError::Exists(path.to_owned())),
            other => other.map_err(io)?,
        }
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
        // A file written in place and cut by a crash: empty, or the PEM's start without its end.
        let (begin, end) = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----");
        if begin.starts_with(text.trim()) || text.starts_with(begin) && !text.contains(end) {
            return Err(KeyError::Truncated(path.to_owned()));
        }
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

    /// An older Vigil wrote the key in place: a crash could leave it empty or cut short. That is named, with
    /// the fix, instead of an opaque parse error; and `keys init` leaves no temp file behind.
    #[test]
    fn empty_or_partial_key_from_a_crash_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/device.pem");
        DeviceKey::init(&path).unwrap();
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("keys")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("device.pem")]);
        let full = std::fs::read_to_string(&path).unwrap();
        for cut in [0, 10, full.len() / 2, full.len() - 30] {
            std::fs::write(&path, &full[..cut]).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = DeviceKey::load(&path).err().unwrap();
            assert!(matches!(err, KeyError::Truncated(_)), "cut at {cut}: {err}");
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()) && text.contains("vigil keys init"), "{text}");
        }
    }

    /// `keys_file_is_pkcs8_v1_read_by_openssl_and_python`: the key file is what OpenSSL 3.0 (`openssl pkey`)
    /// and Python `cryptography` read, and both derive the public key Vigil prints; a v2 file from an
    /// older Vigil and a key made by `openssl genpkey` load too.
    #[test]
    fn keys_file_is_pkcs8_v1_read_by_openssl_and_python() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.pem");
        let key = DeviceKey::init(&path).unwrap();
        let der = unpem(&std::fs::read_to_string(&path).unwrap(), "PRIVATE KEY").unwrap();
        assert_eq!((der.len(), &der[..16]), (48, &PKCS8_V1_PREFIX[..]));
        let openssl =
            std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&path).output().unwrap();
        assert!(openssl.status.success(), "{}", String::from_utf8_lossy(&openssl.stderr));
        assert_eq!(String::from_utf8_lossy(&openssl.stdout), key.public().to_pem());
        let python = crate::cache::dir().join("venv/bin/python");
        let script = "import sys, base64\n\
            from cryptography.hazmat.primitives import serialization as s\n\
            k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
            print(base64.b64encode(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)).decode())";
        let out = std::process::Command::new(&python).args(["-c", script]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), key.public().to_base64());

        // A v2 file (what earlier versions wrote) still loads, as the same key.
        let v2 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let old = dir.path().join("old.pem");
        crate::fsio::create_new(&old, pem("PRIVATE KEY", v2.as_ref()).as_bytes(), crate::fsio::PRIVATE_FILE).unwrap();
        let from_v2 = DeviceKey::load(&old).unwrap().public();
        assert_eq!(from_v2.0[..], Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap().public_key().as_ref()[..]);
        // So does one made by OpenSSL.
        let made = dir.path().join("openssl.pem");
        let generated = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&made)
            .status();
        assert!(generated.unwrap().success());
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o600)).unwrap();
        DeviceKey::load(&made).unwrap();
    }
}
