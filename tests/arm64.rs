//! ARM64 for real: the aarch64 `vigil` that scripts/cross-arm64 builds, run under qemu-user
//! (`qemu-aarch64 -L` the arm64 Debian sysroot, the aarch64 ONNX Runtime from its PyPI wheel, the same
//! model bundle), against this machine's x86-64 `vigil` on the same inputs:
//! - `--version` and `check-config` say the same things;
//! - `detect` finds the same faces and persons on a registry photo, boxes and landmarks within
//!   [`PIXELS`], scores within [`SCORE`];
//! - `compare` gives the same face distance within [`DISTANCE`] and the same verdict;
//! - the int8 gallery search (AVX2 kernel here, NEON there) returns identical matches: same ids and the
//!   same f32 distances to the bit, unfiltered and filtered by role, on a 24,000-row gallery (the
//!   parallel path).
//!
//! Tolerances and the differences measured are in docs/arm64.md. qemu is 30–60× slower than native for
//! the models, so the photos are few: one street photo with several faces and persons for `detect`, one
//! pair for `compare`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use common::{face_images, repo, samples, vigil};

/// Largest difference allowed in a box or landmark coordinate, pixels (measured: ≤ 0.0004).
const PIXELS: f64 = 0.5;
/// Largest difference allowed in a detection score (measured: ≤ 5·10⁻⁷).
const SCORE: f64 = 1e-3;
/// Largest difference allowed in a face distance; `compare` prints 4 decimals (measured: 0).
const DISTANCE: f64 = 1e-3;

const TARGET: &str = "aarch64-unknown-linux-gnu";
const ORT_LIBRARY: &str = "onnxruntime/1.32.0-aarch64/libonnxruntime.so.1.32.0";

/// What scripts/cross-arm64 made: the binary (in this build's target directory), the sysroot, the
/// aarch64 ONNX Runtime. Fails naming the script when one is missing or the binary predates the sources.
struct Arm64 {
    binary: PathBuf,
    sysroot: PathBuf,
    ort: PathBuf,
}

fn arm64() -> Arm64 {
    let host = Path::new(env!("CARGO_BIN_EXE_vigil"));
    // <target>/debug/vigil → <target>/aarch64-unknown-linux-gnu/debug/vigil
    let profile = host.parent().unwrap();
    let binary = profile.parent().unwrap().join(TARGET).join(profile.file_name().unwrap()).join("vigil");
    let cache = vigil::cache::dir();
    let arm = Arm64 { binary, sysroot: cache.join("sysroot-arm64"), ort: cache.join(ORT_LIBRARY) };
    for (what, path) in [
        ("the arm64 binary", &arm.binary),
        ("the arm64 sysroot", &arm.sysroot.join("usr/lib/aarch64-linux-gnu/libgstreamer-1.0.so.0")),
        ("the aarch64 ONNX Runtime", &arm.ort),
    ] {
        assert!(
            path.exists(),
            "{what} is missing ({}): run scripts/cross-arm64 first (scripts/test does)",
            path.display()
        );
    }
    let built = mtime(&arm.binary);
    if let Some(newer) = newest_source().filter(|(t, _)| *t > built) {
        panic!(
            "{} is older than {}: run scripts/cross-arm64 to rebuild it (scripts/test does)",
            arm.binary.display(),
            newer.1.display()
        );
    }
    arm
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap()
}

/// The most recently modified file of agent/src (not the manifests: cargo does not relink the binary
/// when a test is added to one).
fn newest_source() -> Option<(SystemTime, PathBuf)> {
    fn walk(dir: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else {
                let t = mtime(&path);
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    *newest = Some((t, path));
                }
            }
        }
    }
    let mut newest = None;
    walk(&repo("agent/src"), &mut newest);
    newest
}

impl Arm64 {
    /// `vigil` for aarch64 under qemu-user, with the aarch64 ONNX Runtime.
    fn vigil(&self) -> Command {
        let mut cmd = Command::new("qemu-aarch64");
        cmd.arg("-L").arg(&self.sysroot).arg(&self.binary);
        cmd.env("ORT_DYLIB_PATH", &self.ort).env_remove("VIGIL_LOG").env_remove("RUST_BACKTRACE");
        cmd
    }
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (scripts/setup installs qemu-user)"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn version_and_check_config_say_the_same_as_on_x86_64() {
    let arm = arm64();
    let (x86, a64) = (run(vigil(), &["--version"]), run(arm.vigil(), &["--version"]));
    assert!(a64.status.success(), "arm64 --version: {a64:?}");
    let (x86, a64) = (text(&x86.stdout), text(&a64.stdout));
    // Same version, same verified model bundle; ONNX Runtime loaded from the aarch64 library.
    let lines = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();
    let (x86, a64) = (lines(&x86), lines(&a64));
    assert_eq!(x86[0], a64[0]);
    assert_eq!(a64[1], format!("onnxruntime 1.32.0 ({}, from $ORT_DYLIB_PATH)", arm.ort.display()), "{a64:?}");
    assert!(a64[2].starts_with("models ") && a64[2].contains("verified"), "{a64:?}");
    assert_eq!(x86[2], a64[2]);

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            r#"
[site]
id = "hospital-12"
device_id = "edge-1"

[storage]
data_dir = "{}"

[[cameras]]
id = "ward-a"
role = "ward"
url = "rtsp://10.0.0.4/stream"
[cameras.regions]
bed-7 = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5]]
"#,
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, std::fs::read_to_string(&good).unwrap().replace("rtsp://", "http://")).unwrap();
    // The example names files of a real box (/etc/vigil/…): refused on both, naming the same fields.
    let example = repo("config/vigil.example.toml");
    for (file, code) in [(good.as_path(), 0), (broken.as_path(), 2), (example.as_path(), 2)] {
        let x86 = run(vigil(), &["check-config", path(file)]);
        let a64 = run(arm.vigil(), &["check-config", path(file)]);
        assert_eq!(x86.status.code(), Some(code), "x86-64 check-config {}: {x86:?}", file.display());
        assert_eq!(a64.status.code(), Some(code), "arm64 check-config {}: {a64:?}", file.display());
        assert_eq!(text(&x86.stdout), text(&a64.stdout), "{}", file.display());
        assert_eq!(text(&x86.stderr), text(&a64.stderr), "{}", file.display());
    }
}

/// One detection of `vigil detect`'s JSON: box (and landmarks for faces) flattened, and the score.
#[derive(Debug)]
struct Detection {
    coords: Vec<f64>,
    score: f64,
}

fn detections(line: &serde_json::Value, kind: &str) -> Vec<Detection> {
    line[kind]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind} in {line}"))
        .iter()
        .map(|d| {
            let mut coords: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for point in d["landmarks"].as_array().into_iter().flatten() {
                coords.extend(point.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()));
            }
            Detection { coords, score: d["score"].as_f64().unwrap() }
        })
        .collect()
}

#[test]
fn detect_finds_the_same_faces_and_persons_as_on_x86_64() {
    let arm = arm64();
    let photo = samples("ultralytics-assets").join("bus.jpg");
    let (x86, a64) = (run(vigil(), &["detect", path(&photo)]), run(arm.vigil(), &["detect", path(&photo)]));
    assert!(x86.status.success(), "x86-64 detect: {x86:?}");
    assert!(a64.status.success(), "arm64 detect: {a64:?}");
    let parse = |o: &Output| serde_json::from_str::<serde_json::Value>(text(&o.stdout).trim()).unwrap();
    let (x86, a64) = (parse(&x86), parse(&a64));
    for kind in ["faces", "persons"] {
        let (want, got) = (detections(&x86, kind), detections(&a64, kind));
        // The photo has several of each: a detector that found nothing would agree trivially.
        assert!(want.len() >= 2, "x86-64 found {} {kind} on {}", want.len(), photo.display());
        assert_eq!(want.len(), got.len(), "{kind}: x86-64 {want:?}, arm64 {got:?}");
        // Paired by position, not by order: two close scores could swap places.
        for w in &want {
            let far = |g: &Detection| w.coords.iter().zip(&g.coords).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let g = got.iter().min_by(|a, b| far(a).total_cmp(&far(b))).unwrap();
            assert!(far(g) <= PIXELS, "{kind}: x86-64 {w:?}, nearest arm64 {g:?} is {} px away", far(g));
            assert!((w.score - g.score).abs() <= SCORE, "{kind}: x86-64 {w:?}, arm64 {g:?}");
        }
    }
}

#[test]
fn compare_gives_the_same_distance_as_on_x86_64() {
    let arm = arm64();
    let (a, b) = (face_images().join("obama.jpg"), face_images().join("obama2.jpg"));
    let args = ["compare", path(&a), path(&b)];
    let (x86, a64) = (run(vigil(), &args), run(arm.vigil(), &args));
    assert!(x86.status.success(), "x86-64 compare: {x86:?}");
    assert!(a64.status.success(), "arm64 compare: {a64:?}");
    // "distance 0.3800: same person (threshold 0.6)"
    let split = |o: &Output| {
        let out = text(&o.stdout);
        let (distance, verdict) = out.trim().strip_prefix("distance ").and_then(|s| s.split_once(':')).unwrap();
        (distance.parse::<f64>().unwrap(), verdict.to_owned())
    };
    let ((dx, vx), (da, va)) = (split(&x86), split(&a64));
    assert!((dx - da).abs() <= DISTANCE, "distance: x86-64 {dx}, arm64 {da}");
    assert_eq!(vx, va);
    assert!(vx.contains("same person"), "{vx}");
}

#[test]
fn int8_search_results_are_identical_to_x86_64() {
    let arm = arm64();
    // ≥ 20,000 rows: the parallel path (chunks shared by the helper threads), as on a real gallery.
    let args = ["bench", "search", "--entries", "24000", "--queries", "100"];
    let (x86, a64) = (run(vigil(), &args), run(arm.vigil(), &args));
    assert!(x86.status.success(), "x86-64 bench search: {x86:?}");
    assert!(a64.status.success(), "arm64 bench search: {a64:?}");
    let parse = |o: &Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
    let (x86, a64) = (parse(&x86), parse(&a64));
    let digest = x86["results_sha256"].as_str().unwrap();
    assert_eq!(digest.len(), 64, "{x86}");
    assert_eq!(digest, a64["results_sha256"].as_str().unwrap(), "x86-64 {x86}\narm64 {a64}");
    // The planted queries are found: the identical results are right ones, not identically wrong.
    assert_eq!(x86["int8"]["recall_of_planted"], 1.0, "{x86}");
    assert_eq!(a64["int8"]["recall_of_planted"], 1.0, "{a64}");
}
