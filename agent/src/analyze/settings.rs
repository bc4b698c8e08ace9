//! The `[models]` section of the configuration: where ONNX Runtime and the model bundle are, and how
//! many threads one inference may use. Defaults and documentation live here, once; `config` embeds this
//! section and asks [`ModelSettings::problems`] when it validates.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Directory of the model bundle. Default: `$VIGIL_CACHE/models`, where scripts/setup puts it.
    pub dir: Option<PathBuf>,
    /// The ONNX Runtime shared library. Default: `$ORT_DYLIB_PATH`, else
    /// `$VIGIL_CACHE/onnxruntime/1.32.0/libonnxruntime.so.1.32.0`.
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

fn default_threads() -> usize {
    1
}

impl ModelSettings {
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
