//! Process-wide allocator settings, applied before the first thread starts.
//!
//! glibc gives a thread that finds the other arenas locked an arena of its own (up to 8 per core) and
//! keeps the memory freed into each one for reuse. GStreamer's streaming threads come and go with every
//! pipeline rebuild, so each rebuild may land its allocations in a different arena: in the soak
//! (a camera whose stream ended every few seconds) the resident size grew by about 1 MiB a minute while
//! the bytes in use stayed flat (`malloc_stats`: 68 MB in use throughout, 111 → 177 MB held from the
//! system after 450 s). Two arenas keep it flat for the same CPU time (docs/benchmarks.md, "Memory over
//! time"). `MALLOC_ARENA_MAX` in the environment, when set, is glibc's to apply and wins.
//!
//! glibc also raises its mmap threshold to the size of each large block freed, up to 32 MiB. Reading
//! the models (a 22 MB file) raises it past every frame, so decoded frames and GStreamer buffers of a few
//! MB are then carved from the arenas, whose freed holes are kept: 8 keyframes-only cameras held 430 MB,
//! 382 MB with a fixed 1 MiB threshold (docs/benchmarks.md). A fixed threshold keeps blocks of 1 MiB
//! and more in their own mappings, returned to the system when freed; a few such blocks a second per
//! camera cost page faults of no measurable CPU. `MALLOC_MMAP_THRESHOLD_` in the environment wins.

/// Arenas the agent asks glibc for when the environment does not say.
pub const MALLOC_ARENAS: i32 = 2;

/// Blocks of this size and more get their own mapping (see the module docs).
pub const MMAP_THRESHOLD: i32 = 1 << 20;

/// Applies the arena limit and the fixed mmap threshold, each unless the environment sets its own.
/// Call it before any thread is spawned.
pub fn tune_malloc() {
    limit_malloc_arenas();
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        set_mmap_threshold(MMAP_THRESHOLD);
    }
}

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

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_mmap_threshold(bytes: i32) -> bool {
    // SAFETY: as in `apply`; M_MMAP_THRESHOLD only changes where later allocations are placed.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold(_bytes: i32) -> bool {
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
        assert!(set_mmap_threshold(MMAP_THRESHOLD));
    }
}
