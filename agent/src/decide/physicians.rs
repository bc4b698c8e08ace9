//! Physicians on shift must actually be there: a physician billed as present is seen on a camera that
//! watches for physicians (dialysis rooms by default). Pure functions of (state, sightings, roster, time).
//!
//! A sighting is not one matching frame: [`SightingFilter`] wants several face scans matching the same
//! physician within a minute, so one look-alike frame cannot mask an absence. [`Physicians`] keeps, per
//! shift, when the physician was seen; a physician on shift and unseen for `absent_after` is reported
//! once per absence (again only after being seen in between), and every shift ends with a summary.
//!
//! Time is only what the box watched: a shift that started before the box knew of it (roster received
//! late, agent restarted) is watched from then (`watched_from`), never counted as absence before it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::roster::Shift;

/// Confirms sightings: `needed` matches of the same physician within `window`.
#[derive(Debug)]
pub struct SightingFilter {
    needed: usize,
    window: Duration,
    recent: Vec<(String, SystemTime)>,
}

impl SightingFilter {
    pub fn new(needed: usize, window: Duration) -> SightingFilter {
        SightingFilter { needed: needed.max(1), window, recent: Vec::new() }
    }

    /// A scan matched `physician` at `at`; true when this makes a sighting.
    pub fn matched(&mut self, physician: &str, at: SystemTime) -> bool {
        let window = self.window;
        self.recent.retain(|(_, t)| at.duration_since(*t).unwrap_or_default() <= window);
        self.recent.push((physician.to_owned(), at));
        self.recent.iter().filter(|(p, _)| p == physician).count() >= self.needed
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PhysicianEvent {
    /// On shift and not seen since `since` (the later of: shift start, watching start, last sighting).
    Absent {
        physician: String,
        shift_start: SystemTime,
        shift_end: SystemTime,
        since: SystemTime,
        last_camera: Option<String>,
    },
    /// The shift is over: what was seen of the physician during it.
    ShiftSummary(ShiftSummary),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShiftSummary {
    pub physician: String,
    pub shift_start: SystemTime,
    pub shift_end: SystemTime,
    /// From when the box watched this shift (later than the start when it learned of it late).
    pub watched_from: SystemTime,
    pub first_seen: Option<SystemTime>,
    pub last_seen: Option<SystemTime>,
    pub sightings: u32,
    /// Distinct minutes of the shift with at least one sighting.
    pub seen_minutes: u32,
    pub absences: u32,
    pub cameras: Vec<String>,
}

#[derive(Debug, Clone)]
struct ShiftState {
    watched_from: SystemTime,
    first_seen: Option<SystemTime>,
    last_seen: Option<SystemTime>,
    last_camera: Option<String>,
    sightings: u32,
    minutes: std::collections::BTreeSet<u64>,
    absences: u32,
    /// An absence was reported and no sighting came since.
    absent: bool,
    cameras: Vec<String>,
}

/// Physician presence against the roster's shifts.
#[derive(Debug, Default)]
pub struct Physicians {
    absent_after: Duration,
    /// By (physician, shift start, shift end).
    shifts: BTreeMap<(String, SystemTime, SystemTime), ShiftState>,
    /// Shifts already summarised (so a roster repeating them does not start them again).
    done: std::collections::BTreeSet<(String, SystemTime, SystemTime)>,
}

impl Physicians {
    pub fn new(absent_after: Duration) -> Physicians {
        Physicians { absent_after, ..Default::default() }
    }

    /// Takes the roster's shifts; shifts gone from the roster are dropped without a summary, new ones are
    /// watched from `now`, known ones keep what was seen.
    pub fn set_shifts(&mut self, shifts: &[Shift], now: SystemTime) {
        let keys: Vec<_> = shifts.iter().map(|s| (s.physician.clone(), s.start, s.end)).collect();
        self.shifts.retain(|k, _| keys.contains(k));
        for key in keys {
            if key.2 > now && !self.done.contains(&key) {
                self.shifts.entry(key.clone()).or_insert_with(|| ShiftState {
                    watched_from: key.1.max(now),
                    first_seen: None,
                    last_seen: None,
                    last_camera: None,
                    sightings: 0,
                    minutes: Default::default(),
                    absences: 0,
                    absent: false,
                    cameras: Vec::new(),
                });
            }
        }
    }

    /// The physician was seen on `camera` at `at`.
    pub fn sighting(&mut self, physician: &str, camera: &str, at: SystemTime) {
        for ((who, start, end), state) in self.shifts.iter_mut() {
            if who != physician || at < *start || at >= *end {
                continue;
            }
            state.first_seen.get_or_insert(at);
            state.last_seen = Some(at);
            state.last_camera = Some(camera.to_owned());
            state.sightings += 1;
            state.absent = false;
            let minute = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() / 60;
            state.minutes.insert(minute);
            if !state.cameras.iter().any(|c| c == camera) {
                state.cameras.push(camera.to_owned());
            }
        }
    }

    /// Absences that started and shifts that ended by `now`.
    pub fn tick(&mut self, now: SystemTime) -> Vec<PhysicianEvent> {
        let mut events = Vec::new();
        let mut ended = Vec::new();
        for (key, state) in self.shifts.iter_mut() {
            let (physician, start, end) = key;
            let since = state.last_seen.unwrap_or(state.watched_from).max(state.watched_from);
            let horizon = now.min(*end);
            if !state.absent && horizon.duration_since(since).unwrap_or_default() >= self.absent_after && now > since {
                state.absent = true;
                state.absences += 1;
                events.push(PhysicianEvent::Absent {
                    physician: physician.clone(),
                    shift_start: *start,
                    shift_end: *end,
                    since,
                    last_camera: state.last_camera.clone(),
                });
            }
            if now >= *end {
                ended.push(key.clone());
            }
        }
        for key in ended {
            let state = self.shifts.remove(&key).expect("listed above");
            events.push(PhysicianEvent::ShiftSummary(ShiftSummary {
                physician: key.0.clone(),
                shift_start: key.1,
                shift_end: key.2,
                watched_from: state.watched_from,
                first_seen: state.first_seen,
                last_seen: state.last_seen,
                sightings: state.sightings,
                seen_minutes: state.minutes.len() as u32,
                absences: state.absences,
                cameras: state.cameras,
            }));
            self.done.insert(key);
        }
        // Forget summarised shifts after a week: rosters do not repeat them later than that.
        self.done.retain(|k| now.duration_since(k.2).unwrap_or_default() < Duration::from_secs(7 * 86_400));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn t(minutes: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + MIN * minutes as u32
    }

    fn shift(who: &str, from: u64, to: u64) -> Shift {
        Shift { physician: who.into(), start: t(from), end: t(to) }
    }

    fn absents(events: &[PhysicianEvent]) -> Vec<(String, SystemTime)> {
        events
            .iter()
            .filter_map(|e| match e {
                PhysicianEvent::Absent { physician, since, .. } => Some((physician.clone(), *since)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_eight_hour_shift_minute_by_minute() {
        let mut p = Physicians::new(30 * MIN);
        p.set_shifts(&[shift("d-1", 60, 540), shift("d-2", 60, 540)], t(0));
        let mut events = Vec::new();
        for minute in 0..=600 {
            // d-1 is seen every 10 minutes except from 200 to 300 (a 100-minute gap); d-2 never.
            if (60..540).contains(&minute) && minute % 10 == 0 && !(201..300).contains(&minute) {
                p.sighting("d-1", "dialysis-a", t(minute));
            }
            events.extend(p.tick(t(minute)).into_iter().map(|e| (minute, e)));
        }
        let absent: Vec<_> = events
            .iter()
            .flat_map(|(m, e)| absents(std::slice::from_ref(e)).into_iter().map(move |a| (*m, a)))
            .collect();
        // d-2: absent 30 minutes into the shift, once. d-1: 30 minutes after the sighting at minute 200.
        assert_eq!(absent, vec![(90, ("d-2".into(), t(60))), (230, ("d-1".into(), t(200)))]);
        let summaries: Vec<_> = events
            .iter()
            .filter_map(|(m, e)| match e {
                PhysicianEvent::ShiftSummary(s) => Some((*m, s.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(summaries.len(), 2);
        let d1 = &summaries.iter().find(|(_, s)| s.physician == "d-1").unwrap();
        assert_eq!(d1.0, 540, "summary when the shift ends");
        assert_eq!((d1.1.first_seen, d1.1.last_seen), (Some(t(60)), Some(t(530))));
        assert_eq!((d1.1.sightings, d1.1.seen_minutes, d1.1.absences), (39, 39, 1));
        assert_eq!(d1.1.cameras, ["dialysis-a"]);
        let d2 = &summaries.iter().find(|(_, s)| s.physician == "d-2").unwrap().1;
        assert_eq!((d2.sightings, d2.absences, d2.first_seen), (0, 1, None));
    }

    #[test]
    fn a_shift_learned_late_is_watched_from_then_and_not_repeated() {
        let mut p = Physicians::new(30 * MIN);
        p.set_shifts(&[shift("d-1", 0, 120)], t(100));
        assert!(p.tick(t(110)).is_empty(), "only 10 minutes watched");
        let events = p.tick(t(120));
        let PhysicianEvent::ShiftSummary(s) = &events[0] else { panic!("{events:?}") };
        assert_eq!((s.watched_from, s.absences), (t(100), 0));
        p.set_shifts(&[shift("d-1", 0, 120)], t(121));
        assert!(p.tick(t(200)).is_empty(), "a summarised shift is not started again");
    }

    #[test]
    fn sightings_need_several_matches_within_the_window() {
        let mut f = SightingFilter::new(2, MIN);
        assert!(!f.matched("d-1", t(0)));
        assert!(!f.matched("d-2", t(0)));
        assert!(f.matched("d-1", t(0) + Duration::from_secs(20)));
        assert!(!f.matched("d-2", t(0) + Duration::from_secs(90)), "the first d-2 match is too old");
    }
}
