//! ONNX Runtime: finding the shared library (scripts/setup's cache or the vigil-runtime package), loading it once, and telling its
//! version. Loaded dynamically (ort's `load-dynamic`) so the build never downloads binaries.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cache::{self, Located};

/// The ONNX Runtime release scripts/setup installs and ort's `api-31` accepts.
pub const ORT_VERSION: &str = "1.32.0";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found at {} ({}); run scripts/setup or install the vigil-runtime package, or set models.ort_library in the config or ORT_DYLIB_PATH",
        .0.path.display(), .0.origin
    )]
    Missing(Located),
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Load { path: PathBuf, message: String },
}

/// Which library to load: the config's `models.ort_library`, else `$ORT_DYLIB_PATH`, else the cache's
/// copy (scripts/setup) when it exists, else the vigil-runtime package's (see [`crate::cache::locate`]).
/// Says where the choice came from, for messages and `vigil --version`.
pub fn library_path(configured: Option<&Path>) -> Located {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    cache::locate(
        configured.map(|p| (p, "models.ort_library")),
        cache::env_path("ORT_DYLIB_PATH"),
        cache::dir().join("onnxruntime").join(ORT_VERSION).join(&file),
        Path::new(cache::INSTALLED_ORT_DIR).join(&file),
        Path::is_file,
    )
}

/// A loaded ONNX Runtime: where from, which version, and the environment sessions are built in.
#[derive(Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub version: String,
    pub environment: ort::environment::Environment,
}

static LOADED: OnceLock<Runtime> = OnceLock::new();

/// Loads ONNX Runtime once per process and commits ort to it. Later calls return the first result.
pub fn init(configured: Option<&Path>) -> Result<&'static Runtime, RuntimeError> {
    if let Some(runtime) = LOADED.get() {
        return Ok(runtime);
    }
    let located = library_path(configured);
    if !located.path.exists() {
        return Err(RuntimeError::Missing(located));
    }
    let path = located.path;
    let version = read_version(&path)?;
    let load_err = |message: String| RuntimeError::Load { path: path.clone(), message };
    let environment = ort::init_from(&path)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("vigil")
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    Ok(LOADED.get_or_init(|| Runtime { path, version, environment }))
}

/// Asks the library for its version without committing ort to it (`vigil --version` uses this too).
pub fn read_version(path: &Path) -> Result<String, RuntimeError> {
    let load_err = |message: String| RuntimeError::Load { path: path.to_owned(), message };
    // SAFETY: loading ONNX Runtime runs its initialisers, which have no preconditions; OrtGetApiBase is
    // the library's documented C entry point, returning a pointer valid for the library's lifetime,
    // and GetVersionString returns a static NUL-terminated string.
    unsafe {
        let library = libloading::Library::new(path).map_err(|e| load_err(e.to_string()))?;
        let get_api_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = library
            .get(b"OrtGetApiBase")
            .map_err(|_| load_err("not an ONNX Runtime library (no OrtGetApiBase)".into()))?;
        let base = get_api_base();
        if base.is_null() {
            return Err(load_err("OrtGetApiBase returned null".into()));
        }
        let version = CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned();
        // ort keeps its own handle; dropping ours only lowers the reference count.
        drop(library);
        Ok(version)
    }
}
