//! Faces that settled bills, kept for card-lending checks: embeddings only (never images), sealed like
//! the gallery, and only for `settlement.face_retention_days` — then forgotten for good.
//!
//! One log for the whole box, so the same face at two different windows is caught too. The file is
//! rewritten (atomically) on every settlement: a window serves a few hundred settlements a day, and the
//! whole log of 30 days is a few MB.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::sealed::{SealKey, SealedError};
use crate::analyze::embedder::Embedding;

const MAGIC: &[u8] = b"VIGILSET1\n";

#[derive(Serialize, Deserialize)]
struct Stored {
    transaction_id: String,
    claimed_id: String,
    /// Unix milliseconds.
    at_ms: u64,
    embedding: Vec<f32>,
}

/// A settlement face remembered for card-lending checks.
#[derive(Debug, Clone)]
pub struct SettledFace {
    pub transaction_id: String,
    pub claimed_id: String,
    pub at: SystemTime,
    pub embedding: Embedding,
}

pub struct SettlementLog {
    path: PathBuf,
    key: SealKey,
    faces: Vec<SettledFace>,
    retention: Duration,
}

impl SettlementLog {
    /// Opens the log and forgets what is past retention at `now`.
    pub fn open(path: &Path, key_path: &Path, retention: Duration, now: SystemTime) -> Result<Self, SealedError> {
        let key = SealKey::load_or_create(key_path)?;
        let stored: Vec<Stored> = match key.open(path, MAGIC)? {
            Some(plain) => serde_json::from_slice(&plain).map_err(|_| SealedError::Format(path.to_owned()))?,
            None => Vec::new(),
        };
        let faces = stored
            .into_iter()
            .filter_map(|s| {
                Some(SettledFace {
                    embedding: s.embedding.try_into().ok()?,
                    transaction_id: s.transaction_id,
                    claimed_id: s.claimed_id,
                    at: UNIX_EPOCH + Duration::from_millis(s.at_ms),
                })
            })
            .collect();
        let mut log = SettlementLog { path: path.to_owned(), key, faces, retention };
        if log.forget_expired(now) > 0 {
            log.save()?;
        }
        Ok(log)
    }

    pub fn faces(&self) -> &[SettledFace] {
        &self.faces
    }

    /// Records a settled face (durably) and forgets expired ones.
    pub fn add(&mut self, face: SettledFace, now: SystemTime) -> Result<(), SealedError> {
        self.faces.push(face);
        self.forget_expired(now);
        self.save()
    }

    /// Drops faces older than the retention; rewrites the file when any went. Returns how many went.
    pub fn expire(&mut self, now: SystemTime) -> Result<usize, SealedError> {
        let gone = self.forget_expired(now);
        if gone > 0 {
            self.save()?;
        }
        Ok(gone)
    }

    fn forget_expired(&mut self, now: SystemTime) -> usize {
        let before = self.faces.len();
        let retention = self.retention;
        self.faces.retain(|f| now.duration_since(f.at).unwrap_or_default() <= retention);
        before - self.faces.len()
    }

    fn save(&self) -> Result<(), SealedError> {
        let stored: Vec<Stored> = self
            .faces
            .iter()
            .map(|f| Stored {
                transaction_id: f.transaction_id.clone(),
                claimed_id: f.claimed_id.clone(),
                at_ms: f.at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
                embedding: f.embedding.to_vec(),
            })
            .collect();
        self.key.seal(&self.path, MAGIC, serde_json::to_vec(&stored).expect("faces serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(tx: &str, at: SystemTime) -> SettledFace {
        SettledFace { transaction_id: tx.into(), claimed_id: "p-1".into(), at, embedding: [0.125; 128] }
    }

    #[test]
    fn survives_a_restart_encrypted_and_forgets_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = (dir.path().join("settlement-faces.bin"), dir.path().join("keys/gallery.key"));
        let day = Duration::from_secs(86_400);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut log = SettlementLog::open(&path, &key, 30 * day, t0).unwrap();
        log.add(face("tx-1", t0), t0).unwrap();
        log.add(face("tx-2", t0 + 10 * day), t0 + 10 * day).unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("tx-1"), "the log must be encrypted");

        let log = SettlementLog::open(&path, &key, 30 * day, t0 + 20 * day).unwrap();
        let txs: Vec<_> = log.faces().iter().map(|f| f.transaction_id.as_str()).collect();
        assert_eq!(txs, ["tx-1", "tx-2"]);
        assert_eq!(log.faces()[0].embedding, [0.125; 128]);

        // Day 35: tx-1 is past 30 days and is gone from memory and from the file.
        let mut log = SettlementLog::open(&path, &key, 30 * day, t0 + 35 * day).unwrap();
        assert_eq!(log.faces().len(), 1);
        assert_eq!(log.expire(t0 + 41 * day).unwrap(), 1);
        assert!(SettlementLog::open(&path, &key, 30 * day, t0 + 41 * day).unwrap().faces().is_empty());

        // An altered file is refused, not silently emptied.
        let mut bad = std::fs::read(&path).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&path, bad).unwrap();
        assert!(matches!(SettlementLog::open(&path, &key, 30 * day, t0), Err(SealedError::Decrypt(_))));
    }
}
