//! The timestamp queue and its worker. The queue is not a separate file: it is the entries of the
//! evidence store that have no `timestamp.tsr` yet, found by scanning the store. So it is on disk by
//! construction, survives any crash, cannot disagree with the store, and covers every kind of entry
//! (bundles, and the records other parts of the agent append) without any of them knowing about
//! timestamps. The store is scanned in full once at start; after that only when its directory changed
//! (its mtime: a new entry is a rename into it), and only entries above the highest sequence seen are
//! looked at (sequences only grow).
//!
//! Newest first: a token over entry N also dates entries 1..N (they are chained into N), so the newest
//! entry's token matters most; a backlog (a long outage, or entries from before `tsa_url` was set) is
//! worked through after it, one request at a time.
//!
//! A failed request (TSA unreachable, an HTTP error, a reply that is not a token for this request)
//! leaves the entry queued and backs off (`retry_first` doubling to `retry_max`). The first failure of
//! an episode is logged at WARN naming the URL and the error; the first success after it at INFO.
//!
//! Writing the token: `<store>/.tmp-tsr-<sequence>/timestamp.tsr` is written and fsync'd, renamed
//! into the entry, the entry directory fsync'd, the temp directory removed. A crash leaves either no
//! token (asked again) or the whole one, and at worst an empty `.tmp-tsr-*` directory, which the store
//! removes at the next start like any `.tmp-*`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use super::TOKEN_FILE;
use super::client::{TsaClient, TsaError};
use super::token::TokenInfo;

/// How the worker asks and retries.
#[derive(Debug, Clone)]
pub struct StamperSettings {
    /// The TSA (`[evidence] tsa_url`).
    pub url: String,
    /// The first retry after a failure; doubled after each further failure up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// Each request's whole time (connect, send, reply).
    pub request_timeout: Duration,
    /// How often the store directory is looked at for new entries.
    pub poll_every: Duration,
}

impl StamperSettings {
    /// Defaults around `url`: retries from 5 s doubling to `retry_max`, 5 s per request, a look at the
    /// store every second.
    pub fn new(url: &str, retry_max: Duration) -> StamperSettings {
        StamperSettings {
            url: url.to_owned(),
            retry_first: Duration::from_secs(5).min(retry_max),
            retry_max,
            request_timeout: Duration::from_secs(5),
            poll_every: Duration::from_secs(1),
        }
    }
}

/// Why an entry did not get its token this time.
#[derive(Debug, thiserror::Error)]
pub enum StampFailure {
    #[error(transparent)]
    Tsa(#[from] TsaError),
    #[error("cannot store the token in {path}: {source}")]
    Store { path: PathBuf, source: std::io::Error },
}

/// What one [`Stamper::run_once`] did.
#[derive(Debug)]
pub enum Step {
    /// No entry waits for a token.
    Idle,
    /// Entries wait, but the last failure's backoff has not passed.
    Backoff { waiting: usize, retry_in: Duration },
    /// The entry got its token (`timestamp.tsr` is on disk).
    Stamped { sequence: u64, dir: PathBuf, token: TokenInfo },
    /// The request failed; the entry stays queued.
    Failed { sequence: u64, error: StampFailure, retry_in: Duration },
}

/// The queue (entries without a token, by sequence) and the worker's state.
pub struct Stamper {
    store: PathBuf,
    client: TsaClient,
    settings: StamperSettings,
    /// Entries without a token: sequence → directory.
    waiting: BTreeMap<u64, PathBuf>,
    /// The highest sequence looked at.
    seen_up_to: u64,
    /// The store directory's mtime at the last scan; `None` forces a scan.
    scanned_mtime: Option<SystemTime>,
    /// Failures in a row, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    /// Since when requests fail (an episode), for the INFO when it works again.
    failing_since: Option<Instant>,
    /// The last token's genTime was more than [`CLOCK_OFFSET_WARN`] from the system clock.
    clock_off: bool,
}

/// A system clock further than this from a fresh token's genTime is reported (the request's round
/// trip and the TSA's accuracy are seconds at most).
pub const CLOCK_OFFSET_WARN: Duration = Duration::from_secs(60);

/// `now − gen_time` in whole seconds: positive when the system clock is ahead of the TSA's.
pub fn clock_offset_secs(now: SystemTime, gen_time: SystemTime) -> i64 {
    match now.duration_since(gen_time) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

/// `^[0-9]{10}-<lower-case UUID>$`, sequence ≥ 1: a chain entry's directory name (docs/evidence.md).
pub fn entry_sequence(name: &str) -> Option<u64> {
    let (seq, id) = name.split_at_checked(10)?;
    let id = id.strip_prefix('-')?;
    let groups: Vec<&str> = id.split('-').collect();
    let lengths_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    let hex_ok = groups.iter().all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if !lengths_ok || !hex_ok || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok().filter(|&s| s >= 1)
}

impl Stamper {
    pub fn new(store: &Path, settings: StamperSettings) -> Result<Stamper, String> {
        let client = TsaClient::new(&settings.url, settings.request_timeout)?;
        Ok(Stamper {
            store: store.to_owned(),
            client,
            settings,
            waiting: BTreeMap::new(),
            seen_up_to: 0,
            scanned_mtime: None,
            failures: 0,
            retry_at: None,
            failing_since: None,
            clock_off: false,
        })
    }

    /// How many entries wait for a token (as of the last scan).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Adds the entries that appeared since the last scan, when the store directory changed.
    fn refresh(&mut self) -> std::io::Result<()> {
        let mtime = match std::fs::metadata(&self.store) {
            Ok(m) => m.modified()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.scanned_mtime == Some(mtime) {
            return Ok(());
        }
        let mut highest = self.seen_up_to;
        for entry in std::fs::read_dir(&self.store)? {
            let entry = entry?;
            let Some(sequence) = entry.file_name().to_str().and_then(entry_sequence) else { continue };
            // Never a symlink: file_type does not follow it.
            if sequence <= self.seen_up_to || !entry.file_type()?.is_dir() {
                continue;
            }
            highest = highest.max(sequence);
            let dir = entry.path();
            if !dir.join(TOKEN_FILE).exists() {
                self.waiting.insert(sequence, dir);
            }
        }
        self.seen_up_to = highest;
        // A change within the file system's timestamp granularity of this scan could leave the same
        // mtime: look again next time until the mtime is safely in the past.
        let racy = SystemTime::now().duration_since(mtime).is_ok_and(|age| age < Duration::from_secs(1));
        self.scanned_mtime = if racy { None } else { Some(mtime) };
        Ok(())
    }

    fn retry_after(&self) -> Duration {
        let doubled = self.settings.retry_first.saturating_mul(1 << self.failures.saturating_sub(1).min(16));
        doubled.min(self.settings.retry_max)
    }

    /// One step: look for new entries; if one waits and no backoff is running, ask for the newest
    /// entry's token and store it.
    pub fn run_once(&mut self) -> Step {
        if let Err(e) = self.refresh() {
            // Entries already queued are still asked for; new ones are found at a later scan.
            warn!(dir = %self.store.display(), error = %e, "cannot scan the evidence store for entries to timestamp");
        }
        // Entries that need no request (token already there, manifest gone) are dropped on the way.
        let (sequence, dir, manifest) = loop {
            let Some((&sequence, dir)) = self.waiting.iter().next_back() else { return Step::Idle };
            let dir = dir.clone();
            if let Some(at) = self.retry_at {
                let now = Instant::now();
                if at > now {
                    return Step::Backoff { waiting: self.waiting.len(), retry_in: at - now };
                }
            }
            if dir.join(TOKEN_FILE).exists() {
                self.waiting.remove(&sequence);
                continue;
            }
            match std::fs::read(dir.join("manifest.json")) {
                Ok(bytes) => break (sequence, dir, bytes),
                Err(e) => {
                    // Not the TSA's fault: the entry is gone or unreadable, `vigil verify` will say so.
                    warn!(dir = %dir.display(), error = %e, "cannot read an entry's manifest to timestamp it; skipped");
                    self.waiting.remove(&sequence);
                }
            }
        };
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &manifest).as_ref().try_into().unwrap();
        let result = self
            .client
            .stamp(&digest)
            .map_err(StampFailure::from)
            .and_then(|stamp| self.save(sequence, &dir, &stamp.tsr).map(|()| stamp.info));
        match result {
            Ok(token) => {
                self.waiting.remove(&sequence);
                self.failures = 0;
                self.retry_at = None;
                if let Some(since) = self.failing_since.take() {
                    info!(url = %self.client.url_redacted(), failing_secs = since.elapsed().as_secs(),
                        waiting = self.waiting.len(), "timestamp tokens are obtained again");
                }
                info!(sequence, gen_time = %token.gen_time, serial = %token.serial, waiting = self.waiting.len(),
                    "timestamp token stored");
                self.compare_clock(&token, SystemTime::now());
                Step::Stamped { sequence, dir, token }
            }
            Err(error) => {
                self.failures += 1;
                let retry_in = self.retry_after();
                self.retry_at = Some(Instant::now() + retry_in);
                if self.failing_since.is_none() {
                    self.failing_since = Some(Instant::now());
                    warn!(url = %self.client.url_redacted(), sequence, error = %error, waiting = self.waiting.len(),
                        retry_in_secs = retry_in.as_secs_f32(),
                        "no timestamp token from the TSA: entries stay valid and queued, and are retried with \
                         backoff (said once until a token is obtained again)");
                } else {
                    debug!(url = %self.client.url_redacted(), sequence, error = %error, failures = self.failures,
                        retry_in_secs = retry_in.as_secs_f32(), "still no timestamp token");
                }
                Step::Failed { sequence, error, retry_in }
            }
        }
    }

    /// The TSA's time is a second opinion on the box's clock: says at WARN when they disagree by more
    /// than [`CLOCK_OFFSET_WARN`] (the times in new manifests are that far off), at INFO when they agree
    /// again; once per change, not per token.
    fn compare_clock(&mut self, token: &TokenInfo, now: SystemTime) {
        let offset = clock_offset_secs(now, token.gen_time_system);
        let off = offset.unsigned_abs() > CLOCK_OFFSET_WARN.as_secs();
        if off && !self.clock_off {
            warn!(offset_secs = offset, tsa_time = %token.gen_time,
                "the system clock disagrees with the TSA's time (offset_secs: ahead if positive): the times in \
                 evidence manifests are off by as much; fix the system clock (NTP)");
        } else if !off && self.clock_off {
            info!(offset_secs = offset, "the system clock agrees with the TSA's time again");
        }
        self.clock_off = off;
    }

    fn save(&self, sequence: u64, dir: &Path, tsr: &[u8]) -> Result<(), StampFailure> {
        let tmp = self.store.join(format!(".tmp-tsr-{sequence:010}"));
        let target = dir.join(TOKEN_FILE);
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| StampFailure::Store { path, source }
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(err(&tmp))?;
        }
        std::fs::create_dir(&tmp).map_err(err(&tmp))?;
        let file = tmp.join(TOKEN_FILE);
        let written = std::fs::File::create_new(&file)
            .and_then(|mut f| f.write_all(tsr).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&file, &target))
            .map_err(err(&target))
            .and_then(|()| fsync_dir(dir));
        let _ = std::fs::remove_dir_all(&tmp);
        written
    }

    /// Runs until `stop` is set: a step, then a pause (the poll interval, or until the backoff ends).
    pub fn run(mut self, stop: &AtomicBool) {
        info!(url = %self.client.url_redacted(), dir = %self.store.display(), "timestamping evidence entries");
        while !stop.load(Ordering::Relaxed) {
            let pause = match self.run_once() {
                // Straight on with the next entry (a backlog is worked through one request at a time).
                Step::Stamped { .. } => Duration::ZERO,
                Step::Idle => self.settings.poll_every,
                Step::Backoff { retry_in, .. } | Step::Failed { retry_in, .. } => {
                    retry_in.min(self.settings.poll_every)
                }
            };
            let until = Instant::now() + pause;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
            }
        }
        if !self.waiting.is_empty() {
            info!(
                waiting = self.waiting.len(),
                "stopping with evidence entries still waiting for a timestamp token \
                (asked again at the next start)"
            );
        }
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StampFailure> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StampFailure::Store { path: dir.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offset_against_the_tsa() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(clock_offset_secs(t + Duration::from_secs(90), t), 90);
        // The box, set 400 days back.
        assert_eq!(clock_offset_secs(t - Duration::from_secs(400 * 86_400), t), -34_560_000);
        assert_eq!(clock_offset_secs(t, t), 0);
        let store = tempfile::tempdir().unwrap();
        let mut stamper =
            Stamper::new(store.path(), StamperSettings::new("http://127.0.0.1:9/", Duration::from_secs(1))).unwrap();
        let token = TokenInfo {
            gen_time: "2027-01-15T08:00:00Z".into(),
            gen_time_system: t,
            serial: "01".into(),
            policy: "1.2.3.4.1".into(),
            nonce: None,
        };
        stamper.compare_clock(&token, t + Duration::from_secs(59));
        assert!(!stamper.clock_off);
        stamper.compare_clock(&token, t - Duration::from_secs(400 * 86_400));
        assert!(stamper.clock_off);
        stamper.compare_clock(&token, t - Duration::from_secs(2));
        assert!(!stamper.clock_off);
    }

    #[test]
    fn entry_names_are_strict() {
        assert_eq!(entry_sequence("0000000042-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), Some(42));
        for bad in [
            "0000000000-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", // sequence 0
            "+000000042-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "000000042-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb",
            "0000000042-0192A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", // upper case
            "0000000042-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
            ".tmp-tsr-0000000042",
            "0000000042_0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "",
        ] {
            assert_eq!(entry_sequence(bad), None, "{bad}");
        }
    }

    fn entry(store: &Path, sequence: u64, token: bool) -> PathBuf {
        let dir = store.join(format!("{sequence:010}-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a{sequence:02x}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.json"), format!("{{\"sequence\":{sequence}}}")).unwrap();
        if token {
            std::fs::write(dir.join(TOKEN_FILE), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn queue_is_the_entries_without_a_token_newest_first_and_backs_off() {
        let store = tempfile::tempdir().unwrap();
        entry(store.path(), 1, true);
        entry(store.path(), 2, false);
        entry(store.path(), 3, false);
        std::fs::create_dir(store.path().join(".tmp-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")).unwrap();
        // Nothing listens on port 9 of the loopback (discard): refused at once.
        let mut settings = StamperSettings::new("http://127.0.0.1:9/tsa", Duration::from_secs(4));
        settings.retry_first = Duration::from_secs(1);
        let mut stamper = Stamper::new(store.path(), settings).unwrap();
        match stamper.run_once() {
            Step::Failed { sequence: 3, error: StampFailure::Tsa(TsaError::Unreachable(_)), retry_in } => {
                assert_eq!(retry_in, Duration::from_secs(1))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stamper.waiting(), 2);
        assert!(matches!(stamper.run_once(), Step::Backoff { waiting: 2, .. }));
        // Backoff doubles to the maximum.
        for expected in [2, 4, 4] {
            stamper.retry_at = None;
            match stamper.run_once() {
                Step::Failed { retry_in, .. } => assert_eq!(retry_in, Duration::from_secs(expected)),
                other => panic!("{other:?}"),
            }
        }
        // A new entry is found when the directory changes, and goes first.
        entry(store.path(), 4, false);
        stamper.retry_at = None;
        assert!(matches!(stamper.run_once(), Step::Failed { sequence: 4, .. }));
        assert_eq!(stamper.waiting(), 3);
        // An entry that got its token meanwhile, or vanished, is dropped without a request.
        std::fs::write(store.path().join("0000000004-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a04").join(TOKEN_FILE), b"x")
            .unwrap();
        std::fs::remove_dir_all(store.path().join("0000000003-0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a03")).unwrap();
        stamper.retry_at = None;
        assert!(matches!(stamper.run_once(), Step::Failed { sequence: 2, .. }));
        assert_eq!(stamper.waiting(), 1);
    }
}
