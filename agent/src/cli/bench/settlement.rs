//! `vigil bench settlement`: how long a `settlement` command takes to reach its verdict when the person
//! is already at the window. One settlement-window camera plays a clip of the person (looped, at its own
//! pace) with its role's default decoding and analysis rate, the real settlement rules and its own
//! sessions, exactly as `vigil run` starts it; the person is enrolled first from a photo through the real
//! [`Enrolment`] (the gallery also holds 1,000 synthetic people). Each command goes through the very
//! handler of `vigil run` ([`settlement_handler`]; the MQTT hop, ~1 ms, is left out) with a new
//! transaction id, a uniformly random 2–6 s after the previous verdict, so that commands land at random
//! phases of the clip's GOP and, with decoding on demand, after the camera went back to keyframes.
//! Latency runs from the handler call to the `settlement_verified` decision leaving the camera's outlet,
//! and to the first face embedded under the watch. The report also says how many commands found the
//! camera decoding keyframes only, and how often it switched to full decoding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use vigil::analyze::Models;
use vigil::decide::DecisionKind;
use vigil::evidence::pending::Pending;
use vigil::gallery::search::SearchIndex;
use vigil::gallery::{Gallery, PersonKind};
use vigil::runtime::camera::{self, CameraAnalysis};
use vigil::runtime::handlers::{Enrolment, settlement_handler};
use vigil::runtime::sink::Outlet;
use vigil::runtime::{Shutdown, settlement_rules, watch_channels};
use vigil::source::decode::DecodeMode;
use vigil::source::pipeline;

use super::cameras::{BenchCamera, Rect, cpu_time, parse_rect, shared_state, synthetic_gallery};
use crate::cli::{CliError, CliResult};

#[derive(clap::Args)]
pub struct SettlementArgs {
    /// An H.264 MP4 with the person at the window (e.g. target/bench/window-1080p25.mp4).
    #[arg(long)]
    file: PathBuf,
    /// A photo of the same person, enrolled before the first command.
    #[arg(long)]
    photo: PathBuf,
    /// `settlement` commands sent, one at a time.
    #[arg(long, default_value_t = 60)]
    commands: usize,
    /// Shortest and longest pause (seconds) between a verdict and the next command, drawn uniformly.
    #[arg(long, default_value_t = 2.0)]
    min_gap: f64,
    #[arg(long, default_value_t = 6.0)]
    max_gap: f64,
    /// Look for faces in this rectangle only (the camera's `face_window`), normalised `X0,Y0,X1,Y1`.
    #[arg(long, value_name = "X0,Y0,X1,Y1", value_parser = parse_rect)]
    face_window: Option<Rect>,
    /// A second H.264 MP4 analysed instead of `--file` (the camera's `detect_url`, a sub-stream).
    #[arg(long, value_name = "FILE")]
    detect_file: Option<PathBuf>,
}

/// Nearest-rank percentiles of a sample, in seconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Percentiles {
            count: n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: values[n - 1],
            mean: values.iter().sum::<f64>() / n as f64,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct SettlementBench {
    pub file: String,
    pub detect_file: Option<String>,
    /// Width and height of the frames analysed (the sub-stream's with `--detect-file` when this Vigil
    /// analyses it).
    pub analysed_frame: Option<[u32; 2]>,
    pub face_window: Option<Rect>,
    pub photo: String,
    pub commands: usize,
    /// Pause between a verdict and the next command: uniform in [min, max] seconds.
    pub gap_s: [f64; 2],
    pub verified: usize,
    /// Commands answered with another verdict (settlement_no_face, settlement_identity_mismatch), by kind.
    pub other_verdicts: BTreeMap<String, usize>,
    /// Commands with no verdict within the watch time and 5 s more.
    pub unanswered: usize,
    /// Commands that found the camera decoding keyframes only (decoding on demand, no watch lingering),
    /// and the camera's switches to full decoding over the run.
    pub commands_in_keyframes: usize,
    pub decode_switches: u64,
    /// Command → `settlement_verified` leaving the camera, verified commands only.
    pub latency_s: Option<Percentiles>,
    /// Command → first face embedded under its watch.
    pub first_face_s: Option<Percentiles>,
    /// The process's CPU time over the commands, as a share of one core: the idle window between
    /// commands and the watches together.
    pub cpu_share: f64,
    pub seconds: f64,
}

pub fn run(args: SettlementArgs) -> CliResult {
    if args.commands == 0 || !(args.min_gap >= 0.0 && args.max_gap >= args.min_gap) {
        return Err(CliError::Usage(
            "vigil bench settlement: --commands at least 1, 0 <= --min-gap <= --max-gap".into(),
        ));
    }
    let scratch = super::scratch_dir();
    let result = settlement(&args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result.map_err(|e| CliError::Failed(format!("vigil bench settlement: {e:#}")))?;
    super::print_json(&report)
}

/// A uniform draw in [0, 1) (no RNG crate in Vigil: a v4 UUID's random bits).
fn uniform() -> f64 {
    // The low 56 bits of a v4 UUID are random (version and variant bits are above them).
    (uuid::Uuid::new_v4().as_u128() & ((1 << 53) - 1)) as f64 / (1u64 << 53) as f64
}

/// A verdict on a settlement: its transaction, the decision's name, when it left the camera.
struct Verdict {
    transaction: String,
    kind: &'static str,
    at: Instant,
}

fn settlement(args: &SettlementArgs, scratch: &Path) -> anyhow::Result<SettlementBench> {
    pipeline::init()?;
    let file = std::path::absolute(&args.file)?;
    anyhow::ensure!(file.exists(), "{} does not exist", file.display());
    let detect = args.detect_file.as_deref().map(std::path::absolute).transpose()?;
    if let Some(detect) = &detect {
        anyhow::ensure!(detect.exists(), "--detect-file {} does not exist", detect.display());
    }
    let photo = std::fs::read(&args.photo).with_context(|| format!("--photo {}", args.photo.display()))?;
    std::fs::create_dir_all(scratch.join("data"))?;
    let camera_id = "window-0";
    let config = super::cameras::bench_toml(
        &[BenchCamera {
            id: camera_id.into(),
            role: "settlement_window",
            file: &file,
            detect_file: detect.as_deref(),
            face_window: args.face_window,
            keyframes_only: None,
            analysis_fps: 5.0,
            extra: String::new(),
        }],
        scratch,
    )?;
    let camera = &config.cameras[0];
    vigil::analyze::runtime::init(None)?;
    let mut models = Models::load(&config.models, &config.faces.detector(), &config.persons.detector())?;

    // The gallery: 1,000 synthetic people, then the person of the clip enrolled from the photo.
    let mut gallery = Gallery::open(&scratch.join("data/gallery.bin"), &scratch.join("data/gallery.key"))?;
    for entry in synthetic_gallery() {
        gallery.upsert(entry);
    }
    let index = Arc::new(RwLock::new(SearchIndex::build(gallery.entries())));
    let enrolment = Enrolment::start(
        models.face_analyzer()?,
        Arc::new(Mutex::new(gallery)),
        index.clone(),
        config.faces.quality(),
    )?;
    let name = args.photo.display().to_string();
    let report = enrolment.enrol("customer", PersonKind::Patient, vec![(name.clone(), photo)], Vec::new())?;
    anyhow::ensure!(
        report.enrolled,
        "--photo {name} was not enrolled: {}",
        report.images.iter().filter_map(|v| v.reason.as_deref()).collect::<Vec<_>>().join("; ")
    );

    let shared = shared_state(&config, scratch, index, settlement_rules(&config))?;
    let (decisions_tx, decisions_rx) = mpsc::channel();
    let (evidence_tx, evidence_rx) = mpsc::channel();
    let pending = Arc::new(Pending::new(&scratch.join("data/evidence-pending")));
    let outlet = Outlet::new(&config, camera_id, pending, decisions_tx.clone(), evidence_tx);
    let (watches, mut receivers) = watch_channels(&config);
    let handler =
        settlement_handler(watches, shared.transactions.clone(), Duration::from_secs(config.settlement.watch_secs));
    let analysis = CameraAnalysis::new(&config, camera, &models, shared, None, receivers.remove(camera_id), outlet)?;
    let counters = analysis.counters.clone();
    let decode = analysis.live().decode;
    let shutdown = Shutdown::new();
    let started = camera::start_camera(&config, camera, analysis, None, decisions_tx.clone(), &shutdown)?;
    models.release_bytes();
    drop(decisions_tx);
    // Settlement verdicts, stamped as they leave the camera; evidence requests are dropped unwritten.
    let (verdicts_tx, verdicts) = mpsc::channel::<Verdict>();
    let listener = std::thread::spawn(move || {
        for decision in decisions_rx {
            let at = Instant::now();
            let transaction = match &decision.kind {
                DecisionKind::SettlementVerified { transaction_id, .. }
                | DecisionKind::SettlementIdentityMismatch { transaction_id, .. }
                | DecisionKind::SettlementNoFace { transaction_id, .. } => transaction_id.clone(),
                _ => continue,
            };
            let _ = verdicts_tx.send(Verdict { transaction, kind: decision.name(), at });
        }
    });
    let dropper = std::thread::spawn(move || evidence_rx.iter().count());

    // Warm-up: the camera's first analysed frame, then 5 s.
    let warm = Instant::now();
    while counters.frames.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(warm.elapsed() < Duration::from_secs(60), "the camera analysed no frame in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(5));

    let patience = Duration::from_secs(config.settlement.watch_secs + 5);
    let (mut latencies, mut first_faces) = (Vec::new(), Vec::new());
    let (mut other, mut unanswered, mut in_keyframes) = (BTreeMap::<String, usize>::new(), 0, 0);
    let (cpu0, t0, switches0) = (cpu_time()?, Instant::now(), decode.switches());
    for i in 0..args.commands {
        std::thread::sleep(Duration::from_secs_f64(args.min_gap + uniform() * (args.max_gap - args.min_gap)));
        let transaction = format!("bench-{i}");
        let command = vigil::publish::commands::Command {
            name: "settlement".into(),
            nonce: transaction.clone(),
            args: serde_json::json!({"camera": camera_id, "claimed_id": "customer", "transaction_id": transaction}),
        };
        let faces = counters.faces_embedded.load(Ordering::Relaxed);
        in_keyframes += usize::from(decode.mode() == DecodeMode::Keyframes);
        let sent = Instant::now();
        handler(&command).map_err(|e| anyhow::anyhow!("settlement command {transaction} refused: {e}"))?;
        let mut first_face = None;
        loop {
            match verdicts.recv_timeout(Duration::from_millis(5)) {
                Ok(v) if v.transaction != transaction => continue,
                Ok(v) => {
                    first_faces.extend(first_face);
                    if v.kind == "settlement_verified" {
                        latencies.push((v.at - sent).as_secs_f64());
                    } else {
                        *other.entry(v.kind.to_owned()).or_default() += 1;
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if first_face.is_none() && counters.faces_embedded.load(Ordering::Relaxed) > faces {
                        first_face = Some(sent.elapsed().as_secs_f64());
                    }
                    if sent.elapsed() > patience {
                        unanswered += 1;
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("the camera stopped"),
            }
        }
    }
    let (cpu, seconds) = ((cpu_time()? - cpu0).as_secs_f64(), t0.elapsed().as_secs_f64());
    let decode_switches = decode.switches() - switches0;
    shutdown.trigger();
    for t in started.threads {
        let _ = t.join();
    }
    drop(handler);
    let _ = listener.join();
    let _ = dropper.join();
    Ok(SettlementBench {
        file: file.display().to_string(),
        detect_file: detect.map(|d| d.display().to_string()),
        analysed_frame: super::cameras::analysed_frame(&config),
        face_window: args.face_window,
        photo: name,
        commands: args.commands,
        gap_s: [args.min_gap, args.max_gap],
        verified: latencies.len(),
        other_verdicts: other,
        unanswered,
        commands_in_keyframes: in_keyframes,
        decode_switches,
        latency_s: Percentiles::of(latencies),
        first_face_s: Percentiles::of(first_faces),
        cpu_share: cpu / seconds,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank: with 60 latencies p99 is the largest, p50 the 30th.
    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=60).rev().map(f64::from).collect()).unwrap();
        assert_eq!((p.count, p.p50, p.p90, p.p99, p.max), (60, 30.0, 54.0, 60.0, 60.0));
        assert_eq!(p.mean, 30.5);
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn the_gap_draw_is_in_the_unit_interval() {
        let draws: Vec<f64> = (0..1000).map(|_| uniform()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        // Both halves drawn (a constant or stuck bit would not be).
        assert!(draws.iter().any(|u| *u < 0.5) && draws.iter().any(|u| *u >= 0.5));
    }
}
