//! The console's store: `<data_dir>/console.sqlite` (SQLite, WAL), opened by `vigil users` and by the
//! running agent alike, so nothing is cached: a user removed from the command line is refused at the
//! next request, their sessions gone with them.
//!
//! - `users`: name, role, argon2id hash ([`super::password`]).
//! - `sessions`: the SHA-256 of each session id (the id itself, 256 random bits, lives only in the
//!   browser's cookie: a copy of this file signs nobody in), its user, CSRF token, creation and last use.
//!   A session ends at logout, after `session_idle_mins` unused, `session_max_hours` after sign-in, and
//!   when its user is removed or given a new password.
//! - `failures`: failed sign-ins counted per name and per address; at `lockout_failures` the key is
//!   locked for `lockout_mins`. A success clears its name's and address's counts.
//! - `audit`: append-only (triggers refuse UPDATE and DELETE) — who, role, what, when, from where,
//!   outcome, details. [`Store::audit`] is the one way in; every console change calls it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::password;
use crate::hashing::sha256_hex;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        changed_ms INTEGER NOT NULL,
        must_change INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS sessions (
        id_sha256 TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        address TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        used_ms INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS failures (
        key TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        locked_until_ms INTEGER);
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        who TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        address TEXT NOT NULL,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL);
    CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE IF NOT EXISTS relay (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL);";

/// 2: `users.must_change` (a one-time password, changed at the first sign-in).
const SCHEMA_VERSION: i64 = 2;

/// What a console user may do. Checked by the HTTP layer's role guard (`http::console::Require`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sets the box up: cameras, regions, references, people, users' work.
    Installer,
    /// Reviews events and evidence, places legal holds, reads the audit log.
    Supervisor,
    /// Looks: cameras and events, nothing changed.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Installer => "installer",
            Role::Supervisor => "supervisor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Installer, Role::Supervisor, Role::Viewer].into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("console store {path}: {source}")]
    Db { path: String, source: rusqlite::Error },
    #[error("console store {path}: schema version {found} is newer than this vigil knows ({SCHEMA_VERSION})")]
    TooNew { path: String, found: i64 },
    #[error("no console user {0:?}")]
    UnknownUser(String),
    #[error("a console user {0:?} exists already")]
    UserExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
}

/// A user as `vigil users list` and `/console/api/me` show it (never the hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub name: String,
    pub role: Role,
    #[serde(with = "humantime_serde_ms")]
    pub created_at: SystemTime,
}

/// A signed-in session, as a request finds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token the page sends back in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    pub created_at: SystemTime,
    /// The user signed in with a one-time password: nothing but choosing their own is allowed.
    pub must_change: bool,
    /// The SHA-256 of the session's id, as the store keys it.
    key: String,
}

/// A new session: the id goes into the cookie (and nowhere else).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub session: Session,
}

/// How sign-ins are judged: from `[console]`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub idle: Duration,
    pub max_age: Duration,
    pub lockout_failures: u32,
    pub lockout: Duration,
}

/// Why a sign-in was refused. The messages never say whether the name exists.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the name or the password is wrong")]
    BadCredentials,
    #[error("too many failed sign-ins for this name or from this address: locked for {} s more", retry_after.as_secs().max(1))]
    Locked { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a password change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the current password is wrong")]
    WrongCurrent,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a session cookie does not sign anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Unknown,
    Idle,
    MaxAge,
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "humantime_serde_ms")]
    pub at: SystemTime,
    /// The console user, `cli` for `vigil users`, or the name tried at a failed sign-in.
    pub who: String,
    /// Their role, `-` when none (a failed sign-in, the CLI).
    pub role: String,
    /// What was done, snake_case: `login`, `logout`, `login_failed`, `login_locked`, `user_add`, ...
    pub action: String,
    /// The client's address, `-` for the CLI.
    pub address: String,
    /// `ok`, `refused`, `locked`, `failed`.
    pub outcome: String,
    /// What was changed, as JSON (never a password or a token).
    pub details: serde_json::Value,
}

/// What [`Store::audit`] appends.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub who: &'a str,
    pub role: Option<Role>,
    pub action: &'a str,
    pub address: &'a str,
    pub outcome: &'a str,
    pub details: serde_json::Value,
}

/// Who the CLI's changes are audited as.
pub const CLI: &str = "cli";

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// The store of a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("console.sqlite")
    }

    /// Opens (creating when absent) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let db = |source| StoreError::Db { path: name.clone(), source };
        let mut conn = Connection::open(path).map_err(db)?;
        // The CLI and the agent may write at the same moment: wait for the other's short transaction.
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: name, found });
        }
        let tx = conn.transaction().map_err(db)?;
        if found == 1 {
            tx.execute_batch("ALTER TABLE users ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0").map_err(db)?;
        }
        tx.execute_batch(SCHEMA).map_err(db)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Store { conn: Mutex::new(conn), path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Db { path: self.path.display().to_string(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one row to the audit log. Errors are the caller's to report: a change whose audit row
    /// cannot be written must not be reported as done. The agent's audit relay (`runtime::audit`) sends
    /// every row, the CLI's too, as a `console_audit` MQTT event.
    pub fn audit(&self, entry: Audit<'_>, now: SystemTime) -> Result<i64, StoreError> {
        let conn = self.lock();
        insert_audit(&conn, &entry, now).map_err(self.db())?;
        Ok(conn.last_insert_rowid())
    }

    /// The newest `limit` rows of the audit log, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_rows(
            "SELECT id, at_ms, who, role, action, address, outcome, details FROM audit ORDER BY id DESC LIMIT ?2",
            0,
            limit,
        )
    }

    /// At most `limit` rows after the row `after`, oldest first (what the audit relay sends next).
    pub fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_rows(
            "SELECT id, at_ms, who, role, action, address, outcome, details FROM audit WHERE id > ?1 ORDER BY id \
             LIMIT ?2",
            after,
            limit,
        )
    }

    /// Where the audit relay stands: this store's instance id (random, made with the file: an audit row's
    /// event id is derived from it and the row's id, so a store made again never repeats an earlier
    /// event's id) and the last row the outbox took.
    pub fn relay_cursor(&self) -> Result<(String, i64), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        tx.execute(
            "INSERT OR IGNORE INTO relay (key, value) VALUES ('instance', ?1)",
            [uuid::Uuid::new_v4().to_string()],
        )
        .map_err(self.db())?;
        let instance: String =
            tx.query_row("SELECT value FROM relay WHERE key = 'instance'", [], |r| r.get(0)).map_err(self.db())?;
        let sent: Option<String> = tx
            .query_row("SELECT value FROM relay WHERE key = 'sent'", [], |r| r.get(0))
            .optional()
            .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok((instance, sent.and_then(|s| s.parse().ok()).unwrap_or(0)))
    }

    /// Records that the outbox has taken every audit row up to `id`.
    pub fn set_relay_cursor(&self, id: i64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO relay (key, value) VALUES ('sent', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1 \
                 WHERE CAST(value AS INTEGER) < ?2",
                params![id.to_string(), id],
            )
            .map_err(self.db())?;
        Ok(())
    }

    fn audit_rows(&self, query: &str, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.lock();
        let mut statement = conn.prepare(query).map_err(self.db())?;
        let rows = statement.query_map(params![after, limit], audit_row).map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// The rows of the audit log with one of `actions` whose details have `key` = `value` (a string),
    /// oldest first: e.g. who placed the legal holds of one event.
    pub fn audit_about(&self, actions: &[&str], key: &str, value: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.lock();
        let marks = vec!["?"; actions.len()].join(", ");
        let sql = format!(
            "SELECT id, at_ms, who, role, action, address, outcome, details FROM audit \
             WHERE action IN ({marks}) AND json_extract(details, ?) = ? ORDER BY id"
        );
        let mut statement = conn.prepare(&sql).map_err(self.db())?;
        let path = format!("$.{key}");
        let mut params: Vec<&dyn rusqlite::ToSql> = actions.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
        params.push(&path);
        params.push(&value);
        let rows = statement.query_map(params.as_slice(), audit_row).map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// A new user (audited as `by`).
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        by: &str,
        now: SystemTime,
    ) -> Result<User, StoreError> {
        password::check_new(password)?;
        self.insert_user(name, role, password, false, by, now)
    }

    /// A new user with a generated one-time password, returned once and stored only as its hash: the
    /// console lets its holder do nothing but choose their own password ([`Store::change_password`]).
    pub fn add_user_one_time(
        &self,
        name: &str,
        role: Role,
        by: &str,
        now: SystemTime,
    ) -> Result<(User, String), StoreError> {
        let password = one_time_password();
        Ok((self.insert_user(name, role, &password, true, by, now)?, password))
    }

    fn insert_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        one_time: bool,
        by: &str,
        now: SystemTime,
    ) -> Result<User, StoreError> {
        check_name(name)?;
        let phc = password::hash(password)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map_err(self.db())?
            .is_some();
        if exists {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO users (name, role, password, created_ms, changed_ms, must_change) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            params![name, role.as_str(), phc, ms(now), one_time],
        )
        .map_err(self.db())?;
        let mut details = serde_json::json!({"name": name, "role": role});
        if one_time {
            details["one_time_password"] = true.into();
        }
        insert_audit(
            &tx,
            &Audit { who: by, role: None, action: "user_add", address: "-", outcome: "ok", details },
            now,
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(User { name: name.to_owned(), role, created_at: time(ms(now)) })
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.lock();
        let mut statement =
            conn.prepare("SELECT name, role, created_ms FROM users ORDER BY name").map_err(self.db())?;
        let rows = statement
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(User {
                    name: r.get(0)?,
                    role: Role::parse(&role).unwrap_or(Role::Viewer),
                    created_at: time(r.get(2)?),
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Removes a user and ends their sessions.
    pub fn remove_user(&self, name: &str, by: &str, now: SystemTime) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        tx.execute("DELETE FROM sessions WHERE user = ?1", [name]).map_err(self.db())?;
        if tx.execute("DELETE FROM users WHERE name = ?1", [name]).map_err(self.db())? == 0 {
            return Err(StoreError::UnknownUser(name.to_owned()));
        }
        let details = serde_json::json!({"name": name});
        insert_audit(
            &tx,
            &Audit { who: by, role: None, action: "user_remove", address: "-", outcome: "ok", details },
            now,
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())
    }

    /// A new password for a user; their sessions end.
    pub fn set_password(&self, name: &str, password: &str, by: &str, now: SystemTime) -> Result<(), StoreError> {
        password::check_new(password)?;
        self.replace_password(name, password, false, by, now)
    }

    /// A generated one-time password for a user (returned once), who must choose their own at the next
    /// sign-in; their sessions end. For a user who forgot theirs.
    pub fn reset_password(&self, name: &str, by: &str, now: SystemTime) -> Result<String, StoreError> {
        let password = one_time_password();
        self.replace_password(name, &password, true, by, now)?;
        Ok(password)
    }

    fn replace_password(
        &self,
        name: &str,
        password: &str,
        one_time: bool,
        by: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let phc = password::hash(password)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        let changed = tx
            .execute(
                "UPDATE users SET password = ?1, changed_ms = ?2, must_change = ?3 WHERE name = ?4",
                params![phc, ms(now), one_time, name],
            )
            .map_err(self.db())?;
        if changed == 0 {
            return Err(StoreError::UnknownUser(name.to_owned()));
        }
        let ended = tx.execute("DELETE FROM sessions WHERE user = ?1", [name]).map_err(self.db())?;
        let mut details = serde_json::json!({"name": name, "sessions_ended": ended});
        if one_time {
            details["one_time_password"] = true.into();
        }
        insert_audit(
            &tx,
            &Audit { who: by, role: None, action: "user_passwd", address: "-", outcome: "ok", details },
            now,
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())
    }

    /// A signed-in user chooses a new password, giving their current one (a session left open on a shared
    /// screen cannot be turned into a lasting sign-in). Clears a one-time password; the user's other
    /// sessions end, this one goes on. Audited `password_change` (refused: outcome `refused`).
    pub fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &str,
        address: &str,
        now: SystemTime,
    ) -> Result<(), ChangeError> {
        let phc: Option<String> = self
            .lock()
            .query_row("SELECT password FROM users WHERE name = ?1", [&session.user], |r| r.get(0))
            .optional()
            .map_err(self.db())?;
        let Some(phc) = phc else { return Err(StoreError::UnknownUser(session.user.clone()).into()) };
        let audit = |outcome: &'static str, details: serde_json::Value| Audit {
            who: &session.user,
            role: Some(session.role),
            action: "password_change",
            address,
            outcome,
            details,
        };
        if !password::verify(current, &phc) {
            self.audit(audit("refused", serde_json::json!({"reason": "wrong current password"})), now)?;
            return Err(ChangeError::WrongCurrent);
        }
        password::check_new(new).map_err(|e| ChangeError::Store(e.into()))?;
        if new == current {
            return Err(ChangeError::Store(StoreError::Invalid(
                "the new password must differ from the current one".into(),
            )));
        }
        let phc = password::hash(new).map_err(|e| ChangeError::Store(e.into()))?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        tx.execute(
            "UPDATE users SET password = ?1, changed_ms = ?2, must_change = 0 WHERE name = ?3",
            params![phc, ms(now), session.user],
        )
        .map_err(self.db())?;
        let ended = tx
            .execute("DELETE FROM sessions WHERE user = ?1 AND id_sha256 != ?2", params![session.user, session.key])
            .map_err(self.db())?;
        insert_audit(&tx, &audit("ok", serde_json::json!({"other_sessions_ended": ended})), now).map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(())
    }

    /// Signs `name` in from `address`: a new session, or why not. Every outcome is audited. A locked
    /// name or address is refused before the password is looked at (even the right one); an unknown
    /// name costs the same hash as a wrong password and is counted the same way.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        address: &str,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<NewSession, LoginError> {
        let name_key = format!("name:{name}");
        let address_key = format!("address:{address}");
        let who = name.chars().take(64).collect::<String>();
        // The hash is read, and the lock looked at, before the (slow) verification, without holding the
        // connection during it.
        let (locked, user) = {
            let conn = self.lock();
            let locked = [&name_key, &address_key]
                .iter()
                .filter_map(|key| locked_until(&conn, key, now).transpose())
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.db())?
                .into_iter()
                .max();
            let user: Option<(String, String, bool)> = conn
                .query_row("SELECT role, password, must_change FROM users WHERE name = ?1", [name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(self.db())?;
            (locked, user)
        };
        if let Some(until) = locked {
            // Whole seconds, rounded up: a client that waits this long finds the lock gone.
            let left = until.duration_since(now).unwrap_or_default();
            let retry_after = Duration::from_secs(left.as_millis().div_ceil(1000) as u64);
            let details = serde_json::json!({"retry_after_secs": retry_after.as_secs()});
            self.audit(Audit { who: &who, role: None, action: "login", address, outcome: "locked", details }, now)?;
            return Err(LoginError::Locked { retry_after });
        }
        let (role, phc, must_change) = match &user {
            Some((role, phc, must_change)) => (Role::parse(role), phc.as_str(), *must_change),
            None => (None, password::decoy(), false),
        };
        let matches = password::verify(password, phc) && user.is_some();
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        let (Some(role), true) = (role, matches) else {
            let mut locked_now = false;
            for key in [&name_key, &address_key] {
                locked_now |= count_failure(&tx, key, policy, now).map_err(self.db())?;
            }
            let outcome = if locked_now { "locked" } else { "refused" };
            let details = serde_json::json!({"locked_for_secs": locked_now.then_some(policy.lockout.as_secs())});
            let entry = Audit { who: &who, role: None, action: "login_failed", address, outcome, details };
            insert_audit(&tx, &entry, now).map_err(self.db())?;
            tx.commit().map_err(self.db())?;
            return Err(LoginError::BadCredentials);
        };
        for key in [&name_key, &address_key] {
            tx.execute("DELETE FROM failures WHERE key = ?1", [key]).map_err(self.db())?;
        }
        let id = random_token();
        let csrf = random_token();
        let key = sha256_hex(id.as_bytes());
        tx.execute(
            "INSERT INTO sessions (id_sha256, user, csrf, address, created_ms, used_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![key, name, csrf, address, ms(now)],
        )
        .map_err(self.db())?;
        // Expired sessions go at each sign-in: the table holds only live ones and a few stale ones.
        let stale_before = ms(now) - policy.idle.as_millis() as i64;
        let too_old = ms(now) - policy.max_age.as_millis() as i64;
        tx.execute("DELETE FROM sessions WHERE used_ms < ?1 OR created_ms < ?2", params![stale_before, too_old])
            .map_err(self.db())?;
        let entry = Audit {
            who: name,
            role: Some(role),
            action: "login",
            address,
            outcome: "ok",
            details: if must_change { serde_json::json!({"one_time_password": true}) } else { serde_json::json!({}) },
        };
        insert_audit(&tx, &entry, now).map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        let session = Session { user: name.to_owned(), role, csrf, created_at: time(ms(now)), must_change, key };
        Ok(NewSession { id, session })
    }

    /// The session of a cookie's id, marked used now (to the minute); or why it signs nobody in (an expired one is
    /// deleted).
    pub fn session(
        &self,
        id: &str,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Result<Session, SessionEnd>, StoreError> {
        let key = sha256_hex(id.as_bytes());
        let conn = self.lock();
        let found: Option<(String, String, String, i64, i64, bool)> = conn
            .query_row(
                "SELECT s.user, u.role, s.csrf, s.created_ms, s.used_ms, u.must_change FROM sessions s \
                 JOIN users u ON u.name = s.user WHERE s.id_sha256 = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .map_err(self.db())?;
        let Some((user, role, csrf, created_ms, used_ms, must_change)) = found else {
            return Ok(Err(SessionEnd::Unknown));
        };
        let end = if ms(now) - created_ms >= policy.max_age.as_millis() as i64 {
            Some(SessionEnd::MaxAge)
        } else if ms(now) - used_ms >= policy.idle.as_millis() as i64 {
            Some(SessionEnd::Idle)
        } else {
            None
        };
        if let Some(end) = end {
            conn.execute("DELETE FROM sessions WHERE id_sha256 = ?1", [&key]).map_err(self.db())?;
            return Ok(Err(end));
        }
        // Marked used at most once a minute: a page polling every few seconds does not write (and sync)
        // the file at each request; the idle limit is in minutes.
        if ms(now) - used_ms >= 60_000 {
            conn.execute("UPDATE sessions SET used_ms = ?1 WHERE id_sha256 = ?2", params![ms(now), key])
                .map_err(self.db())?;
        }
        let Some(role) = Role::parse(&role) else { return Ok(Err(SessionEnd::Unknown)) };
        Ok(Ok(Session { user, role, csrf, created_at: time(created_ms), must_change, key }))
    }

    /// Ends the session of a cookie's id (audited as its user's logout).
    pub fn logout(&self, id: &str, session: &Session, address: &str, now: SystemTime) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        tx.execute("DELETE FROM sessions WHERE id_sha256 = ?1", [sha256_hex(id.as_bytes())]).map_err(self.db())?;
        let entry = Audit {
            who: &session.user,
            role: Some(session.role),
            action: "logout",
            address,
            outcome: "ok",
            details: serde_json::json!({}),
        };
        insert_audit(&tx, &entry, now).map_err(self.db())?;
        tx.commit().map_err(self.db())
    }
}

/// A console user's name: 1..64 letters, digits, `.`, `-`, `_` (it appears in the audit log and in
/// logs as is).
fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && name != CLI;
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "user name {name:?}: use 1..64 letters, digits, '.', '-' and '_' (and not {CLI:?}, the command line's name \
             in the audit log)"
        )))
    }
}

fn insert_audit(conn: &Connection, entry: &Audit<'_>, now: SystemTime) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO audit (at_ms, who, role, action, address, outcome, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            ms(now),
            entry.who,
            entry.role.map_or("-", Role::as_str),
            entry.action,
            entry.address,
            entry.outcome,
            entry.details.to_string()
        ],
    )
}

/// When `key` stops being locked, if it is now.
fn locked_until(conn: &Connection, key: &str, now: SystemTime) -> rusqlite::Result<Option<SystemTime>> {
    let until: Option<Option<i64>> =
        conn.query_row("SELECT locked_until_ms FROM failures WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(until.flatten().filter(|&until| until > ms(now)).map(time))
}

/// Counts one failure for `key`; true when it locks the key now (the count starts again after it).
fn count_failure(conn: &Connection, key: &str, policy: &Policy, now: SystemTime) -> rusqlite::Result<bool> {
    let count: i64 = conn.query_row(
        "INSERT INTO failures (key, count) VALUES (?1, 1) ON CONFLICT(key) DO UPDATE SET count = count + 1 \
         RETURNING count",
        [key],
        |r| r.get(0),
    )?;
    if count >= i64::from(policy.lockout_failures) {
        let until = ms(now) + policy.lockout.as_millis() as i64;
        conn.execute("UPDATE failures SET count = 0, locked_until_ms = ?1 WHERE key = ?2", params![until, key])?;
        return Ok(true);
    }
    Ok(false)
}

/// 256 random bits, base64url without padding.
/// A generated one-time password: 20 characters of an alphabet without look-alikes (0/O, 1/l/I), about
/// 100 bits, in groups of five to read out or type.
fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let random = ring::rand::SystemRandom::new();
    let mut chars = Vec::with_capacity(20);
    while chars.len() < 20 {
        let mut byte = [0u8; 1];
        ring::rand::SecureRandom::fill(&random, &mut byte).expect("the system's random source");
        // 231 = 7 × 33: larger draws are redrawn, so that every character is equally likely.
        if byte[0] < 231 {
            chars.push(ALPHABET[usize::from(byte[0]) % ALPHABET.len()] as char);
        }
    }
    chars.chunks(5).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("the system's random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// An audit row as `SELECT id, at_ms, who, role, action, address, outcome, details` reads it.
fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let details: String = r.get(7)?;
    Ok(AuditEntry {
        id: r.get(0)?,
        at: time(r.get(1)?),
        who: r.get(2)?,
        role: r.get(3)?,
        action: r.get(4)?,
        address: r.get(5)?,
        outcome: r.get(6)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
    })
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// RFC 3339 with milliseconds, as the rest of Vigil's JSON writes times.
mod humantime_serde_ms {
    pub fn serialize<S: serde::Serializer>(t: &std::time::SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        idle: Duration::from_secs(30 * 60),
        max_age: Duration::from_secs(12 * 3600),
        lockout_failures: 5,
        lockout: Duration::from_secs(60),
    };

    /// Now, in whole seconds (the store keeps milliseconds).
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::path_in(dir.path())).unwrap();
        (dir, store)
    }

    fn actions(store: &Store) -> Vec<(String, String, String)> {
        let mut log = store.audit_log(100).unwrap();
        log.reverse();
        log.into_iter().map(|e| (e.who, e.action, e.outcome)).collect()
    }

    #[test]
    fn a_one_time_password_signs_in_once_and_must_be_changed_and_a_version_1_file_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = Store::path_in(dir.path());
        // A store as version 1 left it: no must_change column.
        let v1 = Connection::open(&path).unwrap();
        v1.execute_batch(&SCHEMA.replace(",\n        must_change INTEGER NOT NULL DEFAULT 0", "")).unwrap();
        v1.pragma_update(None, "user_version", 1).unwrap();
        drop(v1);
        let store = Store::open(&path).unwrap();
        let t0 = now();
        store.add_user("old", Role::Viewer, "an old long password", CLI, t0).unwrap();
        assert!(!store.login("old", "an old long password", "10.0.0.9", &POLICY, t0).unwrap().session.must_change);

        let (user, password) = store.add_user_one_time("admin", Role::Installer, CLI, t0).unwrap();
        assert_eq!(user.role, Role::Installer);
        assert!(password.split('-').all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_alphanumeric())));
        let new = store.login("admin", &password, "10.0.0.9", &POLICY, t0).unwrap();
        assert!(new.session.must_change);
        let other = store.login("admin", &password, "10.0.0.8", &POLICY, t0).unwrap();
        assert!(matches!(
            store.change_password(&new.session, "wrong", "a brand new password", "10.0.0.9", t0),
            Err(ChangeError::WrongCurrent)
        ));
        assert!(matches!(
            store.change_password(&new.session, &password, &password, "10.0.0.9", t0),
            Err(ChangeError::Store(StoreError::Invalid(_)))
        ));
        store.change_password(&new.session, &password, "a brand new password", "10.0.0.9", t0).unwrap();
        let kept = store.session(&new.id, &POLICY, t0).unwrap().unwrap();
        assert!(!kept.must_change, "this session goes on, now unrestricted");
        assert_eq!(store.session(&other.id, &POLICY, t0).unwrap().unwrap_err(), SessionEnd::Unknown, "others end");
        assert!(store.login("admin", &password, "10.0.0.9", &POLICY, t0).is_err());

        let reset = store.reset_password("admin", CLI, t0).unwrap();
        assert_ne!(reset, password);
        assert!(store.login("admin", &reset, "10.0.0.9", &POLICY, t0).unwrap().session.must_change);
    }

    #[test]
    fn the_relay_reads_rows_after_its_cursor_which_only_moves_forward_and_keeps_its_instance() {
        let (dir, store) = store();
        let (instance, sent) = store.relay_cursor().unwrap();
        assert_eq!(sent, 0);
        for i in 0..3 {
            let entry = Audit {
                who: "li.na",
                role: Some(Role::Installer),
                action: "camera_update",
                address: "10.0.0.9",
                outcome: "ok",
                details: serde_json::json!({"n": i}),
            };
            store.audit(entry, now()).unwrap();
        }
        let ids: Vec<i64> = store.audit_after(0, 10).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2, 3], "oldest first");
        assert_eq!(store.audit_after(1, 1).unwrap()[0].details["n"], 1);
        store.set_relay_cursor(2).unwrap();
        store.set_relay_cursor(1).unwrap();
        drop(store);
        let store = Store::open(&Store::path_in(dir.path())).unwrap();
        assert_eq!(store.relay_cursor().unwrap(), (instance, 2), "kept, and never moved back");
        let (_other, other) = self::store();
        assert_ne!(other.relay_cursor().unwrap().0, store.relay_cursor().unwrap().0, "a new file, a new instance");
    }

    #[test]
    fn users_are_added_listed_changed_and_removed_with_an_audit_row_each() {
        let (_dir, store) = store();
        let t0 = now();
        store.add_user("li.na", Role::Installer, "a long password", CLI, t0).unwrap();
        assert!(matches!(
            store.add_user("li.na", Role::Viewer, "a long password", CLI, t0),
            Err(StoreError::UserExists(_))
        ));
        assert!(matches!(
            store.add_user("li na", Role::Viewer, "a long password", CLI, t0),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(store.add_user("wang", Role::Viewer, "short", CLI, t0), Err(StoreError::Password(_))));
        store.add_user("wang", Role::Viewer, "another long one", CLI, t0).unwrap();
        let names: Vec<(String, Role)> = store.users().unwrap().into_iter().map(|u| (u.name, u.role)).collect();
        assert_eq!(names, [("li.na".into(), Role::Installer), ("wang".into(), Role::Viewer)]);

        let session = store.login("wang", "another long one", "10.0.0.9", &POLICY, t0).unwrap();
        store.set_password("wang", "a new long password", CLI, t0).unwrap();
        assert_eq!(store.session(&session.id, &POLICY, t0).unwrap().unwrap_err(), SessionEnd::Unknown, "ended");
        assert!(matches!(
            store.login("wang", "another long one", "10.0.0.9", &POLICY, t0),
            Err(LoginError::BadCredentials)
        ));
        let session = store.login("wang", "a new long password", "10.0.0.9", &POLICY, t0).unwrap();
        store.remove_user("wang", CLI, t0).unwrap();
        assert_eq!(store.session(&session.id, &POLICY, t0).unwrap().unwrap_err(), SessionEnd::Unknown);
        assert!(matches!(store.remove_user("wang", CLI, t0), Err(StoreError::UnknownUser(_))));
        let row = |who: &str, action: &str, outcome: &str| (who.to_owned(), action.to_owned(), outcome.to_owned());
        assert_eq!(
            actions(&store),
            [
                row("cli", "user_add", "ok"),
                row("cli", "user_add", "ok"),
                row("wang", "login", "ok"),
                row("cli", "user_passwd", "ok"),
                row("wang", "login_failed", "refused"),
                row("wang", "login", "ok"),
                row("cli", "user_remove", "ok"),
            ]
        );
        let log = store.audit_log(100).unwrap();
        assert!(log.iter().all(|e| !e.details.to_string().contains("long")), "no password in the log: {log:?}");
    }

    #[test]
    fn the_audit_log_is_append_only() {
        let (_dir, store) = store();
        store
            .audit(
                Audit {
                    who: "x",
                    role: Some(Role::Supervisor),
                    action: "legal_hold",
                    address: "10.0.0.1",
                    outcome: "ok",
                    details: serde_json::json!({"event": "e1"}),
                },
                SystemTime::now(),
            )
            .unwrap();
        let conn = store.lock();
        let update = conn.execute("UPDATE audit SET who = 'y'", []).unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = conn.execute("DELETE FROM audit", []).unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
    }

    #[test]
    fn a_session_ends_when_idle_or_too_old_and_only_its_hash_is_stored() {
        let (_dir, store) = store();
        let t0 = now();
        store.add_user("li.na", Role::Supervisor, "a long password", CLI, t0).unwrap();
        let new = store.login("li.na", "a long password", "10.0.0.9", &POLICY, t0).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&new.id).unwrap().len(), 32, "256 bits");
        let stored: String = store.lock().query_row("SELECT id_sha256 FROM sessions", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, sha256_hex(new.id.as_bytes()));
        assert_ne!(new.session.csrf, new.id);
        // Used every 20 minutes, it lives...
        let mut t = t0;
        for _ in 0..40 {
            t += Duration::from_secs(20 * 60);
            if t.duration_since(t0).unwrap() >= POLICY.max_age {
                break;
            }
            let session = store.session(&new.id, &POLICY, t).unwrap().unwrap();
            assert_eq!((session.user.as_str(), session.role), ("li.na", Role::Supervisor));
        }
        // ...until 12 hours after sign-in.
        assert_eq!(store.session(&new.id, &POLICY, t).unwrap().unwrap_err(), SessionEnd::MaxAge);
        let idle = store.login("li.na", "a long password", "10.0.0.9", &POLICY, t0).unwrap();
        let later = t0 + POLICY.idle + Duration::from_secs(1);
        assert_eq!(store.session(&idle.id, &POLICY, later).unwrap().unwrap_err(), SessionEnd::Idle);
        assert_eq!(store.session("made up", &POLICY, t0).unwrap().unwrap_err(), SessionEnd::Unknown);
    }

    #[test]
    fn five_failures_lock_the_name_and_the_address_even_for_the_right_password() {
        let (_dir, store) = store();
        let t0 = now();
        store.add_user("li.na", Role::Installer, "a long password", CLI, t0).unwrap();
        for _ in 0..5 {
            assert!(matches!(store.login("li.na", "wrong", "10.0.0.9", &POLICY, t0), Err(LoginError::BadCredentials)));
        }
        let locked = store.login("li.na", "a long password", "10.0.0.9", &POLICY, t0 + Duration::from_secs(10));
        let Err(LoginError::Locked { retry_after }) = locked else { panic!("{locked:?}") };
        assert_eq!(retry_after, Duration::from_secs(50));
        // The name is locked from another address too, and the address for another name.
        assert!(matches!(
            store.login("li.na", "a long password", "10.0.0.7", &POLICY, t0),
            Err(LoginError::Locked { .. })
        ));
        assert!(matches!(store.login("nobody", "x", "10.0.0.9", &POLICY, t0), Err(LoginError::Locked { .. })));
        // An unknown name is refused and locked exactly like a known one (no enumeration).
        for _ in 0..5 {
            let e = store.login("nobody", "x", "10.0.0.8", &POLICY, t0 + POLICY.lockout).unwrap_err();
            assert_eq!(e.to_string(), LoginError::BadCredentials.to_string());
        }
        assert!(matches!(
            store.login("nobody", "x", "10.0.0.6", &POLICY, t0 + POLICY.lockout),
            Err(LoginError::Locked { .. })
        ));
        // After the lock-out, the right password signs in and clears the count.
        let after = t0 + POLICY.lockout;
        store.login("li.na", "a long password", "10.0.0.9", &POLICY, after).unwrap();
        let counts: i64 =
            store.lock().query_row("SELECT COUNT(*) FROM failures WHERE key LIKE '%li.na'", [], |r| r.get(0)).unwrap();
        assert_eq!(counts, 0);
        let log = actions(&store);
        assert_eq!(log.iter().filter(|(_, a, o)| a == "login_failed" && o == "locked").count(), 2, "{log:?}");
        assert_eq!(log.iter().filter(|(_, a, o)| a == "login" && o == "locked").count(), 4, "{log:?}");
    }
}
