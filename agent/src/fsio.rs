//! Durable writes of state files: the one way Vigil replaces or creates a file it must find intact after
//! a crash or a power cut (keys, the gallery, the roll-call seed, the roster, streaks, references).
//!
//! Replace ([`write`]): the bytes go to a new temp file in the target's directory (`O_EXCL`, created with
//! the final mode), the file is fsync'd, renamed over the target, and the directory is fsync'd. A crash
//! before the rename leaves the old file intact plus a temp file, which the next write of the same file
//! removes; after the directory fsync the new file is on disk. Readers see the old bytes or the new ones,
//! never a mix or an empty file.
//!
//! Create ([`create_new`]): the same, but the temp file is hard-linked to the target, which fails if the
//! target exists: an identity (device key, data key, seed) is never replaced, and a crash leaves either no
//! file or the complete one — never an empty or half-written key.
//!
//! Directories are made with [`create_dir`] (mode given, each new level fsync'd into its parent), so a
//! file written durably cannot vanish with a directory entry that was never written.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of secrets and of every state file: the agent's user only.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of the directories the agent creates.
pub const PRIVATE_DIR: u32 = 0o700;

/// Temp files of different writes in this process never share a name.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` durably (file mode `mode`); creates the directory (0700) if needed.
/// Errors on the file itself do not repeat its path (the caller names it); errors on a directory do.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (dir, tmp) = prepare(path)?;
    let result = write_temp(&tmp, bytes, mode).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(&dir)
}

/// Creates `path` with `bytes` durably, never replacing an existing file: `AlreadyExists` if one is there.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (dir, tmp) = prepare(path)?;
    let result = write_temp(&tmp, bytes, mode).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    result?;
    sync_dir(&dir)
}

/// `create_dir_all` with `mode` for every directory it makes, each fsync'd into its parent.
pub fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p);
        at = p.parent();
    }
    for dir in missing.into_iter().rev() {
        match DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => continue, // made by another thread
            Err(e) => return Err(with_path(e, dir)),
        }
        sync_dir(parent_of(dir))?;
    }
    Ok(())
}

/// fsync a directory, so the entries created or renamed in it are on disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| with_path(e, dir))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The target's directory (created) and a fresh temp name in it (`.<name>.tmp.<pid>.<n>`); removes temp
/// files of this target left by a process that died (its pid no longer runs). A live process's temp
/// file (a `vigil enroll` beside the agent) is its own.
fn prepare(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let dir = parent_of(path).to_owned();
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a file path", path.display())))?;
    create_dir(&dir, PRIVATE_DIR)?;
    let prefix = temp_prefix(name).to_string_lossy().into_owned();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let writer =
                file.to_string_lossy().strip_prefix(&prefix).and_then(|rest| rest.split('.').next()?.parse().ok());
            if writer.is_some_and(|pid: u32| !running(pid)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    Ok((dir.clone(), dir.join(format!("{prefix}{}.{n}", std::process::id()))))
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
fn running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 sends nothing; it only reports whether the process exists.
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// `.<name>.tmp.`: hidden, and never the name of a file the agent reads.
fn temp_prefix(name: &std::ffi::OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp.");
    prefix
}

fn write_temp(tmp: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn durable_write_replaces_with_the_mode_asked_and_creates_private_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        write(&path, b"one", PRIVATE_FILE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        // A file that was readable by others becomes private when replaced.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"two", PRIVATE_FILE).unwrap();
        assert_eq!((std::fs::read(&path).unwrap(), mode(&path)), (b"two".to_vec(), 0o600));
        assert!(leftovers(path.parent().unwrap()).is_empty());
    }

    /// A crash between writing the temp file and the rename: the old content stays, and the temp file
    /// (named with the dead process's id) is removed by the next write of the same file.
    #[test]
    fn durable_write_survives_a_crash_before_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.json");
        write(&path, b"old roster", PRIVATE_FILE).unwrap();
        let crashed = dir.path().join(".roster.json.tmp.999999999.0");
        std::fs::write(&crashed, b"half a new ros").unwrap();
        let other = dir.path().join(".other.json.tmp.999999999.0");
        std::fs::write(&other, b"another file's temp").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old roster", "the crash left the old file intact");

        write(&path, b"new roster", PRIVATE_FILE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new roster");
        assert!(!crashed.exists(), "the dead process's temp file is cleaned at the next write");
        assert!(other.exists(), "temp files of other targets are theirs to clean");

        // A live writer's temp file (here: this process's parent, still running) is left alone.
        let live = dir.path().join(format!(".roster.json.tmp.{}.0", std::os::unix::process::parent_id()));
        std::fs::write(&live, b"in flight").unwrap();
        write(&path, b"newer roster", PRIVATE_FILE).unwrap();
        assert!(live.exists(), "a running process's temp file is not removed under it");
    }

    #[test]
    fn durable_create_never_replaces_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/device.pem");
        create_new(&path, b"identity", PRIVATE_FILE).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
        let err = create_new(&path, b"another identity", PRIVATE_FILE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"identity");
        assert!(leftovers(&dir.path().join("keys")).is_empty(), "{:?}", leftovers(&dir.path().join("keys")));
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("is-a-dir");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"x").unwrap(); // a non-empty directory cannot be renamed over
        write(&target, b"bytes", PRIVATE_FILE).unwrap_err();
        assert!(target.join("x").exists());
        assert!(leftovers(dir.path()).is_empty());
    }
}
