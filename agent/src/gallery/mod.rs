//! The gallery of enrolled patients and physicians: embeddings only (never images), encrypted at rest
//! with AES-256-GCM under a key file readable by Vigil alone.
//!
//! File: `VIGILGAL2\n` ‖ nonce ‖ AES-256-GCM(entries in a binary form), see [`sealed`], [`store`] and
//! docs/gallery.md. A file in the JSON form of older Vigils (`VIGILGAL1\n`) is read and rewritten in the
//! binary form when opened.

/// Face quality moved to the analysis stage (the gate is part of the face path); the old path stays for the
/// config builders.
pub use crate::analyze::quality;

pub mod enrol;
mod sealed;
pub mod search;
pub mod settlements;
pub mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use sealed::{SealKey, SealedError};

/// Who an enrolled person is to the hospital (spelled `role` in files and commands). Not a camera's
/// role, which is `decide::CameraRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PersonKind {
    Patient,
    Physician,
}

/// One enrolled person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub role: PersonKind,
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
    /// Opens (or starts) the gallery at `path` with the key at `key_path`. A gallery in the JSON form of
    /// older Vigils is rewritten in the binary form; if that write fails, the JSON file stays (it is read
    /// again next time) and the next [`Gallery::save`] writes the binary form.
    pub fn open(path: &Path, key_path: &Path) -> Result<Gallery, SealedError> {
        let key = SealKey::load_or_create(key_path)?;
        let (entries, form) = store::read(&key, path)?;
        let gallery = Gallery { path: path.to_owned(), key, entries };
        if form == store::Form::Json {
            match gallery.save() {
                Ok(()) => tracing::info!(
                    path = %path.display(),
                    enrolled = gallery.entries.len(),
                    "gallery rewritten from the JSON form of older Vigils into the binary form"
                ),
                Err(e) => tracing::warn!(error = %e, "gallery kept in the JSON form of older Vigils for now"),
            }
        }
        Ok(gallery)
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

    /// Encrypts and writes the gallery atomically, in the binary form.
    pub fn save(&self) -> Result<(), SealedError> {
        store::write(&self.key, &self.path, &self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(id: &str, v: f32) -> Entry {
        Entry {
            id: id.into(),
            role: PersonKind::Patient,
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

    /// A gallery written by an older Vigil (JSON inside the seal) opens with the same entries, bit for
    /// bit, and is rewritten in the binary form at once.
    #[test]
    fn json_gallery_of_an_older_vigil_is_read_and_rewritten_in_binary() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key_path) = (dir.path().join("gallery.bin"), dir.path().join("keys/gallery.key"));
        let key = SealKey::load_or_create(&key_path).unwrap();
        let mut old = vec![entry("p-1", 0.25), entry("p-2", -0.5)];
        old[1].embeddings.push((0..128).map(|i| (i as f32).sin() / 7.0).collect());
        key.seal(&path, store::MAGIC_JSON, store::encode_json(&old)).unwrap();
        let json_size = std::fs::metadata(&path).unwrap().len();

        let g = Gallery::open(&path, &key_path).unwrap();
        let bits = |entries: &[Entry]| {
            entries
                .iter()
                .map(|e| (e.id.clone(), e.embeddings.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(g.entries()), bits(&old));
        let raw = std::fs::read(&path).unwrap();
        assert!(raw.starts_with(store::MAGIC_BINARY), "rewritten in the binary form");
        assert!((raw.len() as u64) < json_size, "{} bytes, JSON {json_size}", raw.len());
        let again = Gallery::open(&path, &key_path).unwrap();
        assert_eq!(bits(again.entries()), bits(&old));
        assert_eq!(std::fs::read(&path).unwrap(), raw, "a binary gallery is not rewritten on open");
    }

    /// Damage of every kind is refused with an error naming the file; the file is left as it was.
    #[test]
    fn damaged_gallery_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key_path) = (dir.path().join("gallery.bin"), dir.path().join("keys/gallery.key"));
        let key = SealKey::load_or_create(&key_path).unwrap();
        let mut g = Gallery::open(&path, &key_path).unwrap();
        g.upsert(entry("p-1", 0.25));
        g.save().unwrap();
        let good = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        let refused = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            let err = Gallery::open(&path, &key_path).err().expect("refused");
            assert!(err.to_string().starts_with(&name), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
            err
        };
        assert!(matches!(refused(&good[..good.len() / 2]), SealedError::Decrypt(_)));
        assert!(matches!(refused(&good[..store::MAGIC_BINARY.len() + 20]), SealedError::Format(_)));
        assert!(matches!(refused(b"VIGILSET1\n0123456789abcdefghijklmnopqrstuvwxyz"), SealedError::Format(_)));
        assert!(matches!(refused(b""), SealedError::Format(_)));
        let mut flipped = good.clone();
        flipped[store::MAGIC_BINARY.len() + 30] ^= 0x10;
        assert!(matches!(refused(&flipped), SealedError::Decrypt(_)));
        // Sealed with the right key but not a gallery inside: a newer format or a bug, said so.
        key.seal(&path, store::MAGIC_BINARY, vec![1, 0, 0, 0, 200]).unwrap();
        let err = refused(&std::fs::read(&path).unwrap());
        assert_eq!(
            err.to_string(),
            format!("{name}: decrypted but unreadable: entry 0: id: cut short at byte 4 (4 bytes needed, 1 left)")
        );
        key.seal(&path, store::MAGIC_JSON, b"[{\"id\": 12}]".to_vec()).unwrap();
        let err = refused(&std::fs::read(&path).unwrap());
        assert!(matches!(err, SealedError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("JSON form: Data error at line 1"), "{err}");
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
