//! Roll-calls on wards: at scheduled and random times, every bed with a registered inpatient must be
//! occupied; repeated absence escalates (hanging-bed hospitalisation: billed as inpatient, not in bed).
//!
//! **When.** Fixed local times (e.g. the morning round) plus a number of random times per local day
//! inside a window (e.g. nights, 21:00–06:00, when a "patient" who sleeps at home is missing). Random
//! times must not be guessable by ward staff, yet the platform must be able to reproduce them (to audit
//! that a roll-call happened when the box says it did). So they come from a secret `seed`: for each local
//! day a key is derived as HMAC-SHA256(seed, day) and a small PRNG (splitmix64) draws that day's times
//! from it. The HMAC means that even someone who reconstructed one day's PRNG state from observed
//! roll-calls learns nothing about other days or the seed. Without the seed the times are unpredictable;
//! with it they are reproducible anywhere.
//!
//! **Local time** is UTC plus a fixed `utc_offset_secs` from config, which keeps the box free of a
//! time-zone database and of DST ambiguities (China, where Vigil is first deployed, has no DST). A site
//! with DST sets the offset seasonally; roll-calls then shift by an hour on the change days, which only
//! moves random times and fixed rounds by that hour.
//!
//! **Absence.** A bed is absent at a roll-call when its patient is registered and the bed is Empty.
//! The state each bed is checked with (`RegionMonitor::rollcall_state`) reads the raw signal of the
//! latest frames too: a patient who lay down seconds before the roll-call, before `enter_secs` turned
//! the bed Occupied, is present; a bed whose empty reference is stale is Unknown.
//! Unknown (camera offline, no decision yet) is never absence and neither counts nor breaks a streak:
//! switching a camera off at roll-call time must not wipe a patient's record of absences.
//! `bed_absence_escalated` is raised when a streak reaches K consecutive absences and again at 2K, 3K…:
//! a bed kept empty for days keeps resurfacing at a bounded rate instead of being raised once and
//! forgotten, or at every roll-call (each absence is reported on its own anyway).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde::Serialize;

use super::presence::Occupancy;

const DAY: i64 = 86_400;
/// Attempts to place one random time before giving up on it (the window is too crowded).
const ATTEMPTS: usize = 64;

/// When roll-calls happen (config `[cameras.rollcall]` or `[rollcall]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Local times (hour, minute) of the roll-calls held every day.
    pub fixed: Vec<(u8, u8)>,
    /// Random roll-calls per local day.
    pub random_per_day: u32,
    /// Local window of the random roll-calls, `[from, to)`; it may wrap midnight (21:00–06:00 belongs to
    /// the day it starts on). Equal ends mean the whole day (the default, 00:00–00:00).
    pub random_between: ((u8, u8), (u8, u8)),
    /// Random roll-calls keep at least this far from each other and from fixed ones. Default 1 h: two
    /// checks minutes apart say little more than one.
    pub min_spacing_secs: u64,
    /// Secret that makes random times unpredictable; shared with the platform only.
    pub seed: u64,
    /// Local time = UTC + this (e.g. 28 800 for UTC+8).
    pub utc_offset_secs: i32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            fixed: Vec::new(),
            random_per_day: 0,
            random_between: ((0, 0), (0, 0)),
            min_spacing_secs: 3600,
            seed: 0,
            utc_offset_secs: 0,
        }
    }
}

impl Schedule {
    /// All problems with the schedule, each as (field, message); empty when it is usable.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let bad_time = |(h, m): (u8, u8)| h > 23 || m > 59;
        for &(h, m) in self.fixed.iter().filter(|t| bad_time(**t)) {
            errors.push(("fixed", format!("{h:02}:{m:02} is not a time of day (00:00–23:59)")));
        }
        for (h, m) in [self.random_between.0, self.random_between.1].into_iter().filter(|t| bad_time(*t)) {
            errors.push(("random_between", format!("{h:02}:{m:02} is not a time of day (00:00–23:59)")));
        }
        if self.min_spacing_secs >= DAY as u64 {
            errors.push(("min_spacing_secs", format!("must be under a day, got {}", self.min_spacing_secs)));
        }
        if self.random_per_day > 0 && self.seed == 0 {
            errors.push(("seed", "random roll-calls need a secret seed; 0 is the default and so guessable".into()));
        }
        let needed = u64::from(self.random_per_day.saturating_sub(1)) * self.min_spacing_secs;
        if self.random_per_day > 0 && needed >= self.window_secs() as u64 {
            errors.push((
                "random_per_day",
                format!(
                    "{} roll-calls {} s apart do not fit a {} s window; fewer would be held",
                    self.random_per_day,
                    self.min_spacing_secs,
                    self.window_secs()
                ),
            ));
        }
        if self.utc_offset_secs.unsigned_abs() > 18 * 3600 {
            errors.push(("utc_offset_secs", format!("must be within ±18 h, got {}", self.utc_offset_secs)));
        }
        errors
    }

    /// Roll-call times in `[from, to)`, sorted. Calling it over consecutive intervals gives each time
    /// exactly once; the same schedule gives the same times on any machine.
    pub fn times_between(&self, from: SystemTime, to: SystemTime) -> Vec<SystemTime> {
        let (lo, hi) = (unix(from), unix(to));
        // A day's times lie within its local day, or (random, wrapping window) up to a day after its start.
        let mut times: Vec<SystemTime> = (self.local_day(lo) - 1..=self.local_day(hi))
            .flat_map(|day| self.day_times(day))
            .map(from_unix)
            .filter(|t| *t >= from && *t < to)
            .collect();
        times.sort();
        times.dedup();
        times
    }

    fn local_day(&self, unix_secs: i64) -> i64 {
        (unix_secs + i64::from(self.utc_offset_secs)).div_euclid(DAY)
    }

    /// Unix time of a local time of day on a local day.
    fn at(&self, day: i64, (h, m): (u8, u8)) -> i64 {
        day * DAY + minute_of_day((h, m)) * 60 - i64::from(self.utc_offset_secs)
    }

    fn window_secs(&self) -> i64 {
        let (from, to) = (minute_of_day(self.random_between.0), minute_of_day(self.random_between.1));
        (to - from).rem_euclid(24 * 60) * 60 + if from == to { DAY } else { 0 }
    }

    /// Fixed and random roll-calls of one local day, unix seconds.
    fn day_times(&self, day: i64) -> Vec<i64> {
        let mut times: Vec<i64> = self.fixed.iter().map(|&hm| self.at(day, hm)).collect();
        times.extend(self.random_times(day));
        times
    }

    /// A day's random times: drawn on their own (`draw`), then any too close to the previous day's draw
    /// dropped. Windows of consecutive days can touch (whole-day windows), and dropping rather than
    /// redrawing keeps each day computable from two days only while still spacing every pair: the
    /// previous day's kept times are a subset of its draw.
    fn random_times(&self, day: i64) -> Vec<i64> {
        let previous = self.draw(day - 1);
        let spacing = self.min_spacing_secs as i64;
        self.draw(day).into_iter().filter(|t| previous.iter().all(|p| (t - p).abs() >= spacing)).collect()
    }

    fn draw(&self, day: i64) -> Vec<i64> {
        if self.random_per_day == 0 {
            return Vec::new();
        }
        let spacing = self.min_spacing_secs as i64;
        let start = self.at(day, self.random_between.0);
        let window = self.window_secs() as u64;
        let fixed: Vec<i64> = (day - 1..=day + 1)
            .flat_map(|d| self.fixed.iter().map(move |&hm| (d, hm)))
            .map(|(d, hm)| self.at(d, hm))
            .collect();
        let mut rng = SplitMix64(day_key(self.seed, day));
        let mut drawn: Vec<i64> = Vec::new();
        for _ in 0..self.random_per_day {
            for _ in 0..ATTEMPTS {
                let t = start + rng.below(window) as i64;
                if fixed.iter().chain(&drawn).all(|o| (t - o).abs() >= spacing) {
                    drawn.push(t);
                    break;
                }
            }
        }
        drawn
    }
}

fn minute_of_day((h, m): (u8, u8)) -> i64 {
    // Out-of-range config is reported by `validate`; here it wraps rather than panicking.
    (i64::from(h) * 60 + i64::from(m)).rem_euclid(24 * 60)
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// The PRNG state of one local day: HMAC-SHA256 keyed by the seed over the day number.
fn day_key(seed: u64, day: i64) -> u64 {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &seed.to_be_bytes());
    let mut msg = b"vigil rollcall day ".to_vec();
    msg.extend_from_slice(&day.to_be_bytes());
    let tag = hmac::sign(&key, &msg);
    u64::from_be_bytes(tag.as_ref()[..8].try_into().expect("SHA-256 tags are 32 bytes"))
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, full-period, good enough for drawing times of day.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2⁻⁴⁰ for n up to a day of seconds).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

// ---------------------------------------------------------------------------------------------------
// Absence streaks

/// One bed at one roll-call, as the caller found it (roster + occupancy tracker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedCheck {
    pub camera: String,
    pub bed: String,
    /// The inpatient registered to the bed, if any.
    pub patient: Option<String>,
    pub state: Occupancy,
}

/// Settings from config `[rollcall]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollcallRules {
    /// Consecutive absences that raise `bed_absence_escalated` (and every multiple of it). Default 3:
    /// one absence is a walk or an examination elsewhere, three in a row (with random night checks
    /// among them) is a pattern. Values below 1 are treated as 1.
    pub escalate_after: u32,
}

impl Default for RollcallRules {
    fn default() -> Self {
        RollcallRules { escalate_after: 3 }
    }
}

/// A bed named in an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BedRef {
    pub camera: String,
    pub bed: String,
    pub patient: Option<String>,
}

/// A registered patient not in their bed at this roll-call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Absence {
    pub camera: String,
    pub bed: String,
    pub patient: String,
    /// Absences in a row including this one (Unknown roll-calls in between skipped).
    pub consecutive: u32,
    /// The roll-call at which the streak began.
    #[serde(with = "super::humantime_serde_compat")]
    pub absent_since: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RollcallSummary {
    /// Beds with a registered patient.
    pub checked: usize,
    pub present: usize,
    pub absent: usize,
    /// Registered beds with no decision (camera offline, no data).
    pub unknown: usize,
    /// Beds without a registered patient (not checked).
    pub unregistered: usize,
    /// Of those, occupied: someone in a bed no inpatient is registered to.
    pub unregistered_occupied: usize,
}

/// What one roll-call found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollcallOutcome {
    #[serde(with = "super::humantime_serde_compat")]
    pub at: SystemTime,
    pub absent: Vec<Absence>,
    /// Absences whose streak just reached a multiple of `escalate_after`.
    pub escalated: Vec<Absence>,
    pub unknown: Vec<BedRef>,
    pub unregistered_occupied: Vec<BedRef>,
    pub summary: RollcallSummary,
}

#[derive(Debug, Clone)]
struct Streak {
    patient: String,
    count: u32,
    since: SystemTime,
}

/// Consecutive-absence counts per (camera, bed), across roll-calls.
#[derive(Debug, Clone, Default)]
pub struct RollcallTracker {
    rules: RollcallRules,
    streaks: HashMap<(String, String), Streak>,
}

/// A streak as stored between runs (so an agent restart does not reset escalation).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StoredStreak {
    pub camera: String,
    pub bed: String,
    pub patient: String,
    pub count: u32,
    /// Unix seconds of the roll-call that began the streak.
    pub since: u64,
}

impl RollcallTracker {
    pub fn new(rules: RollcallRules) -> RollcallTracker {
        RollcallTracker { rules, streaks: HashMap::new() }
    }

    /// The streaks, to store.
    pub fn export(&self) -> Vec<StoredStreak> {
        let mut out: Vec<StoredStreak> = self
            .streaks
            .iter()
            .map(|((camera, bed), s)| StoredStreak {
                camera: camera.clone(),
                bed: bed.clone(),
                patient: s.patient.clone(),
                count: s.count,
                since: s.since.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs(),
            })
            .collect();
        out.sort_by(|a, b| (&a.camera, &a.bed).cmp(&(&b.camera, &b.bed)));
        out
    }

    /// Takes stored streaks back (at start).
    pub fn import(&mut self, stored: Vec<StoredStreak>) {
        for s in stored {
            let since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s.since);
            self.streaks.insert((s.camera, s.bed), Streak { patient: s.patient, count: s.count, since });
        }
    }

    /// The current absence streak of a bed (0 when none).
    pub fn streak(&self, camera: &str, bed: &str) -> u32 {
        self.streaks.get(&(camera.to_owned(), bed.to_owned())).map_or(0, |s| s.count)
    }

    /// Judges one roll-call over the beds checked at `at`. A bed whose registered patient changed
    /// starts a new streak; a bed with no patient loses its streak.
    pub fn evaluate(&mut self, at: SystemTime, beds: &[BedCheck]) -> RollcallOutcome {
        let mut out = RollcallOutcome {
            at,
            absent: Vec::new(),
            escalated: Vec::new(),
            unknown: Vec::new(),
            unregistered_occupied: Vec::new(),
            summary: RollcallSummary::default(),
        };
        for check in beds {
            let key = (check.camera.clone(), check.bed.clone());
            let Some(patient) = &check.patient else {
                self.streaks.remove(&key);
                out.summary.unregistered += 1;
                if check.state == Occupancy::Occupied {
                    out.summary.unregistered_occupied += 1;
                    out.unregistered_occupied.push(bed_ref(check));
                }
                continue;
            };
            out.summary.checked += 1;
            if self.streaks.get(&key).is_some_and(|s| &s.patient != patient) {
                self.streaks.remove(&key);
            }
            match check.state {
                Occupancy::Occupied => {
                    out.summary.present += 1;
                    self.streaks.remove(&key);
                }
                Occupancy::Unknown => {
                    out.summary.unknown += 1;
                    out.unknown.push(bed_ref(check));
                }
                Occupancy::Empty => {
                    out.summary.absent += 1;
                    let streak =
                        self.streaks.entry(key).or_insert(Streak { patient: patient.clone(), count: 0, since: at });
                    streak.count += 1;
                    let absence = Absence {
                        camera: check.camera.clone(),
                        bed: check.bed.clone(),
                        patient: patient.clone(),
                        consecutive: streak.count,
                        absent_since: streak.since,
                    };
                    if streak.count % self.rules.escalate_after.max(1) == 0 {
                        out.escalated.push(absence.clone());
                    }
                    out.absent.push(absence);
                }
            }
        }
        out
    }
}

fn bed_ref(check: &BedCheck) -> BedRef {
    BedRef { camera: check.camera.clone(), bed: check.bed.clone(), patient: check.patient.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::clock::{Clock, ManualClock};

    const UTC8: i32 = 8 * 3600;

    /// 2024-03-01 00:00 local (UTC+8).
    fn local_midnight(days_later: i64) -> SystemTime {
        from_unix(1_709_222_400 + days_later * DAY)
    }

    fn local(days_later: i64, h: i64, m: i64) -> SystemTime {
        local_midnight(days_later) + Duration::from_secs((h * 3600 + m * 60) as u64)
    }

    fn schedule(seed: u64) -> Schedule {
        Schedule {
            fixed: vec![(8, 0), (20, 30)],
            random_per_day: 3,
            random_between: ((0, 0), (0, 0)),
            min_spacing_secs: 3600,
            seed,
            utc_offset_secs: UTC8,
        }
    }

    fn assert_spaced(times: &[SystemTime], spacing: u64) {
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]).unwrap().as_secs();
            assert!(gap >= spacing, "{:?} and {:?} are {gap} s apart", pair[0], pair[1]);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_times_and_another_seed_others() {
        let (from, to) = (local_midnight(0), local_midnight(1));
        let a = schedule(42).times_between(from, to);
        assert_eq!(a, schedule(42).times_between(from, to));
        assert_eq!(a.len(), 5, "{a:?}");
        let b = schedule(43).times_between(from, to);
        assert_eq!(b.len(), 5);
        assert_ne!(a, b);
        // Days differ from each other too.
        let next: Vec<Duration> = schedule(42)
            .times_between(local_midnight(1), local_midnight(2))
            .iter()
            .map(|t| t.duration_since(local_midnight(1)).unwrap())
            .collect();
        let first: Vec<Duration> = a.iter().map(|t| t.duration_since(from).unwrap()).collect();
        assert_ne!(first, next);
    }

    #[test]
    fn fixed_times_are_local_and_every_day() {
        let s = schedule(7);
        for day in 0..3 {
            let times = s.times_between(local_midnight(day), local_midnight(day + 1));
            assert!(times.contains(&local(day, 8, 0)), "{times:?}");
            assert!(times.contains(&local(day, 20, 30)));
        }
        // 08:00 at UTC+8 is midnight UTC.
        assert_eq!(unix(local(0, 8, 0)) % DAY, 0);
    }

    #[test]
    fn random_times_fill_their_window_with_spacing_even_across_midnight() {
        let s = Schedule {
            fixed: vec![(23, 0)],
            random_per_day: 4,
            random_between: ((21, 0), (6, 0)),
            min_spacing_secs: 1800,
            seed: 0x5eed,
            utc_offset_secs: UTC8,
        };
        assert!(s.validate().is_empty());
        let mut after_midnight = 0;
        for day in 0..20 {
            let (start, end) = (local(day, 21, 0), local(day + 1, 6, 0));
            let times = s.times_between(start, end);
            let random: Vec<&SystemTime> = times.iter().filter(|t| **t != local(day, 23, 0)).collect();
            assert_eq!(random.len(), 4, "day {day}: {times:?}");
            assert_spaced(&times, 1800);
            after_midnight += random.iter().filter(|t| **t >= &local(day + 1, 0, 0)).count();
            // Nothing random between 06:00 and 21:00.
            let day_part = s.times_between(local(day + 1, 6, 0), local(day + 1, 21, 0));
            assert!(day_part.is_empty(), "{day_part:?}");
        }
        // 9 h window, 6 of them after midnight: most nights have a time after midnight.
        assert!(after_midnight > 20, "{after_midnight}");
    }

    #[test]
    fn spacing_holds_between_days_with_whole_day_windows() {
        // 8 a day (and 2 fixed), 1.5 h apart: draws near midnight would often collide with the next day's.
        let s = Schedule { random_per_day: 8, min_spacing_secs: 5400, ..schedule(99) };
        let times = s.times_between(local_midnight(0), local_midnight(30));
        assert!(times.len() > 30 * 9, "{}", times.len());
        assert_spaced(&times, 5400);
    }

    #[test]
    fn a_crowded_window_gives_fewer_times_and_is_reported() {
        let s = Schedule {
            fixed: vec![],
            random_per_day: 10,
            random_between: ((2, 0), (3, 0)),
            min_spacing_secs: 1800,
            seed: 5,
            utc_offset_secs: 0,
        };
        assert_eq!(s.validate().iter().map(|e| e.0).collect::<Vec<_>>(), ["random_per_day"]);
        let times = s.times_between(from_unix(0), from_unix(DAY));
        assert!((1..=2).contains(&times.len()), "{times:?}");
        let bad = Schedule { fixed: vec![(24, 0)], random_per_day: 1, seed: 0, ..Schedule::default() };
        assert_eq!(bad.validate().iter().map(|e| e.0).collect::<Vec<_>>(), ["fixed", "seed"]);
    }

    #[test]
    fn a_clock_driven_loop_over_three_days_misses_and_repeats_nothing() {
        let s = schedule(2024);
        let start = local(0, 13, 17);
        let clock = ManualClock::new(start);
        let mut seen = Vec::new();
        let mut last = clock.now();
        // Uneven ticks; every fifth lands exactly on the next roll-call (a half-open boundary).
        let (mut step, mut tick) = (1, 0);
        while clock.now() < start + Duration::from_secs(3 * DAY as u64) {
            tick += 1;
            let next = s.times_between(last, last + Duration::from_secs(DAY as u64))[0];
            let now = if tick % 5 == 0 {
                clock.set(next);
                next
            } else {
                clock.advance(Duration::from_secs(step))
            };
            seen.extend(s.times_between(last, now));
            last = now;
            step = step * 7 % 1_801 + 1;
        }
        let all = s.times_between(start, last);
        assert_eq!(seen, all);
        assert!((13..=17).contains(&all.len()), "{}", all.len());
        assert_spaced(&all, 3600);
    }

    fn bed(bed: &str, patient: Option<&str>, state: Occupancy) -> BedCheck {
        BedCheck { camera: "ward-3".into(), bed: bed.into(), patient: patient.map(Into::into), state }
    }

    #[test]
    fn three_absences_in_a_row_escalate_and_presence_resets() {
        use Occupancy::*;
        let mut tr = RollcallTracker::new(RollcallRules::default());
        let states = [Empty, Empty, Unknown, Empty, Empty, Empty, Empty, Occupied, Empty];
        let mut escalated_at = Vec::new();
        for (i, state) in states.into_iter().enumerate() {
            let out = tr.evaluate(local(i as i64, 2, 0), &[bed("b1", Some("p1"), state)]);
            if !out.escalated.is_empty() {
                escalated_at.push((i, out.escalated[0].consecutive, out.escalated[0].absent_since));
            }
            assert_eq!(out.summary.unknown, usize::from(state == Unknown));
            assert_eq!(out.absent.len(), usize::from(state == Empty));
        }
        // The Unknown at index 2 neither counts nor breaks the streak; the sixth absence escalates again.
        assert_eq!(escalated_at, vec![(3, 3, local(0, 2, 0)), (6, 6, local(0, 2, 0))]);
        // Presence at 7 reset it: 8 starts over.
        assert_eq!(tr.streak("ward-3", "b1"), 1);
    }

    #[test]
    fn unregistered_beds_are_not_checked_and_a_new_patient_starts_afresh() {
        use Occupancy::*;
        let mut tr = RollcallTracker::new(RollcallRules { escalate_after: 2 });
        tr.evaluate(local(0, 2, 0), &[bed("b1", Some("p1"), Empty)]);
        let out = tr.evaluate(
            local(1, 2, 0),
            &[
                bed("b1", Some("p2"), Empty),
                bed("b2", None, Empty),
                bed("b3", None, Occupied),
                bed("b4", Some("p4"), Occupied),
            ],
        );
        assert!(out.escalated.is_empty(), "{out:?}");
        assert_eq!(out.absent[0].consecutive, 1);
        assert_eq!(
            out.summary,
            RollcallSummary {
                checked: 2,
                present: 1,
                absent: 1,
                unknown: 0,
                unregistered: 2,
                unregistered_occupied: 1
            }
        );
        assert_eq!(out.unregistered_occupied[0].bed, "b3");
        // Discharged (no patient): the streak goes.
        tr.evaluate(local(2, 2, 0), &[bed("b1", None, Empty)]);
        assert_eq!(tr.streak("ward-3", "b1"), 0);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["absent"][0]["absent_since"], "2024-03-01T18:00:00.000Z");
    }
}
