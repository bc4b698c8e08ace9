//! Handlers of the signed commands that change state: `settlement`, `enroll`, `unenroll`, `roster`
//! (docs/mqtt-api.md). Each checks its args and says precisely what is wrong; nothing is half-applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::people::People;
use crate::analyze::faces::FaceAnalyzer;
use crate::config::Config;
use crate::decide::roster::Roster;
use crate::decide::settlement::{Known, Transactions, Watch};
use crate::gallery::enrol::{self, EnrollReport, Photo};
use crate::gallery::quality::QualityThresholds;
use crate::gallery::search::SearchIndex;
use crate::gallery::{Gallery, PersonKind};
use crate::publish::commands::Handler;
use crate::publish::events::to_json;
use crate::publish::results::{Enrolled, RosterApplied, SettlementAlreadySettled, SettlementWatching, Unenrolled};

fn text(args: &Value, name: &str, max: usize) -> Result<String, String> {
    args[name]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= max)
        .map(str::to_owned)
        .ok_or_else(|| format!("args.{name} is missing (a string of 1..{max} characters)"))
}

/// `settlement {camera, claimed_id, transaction_id, watch_secs?}` opens a watch on a window camera.
///
/// A transaction id is watched once per box, whichever camera a repeat names: a repeat while its watch
/// is open is refused (naming the transaction, camera and deadline); a repeat after its verdict is
/// answered with that verdict (`already_settled`, the event id), opening nothing; a repeat under another
/// `claimed_id` is refused, since one transaction settles one claim.
pub fn settlement_handler(
    watches: HashMap<String, mpsc::Sender<Watch>>,
    transactions: Arc<Mutex<Transactions>>,
    default_watch: Duration,
) -> Handler {
    let watches = Mutex::new(watches);
    Box::new(move |command| {
        let args = &command.args;
        let (camera, claimed, tx) =
            (text(args, "camera", 128)?, text(args, "claimed_id", 128)?, text(args, "transaction_id", 128)?);
        let watch_for = args["watch_secs"].as_u64().map_or(default_watch, |s| Duration::from_secs(s.clamp(5, 600)));
        let watches = watches.lock().unwrap_or_else(|e| e.into_inner());
        let sender = watches.get(&camera).ok_or_else(|| format!("no settlement_window camera {camera:?}"))?;
        let now = SystemTime::now();
        let mut transactions = transactions.lock().unwrap_or_else(|e| e.into_inner());
        match transactions.admit(&tx, &camera, &claimed, now + watch_for) {
            Ok(()) => {}
            Err(Known::Watching { camera: on, claimed_id, until }) => {
                tracing::warn!(transaction_id = %tx, camera = %on, "settlement refused: its transaction is already being watched");
                let also =
                    if claimed_id == claimed { String::new() } else { format!(" for claimed_id {claimed_id:?}") };
                return Err(format!(
                    "transaction {tx:?} is already being watched on camera {on:?}{also} until {}; its verdict will \
                     follow as an event (a repeat opens no second watch)",
                    humantime::format_rfc3339_millis(until)
                ));
            }
            Err(Known::Settled(done)) if done.claimed_id != claimed => {
                tracing::warn!(transaction_id = %tx, "settlement refused: its transaction was settled for another claimed id");
                return Err(format!(
                    "transaction {tx:?} was already settled for claimed_id {:?} ({}, event {}); a transaction id \
                     cannot be reused for claimed_id {claimed:?}",
                    done.claimed_id, done.verdict, done.event_id
                ));
            }
            Err(Known::Settled(done)) => {
                tracing::info!(transaction_id = %tx, verdict = %done.verdict, event_id = %done.event_id,
                    "settlement repeated after its verdict: answered with it, no new watch");
                return Ok(to_json(&SettlementAlreadySettled::new(
                    &tx,
                    &done.verdict,
                    &done.event_id,
                    &done.camera,
                    &done.claimed_id,
                    done.at,
                )));
            }
        }
        if sender.send(Watch::open(&tx, &claimed, &camera, now, watch_for)).is_err() {
            transactions.withdraw(&tx);
            return Err("camera stopped".to_owned());
        }
        Ok(to_json(&SettlementWatching::new(&camera, &tx, now + watch_for)))
    })
}

/// What enrolment changes: the encrypted gallery and the search index the cameras read. Photos are
/// analysed on the enrolment thread, with its own sessions: an enrolment never waits for a camera's
/// analysis, and no camera waits for it.
#[derive(Clone)]
pub struct Enrolment {
    jobs: mpsc::SyncSender<EnrolJob>,
    pub gallery: Arc<Mutex<Gallery>>,
    pub index: Arc<RwLock<SearchIndex>>,
}

/// One enrolment (an `enroll` command, a console upload) for the enrolment thread, and where its
/// report goes. The photos are named as the report names them, and dropped with the job.
struct EnrolJob {
    id: String,
    role: PersonKind,
    photos: Vec<(String, Vec<u8>)>,
    embeddings: Vec<Vec<f32>>,
    reply: mpsc::Sender<Result<EnrollReport, EnrolError>>,
}

/// Why an enrolment or a removal did not happen (its photos were never the reason: those are in the
/// report).
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("the enrolment thread stopped")]
    Stopped,
    /// The gallery could not be written; nothing changed on disk.
    #[error("the gallery cannot be saved: {0}")]
    Save(String),
}

/// Nice value of the enrolment thread: enrolment is background work, the cameras' analysis comes first
/// when the cores are busy (Linux: nice applies per thread).
const ENROLMENT_NICE: i32 = 10;

impl Enrolment {
    /// Starts the enrolment thread with its own face sessions. It ends when the last handler is dropped.
    pub fn start(
        faces: FaceAnalyzer,
        gallery: Arc<Mutex<Gallery>>,
        index: Arc<RwLock<SearchIndex>>,
        thresholds: QualityThresholds,
    ) -> std::io::Result<Enrolment> {
        // One job at a time: a second command waits for the first rather than queueing photos in memory.
        let (jobs, rx) = mpsc::sync_channel::<EnrolJob>(1);
        let (g, i) = (gallery.clone(), index.clone());
        std::thread::Builder::new().name("vigil-enrol".into()).spawn(move || {
            let mut faces = faces;
            // SAFETY: setpriority on this thread's id has no memory-safety preconditions; failure only
            // leaves the thread at normal priority.
            unsafe {
                let tid = libc::gettid();
                if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, ENROLMENT_NICE) != 0 {
                    tracing::debug!("cannot lower the enrolment thread's priority");
                }
            }
            for job in rx {
                let report = enrol_one(&mut faces, &g, &i, job.id, job.role, &job.photos, job.embeddings, &thresholds);
                let _ = job.reply.send(report);
            }
        })?;
        Ok(Enrolment { jobs, gallery, index })
    }
}

/// Enrols one person on the enrolment thread and rebuilds the search index when someone was enrolled.
#[allow(clippy::too_many_arguments)]
fn enrol_one(
    faces: &mut FaceAnalyzer,
    gallery: &Mutex<Gallery>,
    index: &RwLock<SearchIndex>,
    id: String,
    role: PersonKind,
    images: &[(String, Vec<u8>)],
    embeddings: Vec<Vec<f32>>,
    thresholds: &QualityThresholds,
) -> Result<EnrollReport, EnrolError> {
    let photos: Vec<Photo> = images.iter().map(|(name, bytes)| Photo::Bytes { name: name.clone(), bytes }).collect();
    let mut gallery = gallery.lock().unwrap_or_else(|e| e.into_inner());
    let report = enrol::enroll(faces, &mut gallery, &id, role, &photos, embeddings, thresholds)
        .map_err(|e| EnrolError::Save(format!("{e:#}")))?;
    if report.enrolled {
        *index.write().unwrap_or_else(|e| e.into_inner()) = SearchIndex::build(gallery.entries());
    }
    Ok(report)
}

/// At most this many photos or embeddings in one `enroll` command.
const MAX_ENROLMENT_ITEMS: usize = 20;

impl Enrolment {
    /// `enroll {id, role, images?: [base64 JPEG/PNG], embeddings?: [base64 of 128 little-endian f32]}`:
    /// the photos pass the same checks as `vigil enroll`; the result lists each photo's verdict. Fails
    /// (and changes nothing) when no photo is accepted and no embedding is given.
    pub fn enroll_handler(self) -> Handler {
        Box::new(move |command| {
            let args = &command.args;
            let id = text(args, "id", 64)?;
            if !enrol::valid_id(&id) {
                return Err(format!("args.id {id:?}: use 1..64 letters, digits, '-' and '_'"));
            }
            let role = match args["role"].as_str() {
                Some("patient") => PersonKind::Patient,
                Some("physician") => PersonKind::Physician,
                _ => return Err("args.role must be \"patient\" or \"physician\"".into()),
            };
            let list = |name: &str| -> Result<Vec<Vec<u8>>, String> {
                let items = match &args[name] {
                    Value::Null => return Ok(Vec::new()),
                    Value::Array(items) if items.len() <= MAX_ENROLMENT_ITEMS => items,
                    _ => {
                        return Err(format!(
                            "args.{name} must be a list of at most {MAX_ENROLMENT_ITEMS} base64 strings"
                        ));
                    }
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .and_then(|s| B64.decode(s).ok())
                            .ok_or_else(|| format!("args.{name}[{i}] is not a base64 string"))
                    })
                    .collect()
            };
            let images: Vec<(String, Vec<u8>)> =
                list("images")?.into_iter().enumerate().map(|(i, bytes)| (format!("images[{i}]"), bytes)).collect();
            let embeddings = list("embeddings")?
                .into_iter()
                .enumerate()
                .map(|(i, bytes)| parse_embedding(&bytes).map_err(|e| format!("args.embeddings[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            if images.is_empty() && embeddings.is_empty() {
                return Err("give args.images and/or args.embeddings".into());
            }
            let report = self.enrol(&id, role, images, embeddings).map_err(|e| e.to_string())?;
            if !report.enrolled {
                let why: Vec<String> = report
                    .images
                    .iter()
                    .map(|v| format!("{}: {}", v.image, v.reason.as_deref().unwrap_or("rejected")))
                    .collect();
                return Err(format!("not enrolled, no photo accepted: {}", why.join("; ")));
            }
            tracing::info!(id = %id, role = ?role, "enrolled by command");
            Ok(to_json(&Enrolled::from(&report)))
        })
    }

    /// `unenroll {id}`: removes a person (discharged patient, departed physician) from the gallery.
    pub fn unenroll_handler(self) -> Handler {
        Box::new(move |command| {
            let id = text(&command.args, "id", 64)?;
            if !self.remove(&id).map_err(|e| e.to_string())? {
                return Err(format!("no {id:?} in the gallery"));
            }
            tracing::info!(id = %id, "removed from the gallery by command");
            Ok(to_json(&Unenrolled { removed: id }))
        })
    }

    /// Enrols `id` on the enrolment thread from named photos (each checked as `vigil enroll` checks
    /// it) and embeddings; waits for the report. The photos go with the job and are dropped after it.
    pub fn enrol(
        &self,
        id: &str,
        role: PersonKind,
        photos: Vec<(String, Vec<u8>)>,
        embeddings: Vec<Vec<f32>>,
    ) -> Result<EnrollReport, EnrolError> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(EnrolJob { id: id.to_owned(), role, photos, embeddings, reply })
            .map_err(|_| EnrolError::Stopped)?;
        answer.recv().map_err(|_| EnrolError::Stopped)?
    }

    /// Removes `id` from the gallery (saved) and the search index; false when it was not enrolled. A
    /// gallery that cannot be saved keeps the person, in memory as on disk.
    pub fn remove(&self, id: &str) -> Result<bool, EnrolError> {
        let mut gallery = self.gallery.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = gallery.entries().iter().position(|e| e.id == id) else { return Ok(false) };
        let entry = gallery.entries()[at].clone();
        gallery.remove(id);
        if let Err(e) = gallery.save() {
            gallery.upsert(entry);
            return Err(EnrolError::Save(e.to_string()));
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = SearchIndex::build(gallery.entries());
        Ok(true)
    }
}

/// 512 bytes: 128 little-endian f32, finite and of a plausible size.
fn parse_embedding(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() != 128 * 4 {
        return Err(format!("{} bytes; an embedding is 128 little-endian float32 (512 bytes)", bytes.len()));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if values.iter().any(|v| !v.is_finite() || v.abs() > 10.0) {
        return Err("values must be finite and within ±10".into());
    }
    Ok(values)
}

/// `roster {inpatients, dialysis_sessions, shifts}` replaces the roster (docs/mqtt-api.md).
pub fn roster_handler(config: Config, people: Arc<People>) -> Handler {
    Box::new(move |command| {
        let roster = Roster::parse(&command.args, &config).map_err(|errors| errors.join("; "))?;
        let counts = RosterApplied {
            inpatients: roster.inpatients.len(),
            dialysis_sessions: roster.dialysis_sessions.len(),
            shifts: roster.shifts.len(),
        };
        people.apply(roster, SystemTime::now()).map_err(|e| format!("cannot store the roster: {e}"))?;
        tracing::info!(
            inpatients = counts.inpatients,
            dialysis_sessions = counts.dialysis_sessions,
            shifts = counts.shifts,
            "roster applied by command"
        );
        Ok(to_json(&counts))
    })
}

/// `rollcall {}`: a roll-call now (a supervisor's request), besides the scheduled ones; the result is
/// the summary (the events follow as for a scheduled one).
/// Holds the presence state weakly: its decision senders must go when the cameras stop, so the decision
/// and evidence workers can finish.
pub fn rollcall_handler(presence: std::sync::Weak<super::presence::Presence>, people: Arc<People>) -> Handler {
    Box::new(move |_| {
        let presence = presence.upgrade().ok_or("shutting down")?;
        let report = presence.rollcall(&people, SystemTime::now(), "requested");
        // The same wire object as the rollcall_summary event's details.
        Ok(crate::publish::events::to_json(&crate::publish::events::RollcallDetails::from(&report)))
    })
}

/// `phone_add {ward, name, physician?}`: a new phone and its one-time enrolment link (as `vigil phones
/// add`). The link is a secret until used: it is in the result only, never in a log.
pub fn phone_add_handler(config: Config, registry: Arc<crate::phones::registry::Registry>) -> Handler {
    Box::new(move |command| {
        let args = &command.args;
        let ward = text(args, "ward", 64)?;
        let name = text(args, "name", 100)?;
        let physician = match &args["physician"] {
            Value::Null => None,
            _ => Some(text(args, "physician", 64)?),
        };
        let (invitation, link) =
            super::http::invite(&config, &registry, &ward, &name, physician.as_deref(), SystemTime::now())?;
        tracing::info!(phone = %invitation.phone.id, ward = %ward, mode = ?invitation.phone.mode,
            expires_at = %humantime::format_rfc3339_seconds(invitation.expires_at), "phone added by command");
        Ok(to_json(&crate::publish::results::PhoneAdded::new(&invitation.phone, &link, invitation.expires_at)))
    })
}

/// `phone_revoke {phone, reason}`: the phone's requests are refused from now on (as `vigil phones
/// revoke`); revoking a revoked phone answers its first revocation time.
pub fn phone_revoke_handler(registry: Arc<crate::phones::registry::Registry>) -> Handler {
    Box::new(move |command| {
        let args = &command.args;
        let phone = text(args, "phone", 64)?;
        let reason = text(args, "reason", 500)?;
        let revoked = registry.revoke(&phone, &reason, SystemTime::now()).map_err(|e| e.to_string())?;
        if !revoked.already {
            tracing::warn!(phone = %phone, reason = %reason, "phone revoked by command");
        }
        Ok(to_json(&crate::publish::results::PhoneRevoked::new(&phone, revoked.revoked_at, revoked.already)))
    })
}

#[cfg(test)]
mod phone_command_tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::phones::registry::Registry;
    use crate::publish::commands::Command;

    fn command(name: &str, args: Value) -> Command {
        Command { name: name.into(), nonce: "0123456789abcdef".into(), args }
    }

    /// `phone_add` answers the phone and its link (the registry has it), `phone_revoke` its time, the
    /// same time again when repeated; bad arguments are named.
    #[test]
    fn phones_are_added_and_revoked_by_command() {
        let text = "[site]\nid = \"h\"\ndevice_id = \"d\"\n[http]\npublic_url = \"https://box.lan:8443\"\n\
                    [[wards]]\nid = \"ward-3\"\ngeofence = { center = [31.2, 121.4], radius_m = 80 }\n";
        let config = crate::config::parse(Path::new("x.toml"), text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(&Registry::path_in(dir.path())).unwrap());
        let add = phone_add_handler(config, registry.clone());
        let revoke = phone_revoke_handler(registry.clone());

        let added =
            add(&command("phone_add", json!({"ward": "ward-3", "name": "Dr Wang", "physician": "dr-0412"}))).unwrap();
        let id = added["phone"].as_str().unwrap().to_owned();
        assert_eq!((added["mode"].as_str(), added["physician"].as_str()), (Some("physician"), Some("dr-0412")));
        assert!(added["enrolment_link"].as_str().unwrap().starts_with("https://box.lan:8443/ward/#enrol="));
        assert!(added["expires_at"].is_string());
        assert!(registry.get(&id).unwrap().is_some());
        let err = add(&command("phone_add", json!({"ward": "ward-9", "name": "X"}))).unwrap_err();
        assert!(err.contains("no ward \"ward-9\""), "{err}");
        let err = add(&command("phone_add", json!({"ward": "ward-3"}))).unwrap_err();
        assert!(err.contains("args.name"), "{err}");

        let first = revoke(&command("phone_revoke", json!({"phone": id, "reason": "lost"}))).unwrap();
        assert_eq!(first["already_revoked"], false);
        let again = revoke(&command("phone_revoke", json!({"phone": id, "reason": "lost"}))).unwrap();
        assert_eq!((again["already_revoked"].as_bool(), &again["revoked_at"]), (Some(true), &first["revoked_at"]));
        let err = revoke(&command("phone_revoke", json!({"phone": "ph-nope", "reason": "x"}))).unwrap_err();
        assert!(err.contains("no phone \"ph-nope\""), "{err}");
        assert!(revoke(&command("phone_revoke", json!({"phone": id}))).unwrap_err().contains("args.reason"));
    }
}
