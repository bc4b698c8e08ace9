//! The roster: who should be where. Inpatients and their beds, dialysis sessions (patient, chair,
//! start, billed minutes) and physicians' shifts. It arrives as the args of a signed `roster` command,
//! or from a local file on sites without a platform; both use this JSON shape (docs/mqtt-api.md).
//!
//! A roster replaces the previous one as a whole: the hospital system sends what is true now, so there
//! is no partial state to reconcile. It is checked against the configured cameras and regions before it
//! is accepted, and every problem is reported at once, each naming its JSON path.
//!
//! Times carry their offset (`…Z`, `…+08:00`, honoured), or none: then they are wall-clock times at the
//! site, in its `rollcalls.utc_offset` ([`crate::times`]). A time that is neither is refused with its
//! JSON path. Stored (`<data_dir>/roster.json`) they are in UTC, so a change of offset does not move them.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::role::CameraRole;

/// What a roster is checked against: the site's UTC offset and its cameras (`config::Config` is one).
pub trait Site {
    /// Seconds east of UTC in which times without an offset are read, or why there is none.
    fn utc_offset_secs(&self) -> Result<i32, String>;
    /// The camera `id`, if this box has it.
    fn camera(&self, id: &str) -> Option<SiteCamera<'_>>;
}

/// A camera as the roster sees it.
#[derive(Debug, Clone)]
pub struct SiteCamera<'a> {
    pub role: CameraRole,
    /// Names of its regions (beds, chairs), sorted.
    pub regions: Vec<&'a str>,
}

/// Time as RFC 3339 in JSON: written in UTC; read only with an explicit offset ([`Roster::parse`] first
/// resolves times without one in the site's offset).
mod rfc3339 {
    use std::time::SystemTime;

    use serde::Deserialize;

    use crate::times::{self, Naive};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&times::format(*t))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        times::parse(&text, Naive::Refuse).map_err(serde::de::Error::custom)
    }
}

/// Where the roster holds times, as (list, fields).
const TIME_FIELDS: [(&str, &[&str]); 2] = [("dialysis_sessions", &["start"]), ("shifts", &["start", "end"])];

/// `json` with every time resolved to UTC (times without an offset are site-local, `offset_secs` east of
/// UTC); every time that cannot be read is listed with its JSON path and value.
fn resolve_times(json: &serde_json::Value, offset_secs: i32) -> Result<serde_json::Value, Vec<String>> {
    let mut json = json.clone();
    let mut errors = Vec::new();
    for (list, fields) in TIME_FIELDS {
        let Some(items) = json.get_mut(list).and_then(serde_json::Value::as_array_mut) else { continue };
        for (i, item) in items.iter_mut().enumerate() {
            for field in fields {
                let Some(value) = item.get_mut(*field) else { continue };
                let Some(text) = value.as_str() else {
                    errors.push(format!("{list}[{i}].{field}: must be a time string, got {value}"));
                    continue;
                };
                match crate::times::parse(text, crate::times::Naive::SiteOffset(offset_secs)) {
                    Ok(t) => *value = serde_json::Value::String(crate::times::format(t)),
                    Err(e) => errors.push(format!("{list}[{i}].{field}: {e}")),
                }
            }
        }
    }
    if errors.is_empty() { Ok(json) } else { Err(errors) }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// Inpatients and the bed each is registered in.
    #[serde(default)]
    pub inpatients: Vec<Inpatient>,
    /// Billed dialysis sessions.
    #[serde(default)]
    pub dialysis_sessions: Vec<DialysisSession>,
    /// Physicians' shifts.
    #[serde(default)]
    pub shifts: Vec<Shift>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inpatient {
    pub patient: String,
    /// A ward camera's id.
    pub camera: String,
    /// A region of that camera.
    pub bed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialysisSession {
    /// The hospital's id of the billed session.
    pub session: String,
    pub patient: String,
    /// A dialysis_room camera's id.
    pub camera: String,
    /// A region of that camera.
    pub chair: String,
    #[serde(with = "rfc3339")]
    pub start: SystemTime,
    pub billed_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    pub physician: String,
    #[serde(with = "rfc3339")]
    pub start: SystemTime,
    #[serde(with = "rfc3339")]
    pub end: SystemTime,
}

impl Shift {
    pub fn on_at(&self, t: SystemTime) -> bool {
        self.start <= t && t < self.end
    }
}

fn check_id(errors: &mut Vec<String>, path: String, value: &str) {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        errors.push(format!("{path}: must be 1..128 printable characters, got {value:?}"));
    }
}

impl Roster {
    /// Parses and checks a roster; every problem is listed. Times without an offset are read in the
    /// site's `rollcalls.utc_offset`.
    pub fn parse(json: &serde_json::Value, site: &impl Site) -> Result<Roster, Vec<String>> {
        let offset = site.utc_offset_secs().map_err(|e| vec![e])?;
        let json = resolve_times(json, offset)?;
        let roster: Roster = serde_json::from_value(json).map_err(|e| vec![e.to_string()])?;
        let errors = roster.check(site);
        if errors.is_empty() { Ok(roster) } else { Err(errors) }
    }

    /// Everything wrong with this roster for the configured cameras.
    pub fn check(&self, site: &impl Site) -> Vec<String> {
        let mut errors = Vec::new();
        let region = |errors: &mut Vec<String>,
                      path: &str,
                      camera: &str,
                      region: &str,
                      role: CameraRole,
                      what: &str| match site.camera(camera) {
            None => errors.push(format!("{path}.camera: no camera {camera:?} on this box")),
            Some(c) if c.role != role => {
                errors.push(format!("{path}.camera: {camera:?} is a {} camera, not {}", c.role.as_str(), role.as_str()))
            }
            Some(c) if !c.regions.contains(&region) => errors.push(format!(
                "{path}.{what}: camera {camera:?} has no region {region:?} (it has: {})",
                c.regions.join(", ")
            )),
            Some(_) => {}
        };
        let mut patients = HashSet::new();
        let mut beds = HashSet::new();
        for (i, p) in self.inpatients.iter().enumerate() {
            let path = format!("inpatients[{i}]");
            check_id(&mut errors, format!("{path}.patient"), &p.patient);
            region(&mut errors, &path, &p.camera, &p.bed, CameraRole::Ward, "bed");
            if !patients.insert(&p.patient) {
                errors.push(format!("{path}.patient: {:?} is registered in two beds", p.patient));
            }
            if !beds.insert((&p.camera, &p.bed)) {
                errors.push(format!("{path}.bed: {}/{} has two patients", p.camera, p.bed));
            }
        }
        let mut sessions = HashSet::new();
        for (i, s) in self.dialysis_sessions.iter().enumerate() {
            let path = format!("dialysis_sessions[{i}]");
            check_id(&mut errors, format!("{path}.session"), &s.session);
            check_id(&mut errors, format!("{path}.patient"), &s.patient);
            region(&mut errors, &path, &s.camera, &s.chair, CameraRole::DialysisRoom, "chair");
            if !(1..=24 * 60).contains(&s.billed_minutes) {
                errors.push(format!("{path}.billed_minutes: must be 1..1440, got {}", s.billed_minutes));
            }
            if !sessions.insert(&s.session) {
                errors.push(format!("{path}.session: {:?} appears twice", s.session));
            }
        }
        for (i, s) in self.shifts.iter().enumerate() {
            let path = format!("shifts[{i}]");
            check_id(&mut errors, format!("{path}.physician"), &s.physician);
            match s.end.duration_since(s.start) {
                Ok(d) if d > Duration::ZERO && d <= Duration::from_secs(48 * 3600) => {}
                _ => errors.push(format!("{path}.end: must be after start, and a shift at most 48 h")),
            }
        }
        errors
    }

    /// The patient registered in a bed.
    pub fn patient_in(&self, camera: &str, bed: &str) -> Option<&str> {
        self.inpatients.iter().find(|p| p.camera == camera && p.bed == bed).map(|p| p.patient.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        crate::config::parse(
            std::path::Path::new("t.toml"),
            r#"
            [site]
            id = "h"
            device_id = "d"
            [[cameras]]
            id = "ward-3"
            role = "ward"
            url = "test://smpte"
            regions = { bed-1 = [[0,0],[0.5,0],[0.5,1]], bed-2 = [[0.5,0],[1,0],[1,1]] }
            [[cameras]]
            id = "dialysis-a"
            role = "dialysis_room"
            url = "test://smpte"
            regions = { chair-1 = [[0,0],[0.5,0],[0.5,1]] }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn accepts_a_good_roster_and_lists_every_problem_of_a_bad_one() {
        let good = serde_json::json!({
            "inpatients": [{"patient": "p-1", "camera": "ward-3", "bed": "bed-1"}],
            "dialysis_sessions": [{"session": "s-1", "patient": "p-2", "camera": "dialysis-a", "chair": "chair-1",
                "start": "2026-11-24T08:00:00Z", "billed_minutes": 240}],
            "shifts": [{"physician": "d-1", "start": "2026-11-24T08:00:00Z", "end": "2026-11-24T16:00:00Z"}],
        });
        let roster = Roster::parse(&good, &config()).unwrap();
        assert_eq!(roster.patient_in("ward-3", "bed-1"), Some("p-1"));
        assert!(roster.shifts[0].on_at(humantime::parse_rfc3339("2026-11-24T15:59:59Z").unwrap()));
        assert!(!roster.shifts[0].on_at(humantime::parse_rfc3339("2026-11-24T16:00:00Z").unwrap()));

        let bad = serde_json::json!({
            "inpatients": [{"patient": "p-1", "camera": "ward-9", "bed": "bed-1"},
                           {"patient": "p-1", "camera": "ward-3", "bed": "bed-7"}],
            "dialysis_sessions": [{"session": "s-1", "patient": "p-2", "camera": "ward-3", "chair": "chair-1",
                "start": "2026-11-24T08:00:00Z", "billed_minutes": 0}],
            "shifts": [{"physician": "", "start": "2026-11-24T08:00:00Z", "end": "2026-11-24T07:00:00Z"}],
        });
        let errors = Roster::parse(&bad, &config()).unwrap_err();
        let text = errors.join("\n");
        for expected in [
            "inpatients[0].camera: no camera \"ward-9\"",
            "inpatients[1].bed: camera \"ward-3\" has no region \"bed-7\"",
            "inpatients[1].patient: \"p-1\" is registered in two beds",
            "dialysis_sessions[0].camera: \"ward-3\" is a ward camera, not dialysis_room",
            "dialysis_sessions[0].billed_minutes",
            "shifts[0].physician",
            "shifts[0].end",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(errors.len(), 7, "{text}");
        let unknown = serde_json::json!({"inpatient": []});
        assert!(Roster::parse(&unknown, &config()).unwrap_err()[0].contains("unknown field"));
    }

    fn utc8() -> Config {
        let mut config = config();
        config.rollcalls.utc_offset = "+08:00".into();
        config
    }

    fn at(text: &str) -> SystemTime {
        crate::times::parse(text, crate::times::Naive::Refuse).unwrap()
    }

    /// The issue: a naive `2026-11-24 08:00:00` in a UTC+8 hospital was read as UTC (8 hours off).
    #[test]
    fn naive_roster_time_is_site_local() {
        let roster = serde_json::json!({
            "dialysis_sessions": [{"session": "s-1", "patient": "p-2", "camera": "dialysis-a", "chair": "chair-1",
                "start": "2026-11-24 08:00:00", "billed_minutes": 240}],
            "shifts": [{"physician": "d-1", "start": "2026-11-24T08:00:00", "end": "2026-11-24 16:00:00"}],
        });
        let parsed = Roster::parse(&roster, &utc8()).unwrap();
        assert_eq!(parsed.dialysis_sessions[0].start, at("2026-11-24T00:00:00Z"));
        assert_eq!(
            (parsed.shifts[0].start, parsed.shifts[0].end),
            (at("2026-11-24T00:00:00Z"), at("2026-11-24T08:00:00Z"))
        );
        // Stored in UTC: read back the same whatever the offset is then.
        let stored = serde_json::to_value(&parsed).unwrap();
        assert_eq!(stored["shifts"][0]["start"], "2026-11-24T00:00:00Z");
        assert_eq!(Roster::parse(&stored, &config()).unwrap(), parsed);
        assert_eq!(serde_json::from_value::<Roster>(stored).unwrap(), parsed);
    }

    /// The issue: an explicit `+08:00` was rejected.
    #[test]
    fn explicit_offset_is_honoured() {
        let roster = serde_json::json!({
            "shifts": [{"physician": "d-1", "start": "2026-11-24T08:00:00+08:00", "end": "2026-11-24T12:00:00Z"}],
        });
        for config in [config(), utc8()] {
            let parsed = Roster::parse(&roster, &config).unwrap();
            assert_eq!(parsed.shifts[0].start, at("2026-11-24T00:00:00Z"));
            assert_eq!(parsed.shifts[0].end, at("2026-11-24T12:00:00Z"));
        }
    }

    #[test]
    fn unreadable_times_are_refused_with_their_json_path_and_value() {
        let roster = serde_json::json!({
            "dialysis_sessions": [{"session": "s-1", "patient": "p-2", "camera": "dialysis-a", "chair": "chair-1",
                "start": "2026-11-24", "billed_minutes": 240}],
            "shifts": [{"physician": "d-1", "start": "2026-11-24T08:00:00Z", "end": "24/11/2026 16:00:00"},
                       {"physician": "d-2", "start": 1764000000, "end": "2026-11-24 25:00:00"}],
        });
        let errors = Roster::parse(&roster, &utc8()).unwrap_err();
        let text = errors.join("\n");
        for expected in [
            "dialysis_sessions[0].start: \"2026-11-24\"",
            "shifts[0].end: \"24/11/2026 16:00:00\"",
            "shifts[1].start: must be a time string, got 1764000000",
            "shifts[1].end: \"2026-11-24 25:00:00\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(errors.len(), 4, "{text}");
        // Read without the site (serde alone), a time without an offset is refused, not guessed.
        let naive = serde_json::json!({"shifts": [{"physician": "d", "start": "2026-11-24 08:00:00", "end": "2026-11-24T09:00:00Z"}]});
        assert!(serde_json::from_value::<Roster>(naive).unwrap_err().to_string().contains("no UTC offset"));
    }
}
