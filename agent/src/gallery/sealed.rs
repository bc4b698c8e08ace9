//! Files sealed with AES-256-GCM under the box's data key: the gallery and the settlement faces.
//!
//! Layout: `magic` ‖ 12-byte random nonce ‖ AES-256-GCM(plaintext), the magic as associated data (a file
//! of one kind cannot be passed off as the other). Written with [`crate::fsio::write`] (temp file 0600,
//! fsync, rename, fsync the directory): a crash leaves the old file or the new one, never a mix.
//!
//! The data key is created with [`crate::fsio::create_new`] and is on disk (file and directory fsync'd)
//! before any file is sealed under it: a power cut can never keep `gallery.bin` while losing the key
//! that decrypts it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyTooOpen { path: PathBuf, mode: u32 },
    #[error("key {0} is not 32 bytes")]
    BadKey(PathBuf),
    /// Left by a crash while an older Vigil created the key (it wrote the file in place).
    #[error(
        "key {path} is {len} bytes, not 32: cut short by a crash while it was being created? Files sealed under \
         it cannot be read without the original: restore it from a backup, or, if nothing was sealed yet (no \
         gallery.bin, no settlement-faces.bin), delete it and a new key is made at the next start"
    )]
    TruncatedKey { path: PathBuf, len: usize },
    #[error("{0} cannot be decrypted: wrong key, or the file was altered")]
    Decrypt(PathBuf),
    #[error("{0} is not a Vigil file of the expected kind")]
    Format(PathBuf),
    /// Decrypted (so written by Vigil with this key) but not decodable: a newer format, or a bug.
    #[error("{path}: decrypted but unreadable: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SealedError + '_ {
    move |source| SealedError::Io { path: path.to_owned(), source }
}

/// The 32-byte data key.
pub struct SealKey(LessSafeKey);

impl SealKey {
    /// Loads the key at `path`, creating it (mode 0600) if it does not exist yet; refuses a key others
    /// can read.
    pub fn load_or_create(path: &Path) -> Result<SealKey, SealedError> {
        if !path.exists() {
            let mut bytes = [0u8; 32];
            SystemRandom::new().fill(&mut bytes).map_err(|_| SealedError::BadKey(path.to_owned()))?;
            match crate::fsio::create_new(path, &bytes, crate::fsio::PRIVATE_FILE) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {} // made meanwhile: use that one
                other => other.map_err(io(path))?,
            }
        }
        let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SealedError::KeyTooOpen { path: path.to_owned(), mode });
        }
        let bytes = std::fs::read(path).map_err(io(path))?;
        if bytes.len() < 32 {
            return Err(SealedError::TruncatedKey { path: path.to_owned(), len: bytes.len() });
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealedError::BadKey(path.to_owned()))?;
        Ok(SealKey(LessSafeKey::new(unbound)))
    }

    /// The plaintext of the sealed file at `path`, or None when there is no such file.
    pub fn open(&self, path: &Path, magic: &'static [u8]) -> Result<Option<Vec<u8>>, SealedError> {
        Ok(self.open_any(path, &[magic])?.map(|(_, plain)| plain))
    }

    /// The magic and plaintext of the sealed file at `path`, which may start with any of `magics` (the
    /// forms of one kind of file), or None when there is no such file.
    pub fn open_any(
        &self,
        path: &Path,
        magics: &[&'static [u8]],
    ) -> Result<Option<(&'static [u8], Vec<u8>)>, SealedError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        let (magic, rest) = magics
            .iter()
            .find_map(|m| Some((*m, data.strip_prefix(*m)?)))
            .ok_or_else(|| SealedError::Format(path.to_owned()))?;
        if rest.len() < NONCE_LEN + 16 {
            return Err(SealedError::Format(path.to_owned()));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealedError::Format(path.to_owned()))?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(magic), &mut sealed)
            .map_err(|_| SealedError::Decrypt(path.to_owned()))?;
        let len = plain.len();
        sealed.truncate(len);
        Ok(Some((magic, sealed)))
    }

    /// Encrypts `plain` and replaces the file at `path` atomically.
    pub fn seal(&self, path: &Path, magic: &'static [u8], plain: Vec<u8>) -> Result<(), SealedError> {
        let mut data = plain;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealedError::Decrypt(path.to_owned()))?;
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(magic), &mut data)
            .map_err(|_| SealedError::Decrypt(path.to_owned()))?;
        let mut file = Vec::with_capacity(magic.len() + NONCE_LEN + data.len());
        file.extend_from_slice(magic);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&data);
        crate::fsio::write(path, &file, crate::fsio::PRIVATE_FILE).map_err(io(path))?;
        Ok(())
    }
}
