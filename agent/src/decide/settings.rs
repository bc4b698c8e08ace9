//! Settings of the decision stage, as the configuration file spells them (`config` embeds them):
//! `[settlement]`, `[physicians]`, `[presence]`, `[rollcalls]` and `[dialysis]`. Their defaults are the
//! rules' own (each explained where the rule is).

use serde::Deserialize;

use super::dialysis::DialysisRules;
use super::presence::PresenceSettings;
use super::settlement::SettlementRules;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// Seconds a `settlement` command watches the window for the claimed person, unless the command
    /// says otherwise (default 30).
    #[serde(default = "default_settlement_watch")]
    pub watch_secs: u64,
    /// Good frames (quality-gated) of one face needed before it is judged; never one frame (default 3).
    #[serde(default = "default_min_good_frames")]
    pub min_good_frames: usize,
    /// One face settling under two different claimed ids within this many days is card lending
    /// (`identity_shared_across_ids`) (default 30).
    #[serde(default = "default_sharing_window_days")]
    pub sharing_window_days: u32,
    /// Days the embeddings of settlement faces are kept (encrypted) for that check; then deleted. At
    /// least `sharing_window_days` (default 30).
    #[serde(default = "default_sharing_window_days")]
    pub face_retention_days: u32,
}

impl Default for Settlement {
    fn default() -> Self {
        Settlement {
            watch_secs: default_settlement_watch(),
            min_good_frames: default_min_good_frames(),
            sharing_window_days: default_sharing_window_days(),
            face_retention_days: default_sharing_window_days(),
        }
    }
}

fn default_settlement_watch() -> u64 {
    30
}

fn default_min_good_frames() -> usize {
    SettlementRules::default().min_good_frames
}

fn default_sharing_window_days() -> u32 {
    (SettlementRules::default().sharing_window.as_secs() / 86_400) as u32
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Physicians {
    /// A physician on shift and not seen on any watching camera for this many minutes is reported
    /// `physician_absent` (default 30; fractions allowed).
    #[serde(default = "default_absent_after_mins")]
    pub absent_after_mins: f64,
    /// Seconds between face scans on a watching camera (default 5): physicians stay for minutes, and each
    /// scan costs a face detection on a full frame.
    #[serde(default = "default_scan_every_secs")]
    pub scan_every_secs: f64,
    /// Scans that must match a physician within a minute before it counts as a sighting (default 2).
    #[serde(default = "default_sighting_matches")]
    pub sighting_matches: usize,
}

impl Default for Physicians {
    fn default() -> Self {
        Physicians {
            absent_after_mins: default_absent_after_mins(),
            scan_every_secs: default_scan_every_secs(),
            sighting_matches: default_sighting_matches(),
        }
    }
}

fn default_absent_after_mins() -> f64 {
    30.0
}

fn default_scan_every_secs() -> f64 {
    5.0
}

fn default_sighting_matches() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    /// Share of a person's box inside a region for the person to count as in it (default 0.5).
    #[serde(default = "default_min_inside")]
    pub min_inside: f64,
    /// Share of the region a person's box must cover (default 0.1).
    #[serde(default = "default_min_cover")]
    pub min_cover: f64,
    /// A box covering this much of the region counts whatever overhangs (default 0.6).
    #[serde(default = "default_full_cover")]
    pub full_cover: f64,
    /// Difference from the region's empty reference above which it counts as occupied even when the
    /// detector sees nobody (a person under blankets, lying) (default 0.12).
    #[serde(default = "default_changed_occupied")]
    pub changed_occupied: f64,
    /// Seconds a region must look occupied before it is (default 20: a nurse walking past is not).
    #[serde(default = "default_enter_secs")]
    pub enter_secs: u64,
    /// Seconds a region must look empty before it is (default 60).
    #[serde(default = "default_leave_secs")]
    pub leave_secs: u64,
    /// A gap between frames longer than this is unknown time (default 30).
    #[serde(default = "default_max_gap_secs")]
    pub max_gap_secs: u64,
    /// A picture less colourful than this (mean chroma / mean luma) is the camera's night infrared mode,
    /// compared with the night empty reference (default 0.02). Judged from the picture, never the clock.
    #[serde(default = "default_night_max_colour")]
    pub night_max_colour: f64,
    /// A picture at least this colourful is day colour (default 0.035); in between, the condition
    /// does not change.
    #[serde(default = "default_day_min_colour")]
    pub day_min_colour: f64,
    /// Seconds a region's empty reference must not fit (the bed or chair moved) before
    /// `region_reference_stale`, and fit again before it is judged again (default 30).
    #[serde(default = "default_stale_secs")]
    pub stale_secs: u64,
}

impl Default for Presence {
    fn default() -> Self {
        Presence {
            min_inside: default_min_inside(),
            min_cover: default_min_cover(),
            full_cover: default_full_cover(),
            changed_occupied: default_changed_occupied(),
            enter_secs: default_enter_secs(),
            leave_secs: default_leave_secs(),
            max_gap_secs: default_max_gap_secs(),
            night_max_colour: default_night_max_colour(),
            day_min_colour: default_day_min_colour(),
            stale_secs: default_stale_secs(),
        }
    }
}

// The defaults are the presence tracker's own (decide::presence, where each is explained).
fn default_min_inside() -> f64 {
    PresenceSettings::default().min_inside
}
fn default_min_cover() -> f64 {
    PresenceSettings::default().min_cover
}
fn default_full_cover() -> f64 {
    PresenceSettings::default().full_cover
}
fn default_changed_occupied() -> f64 {
    PresenceSettings::default().changed_occupied
}
fn default_enter_secs() -> u64 {
    PresenceSettings::default().enter_secs
}
fn default_leave_secs() -> u64 {
    PresenceSettings::default().leave_secs
}
fn default_max_gap_secs() -> u64 {
    PresenceSettings::default().max_gap_secs
}
fn default_night_max_colour() -> f64 {
    PresenceSettings::default().night_max_colour
}
fn default_day_min_colour() -> f64 {
    PresenceSettings::default().day_min_colour
}
fn default_stale_secs() -> u64 {
    PresenceSettings::default().stale_secs
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollcalls {
    /// Local times ("HH:MM") of the scheduled roll-calls (default none).
    #[serde(default)]
    pub times: Vec<String>,
    /// Also a roll-call every this many minutes from local midnight (default 0: none).
    #[serde(default)]
    pub every_mins: u32,
    /// Roll-calls at random times each day, unpredictable to staff (default 2).
    #[serde(default = "default_random_per_day")]
    pub random_per_day: u32,
    /// The local time window of the random roll-calls, ["HH:MM", "HH:MM"], may wrap midnight
    /// (default the whole day).
    #[serde(default = "default_random_between")]
    pub random_between: [String; 2],
    /// Random roll-calls are at least this many minutes apart, and from the scheduled ones (default 60).
    #[serde(default = "default_min_spacing_mins")]
    pub min_spacing_mins: u64,
    /// The site's UTC offset, "+08:00" (default "+00:00"), within "-12:00".."+14:00". Fixed: sites
    /// with daylight saving set it for the season.
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// Seed of the random times. Default: a secret random seed made at first start and kept in
    /// `<data_dir>/keys/rollcall.seed` — set one only to reproduce a schedule.
    pub seed: Option<u64>,
    /// Consecutive absences of a patient at which `bed_absence_escalated` is raised (again at 2x, 3x…)
    /// (default 3).
    #[serde(default = "default_escalate_after")]
    pub escalate_after: u32,
}

impl Default for Rollcalls {
    fn default() -> Self {
        Rollcalls {
            times: Vec::new(),
            every_mins: 0,
            random_per_day: default_random_per_day(),
            random_between: default_random_between(),
            min_spacing_mins: default_min_spacing_mins(),
            utc_offset: default_utc_offset(),
            seed: None,
            escalate_after: default_escalate_after(),
        }
    }
}

fn default_random_per_day() -> u32 {
    2
}
fn default_random_between() -> [String; 2] {
    ["00:00".to_owned(), "00:00".to_owned()]
}
fn default_min_spacing_mins() -> u64 {
    60
}
fn default_utc_offset() -> String {
    "+00:00".to_owned()
}
fn default_escalate_after() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialysis {
    /// Minutes after a session's start during which the patient's face is looked for in the chair
    /// (default 15; fractions allowed).
    #[serde(default = "default_identity_window_mins")]
    pub identity_window_mins: f64,
    /// Minutes after the billed end before the session is judged, for late starts (default 10).
    #[serde(default = "default_grace_mins")]
    pub grace_mins: f64,
    /// Occupied share of the billed time below which the chair counts as empty (default 0.05).
    #[serde(default = "default_chair_empty_share")]
    pub chair_empty_share: f64,
    /// Occupied share of the billed time below which the session is short (default 0.9).
    #[serde(default = "default_min_share")]
    pub min_share: f64,
}

impl Default for Dialysis {
    fn default() -> Self {
        Dialysis {
            identity_window_mins: default_identity_window_mins(),
            grace_mins: default_grace_mins(),
            chair_empty_share: default_chair_empty_share(),
            min_share: default_min_share(),
        }
    }
}

// The defaults are the dialysis rules' own (decide::dialysis).
fn default_identity_window_mins() -> f64 {
    DialysisRules::default().identity_window.as_secs_f64() / 60.0
}
fn default_grace_mins() -> f64 {
    DialysisRules::default().grace.as_secs_f64() / 60.0
}
fn default_chair_empty_share() -> f64 {
    DialysisRules::default().chair_empty_share
}
fn default_min_share() -> f64 {
    DialysisRules::default().min_share
}

/// "HH:MM" → (h, m).
fn parse_hhmm(text: &str) -> Option<(u8, u8)> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some((h, m))
}

/// Offsets in use on Earth run from UTC-12:00 (Baker Island) to UTC+14:00 (Line Islands).
const UTC_OFFSET_RANGE_SECS: (i32, i32) = (-12 * 3600, 14 * 3600);

/// "+08:00" / "-05:30" → seconds east of UTC, or what is wrong with it.
fn parse_offset(text: &str) -> Result<i32, String> {
    let not_an_offset = || format!("{text:?} is not an offset like \"+08:00\"");
    let sign = match text.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(not_an_offset()),
    };
    let (h, m) = parse_hhmm(&text[1..]).ok_or_else(not_an_offset)?;
    let secs = sign * (i32::from(h) * 3600 + i32::from(m) * 60);
    if !(UTC_OFFSET_RANGE_SECS.0..=UTC_OFFSET_RANGE_SECS.1).contains(&secs) {
        return Err(format!("{text:?} is out of range: UTC offsets run from -12:00 to +14:00"));
    }
    Ok(secs)
}

impl Rollcalls {
    /// The site's offset (seconds east of UTC): roll-call times, and platform times given without one.
    pub fn utc_offset_secs(&self) -> Option<i32> {
        parse_offset(&self.utc_offset).ok()
    }

    /// The site's offset (seconds east of UTC), or what is wrong with `utc_offset`.
    pub fn utc_offset(&self) -> Result<i32, String> {
        parse_offset(&self.utc_offset)
    }

    /// The roll-call schedule with `seed`; every problem with the settings listed (field, message).
    pub fn schedule(&self, seed: u64) -> Result<super::rollcall::Schedule, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut fixed = Vec::new();
        for (i, t) in self.times.iter().enumerate() {
            match parse_hhmm(t) {
                Some(hm) => fixed.push(hm),
                None => errors.push((format!("rollcalls.times[{i}]"), format!("{t:?} is not a local time \"HH:MM\""))),
            }
        }
        if self.every_mins > 0 {
            if self.every_mins > 24 * 60 {
                errors.push(("rollcalls.every_mins".into(), format!("must be 0..1440, got {}", self.every_mins)));
            } else {
                let every = self.every_mins as usize;
                fixed.extend((0..24 * 60).step_by(every).map(|m| ((m / 60) as u8, (m % 60) as u8)));
            }
        }
        fixed.sort_unstable();
        fixed.dedup();
        let mut between = [(0, 0); 2];
        for (i, t) in self.random_between.iter().enumerate() {
            match parse_hhmm(t) {
                Some(hm) => between[i] = hm,
                None => errors
                    .push((format!("rollcalls.random_between[{i}]"), format!("{t:?} is not a local time \"HH:MM\""))),
            }
        }
        let utc_offset_secs = parse_offset(&self.utc_offset).unwrap_or_else(|message| {
            errors.push(("rollcalls.utc_offset".into(), message));
            0
        });
        if self.escalate_after == 0 {
            errors.push(("rollcalls.escalate_after".into(), "must be at least 1".into()));
        }
        let schedule = super::rollcall::Schedule {
            fixed,
            random_per_day: self.random_per_day,
            random_between: (between[0], between[1]),
            min_spacing_secs: self.min_spacing_mins * 60,
            seed,
            utc_offset_secs,
        };
        if errors.is_empty() {
            errors.extend(schedule.validate().into_iter().map(|(f, m)| (format!("rollcalls ({f})"), m)));
        }
        if errors.is_empty() { Ok(schedule) } else { Err(errors) }
    }
}

impl Dialysis {
    pub fn rules(&self) -> DialysisRules {
        DialysisRules {
            identity_window: std::time::Duration::from_secs_f64(self.identity_window_mins * 60.0),
            grace: std::time::Duration::from_secs_f64(self.grace_mins * 60.0),
            chair_empty_share: self.chair_empty_share,
            min_share: self.min_share,
        }
    }
}

/// A section's problems: (field within it, message).
type Problems = Vec<(&'static str, String)>;

impl Settlement {
    /// Every problem with `[settlement]`.
    pub fn problems(&self) -> Problems {
        let mut problems = Vec::new();
        if !(5..=600).contains(&self.watch_secs) {
            problems.push(("watch_secs", format!("must be 5..600 seconds, got {}", self.watch_secs)));
        }
        if !(1..=50).contains(&self.min_good_frames) {
            problems.push(("min_good_frames", format!("must be 1..50, got {}", self.min_good_frames)));
        }
        if !(1..=3650).contains(&self.face_retention_days) {
            problems.push(("face_retention_days", format!("must be 1..3650 days, got {}", self.face_retention_days)));
        }
        if self.sharing_window_days > self.face_retention_days {
            problems.push((
                "sharing_window_days",
                format!(
                    "{} days looks back further than faces are kept (face_retention_days = {})",
                    self.sharing_window_days, self.face_retention_days
                ),
            ));
        }
        problems
    }
}

impl Physicians {
    /// Every problem with `[physicians]`.
    pub fn problems(&self) -> Problems {
        let mut problems = Vec::new();
        if !(0.1..=1440.0).contains(&self.absent_after_mins) {
            problems.push(("absent_after_mins", format!("must be 0.1..1440 minutes, got {}", self.absent_after_mins)));
        }
        if !(0.2..=300.0).contains(&self.scan_every_secs) {
            problems.push(("scan_every_secs", format!("must be 0.2..300 seconds, got {}", self.scan_every_secs)));
        }
        if !(1..=20).contains(&self.sighting_matches) {
            problems.push(("sighting_matches", format!("must be 1..20, got {}", self.sighting_matches)));
        }
        problems
    }
}

impl Presence {
    /// Every problem with `[presence]`.
    pub fn problems(&self) -> Problems {
        let mut problems = Vec::new();
        for (field, value) in [
            ("min_inside", self.min_inside),
            ("min_cover", self.min_cover),
            ("full_cover", self.full_cover),
            ("changed_occupied", self.changed_occupied),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                problems.push((field, format!("must be above 0 and at most 1, got {value}")));
            }
        }
        for (field, value) in [
            ("enter_secs", self.enter_secs),
            ("leave_secs", self.leave_secs),
            ("max_gap_secs", self.max_gap_secs),
            ("stale_secs", self.stale_secs),
        ] {
            if value > 3600 {
                problems.push((field, format!("must be at most 3600 seconds, got {value}")));
            }
        }
        for (field, value) in [("night_max_colour", self.night_max_colour), ("day_min_colour", self.day_min_colour)] {
            if !(value > 0.0 && value < 1.0) {
                problems.push((field, format!("must be above 0 and below 1, got {value}")));
            }
        }
        if self.day_min_colour < self.night_max_colour {
            problems.push((
                "day_min_colour",
                format!(
                    "must be at least night_max_colour ({}), got {}: a picture would be day and night at once",
                    self.night_max_colour, self.day_min_colour
                ),
            ));
        }
        problems
    }
}

impl Dialysis {
    /// Every problem with `[dialysis]`.
    pub fn problems(&self) -> Problems {
        let mut problems = Vec::new();
        for (field, value) in [("identity_window_mins", self.identity_window_mins), ("grace_mins", self.grace_mins)] {
            if !(0.0..=600.0).contains(&value) {
                problems.push((field, format!("must be 0..600 minutes, got {value}")));
            }
        }
        for (field, value) in [("chair_empty_share", self.chair_empty_share), ("min_share", self.min_share)] {
            if !(0.0..=1.0).contains(&value) {
                problems.push((field, format!("must be 0..1, got {value}")));
            }
        }
        if self.chair_empty_share >= self.min_share {
            problems.push(("chair_empty_share", "must be below dialysis.min_share".to_owned()));
        }
        problems
    }
}
