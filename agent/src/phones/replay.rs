//! What the box remembers of earlier uploads (`<data_dir>/checkins.sqlite`): per ward, each judged
//! upload's SHA-256 and perceptual hash (the `replay` check compares a new photo with those of the last
//! `[phones] replay_window_days`), and per phone, the answer each capture got (a re-sent capture gets the
//! same answer, not a second event).
//!
//! SQLite in WAL mode, one connection per user (the checks, the check-in service): a crash loses at most
//! the row being written, which only means a re-sent capture is judged again. Rows older than the window
//! are pruned as uploads come in. The file carries its schema version (`PRAGMA user_version`), as the
//! outbox's does; a newer file is refused rather than guessed at.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::phash;

/// The file under the data directory.
pub const FILE_NAME: &str = "checkins.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("check-in index {path}: {source}")]
    Db { path: String, source: rusqlite::Error },
    #[error(
        "check-in index {path}: schema version {found} is newer than this vigil knows ({known}); move the file aside"
    )]
    TooNew { path: String, found: i64, known: i64 },
}

/// `MIGRATIONS[n]` takes the file from version n to n + 1; append, never edit a shipped step.
const MIGRATIONS: &[&str] = &["CREATE TABLE uploads (
        ward TEXT NOT NULL,
        capture_id TEXT NOT NULL,
        phone TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        phash INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (ward, capture_id));
     CREATE INDEX uploads_by_time ON uploads (ward, received_ms);
     CREATE INDEX uploads_by_sha ON uploads (ward, sha256);
     CREATE TABLE answers (
        phone TEXT NOT NULL,
        capture_id TEXT NOT NULL,
        answer TEXT NOT NULL,
        answered_ms INTEGER NOT NULL,
        PRIMARY KEY (phone, capture_id));
     CREATE INDEX answers_by_time ON answers (answered_ms);"];

const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Prune at most this often (a prune is a range delete on an index: cheap, but not per upload).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// An upload as the replay check records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub ward: String,
    pub capture_id: uuid::Uuid,
    pub phone: String,
    /// Lower-case hex of the body's SHA-256.
    pub sha256: String,
    pub phash: u64,
    pub received_at: SystemTime,
    /// The event (and evidence bundle) the upload became.
    pub event_id: uuid::Uuid,
}

/// An earlier upload a new one matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Earlier {
    pub capture_id: String,
    pub phone: String,
    pub event_id: String,
    pub received_at: SystemTime,
    /// Differing bits of the perceptual hashes (0 for an exact copy).
    pub hamming_bits: u32,
}

/// What a photo matched, if anything.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    New,
    /// Byte-for-byte the same photo (same SHA-256).
    Exact(Earlier),
    /// The same picture re-encoded or resized: the nearest earlier one within the threshold.
    Near(Earlier),
}

pub struct ReplayIndex {
    conn: Connection,
    path: String,
    window: Duration,
    last_prune: Option<SystemTime>,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl ReplayIndex {
    /// `<data_dir>/checkins.sqlite`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE_NAME)
    }

    /// Opens (creating or migrating) the index; rows older than `window_days` are neither matched nor
    /// kept.
    pub fn open(path: &Path, window_days: u32) -> Result<ReplayIndex, ReplayError> {
        let name = path.display().to_string();
        let db = |source| ReplayError::Db { path: name.clone(), source };
        let mut conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
        if found > SCHEMA_VERSION {
            return Err(ReplayError::TooNew { path: name, found, known: SCHEMA_VERSION });
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db)?;
        for (from, step) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            let tx = conn.transaction().map_err(db)?;
            tx.execute_batch(step).map_err(db)?;
            tx.pragma_update(None, "user_version", from as i64 + 1).map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(ReplayIndex {
            conn,
            path: name,
            window: Duration::from_secs(u64::from(window_days) * 86_400),
            last_prune: None,
        })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> ReplayError + '_ {
        |source| ReplayError::Db { path: self.path.clone(), source }
    }

    /// Compares a photo with the ward's uploads received within the window before `now`, other than
    /// `capture_id` itself (a re-send of the same capture is not a replay of it). An exact copy wins over
    /// a near one; among near ones, the nearest (then the earliest).
    pub fn seen(
        &self,
        ward: &str,
        capture_id: uuid::Uuid,
        sha256: &str,
        phash: u64,
        max_bits: u32,
        now: SystemTime,
    ) -> Result<Seen, ReplayError> {
        let since = ms(now.checked_sub(self.window).unwrap_or(UNIX_EPOCH));
        let capture = capture_id.to_string();
        let earlier = |row: &rusqlite::Row| -> rusqlite::Result<(Earlier, String, i64)> {
            Ok((
                Earlier {
                    capture_id: row.get(0)?,
                    phone: row.get(1)?,
                    event_id: row.get(2)?,
                    received_at: from_ms(row.get(3)?),
                    hamming_bits: 0,
                },
                row.get(4)?,
                row.get(5)?,
            ))
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT capture_id, phone, event_id, received_ms, sha256, phash FROM uploads
                 WHERE ward = ?1 AND received_ms >= ?2 AND capture_id != ?3 ORDER BY received_ms",
            )
            .map_err(self.db())?;
        let rows = stmt.query_map(params![ward, since, capture], earlier).map_err(self.db())?;
        let mut near: Option<Earlier> = None;
        for row in rows {
            let (mut found, sha, hash) = row.map_err(self.db())?;
            if sha == sha256 {
                found.hamming_bits = phash::distance(hash as u64, phash);
                return Ok(Seen::Exact(found));
            }
            let bits = phash::distance(hash as u64, phash);
            if bits <= max_bits && near.as_ref().is_none_or(|n| bits < n.hamming_bits) {
                found.hamming_bits = bits;
                near = Some(found);
            }
        }
        Ok(near.map_or(Seen::New, Seen::Near))
    }

    /// [`ReplayIndex::seen`] and [`ReplayIndex::record`] as one write transaction (`BEGIN IMMEDIATE`):
    /// the checkers each have their own connection, and without it two copies of one photo judged at the
    /// same instant would both find nothing and both pass.
    pub fn seen_then_record(&mut self, upload: &Upload, max_bits: u32) -> Result<Seen, ReplayError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(self.db())?;
        let result = self
            .seen(&upload.ward, upload.capture_id, &upload.sha256, upload.phash, max_bits, upload.received_at)
            .and_then(|seen| self.insert(upload).map(|()| seen));
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = self.conn.execute_batch(end).map_err(self.db()) {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        let seen = result?;
        self.prune_now_and_then(upload.received_at)?;
        Ok(seen)
    }

    /// Records a judged upload (a re-send of the same capture replaces its row), and prunes rows older
    /// than the window now and then.
    pub fn record(&mut self, upload: &Upload) -> Result<(), ReplayError> {
        self.insert(upload)?;
        self.prune_now_and_then(upload.received_at)
    }

    fn insert(&self, upload: &Upload) -> Result<(), ReplayError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO uploads (ward, capture_id, phone, sha256, phash, received_ms, event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    upload.ward,
                    upload.capture_id.to_string(),
                    upload.phone,
                    upload.sha256,
                    upload.phash as i64,
                    ms(upload.received_at),
                    upload.event_id.to_string()
                ],
            )
            .map_err(self.db())?;
        Ok(())
    }

    fn prune_now_and_then(&mut self, now: SystemTime) -> Result<(), ReplayError> {
        if self.last_prune.is_none_or(|last| now.duration_since(last).unwrap_or_default() >= PRUNE_EVERY) {
            self.prune(now)?;
        }
        Ok(())
    }

    /// The answer (JSON, as the phone was sent it) a capture of this phone already got.
    pub fn answered(&self, phone: &str, capture_id: uuid::Uuid) -> Result<Option<String>, ReplayError> {
        self.conn
            .query_row(
                "SELECT answer FROM answers WHERE phone = ?1 AND capture_id = ?2",
                params![phone, capture_id.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())
    }

    /// Remembers the answer a capture got, for a re-send. The first answer stays: a capture is judged once.
    pub fn remember(
        &mut self,
        phone: &str,
        capture_id: uuid::Uuid,
        answer_json: &str,
        at: SystemTime,
    ) -> Result<(), ReplayError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO answers (phone, capture_id, answer, answered_ms) VALUES (?1, ?2, ?3, ?4)",
                params![phone, capture_id.to_string(), answer_json, ms(at)],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Deletes uploads and answers older than the window before `now`; returns how many rows went.
    pub fn prune(&mut self, now: SystemTime) -> Result<usize, ReplayError> {
        let before = ms(now.checked_sub(self.window).unwrap_or(UNIX_EPOCH));
        let uploads =
            self.conn.execute("DELETE FROM uploads WHERE received_ms < ?1", params![before]).map_err(self.db())?;
        let answers =
            self.conn.execute("DELETE FROM answers WHERE answered_ms < ?1", params![before]).map_err(self.db())?;
        self.last_prune = Some(now);
        if uploads + answers > 0 {
            tracing::debug!(uploads, answers, "check-in index pruned past the replay window");
        }
        Ok(uploads + answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(ward: &str, n: u128, sha: &str, phash: u64, at: SystemTime) -> Upload {
        Upload {
            ward: ward.into(),
            capture_id: uuid::Uuid::from_u128(n),
            phone: "ph-aaaaaaaaaa".into(),
            sha256: sha.into(),
            phash,
            received_at: at,
            event_id: uuid::Uuid::from_u128(1000 + n),
        }
    }

    /// Two checkers (two connections) judging copies of one photo at the same time: exactly one is new,
    /// whatever the interleaving.
    #[test]
    fn one_photo_judged_twice_at_once_is_new_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = ReplayIndex::path_in(dir.path());
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for round in 0..20u128 {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            // Opened here, one after the other (as the runtime opens its checkers' connections).
            let indexes: Vec<ReplayIndex> = (0..2).map(|_| ReplayIndex::open(&path, 30).unwrap()).collect();
            let judges: Vec<_> = (0..2u128)
                .zip(indexes)
                .map(|(n, mut index)| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let sha = format!("{round:064x}");
                        barrier.wait();
                        index.seen_then_record(&upload("w", round * 2 + n, &sha, round as u64, at), 0).unwrap()
                    })
                })
                .collect();
            let seen: Vec<Seen> = judges.into_iter().map(|j| j.join().unwrap()).collect();
            let new = seen.iter().filter(|s| matches!(s, Seen::New)).count();
            assert_eq!(new, 1, "round {round}: {seen:?}");
        }
    }

    #[test]
    fn exact_and_near_copies_are_found_within_the_ward_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = ReplayIndex::open(&ReplayIndex::path_in(dir.path()), 30).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let day = Duration::from_secs(86_400);
        index.record(&upload("w3", 1, "aa", 0xFFFF_0000_FFFF_0000, t0)).unwrap();
        index.record(&upload("w3", 2, "bb", 0x0000_FFFF_0000_FFFF, t0 + day)).unwrap();
        index.record(&upload("w4", 3, "cc", 0x1234_5678_9ABC_DEF0, t0)).unwrap();
        let now = t0 + 2 * day;
        let new = uuid::Uuid::from_u128(9);
        // Same bytes.
        match index.seen("w3", new, "aa", 0, 10, now).unwrap() {
            Seen::Exact(e) => {
                assert_eq!(e.capture_id, uuid::Uuid::from_u128(1).to_string());
                assert_eq!(e.event_id, uuid::Uuid::from_u128(1001).to_string());
            }
            other => panic!("{other:?}"),
        }
        // Three bits off the second one.
        match index.seen("w3", new, "zz", 0x0000_FFFF_0000_FFF8, 10, now).unwrap() {
            Seen::Near(e) => assert_eq!((e.capture_id, e.hamming_bits), (uuid::Uuid::from_u128(2).to_string(), 3)),
            other => panic!("{other:?}"),
        }
        // Another ward's photo is not this ward's replay.
        assert_eq!(index.seen("w3", new, "cc", 0x1234_5678_9ABC_DEF0, 10, now).unwrap(), Seen::New);
        // The capture itself (a re-send) is not its own replay.
        assert_eq!(index.seen("w3", uuid::Uuid::from_u128(1), "aa", 0xFFFF_0000_FFFF_0000, 10, now).unwrap(), {
            Seen::New
        });
        // Past the window.
        let later = t0 + 31 * day;
        assert!(matches!(index.seen("w3", new, "aa", 0, 10, later).unwrap(), Seen::New));
        assert!(matches!(index.seen("w3", new, "bb", 0, 10, later).unwrap(), Seen::Exact(_)));
        assert_eq!(index.prune(later).unwrap(), 2, "w3's and w4's first uploads");
    }

    #[test]
    fn answers_are_remembered_once_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = ReplayIndex::path_in(dir.path());
        let capture = uuid::Uuid::from_u128(7);
        let now = SystemTime::now();
        {
            let mut index = ReplayIndex::open(&path, 30).unwrap();
            assert_eq!(index.answered("ph-1", capture).unwrap(), None);
            index.remember("ph-1", capture, r#"{"verdict":"verified"}"#, now).unwrap();
            index.remember("ph-1", capture, r#"{"verdict":"rejected"}"#, now).unwrap();
        }
        let index = ReplayIndex::open(&path, 30).unwrap();
        assert_eq!(index.answered("ph-1", capture).unwrap().as_deref(), Some(r#"{"verdict":"verified"}"#));
        assert_eq!(index.answered("ph-2", capture).unwrap(), None, "another phone's capture id is its own");
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = ReplayIndex::path_in(dir.path());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(ReplayIndex::open(&path, 30), Err(ReplayError::TooNew { found: 99, .. })));
    }
}
