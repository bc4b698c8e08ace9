//! The gallery of enrolled patients and physicians: embeddings only (never images), encrypted at rest
//! with AES-256-GCM under a key file readable by Vigil alone.
//!
//! File: `VIGILGAL1\n` ‖ nonce ‖ AES-256-GCM(JSON of the entries), see [`sealed`].

/// Face quality moved to the analysis stage (the gate is part of the face path); the old path stays for the
/// config builders.
pub use crate::analyze::quality;

pub mod enrol;
mod sealed;
pub mod search;
pub mod settlements;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use sealed::{SealKey, SealedError};

const MAGIC: &[u8] = b"VIGILGAL1\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Physician,
}

/// One enrolled person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub role: Role,
    /// One 128-d embedding per accepted enrolment image.
    pub embeddings: Vec<Vec<f32>>,
    /// Mean quality score of the accepted images (0..1).
    pub quality: f32,
    pub enrolled_at: String,
}

pub struct Gallery {
    path: PathBuf,
    key: SealKey,
    entries: Vec<Entry>,
}

impl Gallery {
    /// Opens (or starts) the gallery at `path` with the key at `key_path`.
    pub fn open(path: &Path, key_path: &Path) -> Result<Gallery, SealedError> {
        let key = SealKey::load_or_create(key_path)?;
        let entries = match key.open(path, MAGIC)? {
            Some(plain) => serde_json::from_slice(&plain).map_err(|_| SealedError::Format(path.to_owned()))?,
            None => Vec::new(),
        };
        Ok(Gallery { path: path.to_owned(), key, entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Adds or replaces a person.
    pub fn upsert(&mut self, entry: Entry) {
        self.entries.retain(|e| e.id != entry.id);
        self.entries.push(entry);
        self.entries.sort_by(|a, b| a.id.cmp(&b.id));
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        self.entries.len() != before
    }

    /// Encrypts and writes the gallery atomically.
    pub fn save(&self) -> Result<(), SealedError> {
        self.key.seal(&self.path, MAGIC, serde_json::to_vec(&self.entries).expect("entries serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(id: &str, v: f32) -> Entry {
        Entry {
            id: id.into(),
            role: Role::Patient,
            embeddings: vec![vec![v; 128]],
            quality: 0.9,
            enrolled_at: "t".into(),
        }
    }

    #[test]
    fn round_trips_encrypted_and_refuses_tampering_and_open_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = (dir.path().join("gallery.bin"), dir.path().join("keys/gallery.key"));
        let mut g = Gallery::open(&path, &key).unwrap();
        g.upsert(entry("p-1", 0.25));
        g.upsert(entry("p-2", -0.5));
        g.save().unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let raw = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("p-1"), "ids and embeddings must not be readable");
        let g = Gallery::open(&path, &key).unwrap();
        assert_eq!(g.entries().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["p-1", "p-2"]);
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&path, bad).unwrap();
        assert!(matches!(Gallery::open(&path, &key), Err(SealedError::Decrypt(_))));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Gallery::open(&path, &key), Err(SealedError::KeyTooOpen { .. })));
    }

    /// An older Vigil wrote the data key in place; a crash could leave it empty. That is named with the
    /// fix, and never replaced silently (whatever was sealed under the lost key would be unreadable).
    #[test]
    fn empty_gallery_key_from_a_crash_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = (dir.path().join("gallery.bin"), dir.path().join("keys/gallery.key"));
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        for cut in [0, 7] {
            std::fs::write(&key, &[1u8; 32][..cut]).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = Gallery::open(&path, &key).err().unwrap();
            assert!(matches!(err, SealedError::TruncatedKey { len, .. } if len == cut), "{err}");
            let text = err.to_string();
            assert!(text.contains("keys/gallery.key") && text.contains("restore it from a backup"), "{text}");
            assert_eq!(std::fs::read(&key).unwrap().len(), cut, "the key file is left for the operator");
        }
    }
}
