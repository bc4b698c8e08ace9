//! The gallery of enrolled patients and physicians: embeddings only (never images), encrypted at rest
//! with AES-256-GCM under a key file readable by Vigil alone.
//!
//! File: `VIGILGAL1\n` ‖ 12-byte random nonce ‖ AES-256-GCM(JSON of the entries), the magic as associated
//! data. Written atomically (temp file, fsync, rename, fsync the directory).

pub mod quality;
pub mod search;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("gallery {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("gallery key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyTooOpen { path: PathBuf, mode: u32 },
    #[error("gallery key {0} is not 32 bytes")]
    BadKey(PathBuf),
    #[error("gallery {0} cannot be decrypted: wrong key, or the file was altered")]
    Decrypt(PathBuf),
    #[error("gallery {0} is not a Vigil gallery file")]
    Format(PathBuf),
}

pub struct Gallery {
    path: PathBuf,
    key: LessSafeKey,
    entries: Vec<Entry>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GalleryError + '_ {
    move |source| GalleryError::Io { path: path.to_owned(), source }
}

/// Loads the 32-byte key, creating it (mode 0600) if it does not exist yet.
fn load_or_create_key(path: &Path) -> Result<LessSafeKey, GalleryError> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| GalleryError::BadKey(path.to_owned()))?;
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io(path))?;
        file.write_all(&bytes).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
    }
    let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(GalleryError::KeyTooOpen { path: path.to_owned(), mode });
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| GalleryError::BadKey(path.to_owned()))?;
    Ok(LessSafeKey::new(unbound))
}

impl Gallery {
    /// Opens (or starts) the gallery at `path` with the key at `key_path`.
    pub fn open(path: &Path, key_path: &Path) -> Result<Gallery, GalleryError> {
        let key = load_or_create_key(key_path)?;
        let entries = if path.exists() {
            let data = std::fs::read(path).map_err(io(path))?;
            let rest = data.strip_prefix(MAGIC).ok_or_else(|| GalleryError::Format(path.to_owned()))?;
            if rest.len() < NONCE_LEN + 16 {
                return Err(GalleryError::Format(path.to_owned()));
            }
            let (nonce, sealed) = rest.split_at(NONCE_LEN);
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| GalleryError::Format(path.to_owned()))?;
            let mut sealed = sealed.to_vec();
            let plain = key
                .open_in_place(nonce, Aad::from(MAGIC), &mut sealed)
                .map_err(|_| GalleryError::Decrypt(path.to_owned()))?;
            serde_json::from_slice(plain).map_err(|_| GalleryError::Format(path.to_owned()))?
        } else {
            Vec::new()
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
    pub fn save(&self) -> Result<(), GalleryError> {
        let mut data = serde_json::to_vec(&self.entries).expect("entries serialise");
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| GalleryError::BadKey(self.path.clone()))?;
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(MAGIC), &mut data)
            .map_err(|_| GalleryError::Decrypt(self.path.clone()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            file.write_all(MAGIC).map_err(io(&tmp))?;
            file.write_all(&nonce).map_err(io(&tmp))?;
            file.write_all(&data).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(Gallery::open(&path, &key), Err(GalleryError::Decrypt(_))));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Gallery::open(&path, &key), Err(GalleryError::KeyTooOpen { .. })));
    }
}
