//! Where scripts/setup puts what it installs (ONNX Runtime, models), so the agent finds it by default.
//! Same rule as `scripts/lib.sh`: `$VIGIL_CACHE`, else `$XDG_CACHE_HOME/vigil`, else `~/.cache/vigil`.

use std::path::PathBuf;

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
