//! The `[phones]` section and the `[[wards]]` tables of the configuration (`config` embeds them):
//! defaults and documentation here, once; `problems()` says what is wrong with them.

use serde::Deserialize;

/// How uploads from ward phones are judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSettings {
    /// Minutes an enrolment link (`vigil phones add`) stays usable; it works once (default 1440, a day).
    #[serde(default = "default_enrol_link_ttl_mins")]
    pub enrol_link_ttl_mins: u64,
    /// Seconds the capture time may differ from the time the box received it (default 300). An upload
    /// captured earlier than that (kept on the phone while offline) is judged by its capture time and
    /// flagged `late`.
    #[serde(default = "default_skew_secs")]
    pub skew_secs: u64,
    /// Hours an offline capture may wait on the phone and still be accepted (default 24).
    #[serde(default = "default_max_offline_hours")]
    pub max_offline_hours: u64,
    /// The largest position accuracy (metres, the phone's 95 % radius) a check-in is judged with
    /// (default 100); a vaguer position fails the geofence check.
    #[serde(default = "default_max_accuracy_m")]
    pub max_accuracy_m: f64,
    /// How far (metres) the photo's EXIF GPS position may lie from the browser's position (default 200).
    #[serde(default = "default_exif_position_tolerance_m")]
    pub exif_position_tolerance_m: f64,
    /// Days of a ward's uploads a new photo is compared with for replays (default 30).
    #[serde(default = "default_replay_window_days")]
    pub replay_window_days: u32,
    /// Differing bits (of 64) of the perceptual hash at or below which two photos are the same picture
    /// (re-encoded, resized); default 10.
    #[serde(default = "default_near_duplicate_bits")]
    pub near_duplicate_bits: u32,
    /// The largest photo accepted, in pixels (default 40 000 000); larger is refused before decoding.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

impl Default for PhoneSettings {
    fn default() -> Self {
        PhoneSettings {
            enrol_link_ttl_mins: default_enrol_link_ttl_mins(),
            skew_secs: default_skew_secs(),
            max_offline_hours: default_max_offline_hours(),
            max_accuracy_m: default_max_accuracy_m(),
            exif_position_tolerance_m: default_exif_position_tolerance_m(),
            replay_window_days: default_replay_window_days(),
            near_duplicate_bits: default_near_duplicate_bits(),
            max_pixels: default_max_pixels(),
        }
    }
}

fn default_enrol_link_ttl_mins() -> u64 {
    1440
}
fn default_skew_secs() -> u64 {
    300
}
fn default_max_offline_hours() -> u64 {
    24
}
fn default_max_accuracy_m() -> f64 {
    100.0
}
fn default_exif_position_tolerance_m() -> f64 {
    200.0
}
fn default_replay_window_days() -> u32 {
    30
}
fn default_near_duplicate_bits() -> u32 {
    10
}
fn default_max_pixels() -> u64 {
    40_000_000
}

impl PhoneSettings {
    /// Every problem with these settings: (field within `[phones]`, message). Pure: no file is read.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=7 * 1440).contains(&self.enrol_link_ttl_mins) {
            problems
                .push(("enrol_link_ttl_mins", format!("must be 1..10080 (a week), got {}", self.enrol_link_ttl_mins)));
        }
        if !(10..=3600).contains(&self.skew_secs) {
            problems.push(("skew_secs", format!("must be 10..3600, got {}", self.skew_secs)));
        }
        if !(1..=168).contains(&self.max_offline_hours) {
            problems.push(("max_offline_hours", format!("must be 1..168, got {}", self.max_offline_hours)));
        }
        if !(self.max_accuracy_m >= 5.0 && self.max_accuracy_m <= 5000.0) {
            problems.push(("max_accuracy_m", format!("must be 5..5000 metres, got {}", self.max_accuracy_m)));
        }
        if !(self.exif_position_tolerance_m >= 10.0 && self.exif_position_tolerance_m <= 100_000.0) {
            problems.push((
                "exif_position_tolerance_m",
                format!("must be 10..100000 metres, got {}", self.exif_position_tolerance_m),
            ));
        }
        if !(1..=3650).contains(&self.replay_window_days) {
            problems.push(("replay_window_days", format!("must be 1..3650, got {}", self.replay_window_days)));
        }
        if self.near_duplicate_bits > 24 {
            problems.push(("near_duplicate_bits", format!("must be 0..24 (of 64), got {}", self.near_duplicate_bits)));
        }
        if !(1_000_000..=200_000_000).contains(&self.max_pixels) {
            problems.push(("max_pixels", format!("must be 1000000..200000000, got {}", self.max_pixels)));
        }
        problems
    }
}

/// A ward: the place ward phones belong to, its cameras (whose beds hold its inpatients in the roster)
/// and where a check-in must be made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ward {
    /// Short id, as phones and events name the ward (letters, digits, `-`, `_`).
    pub id: String,
    /// What the phone page shows (e.g. "Ward 3 · 内科三病区").
    pub name: Option<String>,
    /// The ward cameras of this ward; the roster's inpatients in their beds are the ward's inpatients.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Where check-ins are accepted.
    pub geofence: Geofence,
}

/// An area on the earth in WGS-84: a circle (`center` + `radius_m`) or a `polygon`, never both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geofence {
    /// `[latitude, longitude]` in degrees.
    pub center: Option<[f64; 2]>,
    pub radius_m: Option<f64>,
    /// Three or more `[latitude, longitude]` corners in order around the area.
    pub polygon: Option<Vec<[f64; 2]>>,
}

impl Ward {
    /// Every problem with this ward that needs nothing else: (field within the ward, message). Whether
    /// its cameras exist is for `config` to check.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            problems.push(("id", format!("must be 1..64 letters, digits, '-' or '_', got {:?}", self.id)));
        }
        let fence = &self.geofence;
        let corner_ok = |p: &[f64; 2]| (-90.0..=90.0).contains(&p[0]) && (-180.0..=180.0).contains(&p[1]);
        match (&fence.center, fence.radius_m, &fence.polygon) {
            (Some(center), Some(radius), None) => {
                if !corner_ok(center) {
                    problems
                        .push(("geofence.center", format!("must be [latitude, longitude] in degrees, got {center:?}")));
                }
                if !(radius >= 5.0 && radius <= 50_000.0) {
                    problems.push(("geofence.radius_m", format!("must be 5..50000 metres, got {radius}")));
                }
            }
            (None, None, Some(polygon)) => {
                if polygon.len() < 3 {
                    problems.push(("geofence.polygon", format!("needs at least 3 corners, got {}", polygon.len())));
                }
                if let Some(bad) = polygon.iter().find(|p| !corner_ok(p)) {
                    problems.push((
                        "geofence.polygon",
                        format!("corners are [latitude, longitude] in degrees, got {bad:?}"),
                    ));
                }
            }
            _ => problems.push((
                "geofence",
                "give either center = [lat, lon] with radius_m, or polygon = [[lat, lon], ...]".to_owned(),
            )),
        }
        problems
    }
}
