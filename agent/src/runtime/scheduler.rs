//! The scheduler: time-driven decisions (roll-calls, dialysis verdicts, physicians' absences and shift
//! summaries) and the roster file.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::Shutdown;
use super::people::People;
use super::presence::Presence;
use crate::clock::Clock;
use crate::config::Config;
use crate::decide::physicians::PhysicianEvent;
use crate::decide::{Decision, DecisionKind};

/// Time-driven decisions: roll-calls at their times, dialysis verdicts when due, physicians' absences
/// and shift summaries; and the roster file. Runs every half second; roll-call times are taken over
/// consecutive intervals, so none is missed or held twice (a roll-call due while the box was off is
/// not held late).
pub fn start(
    config: &Config,
    people: &std::sync::Arc<People>,
    presence: &std::sync::Arc<Presence>,
    decisions: mpsc::Sender<Decision>,
    clock: &'static (dyn Clock + Sync),
    shutdown: &Shutdown,
) -> anyhow::Result<JoinHandle<()>> {
    let schedule = config.rollcalls.schedule(rollcall_seed(config)?).map_err(|problems| {
        anyhow::anyhow!(
            "roll-call schedule: {}",
            problems.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ")
        )
    })?;
    let (config, people, presence, stop) = (config.clone(), people.clone(), presence.clone(), shutdown.clone());
    Ok(std::thread::Builder::new().name("vigil-schedule".into()).spawn(move || {
        let mut scheduler = Scheduler::new(&config, &people, &presence, &schedule, &decisions, clock.now());
        while !stop.is_set() {
            scheduler.step(clock.now());
            std::thread::sleep(Duration::from_millis(500));
        }
    })?)
}

/// The scheduler's state between steps; `step` is driven by the real clock in `vigil run` and by a
/// simulated one in tests (days of roll-calls in milliseconds).
struct Scheduler<'a> {
    config: &'a Config,
    people: &'a People,
    presence: &'a Presence,
    schedule: &'a crate::decide::rollcall::Schedule,
    decisions: &'a mpsc::Sender<Decision>,
    /// Roll-call times before this were handled.
    checked_until: SystemTime,
    next_file_poll: SystemTime,
}

impl<'a> Scheduler<'a> {
    fn new(
        config: &'a Config,
        people: &'a People,
        presence: &'a Presence,
        schedule: &'a crate::decide::rollcall::Schedule,
        decisions: &'a mpsc::Sender<Decision>,
        now: SystemTime,
    ) -> Self {
        Scheduler { config, people, presence, schedule, decisions, checked_until: now, next_file_poll: now }
    }

    fn step(&mut self, now: SystemTime) {
        if now >= self.next_file_poll {
            self.people.poll_file(self.config);
            self.next_file_poll = now + Duration::from_secs(5);
        }
        if now > self.checked_until {
            for at in self.schedule.times_between(self.checked_until, now) {
                self.presence.rollcall(self.people, at, "scheduled");
            }
            self.checked_until = now;
        }
        self.presence.tick(self.people, now);
        for event in self.people.tick(now) {
            let decision = match event {
                PhysicianEvent::Absent { physician, shift_start, shift_end, since, last_camera } => Decision::new(
                    last_camera.as_deref().unwrap_or(""),
                    now,
                    DecisionKind::PhysicianAbsent { physician, shift_start, shift_end, since },
                ),
                PhysicianEvent::ShiftSummary(summary) => {
                    Decision::new("", summary.shift_end, DecisionKind::PhysicianShiftSummary(summary))
                }
            };
            let _ = self.decisions.send(decision);
        }
    }
}

/// The roll-call seed: from the config (to reproduce a schedule), else a secret one made at first start
/// in `<data_dir>/keys/rollcall.seed` (0600, created durably), so staff cannot predict the random
/// roll-calls.
fn rollcall_seed(config: &Config) -> anyhow::Result<u64> {
    if let Some(seed) = config.rollcalls.seed {
        return Ok(seed);
    }
    let path = config.storage.data_dir.join("keys/rollcall.seed");
    let read = |text: String| {
        text.trim().parse::<u64>().with_context(|| {
            format!(
                "{} does not hold a number ({text:?}; cut short by a crash?): delete it, and a new secret seed is \
                 made at the next start",
                path.display()
            )
        })
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        return read(text);
    }
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let seed = u64::from_le_bytes(bytes).max(1);
    match crate::fsio::create_new(&path, format!("{seed}\n").as_bytes(), crate::fsio::PRIVATE_FILE) {
        Ok(()) => Ok(seed),
        // Another start made one meanwhile: that one is the seed.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(std::fs::read_to_string(&path)?),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::analyze::person_detector::Person;
    use crate::clock::ManualClock;
    use crate::evidence::pending::Pending;
    use crate::runtime::presence::PresenceCamera;
    use crate::runtime::sink::Outlet;

    /// Three simulated days of a ward in milliseconds: the scheduler, driven by a manual clock, holds
    /// every scheduled and random roll-call once; bed 1's patient is always in bed, bed 2's never.
    #[test]
    fn three_days_of_roll_calls_on_a_simulated_clock() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n\
             [rollcalls]\ntimes = [\"08:00\", \"20:00\"]\nrandom_per_day = 2\nrandom_between = [\"21:00\", \"06:00\"]\n\
             seed = 7\nutc_offset = \"+08:00\"\nescalate_after = 3\n\
             [[cameras]]\nid = \"ward-3\"\nrole = \"ward\"\nurl = \"test://black\"\n\
             regions = {{ bed-1 = [[0,0.5],[0.5,0.5],[0.5,1],[0,1]], bed-2 = [[0.5,0.5],[1,0.5],[1,1],[0.5,1]] }}\n",
            dir.path().display()
        );
        let config = crate::config::parse(Path::new("t.toml"), &text).unwrap();
        assert!(crate::config::validate(&config).is_empty());
        let start = humantime::parse_rfc3339("2026-11-24T00:00:00Z").unwrap();
        let clock = ManualClock::new(start);
        let people = People::load(&config);
        let roster = serde_json::json!({"inpatients": [
            {"patient": "p-1", "camera": "ward-3", "bed": "bed-1"},
            {"patient": "p-2", "camera": "ward-3", "bed": "bed-2"}]});
        people.apply(crate::decide::roster::Roster::parse(&roster, &config).unwrap(), start).unwrap();
        let (decisions_tx, decisions) = mpsc::channel();
        let (evidence_tx, evidence) = mpsc::channel();
        let outlet = Outlet::new(
            &config,
            "ward-3",
            Arc::new(Pending::new(&dir.path().join("evidence-pending"))),
            decisions_tx.clone(),
            evidence_tx,
        );
        let camera = Arc::new(PresenceCamera::new(&config, &config.cameras[0], outlet));
        let presence = Presence::new(vec![camera.clone()], &config, decisions_tx.clone());
        let schedule = config.rollcalls.schedule(7).unwrap();
        let mut scheduler = Scheduler::new(&config, &people, &presence, &schedule, &decisions_tx, start);
        // A keyframe every 2 s; the detector sees a person lying across bed 1 (160×90 frames).
        let lying = [Person { bbox: [5.0, 50.0, 75.0, 88.0], score: 0.8 }];
        let end = start + Duration::from_secs(3 * 86_400);
        let mut seq = 0;
        while clock.now() < end {
            let now = clock.advance(Duration::from_secs(2));
            seq += 1;
            let frame =
                crate::source::Frame { image: image::RgbImage::new(160, 90), captured: now, seq, keyframe: true };
            camera.observe(&frame, &lying);
            if seq % 15 == 0 {
                scheduler.step(now);
            }
        }
        let decisions: Vec<Decision> = decisions.try_iter().collect();
        let names = |name: &str| decisions.iter().filter(|d| d.name() == name).collect::<Vec<_>>();
        let expected = schedule.times_between(start, clock.now());
        assert_eq!(expected.len(), 12, "2 scheduled + 2 random a day for 3 days: {expected:?}");
        let summaries = names("rollcall_summary");
        assert_eq!(summaries.iter().map(|d| d.at).collect::<Vec<_>>(), expected, "each once, at its time");
        // The first roll-call (08:00 local = 00:00 UTC) falls before bed 2 had 60 s of empty frames.
        let absent = names("bed_absent");
        assert!(absent.iter().all(|d| matches!(&d.kind, DecisionKind::BedAbsent(a) if a.bed == "bed-2")));
        assert!(absent.len() >= 11, "{} absences", absent.len());
        let escalated: Vec<u32> = names("bed_absence_escalated")
            .iter()
            .map(|d| match &d.kind {
                DecisionKind::BedAbsenceEscalated(a) => a.consecutive,
                _ => 0,
            })
            .collect();
        assert_eq!(escalated, [3, 6, 9], "escalated at K, 2K, 3K consecutive absences");
        assert_eq!(evidence.try_iter().count(), absent.len(), "a snapshot bundle per absence");
        // The streak outlives a restart: the next absence continues the count.
        let (tx, _rx) = mpsc::channel();
        let restarted = Presence::new(vec![camera.clone()], &config, tx);
        let report = restarted.rollcall(&people, clock.now(), "requested");
        assert_eq!(report.summary.absent, 1);
        let streak = restarted.streak("ward-3", "bed-2");
        assert_eq!(streak, absent.len() as u32 + 1);
    }

    /// The seed is made once, durably (0600, no temp file left); one cut short by a crash under an older
    /// version is named with the fix instead of an opaque parse error.
    #[test]
    fn rollcall_seed_is_created_once_and_a_cut_one_is_named_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("[site]\nid = \"h\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"{}\"\n", dir.path().display());
        let config = crate::config::parse(Path::new("t.toml"), &text).unwrap();
        let seed = rollcall_seed(&config).unwrap();
        assert_eq!(rollcall_seed(&config).unwrap(), seed, "the same seed after a restart");
        let path = dir.path().join("keys/rollcall.seed");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path().join("keys")).unwrap().count(), 1, "no temp file left");
        std::fs::write(&path, "").unwrap();
        let err = format!("{:#}", rollcall_seed(&config).unwrap_err());
        assert!(err.contains("keys/rollcall.seed") && err.contains("delete it"), "{err}");
    }
}
