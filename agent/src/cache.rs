//! Where the agent finds what it does not carry in its binary: ONNX Runtime and the model bundle.
//!
//! Two installers put them in two places. scripts/setup fills the cache: `$VIGIL_CACHE`, else
//! `$XDG_CACHE_HOME/vigil`, else `~/.cache/vigil` (the same rule as `scripts/lib.sh`). The
//! `vigil-runtime` package installs them under /usr ([`INSTALLED_ORT_DIR`], [`INSTALLED_MODELS_DIR`],
//! docs/install.md). [`locate`] is the one resolution order: the config, else the environment, else the
//! cache when it has the thing, else the installed path when it has it. A developer's cache wins over
//! a package on the same machine; the packaged unit sets `VIGIL_CACHE=/var/cache/vigil`, which holds
//! neither, so an installed box uses the package's files.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the vigil-runtime package installs the ONNX Runtime library.
pub const INSTALLED_ORT_DIR: &str = "/usr/lib/vigil";
/// Where the vigil-runtime package installs the verified model bundle.
pub const INSTALLED_MODELS_DIR: &str = "/usr/share/vigil/models";

pub fn dir() -> PathBuf {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = from_env("VIGIL_CACHE") {
        return dir;
    }
    if let Some(dir) = from_env("XDG_CACHE_HOME") {
        return dir.join("vigil");
    }
    from_env("HOME").unwrap_or_else(|| PathBuf::from("/var/cache")).join(".cache/vigil")
}

/// Where a located path came from: said by `vigil --version` and in every "not found" message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config field, e.g. `models.ort_library`.
    Config(&'static str),
    /// An environment variable, e.g. `ORT_DYLIB_PATH`.
    Env(&'static str),
    /// The cache scripts/setup fills.
    Cache,
    /// The vigil-runtime package's files.
    Installed,
    /// Neither the cache nor the installed path has it; the path given is the cache's, where
    /// scripts/setup would put it, and this is the installed path that was also tried.
    Nowhere { installed: PathBuf },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Config(field) => write!(f, "from {field} in the config"),
            Origin::Env(var) => write!(f, "from ${var}"),
            Origin::Cache => write!(f, "from the cache scripts/setup fills"),
            Origin::Installed => write!(f, "installed by the vigil-runtime package"),
            Origin::Nowhere { installed } => write!(
                f,
                "in neither the cache scripts/setup fills nor {} where the vigil-runtime package puts it",
                installed.display()
            ),
        }
    }
}

/// A path chosen by [`locate`] and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub origin: Origin,
}

/// The resolution order. `configured` and `env` are taken as given (a wrong explicit path must be an
/// error naming it, never silently replaced); `cached` and `installed` only when `present` says they
/// hold the thing. Pure apart from `present`, so the order is tested without touching /usr.
pub fn locate(
    configured: Option<(&Path, &'static str)>,
    env: Option<(PathBuf, &'static str)>,
    cached: PathBuf,
    installed: PathBuf,
    present: impl Fn(&Path) -> bool,
) -> Located {
    if let Some((path, field)) = configured {
        return Located { path: path.to_owned(), origin: Origin::Config(field) };
    }
    if let Some((path, var)) = env {
        return Located { path, origin: Origin::Env(var) };
    }
    if present(&cached) {
        return Located { path: cached, origin: Origin::Cache };
    }
    if present(&installed) {
        return Located { path: installed, origin: Origin::Installed };
    }
    Located { path: cached, origin: Origin::Nowhere { installed } }
}

/// A non-empty environment variable as a path.
pub fn env_path(var: &'static str) -> Option<(PathBuf, &'static str)> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(|v| (PathBuf::from(v), var))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> (PathBuf, PathBuf) {
        (PathBuf::from("/cache/lib.so"), PathBuf::from("/usr/lib/vigil/lib.so"))
    }

    #[test]
    fn the_config_wins_even_over_present_files() {
        let (cached, installed) = paths();
        let got = locate(
            Some((Path::new("/etc/ort.so"), "models.ort_library")),
            Some((PathBuf::from("/env/ort.so"), "ORT_DYLIB_PATH")),
            cached,
            installed,
            |_| true,
        );
        assert_eq!(got, Located { path: "/etc/ort.so".into(), origin: Origin::Config("models.ort_library") });
    }

    #[test]
    fn the_environment_comes_next_and_is_taken_even_when_missing() {
        let (cached, installed) = paths();
        let got = locate(None, Some((PathBuf::from("/env/ort.so"), "ORT_DYLIB_PATH")), cached, installed, |_| true);
        assert_eq!(got, Located { path: "/env/ort.so".into(), origin: Origin::Env("ORT_DYLIB_PATH") });
        let (cached, installed) = paths();
        let got = locate(None, Some((PathBuf::from("/env/ort.so"), "ORT_DYLIB_PATH")), cached, installed, |_| false);
        assert_eq!(got.origin, Origin::Env("ORT_DYLIB_PATH"), "an explicit path is never replaced");
    }

    #[test]
    fn the_cache_wins_over_the_package_when_it_has_the_file() {
        let (cached, installed) = paths();
        let got = locate(None, None, cached.clone(), installed, |_| true);
        assert_eq!(got, Located { path: cached, origin: Origin::Cache });
    }

    #[test]
    fn the_package_is_used_when_the_cache_lacks_the_file() {
        let (cached, installed) = paths();
        let got = locate(None, None, cached, installed.clone(), |p| p == installed);
        assert_eq!(got, Located { path: installed, origin: Origin::Installed });
    }

    #[test]
    fn nowhere_points_at_the_cache_and_names_both() {
        let (cached, installed) = paths();
        let got = locate(None, None, cached.clone(), installed.clone(), |_| false);
        assert_eq!(got.path, cached);
        let said = got.origin.to_string();
        assert!(said.contains("scripts/setup") && said.contains("/usr/lib/vigil/lib.so"), "{said}");
    }
}
