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

/// A platform key pair in `dir`: (private PEM, public PEM), as `vigil keys init --file` makes them.
fn platform_key(dir: &Path) -> (PathBuf, PathBuf) {
    let private = dir.join("platform.pem");
    let out = vigil().args(["keys", "init", "--file"]).arg(&private).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = dir.join("platform-public.pem");
    std::fs::write(&public, text(&out.stdout).split("base64:").next().unwrap()).unwrap();
    (private, public)
}

/// The shipped configs name files of a real box (/etc/vigil/…) or made by scripts/demo: check-config
/// accepts them once those files exist, and names exactly those files while they do not.
#[test]
fn check_config_accepts_the_shipped_configs() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo("config/vigil.example.toml")).unwrap();
    let out = vigil().arg("check-config").arg(repo("config/vigil.example.toml")).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let fields: Vec<&str> =
        stderr.lines().filter(|l| l.starts_with("  ")).map(|l| l.trim().split(':').next().unwrap()).collect();
    let files = [
        "mqtt.platform_public_key",
        "mqtt.password_file",
        "mqtt.tls.ca_file",
        "mqtt.tls.client_cert",
        "mqtt.tls.client_key",
        "http.tls_cert",
        "http.tls_key",
    ];
    assert_eq!(fields, files, "{stderr}");

    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let (_, public) = platform_key(&etc);
    for file in ["mqtt-password", "platform-ca.pem", "edge-ward3.crt", "edge-ward3.key", "http.crt", "http.key"] {
        std::fs::write(etc.join(file), "stand-in: only readability is checked\n").unwrap();
    }
    assert_eq!(public, etc.join("platform-public.pem"));
    let local = example
        .replace("/etc/vigil/", &format!("{}/", etc.display()))
        .replace("/var/lib/vigil", &dir.path().join("state").display().to_string());
    let file = write_config(dir.path(), &local);
    let out = vigil().arg("check-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "example: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"), "example: {}", text(&out.stdout));

    // The demo's platform key is made by scripts/demo under target/demo/, relative to config/.
    let demo_dir = dir.path().join("demo");
    std::fs::create_dir_all(demo_dir.join("config")).unwrap();
    std::fs::create_dir_all(demo_dir.join("target/demo")).unwrap();
    std::fs::copy(repo("config/demo.toml"), demo_dir.join("config/demo.toml")).unwrap();
    platform_key(&demo_dir.join("target/demo"));
    let out = vigil().arg("check-config").arg(demo_dir.join("config/demo.toml")).output().unwrap();
    assert!(out.status.success(), "demo: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"), "demo: {}", text(&out.stdout));
}

/// check-config and run on `file`: both must exit 2 with `expect` in their messages.
fn assert_both_refuse(file: &Path, expect: &[&str]) {
    for args in [vec!["check-config".into(), file.to_owned()], vec!["run".into(), "--config".into(), file.to_owned()]] {
        let out = vigil().args(&args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for want in expect {
            assert!(stderr.contains(want), "{args:?}: no {want:?} in:\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn check_config_refuses_invalid_platform_key() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = |key: &str| format!("[mqtt]\nhost = \"127.0.0.1\"\nplatform_public_key = \"{key}\"\n");
    let file = valid_config(dir.path(), &mqtt("platform-public.pem"));
    let missing = dir.path().join("platform-public.pem");
    assert_both_refuse(
        &file,
        &["1 error", &format!("mqtt.platform_public_key: {}: cannot read: No such file", missing.display())],
    );
    // A file that is not a public key: the device's private key by mistake.
    let file = write_config(dir.path(), &valid_config_text(&mqtt("state/keys/device-ed25519.pem")));
    assert_both_refuse(&file, &["mqtt.platform_public_key: ", "not an Ed25519 public key"]);
    // Base64 that is not 32 bytes.
    let file = write_config(dir.path(), &valid_config_text(&mqtt(&format!("{}=", "!".repeat(43)))));
    assert_both_refuse(&file, &["mqtt.platform_public_key: ", "is not the base64 of a 32-byte Ed25519 key"]);
    // A real key passes.
    let (_, public) = platform_key(dir.path());
    let file = write_config(dir.path(), &valid_config_text(&mqtt(&public.display().to_string())));
    let out = vigil().arg("check-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn check_config_refuses_data_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state-file"), b"").unwrap();
    let file = write_config(
        dir.path(),
        "[site]\nid = \"t\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state-file\"\nevidence_dir = \"state-file/evidence\"\n",
    );
    let data_dir = dir.path().join("state-file");
    assert_both_refuse(
        &file,
        &[
            "2 errors",
            &format!("storage.data_dir: {} exists and is not a directory", data_dir.display()),
            &format!(
                "storage.evidence_dir: {}/evidence cannot be created: {} is not a directory",
                data_dir.display(),
                data_dir.display()
            ),
        ],
    );
}

#[test]
fn check_config_refuses_negative_min_face_px() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "[site]\nid = \"t\"\ndevice_id = \"d\"\n[faces]\nmin_face_px = -80\n");
    assert_both_refuse(
        &file,
        &["1 error", "faces.min_face_px: must be 10..4096 pixels (the shorter side of a face's box), got -80"],
    );
}

#[test]
fn check_config_refuses_utc_offset_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        write_config(dir.path(), "[site]\nid = \"t\"\ndevice_id = \"d\"\n[rollcalls]\nutc_offset = \"+15:00\"\n");
    assert_both_refuse(
        &file,
        &["1 error", "rollcalls.utc_offset: \"+15:00\" is out of range: UTC offsets run from -12:00 to +14:00"],
    );
}

/// A '/' in a camera password ends the URL's authority early: the camera would be dialled at the user
/// name and the password logged as part of a path. Refused, without echoing the password.
#[test]
fn check_config_refuses_unencoded_slash_in_camera_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "[site]\nid = \"t\"\ndevice_id = \"d\"\n[[cameras]]\nid = \"w\"\nrole = \"settlement_window\"\n\
         url = \"rtsp://admin:hunter/2@192.0.2.7/live\"\n",
    );
    for args in [vec!["check-config".into(), file.clone()], vec!["run".into(), "--config".into(), file.clone()]] {
        let out = vigil().args(&args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("cameras[0].url: the user name or password contains '/', '?', '#' or '@'")
                && stderr.contains("%2F"),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter"), "the password leaked: {stderr}");
    }
    let encoded = std::fs::read_to_string(&file).unwrap().replace("hunter/2", "hunter%2F2");
    std::fs::write(&file, encoded).unwrap();
    let out = vigil().arg("check-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Peak resident memory of the largest child process waited for so far, in bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage writes into the struct it is given and has no other preconditions.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn detect_refuses_huge_file_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.jpg");
    // 3 GiB, sparse: reading it whole would need 3 GiB of memory, checking its size needs none.
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(3 << 30).unwrap();
    drop(file);
    let out = vigil().arg("detect").arg(&huge).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let refusal = format!(
        "{}: 3221225472 bytes is over the limit of 52428800 bytes; not read (a photo may have at most 50 MiB)",
        huge.display()
    );
    assert!(stderr.contains(&refusal), "{stderr}");
    // Enrolment reads photos the same way.
    let config = valid_config(dir.path(), "");
    let out = vigil()
        .args(["enroll", "--role", "patient", "--id", "p-1", "--config"])
        .arg(&config)
        .arg(&huge)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("rejected {}: {refusal}", huge.display())), "{stderr}");
    // No vigil run by this test binary came near 3 GiB (the models take a few hundred MiB).
    assert!(children_max_rss() < 1 << 30, "a child process used {} bytes", children_max_rss());
}

/// Phones store a portrait photo as landscape pixels and an EXIF Orientation tag; read as stored, the
/// face lies on its side and enrolment refused it ("head tilted -61°").
#[test]
fn exif_rotated_portrait_photo_is_enrolled() {
    let dir = tempfile::tempdir().unwrap();
    let config = valid_config(dir.path(), "");
    let upright = image::open(vigil::cache::dir().join("samples/face_recognition-test-images/obama.jpg")).unwrap();
    // The pixels as the phone stores them: turned 90° anticlockwise; EXIF 6 says "turn 90° clockwise".
    let stored = upright.rotate270();
    let mut jpeg = Vec::new();
    stored.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let untagged = dir.path().join("as-stored.jpg");
    std::fs::write(&untagged, &jpeg).unwrap();
    let tagged = dir.path().join("portrait.jpg");
    std::fs::write(&tagged, vigil::fuzzing::with_exif_orientation(&jpeg, 6).unwrap()).unwrap();
    let enroll = |photo: &Path| {
        vigil()
            .args(["enroll", "--role", "patient", "--id", "p-1", "--config"])
            .arg(&config)
            .arg(photo)
            .output()
            .unwrap()
    };
    // Without the tag, the same pixels are a face on its side: refused. This is what the tag must fix.
    let out = enroll(&untagged);
    assert_eq!(out.status.code(), Some(1), "a sideways face was enrolled: {}", text(&out.stdout));
    let out = enroll(&tagged);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), text(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["enrolled"], true, "{report}");
    assert_eq!(report["images"][0]["accepted"], true, "{report}");
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

/// A valid config's text (state under `./state`) with `extra` tables.
fn valid_config_text(extra: &str) -> String {
    format!(
        "[site]\nid = \"t\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n{extra}\n\
         [[cameras]]\nid = \"w\"\nrole = \"settlement_window\"\nurl = \"test://smpte\"\n"
    )
}

/// A valid config in `dir` (state under `dir/state`), with its device key created.
fn valid_config(dir: &Path, extra: &str) -> PathBuf {
    let file = write_config(dir, &valid_config_text(extra));
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
    for name in vigil::analyze::model_set::manifest().models.iter().map(|m| m.output.clone()) {
        std::fs::copy(installed.join(&name), models.join(&name)).unwrap();
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
