//! The durable outbox (docs/outbox.md): SQLite in WAL mode with full fsync; the only owner of
//! "delivered".

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Db { path: String, source: rusqlite::Error },
}

/// A record to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: i64,
    pub event_id: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub camera: Option<String>,
    /// Event whose evidence bundle is acknowledged when this record is delivered.
    pub evidence: Option<String>,
}

/// A record before it is appended.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub event_id: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub camera: Option<String>,
    pub evidence: Option<String>,
}

pub struct Outbox {
    conn: Connection,
    path: String,
    max_records: u64,
    /// Records dropped because the outbox was full.
    pub dropped: AtomicU64,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Outbox {
    pub fn open(path: &Path, max_records: u64) -> Result<Outbox, OutboxError> {
        let name = path.display().to_string();
        let db = |source| OutboxError::Db { path: name.clone(), source };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        // FULL: every commit fsyncs the WAL, so an appended record survives power loss.
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL UNIQUE,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                camera TEXT,
                evidence TEXT,
                created_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);",
        )
        .map_err(db)?;
        Ok(Outbox { conn, path: name, max_records: max_records.max(1), dropped: AtomicU64::new(0) })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> OutboxError + '_ {
        move |source| OutboxError::Db { path: self.path.clone(), source }
    }

    /// Appends one record durably.
    pub fn append(&mut self, record: &NewRecord) -> Result<i64, OutboxError> {
        Ok(self.append_batch(std::slice::from_ref(record))?[0])
    }

    /// Appends records in one transaction (one fsync: group commit). Returns their ids.
    pub fn append_batch(&mut self, records: &[NewRecord]) -> Result<Vec<i64>, OutboxError> {
        let path = self.path.clone();
        let db = |source| OutboxError::Db { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(db)?;
        let mut ids = Vec::with_capacity(records.len());
        let mut dropped = 0;
        {
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).map_err(db)?;
            let overflow = (count as u64 + records.len() as u64).saturating_sub(self.max_records);
            if overflow > 0 {
                let mut stmt = tx.prepare("SELECT id, event_id FROM records ORDER BY id LIMIT ?1").map_err(db)?;
                let victims: Vec<(i64, String)> = stmt
                    .query_map([overflow as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?;
                for (id, event_id) in victims {
                    tx.execute("DELETE FROM records WHERE id = ?1", [id]).map_err(db)?;
                    tracing::error!(
                        event_id,
                        max_records = self.max_records,
                        "OUTBOX FULL: oldest undelivered event dropped to make room (its evidence bundle is kept)"
                    );
                    dropped += 1;
                }
            }
            let mut insert = tx
                .prepare("INSERT INTO records (event_id, topic, payload, camera, evidence, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(db)?;
            for r in records {
                insert.execute(params![r.event_id, r.topic, r.payload, r.camera, r.evidence, now_ms()]).map_err(db)?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(db)?;
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        Ok(ids)
    }

    /// Up to `limit` undelivered records with id > `after`, oldest first.
    pub fn pending_after(&self, after: i64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, event_id, topic, payload, camera, evidence FROM records WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(Record {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    topic: r.get(2)?,
                    payload: r.get(3)?,
                    camera: r.get(4)?,
                    evidence: r.get(5)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Marks a record delivered (its PUBACK was matched): deletes it. Returns its evidence event, if any.
    pub fn delivered(&mut self, id: i64) -> Result<Option<String>, OutboxError> {
        let evidence: Option<Option<String>> = self
            .conn
            .query_row("SELECT evidence FROM records WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(self.db())?;
        self.conn.execute("DELETE FROM records WHERE id = ?1", [id]).map_err(self.db())?;
        Ok(evidence.flatten())
    }

    pub fn len(&self) -> Result<u64, OutboxError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).map_err(self.db())?;
        Ok(n as u64)
    }

    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Records a command nonce until `expires_ms`; false if it was already seen (a replay).
    pub fn remember_nonce(&mut self, nonce: &str, expires_ms: i64) -> Result<bool, OutboxError> {
        self.conn.execute("DELETE FROM nonces WHERE expires_ms < ?1", [now_ms()]).map_err(self.db())?;
        let inserted = self
            .conn
            .execute("INSERT OR IGNORE INTO nonces (nonce, expires_ms) VALUES (?1, ?2)", params![nonce, expires_ms])
            .map_err(self.db())?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> NewRecord {
        NewRecord {
            event_id: format!("e{n}"),
            topic: "t".into(),
            payload: vec![n as u8],
            camera: Some("c".into()),
            evidence: None,
        }
    }

    #[test]
    fn append_send_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let mut o = Outbox::open(&path, 100).unwrap();
        let ids = o.append_batch(&[rec(1), rec(2), rec(3)]).unwrap();
        assert_eq!(o.pending_after(0, 2).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
        o.delivered(ids[0]).unwrap();
        drop(o);
        let o = Outbox::open(&path, 100).unwrap();
        assert_eq!(
            o.pending_after(0, 10).unwrap().iter().map(|r| r.event_id.clone()).collect::<Vec<_>>(),
            ["e2", "e3"]
        );
    }

    #[test]
    fn full_outbox_drops_the_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&dir.path().join("o.sqlite"), 3).unwrap();
        for n in 0..5 {
            o.append(&rec(n)).unwrap();
        }
        assert_eq!(o.len().unwrap(), 3);
        assert_eq!(o.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(o.pending_after(0, 1).unwrap()[0].event_id, "e2");
        assert!(o.remember_nonce("n1", i64::MAX).unwrap());
        assert!(!o.remember_nonce("n1", i64::MAX).unwrap());
    }
}
