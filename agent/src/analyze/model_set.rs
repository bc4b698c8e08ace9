//! The model set: which ONNX files the agent runs, and proof they are the ones we converted.
//!
//! `models/manifest.toml` is compiled into the binary, so the expected SHA-256 of every model travels
//! with the agent rather than with the files it checks. At start-up each model file is read once into
//! memory, those bytes are hashed and compared, and the sessions are built from the same bytes
//! ([`VerifiedModel::bytes`]): a file swapped between the check and the load is never used. A missing or
//! modified file is refused with a message naming it and the fix.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

const MANIFEST: &str = include_str!("../../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub bundle: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// One model as the manifest records it (fields the agent uses; the manifest has more).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub licence: String,
    pub registry: String,
    pub package: String,
    pub version: String,
    pub output: String,
    pub output_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelSetError {
    #[error(
        "model {name} missing: {path} does not exist; run scripts/setup (or models/fetch) to install the model bundle, or set models.dir"
    )]
    Missing { name: String, path: PathBuf },
    #[error(
        "model {name} refused: {path} has SHA-256 {actual}, expected {expected}; the file was modified or is from another version. Reinstall it with scripts/setup (models/fetch)"
    )]
    Modified { name: String, path: PathBuf, actual: String, expected: String },
    #[error("cannot read model file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "model {name} refused: {path} is larger than {} MiB, so it is not the model; reinstall it with scripts/setup (models/fetch)",
        MAX_MODEL_BYTES >> 20
    )]
    TooLarge { name: String, path: PathBuf },
    #[error("model {0}: its verified bytes were already released after the sessions were built")]
    Released(String),
    #[error("no model named {0:?} in the bundle")]
    Unknown(String),
}

/// The manifest compiled into this binary.
pub fn manifest() -> Manifest {
    toml::from_str(MANIFEST).expect("models/manifest.toml is checked by a unit test")
}

/// No model of the bundle comes near this; a larger file is refused before it is read whole.
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

/// A model file that passed its hash check, with the bytes that were hashed.
#[derive(Clone)]
pub struct VerifiedModel {
    pub name: String,
    pub path: PathBuf,
    /// SHA-256 of [`Self::bytes`].
    pub sha256: String,
    bytes: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for VerifiedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedModel")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("bytes", &self.bytes.as_ref().map(|b| b.len()))
            .finish()
    }
}

impl VerifiedModel {
    /// The model as read and hashed: what a session must be built from (never the path again).
    pub fn bytes(&self) -> Result<&[u8], ModelSetError> {
        self.bytes.as_deref().ok_or_else(|| ModelSetError::Released(self.name.clone()))
    }
}

/// The verified bundle: every model present and unmodified.
#[derive(Debug, Clone)]
pub struct ModelSet {
    pub name: String,
    pub dir: PathBuf,
    pub models: Vec<VerifiedModel>,
}

impl ModelSet {
    /// Where the bundle is when the config does not say: scripts/setup's cache, else the
    /// vigil-runtime package's directory ([`ModelSettings::models_dir`](super::settings::ModelSettings::models_dir)).
    pub fn default_dir() -> PathBuf {
        super::settings::ModelSettings::default().models_dir().path
    }

    /// Hashes every model in `dir` against the compiled-in manifest.
    pub fn open(dir: &Path) -> Result<ModelSet, ModelSetError> {
        let manifest = manifest();
        let mut models = Vec::new();
        for entry in &manifest.models {
            let path = dir.join(&entry.output);
            let bytes = match read_bounded(&path) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return Err(ModelSetError::TooLarge { name: entry.name.clone(), path }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ModelSetError::Missing { name: entry.name.clone(), path });
                }
                Err(source) => return Err(ModelSetError::Read { path, source }),
            };
            let actual = sha256(&bytes);
            if actual != entry.output_sha256 {
                return Err(ModelSetError::Modified {
                    name: entry.name.clone(),
                    path,
                    actual,
                    expected: entry.output_sha256.clone(),
                });
            }
            models.push(VerifiedModel { name: entry.name.clone(), path, sha256: actual, bytes: Some(bytes.into()) });
        }
        Ok(ModelSet { name: manifest.bundle, dir: dir.to_owned(), models })
    }

    pub fn model(&self, name: &str) -> Result<&VerifiedModel, ModelSetError> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| ModelSetError::Unknown(name.to_owned()))
    }

    /// Drops the models' bytes once the sessions hold their own copies (tens of MB not kept twice).
    pub fn release_bytes(&mut self) {
        for model in &mut self.models {
            model.bytes = None;
        }
    }
}

/// The whole file, or None when it is larger than [`MAX_MODEL_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() > MAX_MODEL_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes)?; // bounded even if it grows meanwhile
    Ok((bytes.len() as u64 <= MAX_MODEL_BYTES).then_some(bytes))
}

pub use crate::hashing::sha256_hex as sha256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_manifest_parses_and_pins_every_model() {
        let m = manifest();
        let names: Vec<_> = m.models.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["centerface", "dlib-resnet-v1", "movenet-multipose", "blazepose-detector"]);
        for e in &m.models {
            assert_eq!(e.output_sha256.len(), 64, "{}: output_sha256 is not a SHA-256", e.name);
            assert!(e.output_sha256.chars().all(|c| c.is_ascii_hexdigit()), "{}", e.name);
        }
    }

    #[test]
    fn missing_and_modified_models_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = ModelSet::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("centerface.onnx") && err.contains("scripts/setup"), "{err}");
        std::fs::write(dir.path().join("centerface.onnx"), b"not the model").unwrap();
        let err = ModelSet::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("centerface.onnx") && err.contains("modified"), "{err}");
        let big = std::fs::File::create(dir.path().join("centerface.onnx")).unwrap();
        big.set_len(MAX_MODEL_BYTES + 1).unwrap();
        let err = ModelSet::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("centerface.onnx") && err.contains("larger than 256 MiB"), "{err}");
    }
}
