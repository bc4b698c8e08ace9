//! RFC 3161 trusted time for chain entries (docs/evidence.md, "Trusted time"): after an entry is
//! written, a TSA signs SHA-256(manifest.json) with its own clock, and the reply is stored beside the
//! manifest as `timestamp.tsr`. The entry is valid without it; a TSA that cannot be reached only
//! delays the token (entries without one are retried with backoff).
//!
//! - `der`: the little DER needed; `token`: the request and the checks of a reply ([`check_token`]
//!   for `vigil verify`); `client`: the HTTP exchange; `stamper`: the queue and the worker loop.

pub mod client;
mod der;
pub mod stamper;
pub mod token;

pub use stamper::{Stamper, StamperSettings};
pub use token::{TokenInfo, check_token};

/// The token's file name in an entry directory.
pub const TOKEN_FILE: &str = "timestamp.tsr";

/// The largest `timestamp.tsr` read (a token with its certificate chain is a few kB).
pub const MAX_TOKEN_BYTES: u64 = 1 << 20;

/// For `vigil verify`: the token of the entry in `dir`, checked against the manifest's SHA-256 —
/// `Ok(None)` when the entry has none ("no timestamp token"), an error naming what is wrong when the
/// file is a symlink, not a regular file, too large, unreadable, or not a token over this manifest.
pub fn entry_token(dir: &std::path::Path, manifest_sha256: &[u8; 32]) -> Result<Option<TokenInfo>, String> {
    let path = dir.join(TOKEN_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{TOKEN_FILE}: {e}")),
    };
    if !meta.file_type().is_file() {
        return Err(format!("{TOKEN_FILE} is not a regular file (a symlink or a directory)"));
    }
    if meta.len() > MAX_TOKEN_BYTES {
        return Err(format!("{TOKEN_FILE} is {} bytes, more than a token can be", meta.len()));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("{TOKEN_FILE}: {e}"))?;
    check_token(&bytes, manifest_sha256).map(Some).map_err(|e| format!("{TOKEN_FILE}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_token_absent_symlinked_or_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(entry_token(dir.path(), &[0; 32]), Ok(None));
        std::fs::write(dir.path().join("elsewhere"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join(TOKEN_FILE)).unwrap();
        assert_eq!(
            entry_token(dir.path(), &[0; 32]),
            Err("timestamp.tsr is not a regular file (a symlink or a directory)".into())
        );
        std::fs::remove_file(dir.path().join(TOKEN_FILE)).unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), b"garbage").unwrap();
        let err = entry_token(dir.path(), &[0; 32]).unwrap_err();
        assert!(err.starts_with("timestamp.tsr: not a DER TimeStampResp: "), "{err}");
    }
}
