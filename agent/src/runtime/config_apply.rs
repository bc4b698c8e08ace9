//! `config_apply`: a new configuration from the platform, applied by the agent itself and taken back by
//! itself when it does not work (docs/mqtt-api.md, "config_apply").
//!
//! 1. **Check** (the command's handler, on a blocking thread): the text is parsed and validated as
//!    `vigil check-config` does it ([`config::for_run_from_text`]: every value error at once, then the
//!    files it names), then what a running agent cannot change in place is refused ([`not_in_place`]).
//!    Any problem: the cmd-result is `failed` with all of them, and nothing changes.
//! 2. **Write**: the trial marker `<data_dir>/config-trial.json` first, then the running file's text as
//!    `<config>.previous`, then the new text over `<config>` — each durably ([`crate::fsio::write`]). The
//!    cmd-result says accepted.
//! 3. **Restart in process** (the runtime loop, [`apply`]): `Running::stop` (phased: every event is in
//!    the durable outbox before the publisher disconnects), then `Running::start` with the new
//!    configuration; the data directory's lock is held throughout.
//! 4. **Trial**: healthy = every configured camera online (frames decoded, no outage announced) and,
//!    with `[mqtt]`, the publisher connected, continuously for [`HEALTHY_FOR`], before the deadline
//!    (`confirm_within_s`). Healthy: `config_applied`, the marker is removed. Not healthy (or the start
//!    failed): the previous text is written back, the agent restarts with it, `config_rolled_back`
//!    names what was wrong, the marker is removed.
//!
//! A crash, power cut or stop during steps 2–4 leaves the marker: the next start ([`recover`]) finds it
//! and rolls back — the file is the tried one: the previous text is written back before anything
//! starts; it is already the previous one: only the event is owed — and says `config_rolled_back` with
//! reason `interrupted`. A trial that was not seen through is not trusted. A file changed by hand since
//! (neither digest) is left alone, with a WARN.
//!
//! Events and logs carry SHA-256 digests of the files, never their text: a configuration may hold camera
//! passwords in its URLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{error, info, warn};

use super::metrics::CameraSource;
use super::notify::Notifier;
use super::sink::Emitter;
use super::{Running, Shutdown};
use crate::config::{self, Config, ConfigError, FieldError};
use crate::hashing::sha256_hex;
use crate::publish::commands::Handler;
use crate::publish::events::{self, ConfigAppliedDetails, ConfigRolledBackDetails, Details};
use crate::publish::publisher::PublisherCounters;
use crate::publish::results::ConfigAccepted;

/// The trial marker, in the data directory.
pub const MARKER: &str = "config-trial.json";
/// `confirm_within_s` when the command gives none.
pub const DEFAULT_CONFIRM_SECS: u64 = 90;
/// The bounds of `confirm_within_s`: a camera needs seconds to deliver its first frame; a trial of
/// more than ten minutes leaves a bad configuration in force too long.
pub const CONFIRM_SECS: (u64, u64) = (10, 600);
/// How long every check must hold without a break before the configuration counts as healthy: a
/// camera that decodes one frame and fails is not healthy.
pub const HEALTHY_FOR: Duration = Duration::from_secs(5);
/// The largest configuration accepted (as `vigil run` reads a file).
pub const MAX_CONFIG_BYTES: usize = crate::input::MAX_TEXT_BYTES as usize;

/// The configuration in force: parsed, its file and the text it was parsed from.
#[derive(Clone)]
pub struct Active {
    pub path: PathBuf,
    pub text: String,
    pub config: Config,
}

impl Active {
    pub fn sha256(&self) -> String {
        sha256_hex(self.text.as_bytes())
    }
}

/// A checked and written configuration, for the runtime loop to restart with.
pub struct Apply {
    pub nonce: String,
    pub new: Active,
    pub confirm_within: Duration,
}

/// What the handler needs: the file and text in force (the console's camera changes replace it on the
/// runtime loop), and the runtime loop's inbox.
#[derive(Clone)]
pub struct Reconfigure {
    pub active: super::console_cameras::ActiveView,
    pub requests: Inbox,
}

/// The runtime loop's inbox: configurations to restart with, the console's camera changes.
#[derive(Clone)]
pub struct Inbox {
    pub applies: tokio::sync::mpsc::UnboundedSender<Apply>,
    pub cameras: tokio::sync::mpsc::UnboundedSender<super::console_cameras::Update>,
}

/// What the marker records (JSON, in the data directory).
#[derive(Debug, Serialize, Deserialize)]
struct Trial {
    nonce: String,
    config: PathBuf,
    config_sha256: String,
    previous_sha256: String,
    started_at: String,
    confirm_within_s: u64,
}

fn marker_path(config: &Config) -> PathBuf {
    config.storage.data_dir.join(MARKER)
}

/// A `config_apply` trial is under way (its marker is there): nothing else may write the file now.
pub fn trial_in_progress(config: &Config) -> bool {
    marker_path(config).exists()
}

/// `<config>.previous`.
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".previous");
    path.with_file_name(name)
}

/// `config_apply {config, confirm_within_s?}`: checks, writes, and hands the new configuration to the
/// runtime loop (module docs). The result is [`ConfigAccepted`]; a refusal lists every problem.
pub fn handler(reconfigure: Reconfigure) -> Handler {
    Box::new(move |command| {
        let args = &command.args;
        let text = match &args["config"] {
            Value::String(text) if !text.trim().is_empty() && text.len() <= MAX_CONFIG_BYTES => text.clone(),
            Value::String(text) if text.len() > MAX_CONFIG_BYTES => {
                return Err(format!(
                    "args.config is {} bytes; a configuration may have at most {MAX_CONFIG_BYTES}",
                    text.len()
                ));
            }
            _ => return Err("args.config is missing (the whole configuration file, TOML, as a string)".into()),
        };
        let confirm_secs = match &args["confirm_within_s"] {
            Value::Null => DEFAULT_CONFIRM_SECS,
            v => match v.as_u64().filter(|s| (CONFIRM_SECS.0..=CONFIRM_SECS.1).contains(s)) {
                Some(secs) => secs,
                None => {
                    return Err(format!(
                        "args.confirm_within_s must be an integer {}..{} (seconds), got {v}",
                        CONFIRM_SECS.0, CONFIRM_SECS.1
                    ));
                }
            },
        };
        let active = &*reconfigure.active.read().unwrap_or_else(|e| e.into_inner()).clone();
        let new = check(active, &text)?;
        let (previous_sha256, config_sha256) = (active.sha256(), new.sha256());
        if config_sha256 == previous_sha256 {
            return Err(format!("this configuration (sha256 {config_sha256}) is already in force: nothing to apply"));
        }
        let marker = marker_path(&active.config);
        if marker.exists() {
            return Err(format!("a configuration trial is in progress ({}): wait for its event", marker.display()));
        }
        let trial = Trial {
            nonce: command.nonce.clone(),
            config: active.path.clone(),
            config_sha256: config_sha256.clone(),
            previous_sha256: previous_sha256.clone(),
            started_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            confirm_within_s: confirm_secs,
        };
        write_files(active, &new, &trial).map_err(|e| {
            error!(path = %active.path.display(), error = %e, "config_apply: cannot write the new configuration; nothing changed");
            format!("cannot write the configuration: {e}; nothing changed")
        })?;
        let apply = Apply { nonce: command.nonce.clone(), new, confirm_within: Duration::from_secs(confirm_secs) };
        if reconfigure.requests.applies.send(apply).is_err() {
            // The agent is stopping: leave nothing half-done.
            let undone = crate::fsio::write(&active.path, active.text.as_bytes(), file_mode(&active.path))
                .and_then(|()| std::fs::remove_file(&marker));
            if let Err(e) = undone {
                warn!(error = %e, "config_apply: the agent is stopping; the marker will roll the file back at start");
            }
            return Err("the agent is shutting down; nothing applied".into());
        }
        info!(nonce = %command.nonce, config_sha256 = %config_sha256, previous_sha256 = %previous_sha256,
            confirm_within_s = confirm_secs, "config_apply accepted: restarting with the new configuration");
        Ok(events::to_json(&ConfigAccepted {
            accepted: true,
            config_sha256,
            previous_sha256,
            confirm_within_s: confirm_secs,
        }))
    })
}

/// The new text as `vigil check-config` sees it, then what cannot change in place: every problem, or
/// the configuration ready to run.
fn check(active: &Active, text: &str) -> Result<Active, String> {
    let config = config::for_run_from_text(&active.path, text).map_err(|e| match e {
        ConfigError::Invalid { errors, .. } => refusal(&errors),
        // Syntax, unknown fields, wrong types: the TOML parser stops at the first one (as check-config).
        ConfigError::Parse { .. } => format!("configuration refused: {}", parse_problem(text)),
        other => format!("configuration refused: {other}"),
    })?;
    let errors = not_in_place(&active.config, &config);
    if !errors.is_empty() {
        return Err(refusal(&errors));
    }
    Ok(Active { path: active.path.clone(), text: text.to_owned(), config })
}

/// The TOML parser's complaint without the source line it quotes, and with credentials in quoted values
/// masked: the line may hold a camera's password, and the answer goes over MQTT and into the log.
fn parse_problem(text: &str) -> String {
    let Err(e) = toml::from_str::<Config>(text) else { return "cannot be parsed".into() };
    let message: String = e
        .message()
        .split('"')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { crate::redact::redact_url(part) } else { part.to_owned() })
        .collect::<Vec<_>>()
        .join("\"");
    match e.span() {
        Some(span) => format!("line {}: {message}", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => message,
    }
}

/// `configuration refused, N errors: path: message; path: message`.
fn refusal(errors: &[FieldError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let s = if errors.len() == 1 { "" } else { "s" };
    format!("configuration refused, {} error{s}: {}", errors.len(), list.join("; "))
}

/// What a running agent cannot take from a command: its identity and state's place, the library loaded
/// once per process, and the means by which the platform reaches it. Models in a new directory are
/// verified now (`vigil run` would refuse them at start).
pub fn not_in_place(running: &Config, new: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut refuse = |path: &str, message: &str| errors.push(FieldError { path: path.into(), message: message.into() });
    let identity = "is the box's identity (topics, evidence manifests, its certificate): not changed by a command";
    if running.site.id != new.site.id {
        refuse("site.id", identity);
    }
    if running.site.device_id != new.site.device_id {
        refuse("site.device_id", identity);
    }
    let on_the_box = "cannot change while the agent runs on it: change it on the box";
    if running.storage.data_dir != new.storage.data_dir {
        refuse("storage.data_dir", on_the_box);
    }
    if running.storage.evidence_dir() != new.storage.evidence_dir() {
        refuse("storage.evidence_dir", "is where the evidence chain is: not moved by a command");
    }
    if running.storage.key_file(&running.evidence) != new.storage.key_file(&new.evidence) {
        refuse("evidence.key_file", "is the device's signing key: not changed by a command");
    }
    if running.models.ort_library != new.models.ort_library {
        refuse("models.ort_library", "ONNX Runtime is loaded once per process: change it on the box and restart");
    }
    match (&running.mqtt, &new.mqtt) {
        (Some(_), None) => {
            refuse("mqtt", "cannot be removed by a command that came over MQTT: the box would be unreachable")
        }
        (Some(old), Some(new)) if old.platform_public_key != new.platform_public_key => refuse(
            "mqtt.platform_public_key",
            "verifies the platform's commands: changed on the box only (a wrong key would lock the platform out)",
        ),
        _ => {}
    }
    let dir = |c: &Config| c.models.dir.clone().unwrap_or_else(crate::analyze::model_set::ModelSet::default_dir);
    if dir(running) != dir(new) {
        if let Err(e) = crate::analyze::model_set::ModelSet::open(&dir(new)) {
            errors.push(FieldError { path: "models.dir".into(), message: e.to_string() });
        }
    }
    errors
}

/// The file's permission bits, to keep them (0600 for a file that is not there).
pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(crate::fsio::PRIVATE_FILE, |m| m.permissions().mode() & 0o777)
}

/// The marker, `<config>.previous`, the new file: in that order, so that a crash at any point leaves
/// either the old file in force or the marker that rolls it back.
fn write_files(active: &Active, new: &Active, trial: &Trial) -> std::io::Result<()> {
    let marker = marker_path(&active.config);
    let json = serde_json::to_vec_pretty(trial).map_err(std::io::Error::other)?;
    crate::fsio::write(&marker, &json, crate::fsio::PRIVATE_FILE)?;
    let mode = file_mode(&active.path);
    let written = crate::fsio::write(&previous_path(&active.path), active.text.as_bytes(), mode)
        .and_then(|()| crate::fsio::write(&active.path, new.text.as_bytes(), mode));
    if written.is_err() {
        // The file in force is the old one (the write replaces it whole or not at all).
        let _ = std::fs::remove_file(&marker);
    }
    written
}

/// What the trial watches: the counters of the started cameras and publisher (the same atomics
/// `/metrics` reads).
#[derive(Clone)]
pub struct Probe {
    pub cameras: Vec<CameraSource>,
    /// `None` without `[mqtt]`.
    pub mqtt: Option<Arc<PublisherCounters>>,
}

impl Probe {
    /// Cameras not online ([`CameraSource::online`], as `/metrics` says it): no frame decoded yet, or an
    /// outage announced and not over.
    pub fn offline(&self) -> Vec<String> {
        self.cameras.iter().filter(|c| !c.online()).map(|c| c.id.clone()).collect()
    }

    pub fn mqtt_connected(&self) -> Option<bool> {
        self.mqtt.as_ref().map(|m| m.connected.load(Ordering::Relaxed))
    }
}

/// How a trial ended.
enum Verdict {
    Healthy {
        after: Duration,
    },
    Unhealthy {
        offline: Vec<String>,
        mqtt_connected: Option<bool>,
    },
    /// SIGTERM or SIGINT during the trial: the agent stops; the marker rolls back at the next start.
    Stopped(&'static str),
}

async fn trial(probe: &Probe, within: Duration, signal: &mut (impl Future<Output = &'static str> + Unpin)) -> Verdict {
    let start = Instant::now();
    let mut healthy_since: Option<Instant> = None;
    loop {
        let (offline, mqtt_connected) = (probe.offline(), probe.mqtt_connected());
        let now = Instant::now();
        if offline.is_empty() && mqtt_connected != Some(false) {
            let since = *healthy_since.get_or_insert(now);
            if now.duration_since(since) >= HEALTHY_FOR {
                return Verdict::Healthy { after: now.duration_since(start) };
            }
        } else {
            healthy_since = None;
        }
        if now.duration_since(start) >= within {
            return Verdict::Unhealthy { offline, mqtt_connected };
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            name = &mut *signal => return Verdict::Stopped(name),
        }
    }
}

/// What [`apply`] leaves running, and the signal that ended it early, if one did.
pub struct Applied {
    pub running: Running,
    pub signal: Option<&'static str>,
}

/// Restarts with `request.new`, tries it, keeps it or rolls back (module docs). `active` is what is in
/// force afterwards. An error means the previous configuration could not be started again either: the
/// agent exits, and the next start rolls back (the marker stays).
pub async fn apply(
    running: Running,
    active: &mut Active,
    request: Apply,
    notifier: &Arc<Notifier>,
    requests: &Inbox,
    signal: &mut (impl Future<Output = &'static str> + Unpin),
) -> anyhow::Result<Applied> {
    notifier.notify("RELOADING=1\nSTATUS=applying a new configuration (config_apply)");
    // systemd's watchdog sees no worker while the agent restarts: pinged here, for a bounded time; the
    // started agent's own watchdog thread takes over.
    let pinging = ping_while_restarting(notifier.clone());
    running.stop().await?;
    let previous = std::mem::replace(active, request.new);
    let (nonce, within) = (request.nonce, request.confirm_within);
    info!(nonce = %nonce, config_sha256 = %active.sha256(), "configuration trial: starting with the new configuration");
    let started = Running::start(&active.config, notifier, reconfigure(active, requests));
    pinging.shutdown.trigger();
    let (cameras_offline, mqtt_connected, reason, detail) = match started {
        Ok(running) => match trial(&running.probe, within, signal).await {
            Verdict::Healthy { after } => {
                let details = ConfigAppliedDetails {
                    nonce: nonce.clone(),
                    config_sha256: active.sha256(),
                    previous_sha256: previous.sha256(),
                    cameras: active.config.cameras.iter().map(|c| c.id.clone()).collect(),
                    trial_secs: events::real(after.as_secs_f64()),
                };
                let (new, old) = (details.config_sha256.clone(), details.previous_sha256.clone());
                emit(&running.emitter, Details::ConfigApplied(details), move || {
                    info!(nonce = %nonce, config_sha256 = %new, previous_sha256 = %old,
                        trial_secs = after.as_secs_f64(), "configuration applied: healthy within its trial")
                });
                remove_marker(&active.config);
                return Ok(Applied { running, signal: None });
            }
            Verdict::Stopped(name) => {
                warn!(signal = name, "stopping during a configuration trial: the next start rolls it back");
                return Ok(Applied { running, signal: Some(name) });
            }
            Verdict::Unhealthy { offline, mqtt_connected } => {
                let mut wrong: Vec<String> = offline.iter().map(|c| format!("camera {c} offline")).collect();
                if mqtt_connected == Some(false) {
                    wrong.push("MQTT not connected".into());
                }
                let detail = format!("not healthy within {} s: {}", within.as_secs(), wrong.join(", "));
                warn!(nonce = %nonce, cameras_offline = %offline.join(","), mqtt_connected = ?mqtt_connected,
                    "{detail}: rolling back to the previous configuration");
                let pinging = ping_while_restarting(notifier.clone());
                let stopped = running.stop().await;
                pinging.shutdown.trigger();
                stopped?;
                (offline, mqtt_connected, "unhealthy", detail)
            }
        },
        Err(e) => {
            error!(nonce = %nonce, error = %format!("{e:#}"), "the new configuration did not start: rolling back");
            (Vec::new(), None, "start_failed", format!("did not start: {e:#}"))
        }
    };
    let rejected_sha256 = active.sha256();
    *active = previous;
    crate::fsio::write(&active.path, active.text.as_bytes(), file_mode(&active.path))
        .with_context(|| format!("cannot write the previous configuration back to {}", active.path.display()))?;
    let pinging = ping_while_restarting(notifier.clone());
    let running = Running::start(&active.config, notifier, reconfigure(active, requests));
    pinging.shutdown.trigger();
    let running = running.context("the previous configuration did not start again")?;
    let details = ConfigRolledBackDetails {
        nonce: nonce.clone(),
        config_sha256: active.sha256(),
        rejected_sha256,
        reason,
        cameras_offline,
        mqtt_connected,
        detail,
    };
    let (restored, rejected) = (details.config_sha256.clone(), details.rejected_sha256.clone());
    emit(&running.emitter, Details::ConfigRolledBack(details), move || {
        warn!(nonce = %nonce, config_sha256 = %restored, rejected_sha256 = %rejected, reason,
            "configuration rolled back: the previous one is in force again")
    });
    remove_marker(&active.config);
    Ok(Applied { running, signal: None })
}

/// A stop or a start takes at most this long (stop ≤ 15 s; models and cameras at start on a slow box).
const RESTART_ALLOWANCE: Duration = Duration::from_secs(120);

/// A thread that pings systemd's watchdog every half interval until its `shutdown` is set or
/// [`RESTART_ALLOWANCE`] passes (then the pings stop: a restart that hangs is still caught).
struct Pinging {
    shutdown: Shutdown,
}

fn ping_while_restarting(notifier: Arc<Notifier>) -> Pinging {
    let shutdown = Shutdown::new();
    let Some(interval) = super::notify::watchdog_interval().filter(|_| notifier.enabled()) else {
        return Pinging { shutdown };
    };
    let stop = shutdown.clone();
    let until = Instant::now() + RESTART_ALLOWANCE;
    let spawned = std::thread::Builder::new().name("vigil-reload-wd".into()).spawn(move || {
        while !stop.is_set() && Instant::now() < until {
            notifier.notify("WATCHDOG=1");
            let next = Instant::now() + interval / 2;
            while !stop.is_set() && Instant::now() < next {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the watchdog pings for the restart");
    }
    Pinging { shutdown }
}

/// The handler's view of what is now in force.
pub fn reconfigure(active: &Active, requests: &Inbox) -> Reconfigure {
    Reconfigure { active: Arc::new(std::sync::RwLock::new(Arc::new(active.clone()))), requests: requests.clone() }
}

fn emit(emitter: &Emitter, details: Details, on_commit: impl FnOnce() + Send + 'static) {
    let record = events::config_record(&emitter.base, &emitter.site, &emitter.device, details);
    emitter.emit(record, on_commit);
}

fn remove_marker(config: &Config) {
    let marker = marker_path(config);
    match std::fs::remove_file(&marker) {
        Ok(()) => {
            if let Some(dir) = marker.parent() {
                let _ = crate::fsio::sync_dir(dir);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %marker.display(), error = %e, "cannot remove the configuration trial marker"),
    }
}

/// A trial found unfinished at start (module docs): rolls the file back if the tried configuration is
/// in it, and returns the `config_rolled_back` owed, to send once the agent runs ([`finish_recovery`]).
pub fn recover(active: &mut Active) -> anyhow::Result<Option<Details>> {
    let marker = marker_path(&active.config);
    let bytes = match std::fs::read(&marker) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", marker.display())),
    };
    let trial: Trial = match serde_json::from_slice(&bytes) {
        Ok(trial) => trial,
        Err(e) => {
            warn!(path = %marker.display(), error = %e, "an unreadable configuration trial marker: removed, nothing rolled back");
            remove_marker(&active.config);
            return Ok(None);
        }
    };
    let current = active.sha256();
    let rolled_back = |active: &Active| {
        Some(Details::ConfigRolledBack(ConfigRolledBackDetails {
            nonce: trial.nonce.clone(),
            config_sha256: active.sha256(),
            rejected_sha256: trial.config_sha256.clone(),
            reason: "interrupted",
            cameras_offline: Vec::new(),
            mqtt_connected: None,
            detail: format!(
                "the agent stopped during the trial of the configuration (started {}): rolled back at the next start",
                trial.started_at
            ),
        }))
    };
    if current == trial.previous_sha256 {
        // Written back already; the event was not sent.
        return Ok(rolled_back(active));
    }
    if current != trial.config_sha256 {
        warn!(path = %active.path.display(), marker = %marker.display(),
            "the configuration file changed since an unfinished trial (neither the tried nor the previous one): \
             left as it is, nothing rolled back");
        remove_marker(&active.config);
        return Ok(None);
    }
    let previous_file = previous_path(&active.path);
    let text = crate::input::read_text_limited(&previous_file, crate::input::MAX_TEXT_BYTES).with_context(|| {
        format!("a configuration trial was interrupted, but {} cannot be read", previous_file.display())
    })?;
    if sha256_hex(text.as_bytes()) != trial.previous_sha256 {
        anyhow::bail!(
            "a configuration trial was interrupted, but {} is not the configuration it replaced (sha256 {}): \
             restore the configuration by hand and remove {}",
            previous_file.display(),
            trial.previous_sha256,
            marker.display()
        );
    }
    let config = config::for_run_from_text(&active.path, &text).with_context(|| {
        format!(
            "a configuration trial was interrupted, and the previous configuration {} is no longer valid",
            previous_file.display()
        )
    })?;
    crate::fsio::write(&active.path, text.as_bytes(), file_mode(&active.path))
        .with_context(|| format!("cannot write the previous configuration back to {}", active.path.display()))?;
    warn!(path = %active.path.display(), rejected_sha256 = %trial.config_sha256, config_sha256 = %trial.previous_sha256,
        "a configuration trial was interrupted (the agent stopped during it): the previous configuration is back");
    *active = Active { path: active.path.clone(), text, config };
    Ok(rolled_back(active))
}

/// Sends the event [`recover`] returned through the started agent, then removes the marker.
pub fn finish_recovery(running: &Running, active: &Active, owed: Details) {
    emit(&running.emitter, owed, || info!("config_rolled_back (interrupted trial) recorded"));
    remove_marker(&active.config);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, text: &str) -> Active {
        let path = dir.join("vigil.toml");
        std::fs::write(&path, text).unwrap();
        Active { path: path.clone(), text: text.to_owned(), config: config::load(&path).unwrap() }
    }

    const BASE: &str = "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n";

    /// Identity, state's place, the ONNX Runtime library and the platform's reach are refused, each named.
    #[test]
    fn what_cannot_change_in_place_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let running = config(dir.path(), &format!("{BASE}[mqtt]\nhost = \"b\"\nplatform_public_key = \"k.pem\"\n"));
        let new = "[site]\nid = \"h2\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"elsewhere\"\n\
                   [models]\nort_library = \"/x/libonnxruntime.so\"\n";
        let new = config::from_text(&running.path, new).unwrap();
        let paths: Vec<String> = not_in_place(&running.config, &new).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            ["site.id", "storage.data_dir", "storage.evidence_dir", "evidence.key_file", "models.ort_library", "mqtt"]
        );
        let same = config::from_text(&running.path, &running.text.replace("\"b\"", "\"c\"")).unwrap();
        assert!(not_in_place(&running.config, &same).is_empty(), "another broker host is applied in place");
    }

    /// A refusal lists every problem, as check-config does; the file is not touched.
    #[test]
    fn every_problem_is_in_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let running = config(dir.path(), BASE);
        let bad = format!("{BASE}[outbox]\nmax_records = 5\n[models]\nthreads = 0\n");
        let err = check(&running, &bad).err().unwrap();
        assert!(err.starts_with("configuration refused, 2 errors: "), "{err}");
        assert!(err.contains("outbox.max_records: must be at least 100, got 5"), "{err}");
        assert!(err.contains("models.threads: must be 1..64, got 0"), "{err}");
        assert_eq!(std::fs::read_to_string(&running.path).unwrap(), BASE);
    }

    /// A syntax or type error names its line, never quotes the line, and masks a password in a value.
    #[test]
    fn parse_errors_do_not_echo_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let running = config(dir.path(), BASE);
        let bad = format!("{BASE}[mqtt]\nhost = \"b\"\nport = \"rtsp://admin:hunter2@cam/live\"\n");
        let err = check(&running, &bad).err().unwrap();
        assert!(err.starts_with("configuration refused: line 8: ") && !err.contains("hunter2"), "{err}");
    }

    /// An interrupted trial: the tried file is replaced by the previous one at start, with the event
    /// owed; already replaced, only the event; a file changed by hand is left alone.
    #[test]
    fn an_interrupted_trial_rolls_back_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let old = config(dir.path(), BASE);
        let tried_text = format!("{BASE}[outbox]\nmax_records = 500\n");
        let tried = check(&old, &tried_text).unwrap();
        let trial = Trial {
            nonce: "0123456789abcdef".into(),
            config: old.path.clone(),
            config_sha256: tried.sha256(),
            previous_sha256: old.sha256(),
            started_at: "2026-12-06T02:00:00.000Z".into(),
            confirm_within_s: 30,
        };
        write_files(&old, &tried, &trial).unwrap();
        assert_eq!(std::fs::read_to_string(&old.path).unwrap(), tried_text);
        assert_eq!(std::fs::read_to_string(previous_path(&old.path)).unwrap(), BASE);

        let mut active = tried.clone();
        let owed = recover(&mut active).unwrap().expect("a rollback is owed");
        assert_eq!(active.text, BASE);
        assert_eq!(std::fs::read_to_string(&old.path).unwrap(), BASE, "the previous file is back");
        match owed {
            Details::ConfigRolledBack(d) => {
                assert_eq!(
                    (d.reason, d.rejected_sha256, d.config_sha256),
                    ("interrupted", tried.sha256(), old.sha256())
                )
            }
            _ => panic!("not a config_rolled_back"),
        }
        // The marker is still there until the event is recorded: a second start owes the event again.
        assert!(recover(&mut active).unwrap().is_some());
        assert_eq!(active.text, BASE);
        // Edited by hand since: left alone, marker removed.
        let edited = config(dir.path(), &format!("{BASE}[outbox]\nmax_records = 700\n"));
        let mut active = edited.clone();
        assert!(recover(&mut active).unwrap().is_none());
        assert_eq!(active.text, edited.text);
        assert!(!marker_path(&active.config).exists());
    }
}
