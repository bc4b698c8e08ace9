//! Bed and chair occupancy on a synthetic ward with a known timeline (tests/common/scenes.rs): the
//! person detector and the difference from the empty bed, through the occupancy tracker, follow who
//! is really where; a nurse walking past and the lights dimming do not fill the bed; a patient lying
//! down (whom the detector mostly misses) does.
//!
//! Then the real ward of issue 19, through the region monitors the agent runs: the night infrared
//! picture judged with its own empty reference, a bed pushed aside reported stale (Unknown, never
//! Empty) until it is back, a visitor sitting on the bed's edge not filling it, a patient covered to
//! the chin filling it.
//!
//! Frames come straight from the generator at one every 2 s, like a camera decoded keyframes only.

mod common;

use std::time::{Duration, SystemTime};

use image::RgbImage;
use vigil::analyze::person_detector::Person;
use vigil::decide::presence::{
    Lighting, LightingJudge, Occupancy, OccupancyTracker, Polygon, PresenceSettings, RegionMonitor, Staleness,
    detector_occupied, frame_evidence, region_change,
};

use common::scenes::{Action, BED, Scene};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;

fn at(s: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs_f64(s)
}

/// What one analysed frame said about one region.
#[derive(Debug, Clone)]
struct Observation {
    t: f64,
    persons: Vec<Person>,
    /// Difference from the empty reference, per region (in `Scene::regions` order).
    changed: Vec<Option<f64>>,
}

fn observe(
    models: &mut vigil::analyze::Sessions,
    scene: &Scene,
    t: f64,
    img: &RgbImage,
    reference: &RgbImage,
) -> Observation {
    let persons = models.persons.detect(img).unwrap();
    let changed = scene.regions.iter().map(|r| region_change(img, reference, &scene.polygon(r.name))).collect();
    Observation { t, persons, changed }
}

/// The region's timeline after every observation, one state per whole second of the scene.
fn timeline(
    scene: &Scene,
    region: usize,
    observations: &[Observation],
    settings: &PresenceSettings,
    raw: impl Fn(&Polygon, &Observation) -> bool,
) -> Vec<Occupancy> {
    let polygon = scene.polygon(scene.regions[region].name);
    let mut tracker = OccupancyTracker::new(*settings);
    for o in observations {
        tracker.observe(at(o.t), raw(&polygon, o));
    }
    // The last frame ends known time; the final second counts as the state it closed with.
    (0..scene.duration as usize)
        .map(|s| {
            let t = at(s as f64).min(tracker.last_frame().unwrap());
            tracker.state_at(t)
        })
        .collect()
}

fn combined(settings: &PresenceSettings, region: usize) -> impl Fn(&Polygon, &Observation) -> bool + '_ {
    move |polygon, o| frame_evidence(polygon, &o.persons, o.changed[region], settings).occupied
}

#[test]
fn occupancy_follows_the_ward_timeline() {
    let mut models = common::models();
    let scene = Scene::ward(WIDTH, HEIGHT);
    let reference = scene.empty_reference();
    let observations: Vec<Observation> = (0..scene.duration as usize)
        .step_by(2)
        .map(|s| observe(&mut models, &scene, s as f64, &scene.render(s as f64), &reference))
        .collect();
    let settings = PresenceSettings::default();

    for (i, region) in scene.regions.iter().enumerate() {
        let states = timeline(&scene, i, &observations, &settings, combined(&settings, i));
        let agree = states
            .iter()
            .enumerate()
            .filter(|&(s, state)| (*state == Occupancy::Occupied) == scene.occupied(region.name, s as f64))
            .count();
        let share = agree as f64 / states.len() as f64;
        assert!(
            share >= 0.9,
            "{}: timeline agrees with the truth on {agree} of {} s: {states:?}",
            region.name,
            states.len()
        );
        assert!(
            !states.contains(&Occupancy::Unknown),
            "{}: unknown stretches on an unbroken feed: {states:?}",
            region.name
        );
    }

    let bed = scene.regions.iter().position(|r| r.name == BED).unwrap();
    let states = timeline(&scene, bed, &observations, &settings, combined(&settings, bed));
    let during = |action: fn(&Action) -> bool| {
        let e = scene.events.iter().filter(|e| action(&e.action)).collect::<Vec<_>>();
        assert!(!e.is_empty());
        e.iter().flat_map(|e| (e.from as usize..e.to as usize).map(|s| (s, states[s]))).collect::<Vec<_>>()
    };
    // The nurse passing the empty bed (the first pass; the second passes an occupied bed).
    let first_pass = scene.events.iter().find(|e| matches!(e.action, Action::WalkPastBed { .. })).unwrap();
    for s in first_pass.from as usize..first_pass.to as usize + 2 {
        assert_eq!(states[s], Occupancy::Empty, "bed at {s} s while the nurse walks past: {states:?}");
    }
    for (s, state) in during(|a| matches!(a, Action::Dim(_))) {
        assert_eq!(state, Occupancy::Empty, "bed at {s} s in dimmed light: {states:?}");
    }
    // Nothing else ever fills the bed: Empty wherever nobody lies in it, but for one frame interval
    // around the patient's arrival and departure.
    for (s, state) in states.iter().enumerate() {
        if !scene.occupied(BED, s as f64) && !scene.near_transition(BED, s as f64, 2.0) {
            assert_eq!(*state, Occupancy::Empty, "bed at {s} s with nobody in it: {states:?}");
        }
    }
    // Lying: Occupied over the whole stay except one frame interval at either end.
    let stay = during(|a| *a == Action::LieInBed);
    let occupied = stay.iter().filter(|(_, state)| *state == Occupancy::Occupied).count();
    assert!(occupied + 4 >= stay.len(), "bed occupied {occupied} of {} s of the stay: {states:?}", stay.len());
}

// ---------------------------------------------------------------------------------------------------
// Measurement (not a check), about a minute in a debug build:
// `cargo test -p vigil --test presence_scenes -- --ignored --nocapture` (VIGIL_SCENE_PREVIEW=DIR saves a
// few frames as PNG).

fn agreement(scene: &Scene, region: &str, states: &[Occupancy], margin: f64) -> (usize, usize) {
    let mut agree = 0;
    let mut counted = 0;
    for (s, state) in states.iter().enumerate() {
        if margin > 0.0 && scene.near_transition(region, s as f64, margin) {
            continue;
        }
        counted += 1;
        agree += usize::from((*state == Occupancy::Occupied) == scene.occupied(region, s as f64));
    }
    (agree, counted)
}

fn report(scene: &Scene, label: &str, observations: &[Observation], settings: &PresenceSettings) {
    println!("\n== {label}: {} frames, {settings:?}", observations.len());
    for (i, region) in scene.regions.iter().enumerate() {
        let polygon = scene.polygon(region.name);
        let truth = |o: &Observation| scene.occupied(region.name, o.t);
        let detector = |p: &Polygon, o: &Observation| detector_occupied(p, &o.persons, settings).0;
        let diff = |_: &Polygon, o: &Observation| o.changed[i].is_some_and(|c| c >= settings.changed_occupied);
        let both = combined(settings, i);
        let raw_share = |f: &dyn Fn(&Polygon, &Observation) -> bool| {
            let n = observations.iter().filter(|o| f(&polygon, o) == truth(o)).count();
            format!("{n}/{} ({:.1} %)", observations.len(), 100.0 * n as f64 / observations.len() as f64)
        };
        println!(
            "{:>6} raw per frame: detector {}  difference {}  combined {}",
            region.name,
            raw_share(&detector),
            raw_share(&diff),
            raw_share(&both)
        );
        for (name, f) in [
            ("detector", &detector as &dyn Fn(&Polygon, &Observation) -> bool),
            ("difference", &diff),
            ("combined", &both),
        ] {
            let states = timeline(scene, i, observations, settings, f);
            let (a, n) = agreement(scene, region.name, &states, 0.0);
            let (a2, n2) = agreement(scene, region.name, &states, 2.0);
            let unknown = states.iter().filter(|s| **s == Occupancy::Unknown).count();
            println!(
                "{:>6} tracker {name:>10}: all seconds {a}/{n} ({:.1} %), outside ±2 s of a transition {a2}/{n2} ({:.1} %), unknown {unknown} s",
                region.name,
                100.0 * a as f64 / n as f64,
                100.0 * a2 as f64 / n2 as f64
            );
            if name == "combined" {
                println!("{:>6} timeline: {}", region.name, runs(&states));
                let live = live_states(scene, i, observations, settings, f);
                let (a, n) = agreement(scene, region.name, &live, 0.0);
                let lag = |s: usize| {
                    let s = s as f64;
                    scene.events.iter().filter(|e| e.occupies() == Some(region.name)).any(|e| {
                        (e.from..e.from + settings.enter_secs as f64 + 2.0).contains(&s)
                            || (e.to..e.to + settings.leave_secs as f64 + 2.0).contains(&s)
                    })
                };
                let kept: Vec<usize> = (0..live.len()).filter(|s| !lag(*s)).collect();
                let a2 = kept
                    .iter()
                    .filter(|&&s| (live[s] == Occupancy::Occupied) == scene.occupied(region.name, s as f64))
                    .count();
                println!(
                    "{:>6} live state (as published, no backdating): all seconds {a}/{n} ({:.1} %), outside the enter/leave delays {a2}/{} ({:.1} %); {}",
                    region.name,
                    100.0 * a as f64 / n as f64,
                    kept.len(),
                    100.0 * a2 as f64 / kept.len() as f64,
                    runs(&live)
                );
            }
        }
    }
}

/// The state the tracker reported right after each frame, held until the next: what the agent
/// publishes live, before later frames backdate a change.
fn live_states(
    scene: &Scene,
    region: usize,
    observations: &[Observation],
    settings: &PresenceSettings,
    raw: impl Fn(&Polygon, &Observation) -> bool,
) -> Vec<Occupancy> {
    let polygon = scene.polygon(scene.regions[region].name);
    let mut tracker = OccupancyTracker::new(*settings);
    let mut after = Vec::new();
    for o in observations {
        tracker.observe(at(o.t), raw(&polygon, o));
        after.push((o.t, tracker.state()));
    }
    (0..scene.duration as usize)
        .map(|s| after.iter().rev().find(|(t, _)| *t <= s as f64).map_or(Occupancy::Unknown, |(_, st)| *st))
        .collect()
}

/// "Empty 0-70, Occupied 70-80, …"
fn runs(states: &[Occupancy]) -> String {
    let mut out = Vec::new();
    let mut start = 0;
    for s in 1..=states.len() {
        if s == states.len() || states[s] != states[start] {
            out.push(format!("{:?} {start}-{s}", states[start]));
            start = s;
        }
    }
    out.join(", ")
}

/// Per-frame signal values, to see where thresholds fall.
fn dump(scene: &Scene, observations: &[Observation]) {
    let settings = PresenceSettings::default();
    for o in observations {
        let mut line = format!("{:>5.0}", o.t);
        for (i, region) in scene.regions.iter().enumerate() {
            let (det, best) = detector_occupied(&scene.polygon(region.name), &o.persons, &settings);
            let best =
                best.map_or("-".to_string(), |b| format!("in {:.2} cov {:.2} s {:.2}", b.inside, b.cover, b.score));
            line += &format!(
                " | {} truth {} det {} [{best}] diff {:.3}",
                region.name,
                u8::from(scene.occupied(region.name, o.t)),
                u8::from(det),
                o.changed[i].unwrap_or(f64::NAN)
            );
        }
        println!("{line}  persons {}", o.persons.len());
    }
}

/// Ranges of the difference signal per kind of moment, and the agreement of a few thresholds.
fn summary(scene: &Scene, observations: &[Observation]) {
    for (i, region) in scene.regions.iter().enumerate() {
        let kinds: [(&str, Box<dyn Fn(f64) -> bool>); 4] = [
            ("occupied", Box::new(|t| scene.occupied(region.name, t))),
            (
                "empty, nurse passing",
                Box::new(|t| {
                    !scene.occupied(region.name, t)
                        && scene
                            .events
                            .iter()
                            .any(|e| matches!(e.action, Action::WalkPastBed { .. }) && e.from <= t && t < e.to)
                }),
            ),
            (
                "empty, lights changed",
                Box::new(|t| {
                    !scene.occupied(region.name, t)
                        && scene.events.iter().any(|e| matches!(e.action, Action::Dim(_)) && e.from <= t && t < e.to)
                }),
            ),
            (
                "empty, quiet",
                Box::new(|t| {
                    !scene.occupied(region.name, t)
                        && !scene.events.iter().any(|e| e.occupies().is_none() && e.from <= t && t < e.to)
                }),
            ),
        ];
        for (kind, f) in &kinds {
            let v: Vec<f64> = observations.iter().filter(|o| f(o.t)).filter_map(|o| o.changed[i]).collect();
            if !v.is_empty() {
                let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
                println!("{:>6} difference {kind:>22}: {lo:.3}..{hi:.3} over {} frames", region.name, v.len());
            }
        }
    }
    for changed_occupied in [0.02, 0.05, 0.08, 0.12, 0.2, 0.3] {
        for enter_secs in [10, 20] {
            let settings = PresenceSettings { changed_occupied, enter_secs, ..Default::default() };
            let mut line = format!("changed_occupied {changed_occupied:.2} enter_secs {enter_secs}:");
            for (i, region) in scene.regions.iter().enumerate() {
                let states = timeline(scene, i, observations, &settings, combined(&settings, i));
                let (a, n) = agreement(scene, region.name, &states, 0.0);
                line += &format!(" {} {a}/{n}", region.name);
            }
            println!("{line}");
        }
    }
}

fn every(models: &mut vigil::analyze::Sessions, scene: &Scene, step: usize) -> Vec<Observation> {
    let reference = scene.empty_reference();
    (0..scene.duration as usize)
        .step_by(step)
        .map(|s| observe(models, scene, s as f64, &scene.render(s as f64), &reference))
        .collect()
}

#[test]
#[ignore = "measurement: prints agreement figures, asserts nothing"]
fn measure_agreement() {
    let mut models = common::models();
    let scene = Scene::ward(WIDTH, HEIGHT);
    if let Ok(dir) = std::env::var("VIGIL_SCENE_PREVIEW") {
        for t in [0.0, 74.0, 100.0, 130.0, 160.0, 184.0] {
            scene.render(t).save(format!("{dir}/scene-{t:03}.png")).unwrap();
        }
    }
    let every_second = every(&mut models, &scene, 1);
    dump(&scene, &every_second);
    report(&scene, "generator, 1 frame/s", &every_second, &PresenceSettings::default());
    let keyframes: Vec<Observation> = every_second.iter().step_by(2).cloned().collect();
    report(&scene, "generator, 1 frame/2 s", &keyframes, &PresenceSettings::default());
    summary(&scene, &keyframes);

    // Through H.264: 2 fps, a keyframe every 2 s, keyframes only.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("ward.mp4");
    scene.encode(&clip, 2);
    let flags = common::media::keyframes(&clip);
    let frames: Vec<_> =
        common::media::decode_clip(&clip).into_iter().zip(flags).filter(|(_, key)| *key).map(|(f, _)| f).collect();
    // The reference a box would take: a decoded keyframe of the empty room (the first).
    let decoded_reference = frames[0].1.clone();
    let decoded: Vec<Observation> = frames
        .iter()
        .map(|(pts, img)| observe(&mut models, &scene, pts.as_secs_f64(), img, &decoded_reference))
        .collect();
    report(&scene, "H.264 keyframes (2 fps, GOP 4)", &decoded, &PresenceSettings::default());
    summary(&scene, &decoded);

    // Harder beds: no blanket (the cream coat on the white sheet), a white blanket; brighter light.
    for (label, blanket, light) in [
        ("no blanket", None, 0.7),
        ("white blanket", Some([234, 236, 240]), 0.7),
        ("lights 30 % brighter", Some([100, 135, 180]), 1.3),
        ("lights 50 % darker", Some([100, 135, 180]), 0.5),
    ] {
        let mut scene = Scene::ward(WIDTH, HEIGHT);
        scene.blanket = blanket;
        for e in &mut scene.events {
            if let Action::Dim(_) = e.action {
                e.action = Action::Dim(light);
            }
        }
        let observations = every(&mut models, &scene, 2);
        report(&scene, &format!("variant {label}, 1 frame/2 s"), &observations, &PresenceSettings::default());
        summary(&scene, &observations);
        if let Ok(dir) = std::env::var("VIGIL_SCENE_PREVIEW") {
            scene.render(160.0).save(format!("{dir}/variant-{}.png", label.replace(' ', "_"))).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// A real ward (issue 19): night infrared, a moved bed, a visitor on the bed, a patient covered to the
// chin. Each scene goes through what the agent runs — the lighting judge choosing the reference, the
// region monitors with their staleness judges and trackers — at one frame every 2 s.

/// What a scene's run gave: per region, the state of every second (backdated changes included) and
/// the staleness changes with their time; the lighting of each frame.
struct Run {
    states: Vec<Vec<Occupancy>>,
    staleness: Vec<(f64, Staleness)>,
    lightings: Vec<(f64, Lighting)>,
}

/// Region settings as the runtime makes them: beds on a ward camera, chairs on a dialysis one.
fn region_settings(settings: &PresenceSettings, region: &str) -> PresenceSettings {
    PresenceSettings { beds: region == BED, ..*settings }
}

fn run_scene(models: &mut vigil::analyze::Sessions, scene: &Scene, step: usize, settings: &PresenceSettings) -> Run {
    let mut judge = LightingJudge::new(settings);
    // The operator's references, one taken by day and one by night: each goes where its picture says.
    let references = [scene.empty_reference(), scene.empty_reference_night()];
    let mut monitors: Vec<RegionMonitor> = scene
        .regions
        .iter()
        .map(|r| {
            let mut m = RegionMonitor::new(r.name, scene.polygon(r.name), region_settings(settings, r.name));
            for img in &references {
                assert!(m.set_reference(judge.classify(img), img));
            }
            m
        })
        .collect();
    assert!(monitors.iter().all(|m| m.has_reference(Lighting::Day) && m.has_reference(Lighting::NightIr)));
    let (mut staleness, mut lightings) = (Vec::new(), Vec::new());
    for s in (0..scene.duration as usize).step_by(step) {
        let img = scene.render(s as f64);
        let persons = models.persons.detect(&img).unwrap();
        let lighting = judge.observe(&img);
        lightings.push((s as f64, lighting));
        for m in &mut monitors {
            let update = m.observe(&img, &persons, lighting, at(s as f64));
            if std::env::var("VIGIL_SCENE_DUMP").is_ok() && m.name == BED {
                let fit = update
                    .fit
                    .map_or("-".into(), |f| format!("home {:.2} best {:.2} shift {:?}", f.home, f.best, f.shift));
                let colour = vigil::decide::presence::LightingLook::of(&img).colourfulness().unwrap_or(f64::NAN);
                println!(
                    "{s:>4} bed truth {} colour {colour:.4} {lighting:?} {:?} fit [{fit}]",
                    u8::from(scene.occupied(BED, s as f64)),
                    update.evidence
                );
            }
            if let Some(change) = update.staleness {
                staleness.push((s as f64, change));
            }
        }
    }
    let states = monitors
        .iter()
        .map(|m| {
            let last = m.tracker.last_frame().unwrap();
            (0..scene.duration as usize).map(|s| m.tracker.state_at(at(s as f64).min(last))).collect()
        })
        .collect();
    Run { states, staleness, lightings }
}

/// Per-second agreement of a region's states with the truth: Occupied when someone is in it, Empty
/// when not; Unknown agrees only where `unknown_ok` (a moved bed's region, which cannot be judged).
#[derive(Debug, Default, Clone, Copy)]
struct Score {
    agree: usize,
    total: usize,
    unknown: usize,
    /// Seconds Empty while someone was in it (what could become an accusation), outside ±2 s of a
    /// change of the truth.
    wrong_empty: usize,
    wrong_occupied: usize,
    /// Of the seconds with a decided state (Occupied or Empty), those agreeing with the truth.
    decided_agree: usize,
}

impl Score {
    fn share(&self) -> f64 {
        self.agree as f64 / self.total as f64
    }

    fn decided_share(&self) -> f64 {
        self.decided_agree as f64 / (self.total - self.unknown).max(1) as f64
    }
}

fn score(scene: &Scene, region: &str, states: &[Occupancy], unknown_ok: impl Fn(f64) -> bool) -> Score {
    let mut sc = Score::default();
    for (s, state) in states.iter().enumerate() {
        let t = s as f64;
        let truth = scene.occupied(region, t);
        sc.total += 1;
        let ok = match state {
            Occupancy::Occupied => truth,
            Occupancy::Empty => !truth,
            Occupancy::Unknown => unknown_ok(t),
        };
        sc.agree += usize::from(ok);
        sc.decided_agree += usize::from(ok && *state != Occupancy::Unknown);
        sc.unknown += usize::from(*state == Occupancy::Unknown);
        let settled = !scene.near_transition(region, t, 2.0);
        sc.wrong_empty += usize::from(*state == Occupancy::Empty && truth && settled);
        sc.wrong_occupied += usize::from(*state == Occupancy::Occupied && !truth && settled);
    }
    sc
}

/// Where a moved bed's region may be Unknown: from the push until `stale_secs` (and a frame) after
/// it is back — the time the reference needs to be seen fitting again — and then until the tracker
/// has decided again (`leave_secs` of an empty bed, or `enter_secs` of an occupied one).
fn displaced(scene: &Scene, settings: &PresenceSettings) -> impl Fn(f64) -> bool + use<> {
    let moves: Vec<(f64, f64)> =
        scene.events.iter().filter(|e| matches!(e.action, Action::MoveBed { .. })).map(|e| (e.from, e.to)).collect();
    let after = (settings.stale_secs + settings.leave_secs.max(settings.enter_secs) + 2) as f64;
    move |t| moves.iter().any(|(from, to)| *from <= t && t < to + after)
}

/// The scenes of issue 19, with the Unknown each may have.
fn ward_scenes() -> Vec<(&'static str, Scene)> {
    vec![
        ("night infrared", Scene::night(WIDTH, HEIGHT)),
        ("moved bed", Scene::moved_bed(WIDTH, HEIGHT)),
        ("visitor on the bed", Scene::visitor(WIDTH, HEIGHT)),
        ("covered patient", Scene::covered(WIDTH, HEIGHT)),
    ]
}

fn print_run(label: &str, scene: &Scene, run: &Run, settings: &PresenceSettings) {
    for (i, region) in scene.regions.iter().enumerate() {
        let moved = label == "moved bed" && region.name == BED;
        let sc = if moved {
            score(scene, region.name, &run.states[i], displaced(scene, settings))
        } else {
            score(scene, region.name, &run.states[i], |_| false)
        };
        println!(
            "{label:>20} {:>6}: agreement {}/{} s ({:.1} %), decided seconds {:.1} %, unknown {} s, wrong empty {} s, wrong occupied {} s; {}",
            region.name,
            sc.agree,
            sc.total,
            100.0 * sc.share(),
            100.0 * sc.decided_share(),
            sc.unknown,
            sc.wrong_empty,
            sc.wrong_occupied,
            runs(&run.states[i])
        );
    }
    for (t, change) in &run.staleness {
        println!("{label:>20} staleness at {t} s: {change:?}");
    }
    let night = run.lightings.iter().filter(|(_, l)| *l == Lighting::NightIr).count();
    println!("{label:>20} lighting: {night} of {} frames judged night infrared", run.lightings.len());
}

/// Each scene of issue 19 through what the agent runs: at least 95 % of its seconds agree with the
/// truth on every region, no second is Empty while someone is in the bed, the lighting is told from the
/// picture, and a moved bed — only a moved bed — makes its reference stale (Unknown, not Empty) until
/// it is back.
#[test]
fn occupancy_holds_at_night_with_a_moved_bed_a_visitor_and_a_covered_patient() {
    let mut models = common::models();
    let settings = PresenceSettings::default();
    for (label, scene) in ward_scenes() {
        let run = run_scene(&mut models, &scene, 2, &settings);
        print_run(label, &scene, &run, &settings);
        for (i, region) in scene.regions.iter().enumerate() {
            let moved = label == "moved bed" && region.name == BED;
            let sc = if moved {
                score(&scene, region.name, &run.states[i], displaced(&scene, &settings))
            } else {
                score(&scene, region.name, &run.states[i], |_| false)
            };
            let timeline = runs(&run.states[i]);
            assert!(sc.share() >= 0.95, "{label}, {}: {sc:?}: {timeline}", region.name);
            assert_eq!(sc.wrong_empty, 0, "{label}, {}: Empty with someone in it: {timeline}", region.name);
        }
        for (t, lighting) in &run.lightings {
            let night = scene.night_at(*t);
            assert_eq!(*lighting == Lighting::NightIr, night, "{label}: frame at {t} s judged {lighting:?}");
        }
        if label != "moved bed" {
            assert!(run.staleness.is_empty(), "{label}: {:?}", run.staleness);
            continue;
        }
        let push = scene.events.iter().find(|e| matches!(e.action, Action::MoveBed { .. })).unwrap();
        let Some((raised_at, Staleness::Raised(report))) = run.staleness.first() else {
            panic!("no region_reference_stale for the moved bed: {:?}", run.staleness)
        };
        assert_eq!((report.region.as_str(), report.lighting), (BED, Lighting::Day));
        assert!(report.since >= at(push.from) && report.since <= at(push.from + 2.0), "{report:?}");
        assert!(*raised_at <= push.from + settings.stale_secs as f64 + 2.0, "raised at {raised_at} s");
        let pushed = 0.1 * f64::from(WIDTH);
        assert!((report.shift_px[0] - pushed).abs() <= 16.0 && report.shift_px[1].abs() <= 16.0, "{report:?}");
        let rest: Vec<_> = run.staleness[1..].iter().collect();
        assert!(
            matches!(rest.as_slice(), [(t, Staleness::Cleared { region, .. })] if region == BED && *t >= push.to),
            "stale until the bed is back, then cleared once: {:?}",
            run.staleness
        );
    }
}

#[test]
#[ignore = "measurement: prints agreement figures of the issue-19 scenes, asserts nothing"]
fn measure_ward_scenes() {
    let mut models = common::models();
    let settings = PresenceSettings::default();
    for (label, scene) in ward_scenes() {
        if let Ok(dir) = std::env::var("VIGIL_SCENE_PREVIEW") {
            for t in [30.0, 100.0, 160.0, 200.0] {
                scene.render(t).save(format!("{dir}/{}-{t:03}.png", label.replace(' ', "_"))).unwrap();
            }
        }
        let run = run_scene(&mut models, &scene, 2, &settings);
        print_run(label, &scene, &run, &settings);
    }
}
