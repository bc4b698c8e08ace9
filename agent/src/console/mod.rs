//! The installer's and supervisor's console (issue 17), below HTTP: local accounts and their argon2id
//! passwords, sessions, the sign-in lock-out and the append-only audit log, in one SQLite file that
//! `vigil users` and the running agent share. What is served over HTTP (the sign-in API, the role
//! guard, CSRF) is `http::console`; this module knows nothing of HTTP, so the CLI uses it alone.
//!
//! - [`store`]: `<data_dir>/console.sqlite`: users, sessions, failures, audit;
//! - [`password`]: argon2id hashing, its parameters and measured cost;
//! - [`settings`]: the `[console]` table.

pub mod password;
pub mod settings;
pub mod store;

pub use settings::ConsoleSettings;
pub use store::{
    Audit, AuditEntry, ChangeError, LoginError, Policy, Role, Session, SessionEnd, Store, StoreError, User,
};

impl ConsoleSettings {
    /// The sign-in policy these settings make.
    pub fn policy(&self) -> Policy {
        Policy {
            idle: self.idle(),
            max_age: self.max_age(),
            lockout_failures: self.lockout_failures,
            lockout: self.lockout(),
        }
    }
}
