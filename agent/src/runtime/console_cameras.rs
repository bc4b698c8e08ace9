//! The console's cameras as the running agent provides them ([`crate::http::console_cameras`]): each
//! camera's health from the counters the metrics read, its latest frame peeked at in its slot, its
//! regions' occupancy from its presence camera, and the two changes the console makes.
//!
//! - **A camera's regions, face window, name or URL** ([`apply`]): on the runtime loop (`run_async`),
//!   the one place the configuration file is written (`config_apply` hands its restarts there too): the
//!   camera's entry is edited in the text in force (`config::edit`: comments and the rest kept), the
//!   whole new text is checked by the code `vigil check-config` runs, and the roster in force must not
//!   lose a bed or chair it names. Any problem: all of them are answered and nothing is written or
//!   changed. Otherwise `<config>.previous` is written with the text in force, then the new file (each
//!   durably, [`crate::fsio::write`]); the configuration in force follows (what `config_apply` compares
//!   with and rolls back to); the presence camera's regions are swapped (changed regions start afresh,
//!   the others keep their state), the window camera's face window replaced, and a new URL restarts
//!   that camera's pipeline alone. A `config_apply` trial in progress refuses the change (409 `busy`).
//! - **A reference** ([`Cameras::take_reference`]): asked of the camera's analysis thread, which takes
//!   it from its next frame (no second pipeline), saves it where `vigil reference` saves it and loads it
//!   in the tamper detector (and, for `empty`, the presence camera) at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::camera::{CameraHandle, ReferenceRefused, ReferenceRequest, reference_path};
use super::config_apply::{self, Active};
use super::people::People;
use super::presence::empty_reference_path;
use crate::config::edit::{CameraEdit, EditError, edit_camera};
use crate::config::{self, Camera, ConfigError, redact_url};
use crate::decide::presence::Occupancy;
use crate::http::console_cameras::{
    CameraError, CameraUpdate, CameraView, ConsoleCameras, ReferenceKind, References, Taken, Updated,
};

/// How long a reference waits for the camera's next frame.
pub const REFERENCE_WAIT: Duration = Duration::from_secs(10);
/// The widest frame the console is sent.
const MAX_FRAME_WIDTH: u32 = 1280;
/// JPEG quality of the console's frames.
const JPEG_QUALITY: u8 = 80;

/// The configuration in force, as the runtime loop keeps it and the handlers read it.
pub type ActiveView = Arc<RwLock<Arc<Active>>>;

/// A change for the runtime loop, and where its answer goes.
pub struct Update {
    pub camera: String,
    pub change: CameraUpdate,
    pub reply: mpsc::Sender<Result<Updated, CameraError>>,
}

/// The running cameras, for the console.
pub struct Cameras {
    handles: Vec<CameraHandle>,
    active: ActiveView,
    updates: tokio::sync::mpsc::UnboundedSender<Update>,
    data_dir: PathBuf,
    /// (when, frames decoded) of each camera over the last minute: the fps shown.
    samples: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
    started: Instant,
}

impl Cameras {
    pub fn new(
        handles: Vec<CameraHandle>,
        active: ActiveView,
        updates: tokio::sync::mpsc::UnboundedSender<Update>,
    ) -> Cameras {
        let data_dir = read(&active).config.storage.data_dir.clone();
        Cameras { handles, active, updates, data_dir, samples: Mutex::default(), started: Instant::now() }
    }

    fn handle(&self, id: &str) -> Result<&CameraHandle, CameraError> {
        self.handles.iter().find(|h| h.id == id).ok_or_else(|| CameraError::NotFound(id.to_owned()))
    }

    /// Frames decoded per second over the last minute (since the start when younger).
    fn fps(&self, id: &str, frames: u64) -> f64 {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let samples = samples.entry(id.to_owned()).or_insert_with(|| VecDeque::from([(self.started, 0)]));
        samples.push_back((now, frames));
        while samples.len() > 2
            && samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            samples.pop_front();
        }
        let (t0, f0) = samples[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs < 0.5 { 0.0 } else { frames.saturating_sub(f0) as f64 / secs }
    }

    fn view(&self, camera: &Camera) -> CameraView {
        view(camera, self.handles.iter().find(|h| h.id == camera.id), &self.data_dir, |frames| {
            self.fps(&camera.id, frames)
        })
    }
}

fn read(active: &ActiveView) -> Arc<Active> {
    active.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The console's object of a camera: the configuration's fields and, when it runs, its health.
fn view(
    camera: &Camera,
    handle: Option<&CameraHandle>,
    data_dir: &std::path::Path,
    fps: impl FnOnce(u64) -> f64,
) -> CameraView {
    let taken = |path: PathBuf| {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        Some(Taken { taken_at: humantime::format_rfc3339_seconds(modified).to_string() })
    };
    let mut v = CameraView {
        id: camera.id.clone(),
        name: camera.name.clone(),
        role: camera.role.as_str(),
        url: redact_url(&camera.url),
        online: false,
        fps: 0.0,
        frames_decoded: 0,
        frames_dropped: 0,
        restarts: 0,
        stream_started_at: None,
        tamper: "ok".into(),
        keyframes_only: camera.keyframes_only(),
        width: 0,
        height: 0,
        regions: camera.regions.clone(),
        face_window: camera.face_window.clone(),
        references: References {
            view: taken(reference_path(data_dir, &camera.id)),
            empty: taken(empty_reference_path(data_dir, &camera.id)),
            empty_night: taken(super::presence::empty_reference_path_for(
                data_dir,
                &camera.id,
                crate::decide::presence::Lighting::NightIr,
            )),
        },
        occupancy: BTreeMap::new(),
    };
    let Some(handle) = handle else { return v };
    // An on-demand camera decodes keyframes only while nothing needs more: say what it does now.
    v.keyframes_only |= camera.decode() == crate::source::settings::Decode::OnDemand
        && handle.live.decode.mode() == crate::source::decode::DecodeMode::Keyframes;
    let source = &handle.source;
    v.online = source.online();
    v.frames_decoded = source.counters.frames.load(Ordering::Relaxed);
    v.fps = (fps(v.frames_decoded) * 100.0).round() / 100.0;
    v.frames_dropped = source.slot.dropped();
    v.restarts = source.counters.restarts.load(Ordering::Relaxed);
    let since = SystemTime::now().checked_sub(handle.running_since().elapsed()).unwrap_or(SystemTime::UNIX_EPOCH);
    v.stream_started_at = Some(humantime::format_rfc3339_millis(since).to_string());
    let tampered: Vec<&str> = source.analysis.tampered().into_iter().map(|k| k.as_str()).collect();
    if !tampered.is_empty() {
        v.tamper = tampered.join(",");
    }
    (v.width, v.height) = source.slot.inspect(|f| f.image.dimensions()).unwrap_or((0, 0));
    if let Some(presence) = &handle.live.presence {
        v.occupancy = presence
            .occupancy(SystemTime::now())
            .into_iter()
            .map(|(name, state)| {
                let state = match state {
                    Occupancy::Occupied => "occupied",
                    Occupancy::Empty => "empty",
                    Occupancy::Unknown => "unknown",
                };
                (name, state)
            })
            .collect();
    }
    v
}

impl ConsoleCameras for Cameras {
    fn list(&self) -> Vec<CameraView> {
        read(&self.active).config.cameras.iter().map(|c| self.view(c)).collect()
    }

    fn frame_jpeg(&self, id: &str) -> Result<Vec<u8>, CameraError> {
        let frame = self.handle(id)?.source.slot.peek().ok_or_else(|| CameraError::NoFrame(id.to_owned()))?;
        let mut image = frame.image;
        if image.width() > MAX_FRAME_WIDTH {
            let height = (u64::from(image.height()) * u64::from(MAX_FRAME_WIDTH) / u64::from(image.width())).max(1);
            image =
                image::imageops::resize(&image, MAX_FRAME_WIDTH, height as u32, image::imageops::FilterType::Triangle);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
            .encode_image(&image)
            .map_err(|e| CameraError::Internal(format!("cannot encode the frame: {e}")))?;
        Ok(jpeg)
    }

    fn update(&self, id: &str, change: CameraUpdate) -> Result<Updated, CameraError> {
        self.handle(id)?;
        let (reply, answer) = mpsc::channel();
        let update = Update { camera: id.to_owned(), change, reply };
        if self.updates.send(update).is_err() {
            return Err(CameraError::Busy("the agent is restarting or stopping: try again".into()));
        }
        // The loop answers once it wrote and applied the change (or refused it); a restart under way
        // (`config_apply`) drops the request, and the sender with it.
        answer.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            Err(CameraError::Busy("the agent restarted before applying the change: try again".into()))
        })
    }

    fn take_reference(&self, id: &str, kind: ReferenceKind, uniform_ok: bool) -> Result<CameraView, CameraError> {
        let handle = self.handle(id)?;
        let (reply, answer) = mpsc::channel();
        let request = ReferenceRequest { empty: kind == ReferenceKind::Empty, uniform_ok, reply };
        if handle.live.references.send(request).is_err() {
            return Err(CameraError::Offline(id.to_owned()));
        }
        match answer.recv_timeout(REFERENCE_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(ReferenceRefused::Uniform)) => return Err(CameraError::Uniform(id.to_owned())),
            Ok(Err(e @ ReferenceRefused::Save(_))) => return Err(CameraError::Internal(e.to_string())),
            Err(_) => return Err(CameraError::Offline(id.to_owned())),
        }
        let active = read(&self.active);
        let camera =
            active.config.cameras.iter().find(|c| c.id == id).ok_or_else(|| CameraError::NotFound(id.to_owned()))?;
        Ok(self.view(camera))
    }
}

/// Checks, writes and applies one camera's change (module docs); on the runtime loop.
pub fn apply(
    active: &mut Active,
    view: &ActiveView,
    handles: &[CameraHandle],
    people: &People,
    update: Update,
) -> Result<Updated, CameraError> {
    let id = update.camera.as_str();
    if config_apply::trial_in_progress(&active.config) {
        return Err(CameraError::Busy(
            "a configuration trial (config_apply) is in progress: wait for its event".into(),
        ));
    }
    let index =
        active.config.cameras.iter().position(|c| c.id == id).ok_or_else(|| CameraError::NotFound(id.to_owned()))?;
    let old = active.config.cameras[index].clone();
    let change = update.change;
    let edit = CameraEdit {
        name: change.name.clone(),
        url: change.url.clone(),
        regions: change.regions.clone(),
        face_window: change.face_window.clone(),
    };
    let text = edit_camera(&active.text, id, &edit).map_err(|e| match e {
        EditError::NoCamera(id) => CameraError::NotFound(id),
        e @ EditError::Unparsable(_) => CameraError::Internal(e.to_string()),
    })?;
    let ids: Vec<String> = active.config.cameras.iter().map(|c| c.id.clone()).collect();
    let named = |path: &str| name_cameras(path, &ids);
    let (config, mut problems) = match config::for_run_from_text(&active.path, &text) {
        Ok(config) => (Some(config), Vec::new()),
        Err(ConfigError::Invalid { errors, .. }) => (None, errors.iter().map(|e| named(&e.to_string())).collect()),
        Err(e) => (None, vec![e.to_string()]),
    };
    problems.extend(roster_problems(people, id, &change.regions));
    let Some(config) = config.filter(|_| problems.is_empty()) else {
        warn!(camera = %id, problems = problems.len(), "camera change refused: {}", problems.join("; "));
        return Err(CameraError::Invalid(problems));
    };
    let mode = config_apply::file_mode(&active.path);
    crate::fsio::write(&config_apply::previous_path(&active.path), active.text.as_bytes(), mode)
        .and_then(|()| crate::fsio::write(&active.path, text.as_bytes(), mode))
        .map_err(|e| {
            tracing::error!(path = %active.path.display(), error = %e, "cannot write the camera change; nothing applied");
            CameraError::Internal(format!("cannot write the configuration: {e}"))
        })?;
    *active = Active { path: active.path.clone(), text, config };
    *view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active.clone());
    let new = active.config.cameras[index].clone();
    let (added, changed, removed) = region_changes(&old.regions, &new.regions);
    let url_changed = old.url != new.url;
    let handle = handles.iter().find(|h| h.id == id);
    if let Some(handle) = handle {
        if let Some(presence) = &handle.live.presence {
            presence.set_regions(&new.regions);
        }
        *handle.live.face_window.write().unwrap_or_else(|e| e.into_inner()) = new.face_window.clone();
        *handle.live.identity.write().unwrap_or_else(|e| e.into_inner()) =
            super::sink::camera_identity(&active.config, id);
        if url_changed {
            handle.restart(new.stream());
        }
    }
    info!(camera = %id, url = %redact_url(&new.url), added = %added.join(","), changed = %changed.join(","),
        removed = %removed.join(","), url_changed, config_sha256 = %active.sha256(), "camera configuration changed (console)");
    let camera = view_of(&new, handle, &active.config.storage.data_dir);
    Ok(Updated {
        camera,
        applied: if url_changed { "camera_restarted" } else { "live" },
        added,
        changed,
        removed,
        url_changed,
    })
}

fn view_of(camera: &Camera, handle: Option<&CameraHandle>, data_dir: &std::path::Path) -> CameraView {
    view(camera, handle, data_dir, |_| 0.0)
}

/// The `roster` command's handler (`handlers::roster_handler`) checking each roster against the
/// configuration in force at the time, not the one the agent started with: a bed drawn in the console
/// can be given a patient at once.
pub fn roster_handler(active: ActiveView, people: Arc<People>) -> crate::publish::commands::Handler {
    Box::new(move |command| {
        let config = read(&active).config.clone();
        (super::handlers::roster_handler(config, people.clone()))(command)
    })
}

/// `cameras[2].regions.bed-7: …` → `cameras[ward-1].regions.bed-7: …`: the page names cameras by id.
fn name_cameras(problem: &str, ids: &[String]) -> String {
    let Some(rest) = problem.strip_prefix("cameras[") else { return problem.to_owned() };
    let Some((index, tail)) = rest.split_once(']') else { return problem.to_owned() };
    match index.parse::<usize>().ok().and_then(|i| ids.get(i)) {
        Some(id) => format!("cameras[{id}]{tail}"),
        None => problem.to_owned(),
    }
}

/// Beds and chairs the roster in force names on this camera that the change would remove or rename.
fn roster_problems(people: &People, camera: &str, regions: &BTreeMap<String, Vec<Vec<f64>>>) -> Vec<String> {
    let roster = people.roster();
    let mut problems = Vec::new();
    for p in roster.inpatients.iter().filter(|p| p.camera == camera && !regions.contains_key(&p.bed)) {
        problems.push(format!(
            "cameras[{camera}].regions.{}: the roster in force has patient {} in this bed; keep the region (or \
             move the patient in the roster first)",
            p.bed, p.patient
        ));
    }
    for s in roster.dialysis_sessions.iter().filter(|s| s.camera == camera && !regions.contains_key(&s.chair)) {
        problems.push(format!(
            "cameras[{camera}].regions.{}: the roster in force has dialysis session {} (patient {}) on this chair; \
             keep the region",
            s.chair, s.session, s.patient
        ));
    }
    problems
}

/// Region names added, changed (other points) and removed.
fn region_changes(
    old: &BTreeMap<String, Vec<Vec<f64>>>,
    new: &BTreeMap<String, Vec<Vec<f64>>>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = new.keys().filter(|k| !old.contains_key(*k)).cloned().collect();
    let changed = new.iter().filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v)).map(|(k, _)| k.clone()).collect();
    let removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    (added, changed, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_cameras_by_id() {
        let ids = vec!["door".to_owned(), "ward-1".to_owned()];
        assert_eq!(
            name_cameras(
                "cameras[1].regions.bed-7[2]: coordinates are normalised to 0..1, got 1.5 in [1.5, 0.2]",
                &ids
            ),
            "cameras[ward-1].regions.bed-7[2]: coordinates are normalised to 0..1, got 1.5 in [1.5, 0.2]"
        );
        assert_eq!(name_cameras("mqtt.host: must not be empty", &ids), "mqtt.host: must not be empty");
        assert_eq!(name_cameras("cameras[5].id: x", &ids), "cameras[5].id: x");
    }

    /// A bed the roster in force puts a patient in may not go: the problem names camera, bed and patient.
    #[test]
    fn the_roster_in_force_keeps_its_beds() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n\
                    [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"test://ball\"\n\
                    regions = { bed-1 = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.6]], bed-2 = [[0.5, 0.1], [0.9, 0.1], [0.9, 0.6]] }\n";
        let path = dir.path().join("vigil.toml");
        std::fs::write(&path, text).unwrap();
        let config = config::load(&path).unwrap();
        let people = People::load(&config);
        let json = serde_json::json!({"inpatients": [{"patient": "p-7", "camera": "ward-3", "bed": "bed-2"}]});
        let roster = crate::decide::roster::Roster::parse(&json, &config).unwrap();
        people.apply(roster, SystemTime::now()).unwrap();
        let keep: BTreeMap<String, Vec<Vec<f64>>> = config.cameras[0].regions.clone();
        assert!(roster_problems(&people, "ward-3", &keep).is_empty());
        let mut renamed = keep.clone();
        let points = renamed.remove("bed-2").unwrap();
        renamed.insert("bed-7".into(), points);
        let problems = roster_problems(&people, "ward-3", &renamed);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("cameras[ward-3].regions.bed-2: the roster in force has patient p-7"),
            "{problems:?}"
        );
        assert!(roster_problems(&people, "ward-4", &BTreeMap::new()).is_empty(), "another camera");
    }

    #[test]
    fn region_changes_are_named() {
        let r = |pairs: &[(&str, f64)]| -> BTreeMap<String, Vec<Vec<f64>>> {
            pairs.iter().map(|(n, x)| (n.to_string(), vec![vec![*x, 0.0], vec![1.0, 0.0], vec![1.0, 1.0]])).collect()
        };
        let (added, changed, removed) = region_changes(&r(&[("a", 0.1), ("b", 0.1)]), &r(&[("b", 0.2), ("c", 0.1)]));
        assert_eq!((added, changed, removed), (vec!["c".into()], vec!["b".into()], vec!["a".into()]));
    }
}
