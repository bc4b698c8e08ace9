//! The command line as an operator meets it: config checking, start-up, clean shutdown, exit codes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn vigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_LOG").env_remove("RUST_BACKTRACE");
    cmd
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("vigil.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// A file with exactly five distinct mistakes, in five different sections.
const FIVE_MISTAKES: &str = r#"
[site]
id = "hospital 12"
device_id = "edge-1"

[[cameras]]
id = "ward-a"
role = "ward"
url = "http://10.0.0.4/stream"
[cameras.regions]
bed-7 = [[0.1, 0.1], [0.4, 0.1]]

[mqtt]
host = "broker"
port = 0

[retention]
recordings_max_bytes_per_camera = "10 MiB"
"#;

#[test]
fn check_config_prints_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), FIVE_MISTAKES);
    let out = vigil().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    for field in [
        "site.id: \"hospital 12\" contains ' '",
        "cameras[0].url: \"http://10.0.0.4/stream\": unsupported scheme \"http\"",
        "cameras[0].regions.bed-7: polygon needs ≥3 points, got 2",
        "mqtt.port: must be 1..65535, got 0",
        "retention.recordings_max_bytes_per_camera: must be at least 100 MiB",
    ] {
        assert!(stderr.contains(field), "missing {field:?} in:\n{stderr}");
    }
    assert!(stderr.contains("5 errors"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("  ")).count(), 5, "{stderr}");
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for file in ["config/vigil.example.toml", "config/demo.toml"] {
        let out = vigil().arg("check-config").arg(repo(file)).output().unwrap();
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("OK"), "{file}: {}", text(&out.stdout));
    }
}

#[test]
fn syntax_errors_and_missing_files_are_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write_config(dir.path(), "[site\nid = 1\n");
    for (file, expect) in [(broken, "vigil.toml"), (dir.path().join("absent.toml"), "cannot read config file")] {
        for args in [vec!["check-config".into(), file.clone()], vec!["run".into(), "--config".into(), file.clone()]] {
            let out = vigil().args(&args).output().unwrap();
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(expect), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
        }
    }
}

#[test]
fn run_with_invalid_config_exits_2_with_the_full_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), FIVE_MISTAKES);
    let out = vigil().arg("run").arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("5 errors"), "{}", text(&out.stderr));
}

/// A valid config in `dir` (state under `dir/state`), with its device key created.
fn valid_config(dir: &Path, extra: &str) -> PathBuf {
    let file = write_config(
        dir,
        &format!(
            "[site]\nid = \"t\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n[http]\nenabled = false\n{extra}\n\
             [[cameras]]\nid = \"w\"\nrole = \"settlement_window\"\nurl = \"test://smpte\"\n"
        ),
    );
    let out = vigil().args(["keys", "init", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "keys init: {}", text(&out.stderr));
    file
}

/// Waits (bounded) for `needle` on the child's stderr and returns what was read. The reader thread
/// keeps draining the pipe afterwards so the child never blocks on a full pipe.
fn wait_for_log(child: &mut Child, needle: &str, limit: Duration) -> String {
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit && !text(&seen).contains(needle) {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.extend(chunk);
        }
    }
    text(&seen)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn wait_exit(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            panic!("vigil did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_starts_and_stops_cleanly_on_sigterm_and_sigint() {
    for sig in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let file = valid_config(dir.path(), "");
        let mut child = vigil().arg("run").arg("--config").arg(&file).stderr(Stdio::piped()).spawn().unwrap();
        let log = wait_for_log(&mut child, "vigil started", Duration::from_secs(20));
        assert!(log.contains("vigil started"), "no start message:\n{log}");
        signal(&child, sig);
        let status = wait_exit(child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = valid_config(dir.path(), "");
    let mut child =
        vigil().args(["--log-format", "json", "run", "--config"]).arg(&file).stderr(Stdio::piped()).spawn().unwrap();
    let log = wait_for_log(&mut child, "vigil started", Duration::from_secs(20));
    signal(&child, "TERM");
    wait_exit(child, Duration::from_secs(20));
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\""),
            "not a JSON log line: {line}"
        );
    }
}

#[test]
fn missing_onnx_runtime_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = valid_config(dir.path(), "[models]\nort_library = \"no-such-libonnxruntime.so\"\n");
    let out: Output = vigil().arg("run").arg("--config").arg(&file).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-libonnxruntime.so") && stderr.contains("scripts/setup"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn version_names_the_onnx_runtime() {
    let out = vigil().arg("--version").output().unwrap();
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("vigil {}", env!("CARGO_PKG_VERSION"))), "{stdout}");
    // scripts/test runs scripts/setup first, so the library is installed.
    assert!(stdout.contains("onnxruntime 1.32.0"), "{stdout}");
}

#[test]
fn run_refuses_a_missing_or_tampered_model_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let file = valid_config(dir.path(), "[models]\ndir = \"models\"\n");
    let out = vigil().arg("run").arg("--config").arg(&file).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("centerface.onnx") && stderr.contains("does not exist") && stderr.contains("scripts/setup"),
        "{stderr}"
    );

    // A real model file with one byte changed.
    let installed = vigil::cache::dir().join("models");
    for name in ["centerface.onnx", "dlib_face_recognition_resnet_v1.onnx", "nanodet.onnx"] {
        std::fs::copy(installed.join(name), models.join(name)).unwrap();
    }
    let victim = models.join("dlib_face_recognition_resnet_v1.onnx");
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let out = vigil().arg("run").arg("--config").arg(&file).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("dlib_face_recognition_resnet_v1.onnx") && stderr.contains("modified"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn reference_captures_a_frame_from_the_camera() {
    let dir = tempfile::tempdir().unwrap();
    let file = valid_config(dir.path(), "");
    let out = vigil().args(["reference", "--camera", "w", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let saved = dir.path().join("state/references/w.png");
    assert!(text(&out.stdout).contains("w.png"), "{}", text(&out.stdout));
    let img = image::open(&saved).unwrap();
    assert_eq!((img.width(), img.height()), (1280, 720));
    let unknown = vigil().args(["reference", "--camera", "nope", "--config"]).arg(&file).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    // A uniform view is refused (covered?) unless the operator confirms it is a bare wall.
    let text_of = std::fs::read_to_string(&file).unwrap().replace("test://smpte", "test://white");
    std::fs::write(&file, text_of).unwrap();
    let refused = vigil().args(["reference", "--camera", "w", "--config"]).arg(&file).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("--uniform"), "{}", text(&refused.stderr));
    let accepted = vigil().args(["reference", "--uniform", "--camera", "w", "--config"]).arg(&file).output().unwrap();
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
}

#[test]
fn run_refuses_a_missing_or_open_device_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = valid_config(dir.path(), "");
    let key = dir.path().join("state/keys/device-ed25519.pem");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = vigil().arg("run").arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("readable by others"), "{}", text(&out.stderr));
    std::fs::remove_file(&key).unwrap();
    let out = vigil().arg("run").arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("vigil keys init"), "{}", text(&out.stderr));
    // keys public prints PEM and base64; init refuses to replace an identity.
    let out = vigil().args(["keys", "init", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success());
    let again = vigil().args(["keys", "init", "--config"]).arg(&file).output().unwrap();
    assert!(!again.status.success() && text(&again.stderr).contains("already exists"));
    let public = vigil().args(["keys", "public", "--config"]).arg(&file).output().unwrap();
    let stdout = text(&public.stdout);
    assert!(stdout.contains("-----BEGIN PUBLIC KEY-----") && stdout.contains("base64: "), "{stdout}");
}
