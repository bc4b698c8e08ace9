//! One agent per data directory: `vigil run` holds an exclusive `flock` on `<data_dir>/vigil.lock`
//! (which holds its PID) for as long as it runs.
//!
//! Two agents on one directory fight over everything in it: the MQTT client id (each reconnect kicks
//! the other off), the outbox (SQLite "database is locked", events dropped), settlement watches
//! (duplicate verdicts) and the evidence chain (both continue it from the same bundle: a fork). The lock
//! is taken before any of them is opened. `flock` is released by the kernel when the process ends,
//! however it ends, so a crash never leaves a stale lock; the file itself stays (deleting it would let a
//! third process lock a new file while the second still holds the old one).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {dir} is in use by another vigil (PID {pid}, lock file {path}): stop it, or give \
         this agent its own storage.data_dir"
    )]
    Held { dir: PathBuf, path: PathBuf, pid: String },
    #[error("cannot lock the data directory with {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// `<data_dir>/vigil.lock`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("vigil.lock")
    }

    /// Takes the lock of `data_dir` (creating the directory if needed), or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = Self::path_in(data_dir);
        let io = |source| LockError::Io { path: path.clone(), source };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = match text.trim() {
                    "" => "unknown".to_owned(),
                    pid => pid.to_owned(),
                };
                return Err(LockError::Held { dir: data_dir.to_owned(), path, pid });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state");
        let first = DataDirLock::acquire(&data).unwrap();
        assert_eq!(std::fs::read_to_string(first.path()).unwrap().trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open in this process conflicts too.
        let err = DataDirLock::acquire(&data).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("PID {}", std::process::id())), "{text}");
        assert!(text.contains(&data.join("vigil.lock").display().to_string()), "{text}");
        // Another directory is free; released on drop.
        DataDirLock::acquire(&dir.path().join("other")).unwrap();
        drop(first);
        let again = DataDirLock::acquire(&data).unwrap();
        assert_eq!(std::fs::read_to_string(again.path()).unwrap().trim(), std::process::id().to_string());
    }
}
