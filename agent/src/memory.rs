//! Process-wide allocator settings, applied before the first thread starts.
//!
//! glibc gives a thread that finds the other arenas locked an arena of its own (up to 8 per core) and
//! keeps the memory freed into each one for reuse. GStreamer's streaming threads come and go with every
//! pipeline rebuild, so each rebuild may land its allocations in a different arena: in the soak
//! (a camera whose stream ended every few seconds) the resident size grew by about 1 MiB a minute while
//! the bytes in use stayed flat (`malloc_stats`: 68 MB in use throughout, 111 → 177 MB held from the
//! system after 450 s). Two arenas keep it flat for the same CPU time (docs/benchmarks.md, "Memory over
//! time"). `MALLOC_ARENA_MAX` in the environment, when set, is glibc's to apply and wins.

/// Arenas the agent asks glibc for when the environment does not say.
pub const MALLOC_ARENAS: i32 = 2;

/// The arena limit to apply, given the `MALLOC_ARENA_MAX` environment variable: none when the variable
/// is set (glibc reads it itself at start-up).
pub fn arena_limit(env: Option<&std::ffi::OsStr>) -> Option<i32> {
    match env {
        Some(_) => None,
        None => Some(MALLOC_ARENAS),
    }
}

/// Limits glibc's malloc arenas (see the module docs). Returns the limit applied, if any. Call it
/// before any thread is spawned.
pub fn limit_malloc_arenas() -> Option<i32> {
    let limit = arena_limit(std::env::var_os("MALLOC_ARENA_MAX").as_deref())?;
    apply(limit).then_some(limit)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply(limit: i32) -> bool {
    // SAFETY: mallopt only changes glibc's allocator parameters; M_ARENA_MAX takes effect for arenas
    // created from now on, and no other thread exists yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, limit) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply(_limit: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_built_in_limit() {
        assert_eq!(arena_limit(None), Some(MALLOC_ARENAS));
        assert_eq!(arena_limit(Some(std::ffi::OsStr::new("8"))), None);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_the_limit() {
        assert!(apply(MALLOC_ARENAS));
    }
}
