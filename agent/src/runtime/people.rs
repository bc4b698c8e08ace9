//! The roster and what is tracked against it (physicians' shifts now; beds and chairs later), shared by
//! the `roster` command, the cameras and the scheduler thread.
//!
//! The roster in force is kept in `<data_dir>/roster.json` (written durably, 0600), so a restart resumes
//! with it. Sites without a platform keep it in `roster.file`, re-read when its modification time
//! changes; a file with problems is refused as a whole (every problem logged) and the previous roster
//! stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use crate::config::Config;
use crate::decide::physicians::{PhysicianEvent, Physicians};
use crate::decide::roster::Roster;

pub struct People {
    roster: RwLock<Roster>,
    physicians: Mutex<Physicians>,
    stored: PathBuf,
    /// Modification time of `roster.file` when it was last applied (or refused).
    file_seen: Mutex<Option<SystemTime>>,
}

impl People {
    /// Starts with the roster stored by the last run, if any.
    pub fn load(config: &Config) -> People {
        let stored = config.storage.data_dir.join("roster.json");
        let roster = match std::fs::read(&stored) {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| vec![e.to_string()])
                .and_then(|v| Roster::parse(&v, config))
            {
                Ok(r) => {
                    info!(path = %stored.display(), inpatients = r.inpatients.len(),
                        dialysis_sessions = r.dialysis_sessions.len(), shifts = r.shifts.len(), "roster restored");
                    r
                }
                Err(errors) => {
                    error!(path = %stored.display(), problems = %errors.join("; "),
                        "the stored roster no longer fits this configuration; starting without a roster");
                    Roster::default()
                }
            },
            Err(_) => Roster::default(),
        };
        let mut physicians = Physicians::new(Duration::from_secs_f64(config.physicians.absent_after_mins * 60.0));
        physicians.set_shifts(&roster.shifts, SystemTime::now());
        People { roster: RwLock::new(roster), physicians: Mutex::new(physicians), stored, file_seen: Mutex::new(None) }
    }

    pub fn roster(&self) -> std::sync::RwLockReadGuard<'_, Roster> {
        self.roster.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a checked roster in force and stores it.
    pub fn apply(&self, roster: Roster, now: SystemTime) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&roster).expect("roster serialises");
        crate::fsio::write(&self.stored, &bytes, crate::fsio::PRIVATE_FILE)?;
        self.physicians.lock().unwrap_or_else(|e| e.into_inner()).set_shifts(&roster.shifts, now);
        *self.roster.write().unwrap_or_else(|e| e.into_inner()) = roster;
        Ok(())
    }

    pub fn any_shift_on(&self, t: SystemTime) -> bool {
        self.roster().shifts.iter().any(|s| s.on_at(t))
    }

    pub fn sighting(&self, physician: &str, camera: &str, at: SystemTime) {
        self.physicians.lock().unwrap_or_else(|e| e.into_inner()).sighting(physician, camera, at);
    }

    pub fn tick(&self, now: SystemTime) -> Vec<PhysicianEvent> {
        self.physicians.lock().unwrap_or_else(|e| e.into_inner()).tick(now)
    }

    /// Applies `roster.file` when it changed since last seen (and is newer than the stored roster at
    /// start, so a roster sent by the platform is not overridden by an old file on restart).
    pub fn poll_file(&self, config: &Config) {
        let Some(path) = &config.roster.file else { return };
        let modified = match std::fs::metadata(path).and_then(|m| m.modified()) {
            Ok(m) => m,
            Err(e) => {
                let mut seen = self.file_seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.is_none() {
                    warn!(path = %path.display(), error = %e, "roster.file cannot be read");
                    *seen = Some(SystemTime::UNIX_EPOCH);
                }
                return;
            }
        };
        let mut seen = self.file_seen.lock().unwrap_or_else(|e| e.into_inner());
        let first = seen.is_none();
        if *seen == Some(modified) {
            return;
        }
        *seen = Some(modified);
        drop(seen);
        let stored = std::fs::metadata(&self.stored).and_then(|m| m.modified()).ok();
        if first && stored.is_some_and(|stored| stored >= modified) {
            return; // the stored roster (from this file or a later command) is newer
        }
        match read_roster(path, config) {
            Ok(roster) => match self.apply(roster, SystemTime::now()) {
                Ok(()) => info!(path = %path.display(), "roster file applied"),
                Err(e) => error!(path = %path.display(), error = %e, "cannot store the roster"),
            },
            Err(problems) => error!(path = %path.display(), problems = %problems.join("; "),
                "roster file refused; the previous roster stays in force"),
        }
    }
}

fn read_roster(path: &Path, config: &Config) -> Result<Roster, Vec<String>> {
    let bytes = crate::input::read_limited(path, crate::input::MAX_JSON_BYTES).map_err(|e| vec![e.to_string()])?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| vec![format!("not JSON: {e}")])?;
    Roster::parse(&value, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let text = format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n[roster]\nfile = \"{}\"\n\
             [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"test://smpte\"\n\
             regions = {{ bed-1 = [[0,0],[0.5,0],[0.5,1]], bed-2 = [[0.5,0],[1,0],[1,1]] }}\n",
            dir.join("state").display(),
            dir.join("roster.json").display()
        );
        crate::config::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn set_mtime(path: &Path, secs_ago: u64) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(secs_ago)).unwrap();
    }

    #[test]
    fn the_roster_file_is_applied_when_it_changes_refused_when_wrong_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let file = dir.path().join("roster.json");
        std::fs::write(&file, r#"{"inpatients": [{"patient": "p-1", "camera": "ward-3", "bed": "bed-1"}]}"#).unwrap();
        set_mtime(&file, 100);
        let people = People::load(&config);
        assert_eq!(people.roster().patient_in("ward-3", "bed-1"), None, "nothing before the first poll");
        people.poll_file(&config);
        assert_eq!(people.roster().patient_in("ward-3", "bed-1"), Some("p-1"));

        // A wrong file is refused as a whole; the roster in force stays.
        std::fs::write(&file, r#"{"inpatients": [{"patient": "p-2", "camera": "ward-3", "bed": "bed-9"}]}"#).unwrap();
        set_mtime(&file, 50);
        people.poll_file(&config);
        assert_eq!(people.roster().patient_in("ward-3", "bed-1"), Some("p-1"));

        // A corrected file is applied.
        std::fs::write(&file, r#"{"inpatients": [{"patient": "p-2", "camera": "ward-3", "bed": "bed-2"}]}"#).unwrap();
        set_mtime(&file, 10);
        people.poll_file(&config);
        assert_eq!(people.roster().patient_in("ward-3", "bed-2"), Some("p-2"));

        // After a restart: the stored roster is in force, and the (older) file is not applied again.
        let people = People::load(&config);
        assert_eq!(people.roster().patient_in("ward-3", "bed-2"), Some("p-2"));
        people.apply(Roster::default(), SystemTime::now()).unwrap(); // e.g. a `roster` command emptied it
        let people = People::load(&config);
        people.poll_file(&config);
        assert!(people.roster().inpatients.is_empty(), "a command's roster newer than the file stays");
    }
}
