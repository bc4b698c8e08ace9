//! Reading input files (photos, configuration, rosters, keys, manifests) with a size limit.
//!
//! A file named by an operator or a platform may be anything: a 3 GB video passed to `vigil detect` by
//! mistake, a FIFO, a file that grows while it is read. The size is checked from the metadata before
//! the first byte is read, and the read itself stops one byte past the limit, so no input can make the
//! agent allocate more than the limit whatever the metadata said.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Photos (`vigil detect`, `vigil enroll`, benchmarks): a 50-megapixel phone JPEG is 15-30 MiB.
pub const MAX_IMAGE_BYTES: u64 = 50 << 20;
/// JSON documents from the operator or the platform (roster files, command arguments): the same
/// 16 MiB as the largest MQTT packet the box accepts.
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// Small text files: the configuration, keys, passwords, certificates, manifests.
pub const MAX_TEXT_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// `size` is what the metadata said, or `None` when the file had no size (a pipe) or grew.
    #[error("{}: {} is over the limit of {limit} bytes; not read", path.display(),
        size.map_or_else(|| format!("more than {limit} bytes"), |s| format!("{s} bytes")))]
    TooLarge { path: PathBuf, size: Option<u64>, limit: u64 },
}

/// The whole of `path`, refused without reading when it is larger than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let read_error = |source| InputError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if metadata.is_file() && metadata.len() > limit {
        return Err(InputError::TooLarge { path: path.to_owned(), size: Some(metadata.len()), limit });
    }
    let capacity = if metadata.is_file() { metadata.len() as usize } else { 0 };
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { path: path.to_owned(), size: None, limit });
    }
    Ok(bytes)
}

/// As [`read_limited`], for UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64) -> Result<String, InputError> {
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes).map_err(|e| InputError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_large_file_from_its_size_and_reads_a_small_one() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        // Sparse: 3 GiB that take no disk, so the test shows the file is refused unread.
        std::fs::File::create(&big).unwrap().set_len(3 << 30).unwrap();
        let err = read_limited(&big, MAX_IMAGE_BYTES).unwrap_err();
        assert!(matches!(err, InputError::TooLarge { size: Some(3221225472), .. }), "{err}");
        assert!(err.to_string().contains("3221225472 bytes is over the limit of 52428800 bytes"), "{err}");
        let small = dir.path().join("small");
        std::fs::write(&small, b"hello").unwrap();
        assert_eq!(read_limited(&small, 5).unwrap(), b"hello");
        assert!(matches!(read_limited(&small, 4), Err(InputError::TooLarge { .. })));
        assert!(matches!(read_limited(&dir.path().join("absent"), 4), Err(InputError::Read { .. })));
    }

    #[test]
    fn a_pipe_is_read_only_up_to_the_limit() {
        // /dev/zero has no size and never ends: only the limit stops the read.
        let err = read_limited(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(err, InputError::TooLarge { size: None, .. }), "{err}");
        assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
    }
}
