//! The `[models]` section of the configuration: where ONNX Runtime and the model bundle are, and how
//! many threads one inference may use. Defaults and documentation live here, once; `config` embeds this
//! section and asks [`ModelSettings::problems`] when it validates.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cache::{self, Located};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Directory of the model bundle. Default: `$VIGIL_CACHE/models` when it holds every model of the
    /// bundle (scripts/setup puts them there), else /usr/share/vigil/models (the vigil-runtime package).
    pub dir: Option<PathBuf>,
    /// The ONNX Runtime shared library. Default: `$ORT_DYLIB_PATH`, else
    /// `$VIGIL_CACHE/onnxruntime/1.32.0/libonnxruntime.so.1.32.0` when it exists, else
    /// /usr/lib/vigil/libonnxruntime.so.1.32.0 (the vigil-runtime package).
    pub ort_library: Option<PathBuf>,
    /// Threads each model may use for one inference (ONNX Runtime intra-op threads), 1..64. Default 1:
    /// on a small box, cameras are the parallelism.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings { dir: None, ort_library: None, threads: default_threads() }
    }
}

/// Whether `dir` has every one of `files`: a cache with half a bundle (an interrupted models/fetch)
/// does not hide a complete installed one.
fn holds_every_file(dir: &Path, files: &[String]) -> bool {
    files.iter().all(|file| dir.join(file).is_file())
}

fn default_threads() -> usize {
    1
}

impl ModelSettings {
    /// The model bundle's directory and why: `dir`, else the cache's when it holds every model file of
    /// the compiled-in manifest, else the vigil-runtime package's when it does (see
    /// [`crate::cache::locate`]). Hashes are checked later, when the set is opened.
    pub fn models_dir(&self) -> Located {
        let files: Vec<String> = super::model_set::manifest().models.into_iter().map(|m| m.output).collect();
        cache::locate(
            self.dir.as_deref().map(|p| (p, "models.dir")),
            None,
            cache::dir().join("models"),
            PathBuf::from(cache::INSTALLED_MODELS_DIR),
            |dir| holds_every_file(dir, &files),
        )
    }

    /// Every problem with these settings: (field within `[models]`, message). Pure: no file is read.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (field, path) in [("dir", self.dir.as_deref()), ("ort_library", self.ort_library.as_deref())] {
            if path.is_some_and(|p: &Path| p.as_os_str().is_empty()) {
                problems.push((field, "must not be empty".to_owned()));
            }
        }
        if !(1..=64).contains(&self.threads) {
            problems.push(("threads", format!("must be 1..64, got {}", self.threads)));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_present_only_when_every_model_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<String> = crate::analyze::model_set::manifest().models.into_iter().map(|m| m.output).collect();
        assert!(files.len() >= 2);
        assert!(!holds_every_file(dir.path(), &files), "empty directory");
        for file in &files[..files.len() - 1] {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        assert!(!holds_every_file(dir.path(), &files), "one model missing");
        std::fs::create_dir(dir.path().join(files.last().unwrap())).unwrap();
        assert!(!holds_every_file(dir.path(), &files), "a directory is not a model file");
        std::fs::remove_dir(dir.path().join(files.last().unwrap())).unwrap();
        std::fs::write(dir.path().join(files.last().unwrap()), b"x").unwrap();
        assert!(holds_every_file(dir.path(), &files));
    }

    #[test]
    fn a_configured_dir_is_used_as_given() {
        let settings = ModelSettings { dir: Some("/srv/models".into()), ..ModelSettings::default() };
        let located = settings.models_dir();
        assert_eq!(located.path, Path::new("/srv/models"));
        assert_eq!(located.origin, cache::Origin::Config("models.dir"));
    }
}
