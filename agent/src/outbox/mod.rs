//! The durable outbox (docs/outbox.md): SQLite in WAL mode with full fsync; the only owner of
//! "delivered". The file carries its schema version (`PRAGMA user_version`); opening migrates an older
//! file step by step and refuses a newer one rather than guess at its layout.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub mod settings;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Db { path: String, source: rusqlite::Error },
    #[error(
        "outbox {path}: schema version {found} is newer than this vigil knows ({known}); it was written by a \
         newer vigil: run that version again (its undelivered events are in this file), or move the file aside"
    )]
    TooNew { path: String, found: i64, known: i64 },
}

/// The migrations, in order: `MIGRATIONS[n]` takes a file from schema version n to n + 1. Files made
/// before versions existed read as version 0 and have exactly version 1's tables (hence `IF NOT EXISTS`),
/// as does a brand-new, empty file. Append a step for every schema change; never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the records and the command nonces.
    "CREATE TABLE IF NOT EXISTS records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        camera TEXT,
        evidence TEXT,
        created_ms INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);",
];

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the file at `path` from its version to [`SCHEMA_VERSION`], one transaction per step (the
/// version is stored in the same transaction as the step, so a crash leaves a consistent version).
fn migrate(conn: &mut Connection, path: &str) -> Result<(), OutboxError> {
    let db = |source| OutboxError::Db { path: path.to_owned(), source };
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
    if found > SCHEMA_VERSION {
        return Err(OutboxError::TooNew { path: path.to_owned(), found, known: SCHEMA_VERSION });
    }
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0)).map_err(db)?;
    for (from, step) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(step).map_err(db)?;
        tx.pragma_update(None, "user_version", from as i64 + 1).map_err(db)?;
        tx.commit().map_err(db)?;
    }
    if tables > 0 && found < SCHEMA_VERSION {
        tracing::info!(path, from = found, to = SCHEMA_VERSION, "outbox schema migrated");
    }
    Ok(())
}

/// What the outbox did since it was opened (logged with the publisher's counters, docs/outbox.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Records appended.
    pub appended: u64,
    /// Records acknowledged by the broker and deleted.
    pub delivered: u64,
    /// Undelivered records dropped because the outbox was full.
    pub dropped: u64,
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
    appended: u64,
    delivered: u64,
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
        let mut conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
        // The version is checked before anything is changed: a newer vigil's file is left as it was.
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
        if found > SCHEMA_VERSION {
            return Err(OutboxError::TooNew { path: name, found, known: SCHEMA_VERSION });
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        // FULL: every commit fsyncs the WAL, so an appended record survives power loss.
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        migrate(&mut conn, &name)?;
        Ok(Outbox {
            conn,
            path: name,
            max_records: max_records.max(1),
            dropped: AtomicU64::new(0),
            appended: 0,
            delivered: 0,
        })
    }

    /// What the outbox did since it was opened.
    pub fn counters(&self) -> Counters {
        Counters { appended: self.appended, delivered: self.delivered, dropped: self.dropped.load(Ordering::Relaxed) }
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
        let dropped_before = self.dropped.load(Ordering::Relaxed);
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
                    dropped += 1;
                    tracing::error!(
                        event_id,
                        max_records = self.max_records,
                        dropped_total = dropped_before + dropped,
                        "OUTBOX FULL: oldest undelivered event dropped to make room (its evidence bundle is kept)"
                    );
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
        self.appended += ids.len() as u64;
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
        let deleted = self.conn.execute("DELETE FROM records WHERE id = ?1", [id]).map_err(self.db())?;
        self.delivered += deleted as u64;
        Ok(evidence.flatten())
    }

    /// Whether a record with this event id waits in the outbox.
    pub fn contains(&self, event_id: &str) -> Result<bool, OutboxError> {
        let found: Option<i64> = self
            .conn
            .query_row("SELECT id FROM records WHERE event_id = ?1", [event_id], |r| r.get(0))
            .optional()
            .map_err(self.db())?;
        Ok(found.is_some())
    }

    pub fn len(&self) -> Result<u64, OutboxError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).map_err(self.db())?;
        Ok(n as u64)
    }

    /// When the oldest undelivered record was appended (None: nothing is waiting).
    pub fn oldest_created(&self) -> Result<Option<SystemTime>, OutboxError> {
        let ms: Option<i64> =
            self.conn.query_row("SELECT MIN(created_ms) FROM records", [], |r| r.get(0)).map_err(self.db())?;
        Ok(ms.map(|ms| UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)))
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
    use std::sync::{Arc, Mutex};

    /// What `f` logs on this thread, as text.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink(Arc::new(Mutex::new(Vec::new())));
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
        (out, text)
    }

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
        assert_eq!(o.counters(), Counters { appended: 5, delivered: 0, dropped: 2 });
        assert_eq!(o.pending_after(0, 1).unwrap()[0].event_id, "e2");
        assert!(o.remember_nonce("n1", i64::MAX).unwrap());
        assert!(!o.remember_nonce("n1", i64::MAX).unwrap());
    }

    /// docs/outbox.md promises the `dropped` counter in the log: each drop says how many so far.
    #[test]
    fn dropped_counter_is_logged_with_each_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&dir.path().join("o.sqlite"), 2).unwrap();
        let ((), log) = logged(|| {
            for n in 0..4 {
                o.append(&rec(n)).unwrap();
            }
        });
        let drops: Vec<&str> = log.lines().filter(|l| l.contains("OUTBOX FULL")).collect();
        assert_eq!(drops.len(), 2, "{log}");
        assert!(
            drops[0].contains("ERROR") && drops[0].contains("event_id=\"e0\"") && drops[0].contains("dropped_total=1")
        );
        assert!(drops[1].contains("event_id=\"e1\"") && drops[1].contains("dropped_total=2"), "{log}");
        o.delivered(o.pending_after(0, 1).unwrap()[0].id).unwrap();
        assert_eq!(o.counters(), Counters { appended: 4, delivered: 1, dropped: 2 });
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    /// A file written before the schema had a version (exactly the old DDL, with an undelivered record)
    /// is migrated to the current version and keeps its records.
    #[test]
    fn unversioned_outbox_is_migrated_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        {
            let old = Connection::open(&path).unwrap();
            old.pragma_update(None, "journal_mode", "WAL").unwrap();
            old.execute_batch(
                "CREATE TABLE IF NOT EXISTS records (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id TEXT NOT NULL UNIQUE,
                    topic TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    camera TEXT,
                    evidence TEXT,
                    created_ms INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);
                 INSERT INTO records (event_id, topic, payload, camera, evidence, created_ms)
                   VALUES ('old-1', 't', x'7b7d', 'c', 'ev-1', 1);",
            )
            .unwrap();
        }
        assert_eq!(user_version(&path), 0);
        let (opened, log) = logged(|| Outbox::open(&path, 100));
        let mut o = opened.unwrap();
        assert!(log.contains("outbox schema migrated") && log.contains("from=0") && log.contains("to=1"), "{log}");
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let pending = o.pending_after(0, 10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].event_id.as_str(), pending[0].evidence.as_deref()), ("old-1", Some("ev-1")));
        let id = o.append(&rec(7)).unwrap();
        assert!(id > pending[0].id);
        assert_eq!(o.delivered(pending[0].id).unwrap().as_deref(), Some("ev-1"));
        drop(o);
        // Opening a current file again changes nothing and says nothing.
        let (again, log) = logged(|| Outbox::open(&path, 100));
        assert_eq!(again.unwrap().len().unwrap(), 1);
        assert!(!log.contains("migrated"), "{log}");
    }

    /// A file from a newer vigil is refused with an error naming both versions, and left untouched.
    #[test]
    fn outbox_from_a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        {
            let newer = Connection::open(&path).unwrap();
            newer.execute_batch("CREATE TABLE records2 (id INTEGER PRIMARY KEY, body BLOB);").unwrap();
            newer.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        }
        let err = Outbox::open(&path, 100).err().expect("a newer schema must be refused");
        assert!(
            matches!(err, OutboxError::TooNew { found, known, .. } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION)
        );
        let message = err.to_string();
        let expected =
            format!("schema version {} is newer than this vigil knows ({SCHEMA_VERSION})", SCHEMA_VERSION + 1);
        assert!(message.contains(&expected), "{message}");
        assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete", "the journal mode of a refused file was changed");
        let tables: i64 =
            conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'records'", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0, "tables were created in a refused file");
    }
}
