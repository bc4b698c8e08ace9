//! The configuration file as written by the operator: serde structs, one per TOML table.
//!
//! These structs only describe shape and defaults. Everything that can be wrong with a value that has
//! the right type (ids with slashes, polygons with two points, ports out of range…) is checked by
//! [`super::validate`], which reports every problem at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::size::ByteSize;
use crate::analyze::face_detector::FaceDetectorOptions;
use crate::analyze::person_detector::PersonDetectorOptions;
use crate::decide::settlement::SettlementRules;
use crate::gallery::quality::QualityThresholds;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this box is: the ids appear in every MQTT topic and every evidence manifest.
    pub site: Site,
    /// Where recordings, evidence bundles and the outbox live.
    #[serde(default)]
    pub storage: Storage,
    /// The cameras this box watches.
    #[serde(default)]
    pub cameras: Vec<Camera>,
    /// Connection to the central platform's MQTT broker. Absent: the box runs stand-alone and keeps
    /// every event in its outbox until a broker is configured.
    pub mqtt: Option<Mqtt>,
    /// The HTTPS server (phone page and API); absent: no HTTP is served.
    pub http: Option<HttpSettings>,
    /// The metrics listener (`/metrics`, `/healthz`, `/readyz`, plain HTTP); absent: on 127.0.0.1:9464
    /// when `[http]` is off.
    pub metrics: Option<MetricsSettings>,
    #[serde(default)]
    pub phones: PhoneSettings,
    /// The console's sign-in (served on `[http]`'s server).
    #[serde(default)]
    pub console: ConsoleSettings,
    #[serde(default)]
    pub wards: Vec<Ward>,
    /// ONNX Runtime and the model bundle.
    #[serde(default)]
    pub models: Models,
    /// Face detection and matching.
    #[serde(default)]
    pub faces: Faces,
    /// Person detection (bed and chair occupancy).
    #[serde(default)]
    pub persons: Persons,
    /// Settlement verification at window cameras.
    #[serde(default)]
    pub settlement: Settlement,
    /// Liveness of settlement faces (off by default).
    #[serde(default)]
    pub liveness: crate::decide::liveness::LivenessSettings,
    /// Physician presence on the cameras that watch for physicians.
    #[serde(default)]
    pub physicians: Physicians,
    /// Bed and chair occupancy (ward and dialysis_room cameras with regions).
    #[serde(default)]
    pub presence: Presence,
    /// Roll-calls on wards.
    #[serde(default)]
    pub rollcalls: Rollcalls,
    /// Dialysis session verification.
    #[serde(default)]
    pub dialysis: Dialysis,
    /// Where the roster comes from when no platform sends it.
    #[serde(default)]
    pub roster: RosterSettings,
    /// How long data is kept.
    #[serde(default)]
    pub retention: Retention,
    /// Camera tamper detection.
    #[serde(default)]
    pub tamper: Tamper,
    /// Evidence bundles.
    #[serde(default)]
    pub evidence: Evidence,
    /// The outbox of events waiting for delivery.
    #[serde(default)]
    pub outbox: OutboxSettings,
}

pub use crate::console::ConsoleSettings;
/// `[evidence]`: owned by the evidence stage.
pub use crate::evidence::settings::EvidenceSettings as Evidence;
pub use crate::http::{HttpSettings, MetricsSettings};
pub use crate::phones::{Geofence, PhoneSettings, Ward};

/// `[tamper]`: owned by the source stage, which detects tampering.
pub use crate::source::settings::TamperSettings as Tamper;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Site (hospital) id, as the platform knows it. Letters, digits, `-` and `_`.
    pub id: String,
    /// This box's id, unique within the site. Letters, digits, `-` and `_`.
    pub device_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Root of Vigil's state. Relative paths are taken from the directory of the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Recorded video segments (a size-capped ring per camera). Default: `<data_dir>/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// Signed evidence bundles. Default: `<data_dir>/evidence`.
    pub evidence_dir: Option<PathBuf>,
}

impl Default for Storage {
    fn default() -> Self {
        Storage { data_dir: default_data_dir(), recordings_dir: None, evidence_dir: None }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Camera id, unique on this box. Letters, digits, `-` and `_`.
    pub id: String,
    /// What the camera watches; decides which checks run on it.
    pub role: Role,
    /// Human-readable place, e.g. "Ward 3, room 12". Shown in events.
    pub name: Option<String>,
    /// Video source: `rtsp://[user:pass@]host[:port]/path`, `rtsps://…`, `file:///abs/path.mp4|.mkv`, or
    /// `test://PATTERN` (a generated test pattern: smpte, ball, snow, black, white, gradient).
    pub url: String,
    /// Named polygons in normalised image coordinates (0..1, origin top left): beds on a ward camera,
    /// chairs in a dialysis room. Each is a list of at least three `[x, y]` points.
    #[serde(default)]
    pub regions: BTreeMap<String, Vec<Vec<f64>>>,
    /// settlement_window cameras only: the polygon (normalised, at least three `[x, y]` points) where a
    /// customer's face appears at the counter. Faces are looked for in its bounding box only, and a face
    /// whose centre is outside the polygon (a cashier, someone queueing behind) is ignored. Default: the
    /// whole picture.
    pub face_window: Option<Vec<Vec<f64>>>,
    /// RTSP transport: "tcp" (default; survives NAT and lossy links) or "udp".
    #[serde(default)]
    pub transport: Transport,
    /// Play a `file://` source again from the start when it ends (demos).
    #[serde(default, rename = "loop")]
    pub loop_file: bool,
    /// What is decoded: "keyframes" (one frame per GOP, about a tenth of the CPU of all frames),
    /// "all", or "on_demand": keyframes while nothing needs more, every frame while a settlement watch
    /// or a dialysis identity window is open (the switch replays the current GOP, so the first full-rate
    /// frame comes within a fraction of a second). Recording keeps every frame whatever this says.
    /// Default: "keyframes" for ward cameras, "on_demand" for the others.
    pub decode: Option<Decode>,
    /// The older spelling of `decode`: true is "keyframes", false is "all". Set one of the two.
    pub keyframes_only: Option<bool>,
    /// A second, smaller stream of the same camera for analysis (most IP cameras offer a 640×360 or
    /// 704×576 sub-stream): decoded instead of `url`, which is still what is recorded. Same schemes as
    /// `url`. Faces must still be at least `[faces] min_face_px` pixels in it.
    pub detect_url: Option<String>,
    /// Frames per second handed to analysis when all frames are decoded, above 0 and at most 30.
    /// Fractions are honoured exactly (0.2 is one frame every 5 s, see `source::rate`); one frame must
    /// come within `stall_secs`. Default by role: settlement_window 5, dialysis_room 2, ward 1.
    pub analysis_fps: Option<f64>,
    /// Frames wider than this are scaled down before analysis. Default 1280, and 640 on a camera that
    /// decodes keyframes only and does not watch physicians (a ward): tamper and presence see as much
    /// in 640×360 (the person detector's input is 416 px), and each such camera holds 8.5 MB less (see
    /// [`Camera::analysis_max_width`]).
    pub analysis_max_width: Option<u32>,
    /// Look for enrolled physicians on this camera (sightings for `physician_absent`). Default: true for
    /// dialysis_room cameras, false for the others.
    pub watch_physicians: Option<bool>,
    /// No frame for this many seconds counts as a stalled stream: the pipeline is restarted (default 10;
    /// keep it above the GOP length for keyframes-only cameras).
    #[serde(default = "default_stall_secs")]
    pub stall_secs: u64,
}

/// RTSP transport protocol and what is decoded: owned by the source stage.
pub use crate::source::settings::{Decode, Transport};

/// `analysis_max_width` when it is not set: faces need the pixels.
pub const ANALYSIS_WIDTH: u32 = 1280;
/// `analysis_max_width` when it is not set, of a camera that decodes keyframes only and looks for no
/// faces: enough for tamper detection and presence. Eight such cameras fit in 300 MB
/// (docs/benchmarks.md, issue 18: 8 ward cameras 342 MB at 1280, 279 MB at 640).
pub const KEYFRAMES_ANALYSIS_WIDTH: u32 = 640;

fn default_stall_secs() -> u64 {
    10
}

impl Camera {
    /// What the camera decodes, with the role's default applied.
    pub fn decode(&self) -> Decode {
        match (self.decode, self.keyframes_only) {
            (Some(decode), _) => decode,
            (None, Some(true)) => Decode::Keyframes,
            (None, Some(false)) => Decode::All,
            (None, None) if self.role == Role::Ward => Decode::Keyframes,
            (None, None) => Decode::OnDemand,
        }
    }

    /// Whether the camera decodes keyframes only, always.
    pub fn keyframes_only(&self) -> bool {
        self.decode() == Decode::Keyframes
    }

    /// Frames wider than this are scaled down before analysis: as configured, else by duty (see
    /// [`KEYFRAMES_ANALYSIS_WIDTH`]). The cost of the smaller default: a ward's decision snapshots
    /// (`bed_absent`) are 640×360; `analysis_max_width = 1280` gives 1280×720 for 8.5 MB more.
    pub fn analysis_max_width(&self) -> u32 {
        self.analysis_max_width.unwrap_or(if self.keyframes_only() && !self.watch_physicians() {
            KEYFRAMES_ANALYSIS_WIDTH
        } else {
            ANALYSIS_WIDTH
        })
    }

    pub fn watch_physicians(&self) -> bool {
        self.watch_physicians.unwrap_or(self.role == Role::DialysisRoom)
    }

    pub fn analysis_fps(&self) -> f64 {
        self.analysis_fps.unwrap_or(match self.role {
            Role::SettlementWindow => 5.0,
            Role::DialysisRoom => 2.0,
            Role::Ward => 1.0,
        })
    }

    /// What the source stage needs of this camera, with the role's defaults applied.
    pub fn stream(&self) -> crate::source::settings::StreamSettings {
        crate::source::settings::StreamSettings {
            id: self.id.clone(),
            url: self.url.clone(),
            transport: self.transport,
            analysis_fps: self.analysis_fps(),
            analysis_max_width: self.analysis_max_width(),
            decode: self.decode(),
            detect_url: self.detect_url.clone(),
            loop_file: self.loop_file,
            stall_secs: self.stall_secs,
        }
    }
}

/// A camera's role: owned by the decision stage, whose checks it selects.
pub use crate::decide::CameraRole as Role;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mqtt {
    /// Broker host name or address.
    pub host: String,
    /// Broker port. Default 1883, or 8883 with `[mqtt.tls]`.
    pub port: Option<u16>,
    /// MQTT client id. Default: `vigil-<site>-<device>`.
    pub client_id: Option<String>,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// File holding the password (first line). Kept out of this file so the config can be shared.
    pub password_file: Option<PathBuf>,
    /// Seconds between keep-alive pings.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// Topic prefix. Topics are `<prefix>/<site>/<device>/…`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// TLS to the broker; absent means plain TCP.
    pub tls: Option<MqttTls>,
    /// Records sent and not yet acknowledged by the broker, at most (default 32).
    #[serde(default = "default_inflight")]
    pub inflight: usize,
    /// The platform's Ed25519 public key that signs commands: a PEM file path, or the base64 of the
    /// 32 key bytes. Without it every command is refused. Checked (readable, a key) by
    /// [`super::check_files`] before `run` starts.
    pub platform_public_key: Option<String>,
    /// Commands issued further than this from the box's clock are refused as expired; their nonces are
    /// remembered this long (default 300).
    #[serde(default = "default_command_window")]
    pub command_window_secs: u64,
}

fn default_inflight() -> usize {
    32
}

fn default_command_window() -> u64 {
    300
}

/// `[outbox]`: owned by the outbox.
pub use crate::outbox::settings::OutboxSettings;

fn default_keepalive_secs() -> u64 {
    30
}

fn default_topic_prefix() -> String {
    "vigil/v1".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file with the CA certificate(s) that sign the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate, for brokers that authenticate clients by certificate.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// `[models]`: owned by the analysis stage.
pub use crate::analyze::ModelSettings as Models;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faces {
    /// Two faces are the same person when the Euclidean distance of their embeddings is below this.
    /// dlib's model separates people at 0.6; see docs/benchmarks.md for the distributions measured.
    #[serde(default = "default_match_distance")]
    pub match_distance: f32,
    /// CenterFace heatmap score (0..1) above which a face is reported.
    #[serde(default = "default_face_threshold")]
    pub detector_threshold: f32,
    /// Frames are scaled so their longest side is at most this many pixels before face detection
    /// (smaller is faster; faces under ~10 px at that scale are missed).
    #[serde(default = "default_face_max_side")]
    pub detector_max_side: u32,
    /// The detector's input is scaled so that a face of `min_face_px` measures this many pixels in it
    /// (never scaled up; within `detector_max_side`): a 1280×720 frame with the default 80 and 32 is
    /// detected at 512×288, a face window's crop smaller still. 0 turns it off (`detector_max_side`
    /// alone). 0 or 16..4096 (default 32: every face of the pair list still found; at 24 and below the false
    /// accepts change, at 16 faces are lost: docs/benchmarks.md).
    #[serde(default = "default_detector_face_px")]
    pub detector_face_px: f32,
    /// Faces smaller than this (pixels, shorter side of the box) are not enrolled or decided on
    /// (10..4096, default 80).
    #[serde(default = "default_min_face_px")]
    pub min_face_px: f32,
    /// Enrolment photos whose aligned face chip is less sharp than this (variance of the Laplacian) are
    /// refused.
    #[serde(default = "default_min_sharpness")]
    pub min_sharpness: f64,
    /// Video frames whose face chip is less sharp than this are not decided on (default 30: H.264 at
    /// camera bitrates softens a face that measures 100+ as a photo to 50-60).
    #[serde(default = "default_min_sharpness_video")]
    pub min_sharpness_video: f64,
}

fn default_min_face_px() -> f32 {
    QualityThresholds::default().min_face_px
}

fn default_detector_face_px() -> f32 {
    FaceDetectorOptions::default().face_px
}

fn default_min_sharpness() -> f64 {
    QualityThresholds::default().min_sharpness
}

fn default_min_sharpness_video() -> f64 {
    30.0
}

impl Faces {
    /// The quality gate of enrolment photos.
    pub fn quality(&self) -> QualityThresholds {
        QualityThresholds { min_face_px: self.min_face_px, min_sharpness: self.min_sharpness, ..Default::default() }
    }

    /// The quality gate of faces in video frames.
    pub fn video_quality(&self) -> QualityThresholds {
        QualityThresholds { min_sharpness: self.min_sharpness_video, ..self.quality() }
    }

    /// The face detector's options.
    pub fn detector(&self) -> FaceDetectorOptions {
        FaceDetectorOptions {
            max_side: self.detector_max_side,
            threshold: self.detector_threshold,
            min_face_px: self.min_face_px,
            face_px: self.detector_face_px,
            ..FaceDetectorOptions::default()
        }
    }
}

impl Default for Faces {
    fn default() -> Self {
        Faces {
            match_distance: default_match_distance(),
            detector_threshold: default_face_threshold(),
            detector_max_side: default_face_max_side(),
            detector_face_px: default_detector_face_px(),
            min_face_px: default_min_face_px(),
            min_sharpness: default_min_sharpness(),
            min_sharpness_video: default_min_sharpness_video(),
        }
    }
}

fn default_match_distance() -> f32 {
    SettlementRules::default().match_distance
}

fn default_face_threshold() -> f32 {
    FaceDetectorOptions::default().threshold
}

fn default_face_max_side() -> u32 {
    FaceDetectorOptions::default().max_side
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persons {
    /// NanoDet person score (0..1) above which a person is reported.
    #[serde(default = "default_person_threshold")]
    pub detector_threshold: f32,
}

impl Default for Persons {
    fn default() -> Self {
        Persons { detector_threshold: default_person_threshold() }
    }
}

impl Persons {
    /// The person detector's options.
    pub fn detector(&self) -> PersonDetectorOptions {
        PersonDetectorOptions { threshold: self.detector_threshold, ..PersonDetectorOptions::default() }
    }
}

fn default_person_threshold() -> f32 {
    PersonDetectorOptions::default().threshold
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Disk budget for each camera's recording ring; oldest segments go first. E.g. "20 GiB".
    #[serde(default = "default_recordings_max")]
    pub recordings_max_bytes_per_camera: ByteSize,
    /// Days an acknowledged evidence bundle is kept. Bundles not yet delivered, or under legal hold,
    /// are never deleted.
    #[serde(default = "default_evidence_days")]
    pub evidence_days: u32,
    /// When free disk space falls below this, recordings are evicted first and the agent says so.
    #[serde(default = "default_min_free")]
    pub min_free_bytes: ByteSize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            recordings_max_bytes_per_camera: default_recordings_max(),
            evidence_days: default_evidence_days(),
            min_free_bytes: default_min_free(),
        }
    }
}

fn default_recordings_max() -> ByteSize {
    ByteSize(20 << 30)
}

fn default_evidence_days() -> u32 {
    90
}

fn default_min_free() -> ByteSize {
    ByteSize(2 << 30)
}

/// `[settlement]`, `[physicians]`, `[presence]`, `[rollcalls]`, `[dialysis]`: owned by the decision stage.
pub use crate::decide::settings::{Dialysis, Physicians, Presence, Rollcalls, Settlement};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSettings {
    /// A roster JSON file (same format as the `roster` command's args, docs/mqtt-api.md) read at start
    /// and whenever it changes, for sites without a platform. A `roster` command replaces it until the
    /// file changes again.
    pub file: Option<PathBuf>,
}
