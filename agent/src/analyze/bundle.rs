//! The model bundle: which ONNX files the agent runs, and proof they are the ones we converted.
//!
//! `models/manifest.toml` is compiled into the binary, so the expected SHA-256 of every model travels
//! with the agent rather than with the files it checks. At start-up each model file is hashed and
//! compared; a missing or modified file is refused with a message naming it and the fix.

use std::io::Read;
use std::path::{Path, PathBuf};

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
pub enum BundleError {
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
    #[error("no model named {0:?} in the bundle")]
    Unknown(String),
}

/// The manifest compiled into this binary.
pub fn manifest() -> Manifest {
    toml::from_str(MANIFEST).expect("models/manifest.toml is checked by a unit test")
}

/// A model file that passed its hash check.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// The verified bundle: every model present and unmodified.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub name: String,
    pub dir: PathBuf,
    pub models: Vec<VerifiedModel>,
}

impl Bundle {
    /// The default location scripts/setup installs to.
    pub fn default_dir() -> PathBuf {
        crate::cache::dir().join("models")
    }

    /// Hashes every model in `dir` against the compiled-in manifest.
    pub fn open(dir: &Path) -> Result<Bundle, BundleError> {
        let manifest = manifest();
        let mut models = Vec::new();
        for entry in &manifest.models {
            let path = dir.join(&entry.output);
            if !path.exists() {
                return Err(BundleError::Missing { name: entry.name.clone(), path });
            }
            let actual = sha256_file(&path)?;
            if actual != entry.output_sha256 {
                return Err(BundleError::Modified {
                    name: entry.name.clone(),
                    path,
                    actual,
                    expected: entry.output_sha256.clone(),
                });
            }
            models.push(VerifiedModel { name: entry.name.clone(), path, sha256: actual });
        }
        Ok(Bundle { name: manifest.bundle, dir: dir.to_owned(), models })
    }

    pub fn model(&self, name: &str) -> Result<&VerifiedModel, BundleError> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| BundleError::Unknown(name.to_owned()))
    }
}

pub fn sha256_file(path: &Path) -> Result<String, BundleError> {
    let read_err = |source| BundleError::Read { path: path.to_owned(), source };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_manifest_parses_and_pins_every_model() {
        let m = manifest();
        let names: Vec<_> = m.models.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["centerface", "dlib-resnet-v1", "nanodet"]);
        for e in &m.models {
            assert_eq!(e.output_sha256.len(), 64, "{}: output_sha256 is not a SHA-256", e.name);
            assert!(e.output_sha256.chars().all(|c| c.is_ascii_hexdigit()), "{}", e.name);
        }
    }

    #[test]
    fn missing_and_modified_models_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("centerface.onnx") && err.contains("scripts/setup"), "{err}");
        std::fs::write(dir.path().join("centerface.onnx"), b"not the model").unwrap();
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("centerface.onnx") && err.contains("modified"), "{err}");
    }
}
