//! What the agent leaves on disk and in its logs: private files whatever umask started it, no camera
//! credential in any log line, and models loaded from the bytes that were hashed.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::vigil;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `vigil` started as a login shell would start it: umask 022 (files world-readable by default).
fn vigil_umask_022() -> Command {
    let mut cmd = vigil();
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd
}

/// Reads the child's stderr into a shared buffer on a thread (so it never blocks on a full pipe).
struct LogTail {
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl LogTail {
    fn start(child: &mut Child) -> LogTail {
        let mut stderr = child.stderr.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        LogTail { seen }
    }

    fn text(&self) -> String {
        text(&self.seen.lock().unwrap())
    }

    /// Waits (bounded) until `done` holds for the log so far; returns whether it did.
    fn wait(&self, limit: Duration, mut done: impl FnMut(&str) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(&self.text()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        done(&self.text())
    }
}

/// SIGINT, then the exit (bounded); the child is killed if it does not exit in time.
fn stop(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            panic!("vigil did not exit within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() && !path.is_symlink() {
            walk(&path, out);
        }
    }
}

/// The issue: files other than keys and the gallery followed the umask (022 outside the shipped unit:
/// outbox, recordings, references readable by any local user). Every file and directory the agent
/// creates under data_dir must be its user's alone, whatever umask it was started with.
#[test]
fn files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster-in.json");
    std::fs::write(&roster, r#"{"inpatients": [{"patient": "p-1", "camera": "ward", "bed": "bed-1"}]}"#).unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"t\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n\
             [roster]\nfile = \"{}\"\n\
             [[cameras]]\nid = \"window\"\nrole = \"settlement_window\"\nurl = \"test://smpte\"\n\
             [[cameras]]\nid = \"ward\"\nrole = \"ward\"\nurl = \"test://smpte\"\n\
             regions = {{ bed-1 = [[0,0],[0.5,0],[0.5,1]] }}\n",
            roster.display()
        ),
    )
    .unwrap();
    let out = vigil_umask_022().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "keys init: {}", text(&out.stderr));
    let photo = common::face_images().join("obama.jpg");
    let out = vigil_umask_022()
        .args(["enroll", "--role", "patient", "--id", "p-1", "--config"])
        .arg(&config)
        .arg(&photo)
        .output()
        .unwrap();
    assert!(out.status.success(), "enroll: {}", text(&out.stderr));

    let mut child = vigil_umask_022().arg("run").arg("--config").arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    let log = LogTail::start(&mut child);
    let state = dir.path().join("state");
    let recorded = |cam: &str| {
        std::fs::read_dir(state.join("recordings").join(cam))
            .map(|d| d.flatten().any(|e| e.path().extension().is_some_and(|x| x == "mp4")))
            .unwrap_or(false)
    };
    let ready = log.wait(Duration::from_secs(120), |log| {
        log.contains("roster file applied")
            && log.matches("reference frame captured").count() >= 2
            && recorded("window")
            && recorded("ward")
    });
    let status = stop(child);
    let log = log.text();
    assert!(ready, "the agent did not write its files in time; log:\n{log}");
    assert!(status.success(), "exit {status}; log:\n{log}");

    let mut paths = vec![state.clone()];
    walk(&state, &mut paths);
    for expected in [
        "keys",
        "keys/device-ed25519.pem",
        "keys/gallery.key",
        "keys/rollcall.seed",
        "gallery.bin",
        "roster.json",
        "references/window.png",
        "recordings/ward",
    ] {
        assert!(state.join(expected).exists(), "{expected} was not written; files: {paths:#?}");
    }
    assert!(paths.iter().any(|p| p.to_string_lossy().contains("outbox")), "no outbox in {paths:#?}");
    let open: Vec<String> = paths
        .iter()
        .map(|p| (p, std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777))
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(p, mode)| format!("{} {mode:o}", p.strip_prefix(dir.path()).unwrap().display()))
        .collect();
    assert!(open.is_empty(), "readable by group or others under umask 022: {open:#?}");
    let leftovers: Vec<_> = paths.iter().filter(|p| p.to_string_lossy().contains(".tmp.")).collect();
    assert!(leftovers.is_empty(), "temp files left behind: {leftovers:#?}");
}

/// The issue: query-string credentials (`?user=admin&password=…`) were logged verbatim in `camera
/// configured`, and a password holding `/` was logged unmasked. No line of any log, at debug level,
/// may hold a camera's secret, whatever the agent does with the URL (run, fail to connect, refuse).
#[test]
fn credentials_never_logged() {
    let port = common::mqtt::free_port(); // nothing listens there: the camera fails and retries
    let secrets = ["S3cr%40t", "S3cr@t", "Q5ecr3tPw", "T0kenValue", "pa/ss@w0rd:x"];
    let urls = [
        format!("rtsp://admin:S3cr%40t@127.0.0.1:{port}/live?user=admin&password=Q5ecr3tPw&token=T0kenValue"),
        format!("rtsp://admin:pa/ss@w0rd:x@127.0.0.1:{port}/live?channel=1&PASSWORD=Q5ecr3tPw"),
    ];
    let mut logs = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("vigil.toml");
        std::fs::write(
            &config,
            format!(
                "[site]\nid = \"t\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n\
                 [[cameras]]\nid = \"w\"\nrole = \"settlement_window\"\nurl = \"{url}\"\n"
            ),
        )
        .unwrap();
        // A password with an unencoded '/' or '@' is refused by every command that reads the config
        // (rtspsrc would cut it at the first '@'); the refusal is a log too, and names the field.
        let out = vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
        assert!(
            out.status.success() || text(&out.stderr).contains("cameras[0].url"),
            "keys init: {}",
            text(&out.stderr)
        );
        logs.push(format!("keys init {i}:\n{}{}", text(&out.stdout), text(&out.stderr)));
        let check = vigil().arg("check-config").arg(&config).output().unwrap();
        logs.push(format!("check-config {i}:\n{}{}", text(&check.stdout), text(&check.stderr)));
        let reference = vigil()
            .args(["--log-level", "debug", "reference", "--camera", "w", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = vigil()
            .args(["--log-level", "debug", "run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = LogTail::start(&mut child);
        // Until the camera has failed at least once (or the config was refused and the agent exited).
        let mut exited = None;
        log.wait(Duration::from_secs(60), |log| {
            exited = exited.or_else(|| child.try_wait().unwrap());
            exited.is_some() || (log.contains("camera configured") && log.contains("camera_offline"))
        });
        let status = match exited {
            Some(status) => status,
            None => stop(child),
        };
        let run_log = log.text();
        if check.status.success() {
            assert!(run_log.contains("camera configured"), "{url}: the agent did not start:\n{run_log}");
            assert!(run_log.contains("camera_offline"), "{url}: the camera never failed:\n{run_log}");
            assert!(status.success(), "{url}: exit {status}:\n{run_log}");
        }
        logs.push(format!("run {i}:\n{run_log}"));
        // `vigil reference` gives up within its minute; killed earlier, its output so far still counts.
        let mut reference = reference;
        std::thread::sleep(Duration::from_secs(2));
        reference.kill().ok();
        let out = reference.wait_with_output().unwrap();
        logs.push(format!("reference {i}:\n{}{}", text(&out.stdout), text(&out.stderr)));
    }
    let all = logs.join("\n");
    for secret in secrets {
        let lines: Vec<&str> = all.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "secret {secret:?} logged:\n{}", lines.join("\n"));
    }
    assert!(all.contains("***"), "the masked URL should be logged:\n{all}");
}

/// The issue: the model's SHA-256 was checked, then the file was reopened by path. A model swapped on
/// disk after the check must not be what runs: sessions are built from the bytes that were hashed.
#[test]
fn model_swapped_after_check_is_not_loaded() {
    use vigil::analyze::model_set::{self, ModelSet};
    let dir = tempfile::tempdir().unwrap();
    let installed = ModelSet::default_dir();
    for name in vigil::analyze::model_set::manifest().models.iter().map(|m| m.output.clone()) {
        std::fs::copy(installed.join(&name), dir.path().join(&name)).unwrap();
    }
    let verified = ModelSet::open(dir.path()).unwrap();
    let manifest = model_set::manifest();
    for model in &verified.models {
        let expected = &manifest.models.iter().find(|m| m.name == model.name).unwrap().output_sha256;
        assert_eq!(
            &model_set::sha256(model.bytes().unwrap()),
            expected,
            "{}: the bytes kept are the ones hashed",
            model.name
        );
    }
    // Swap the face detector for another (valid) model after the check.
    std::fs::copy(dir.path().join("movenet_multipose.onnx"), dir.path().join("centerface.onnx")).unwrap();
    let runtime = vigil::analyze::runtime::init(None).unwrap();
    let session = vigil::analyze::session::open(runtime, verified.model("centerface").unwrap(), 1).unwrap();
    let mut faces = vigil::analyze::face_detector::FaceDetector::new(session, Default::default());
    let found = faces.detect(&common::face_photo("obama.jpg")).unwrap();
    assert_eq!(found.len(), 1, "the verified CenterFace ran, not the file swapped in: {found:?}");
    // Once the sessions are built the bytes are released; a session cannot then fall back to the path.
    let mut released = verified.clone();
    released.release_bytes();
    assert!(vigil::analyze::session::open(runtime, released.model("centerface").unwrap(), 1).is_err());
}
