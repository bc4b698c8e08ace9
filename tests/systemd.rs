//! The shipped unit under a real systemd. This machine's PID 1 is not systemd, so the test boots a Debian 12
//! root (scripts/systemd-root) with `systemd-nspawn -b`: systemd is PID 1 in the container, which shares the
//! host's network (the broker the test starts on 127.0.0.1 is reachable). Into the root go the agent's
//! binary, ONNX Runtime and the model bundle where the unit's `VIGIL_CACHE` points, a settlement-window
//! camera (a looped clip of a face) and `systemd/vigil.service` exactly as it is in the repository.
//!
//! Then, as an installer would see it: the service reaches READY (`Type=notify`: systemd calls it active
//! only after READY=1) with its STATUS= line; under the unit's hardening a signed settlement command is
//! verified (MQTT, GStreamer decoding and both face models work inside the sandbox); a `config_apply` is
//! written and applied in process without systemd restarting anything; `systemd-analyze
//! security` scores it ≤ 2.0; and with the test-only fault injection hanging the camera's analysis
//! thread, the watchdog pings stop and systemd kills and restarts the agent.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::agent::{Platform, kinds};
use common::mqtt::{Mosquitto, Subscriber, wait};
use common::run_ok;

/// A booted container, powered off (or killed) on drop.
struct Container {
    /// `script`, which gives nspawn the terminal it wants for the container's console.
    child: Child,
    /// The container's PID 1 (systemd), as the host sees it.
    init: u32,
    console: PathBuf,
}

impl Container {
    fn boot(root: &Path, console: &Path) -> Container {
        let machine = format!("vigil-test-{}", std::process::id());
        let nspawn = format!(
            "systemd-nspawn --directory={} --boot --register=no --keep-unit --capability=CAP_SYS_TIME --machine={machine}",
            root.display()
        );
        let child = Command::new("script")
            .args(["--quiet", "--flush", "--command", &nspawn])
            .arg(console)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("script (util-linux) runs systemd-nspawn");
        let mut container = Container { child, init: 0, console: console.to_owned() };
        // script → systemd-nspawn → (nspawn's short-lived helpers) → systemd: the init is the descendant that runs
        // systemd, looked for again until the boot is seen, since a helper may be caught before it exits.
        let mut state = String::new();
        let booted = wait(Duration::from_secs(120), || {
            container.init = container_init(container.child.id()).unwrap_or(0);
            if container.init == 0 {
                state = "systemd not started yet".to_owned();
                return false;
            }
            state = container.run(&["systemctl", "is-system-running"]);
            state.contains("running") || state.contains("degraded")
        });
        assert!(
            booted,
            "the container did not finish booting (last state: {state:?}, init pid {}):\n{}",
            container.init,
            container.console_text()
        );
        container
    }

    /// A command inside the container (its namespaces), stdout and stderr together.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["--target", &self.init.to_string(), "--all"])
            .args(args)
            .output()
            .expect("nsenter (util-linux)");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }

    fn show(&self, property: &str) -> String {
        self.run(&["systemctl", "show", "vigil", "--property", property, "--value"]).trim().to_owned()
    }

    fn journal(&self) -> String {
        self.run(&["journalctl", "--unit", "vigil", "--no-pager", "--output", "short-precise"])
    }

    fn console_text(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.init != 0 {
            self.run(&["systemctl", "poweroff"]);
        }
        let off = wait(Duration::from_secs(30), || self.child.try_wait().ok().flatten().is_some());
        if !off {
            // The whole group: script, nspawn and what is left of the container.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
    }
}

/// The pid of the `systemd` process started under `script` (its grandchild or deeper), if it runs yet.
fn container_init(script: u32) -> Option<u32> {
    let mut generation = vec![script];
    for _ in 0..4 {
        generation = generation.into_iter().flat_map(children).collect();
        let init = generation.iter().copied().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "systemd")
        });
        if init.is_some() {
            return init;
        }
    }
    None
}

/// The pids whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Copies `from` to `to` with its directories, readable by all (the agent's user reads it).
fn install(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// Makes every file under `dir` belong to `uid:gid`.
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    run_ok(Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(dir));
}

#[test]
fn the_unit_reaches_ready_works_hardened_and_the_watchdog_restarts_a_hung_agent() {
    assert!(
        Path::new("/usr/bin/systemd-nspawn").exists() && Path::new("/usr/sbin/debootstrap").exists(),
        "systemd-nspawn or debootstrap missing: run scripts/setup (packages systemd-container, debootstrap)"
    );
    let made = Command::new(common::repo("scripts/systemd-root")).stderr(Stdio::inherit()).output().unwrap();
    assert!(made.status.success(), "scripts/systemd-root failed");
    let tarball = PathBuf::from(String::from_utf8_lossy(&made.stdout).lines().last().unwrap().trim());
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    run_ok(Command::new("tar").arg("-C").arg(&root).arg("-xzf").arg(&tarball));

    // What the vigil package installs, by hand: the user, the binary, the unit, ONNX Runtime and the
    // models where the unit's VIGIL_CACHE points.
    run_ok(Command::new("chroot").arg(&root).args([
        "useradd",
        "--system",
        "--home-dir",
        "/var/lib/vigil",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "vigil",
    ]));
    let ids = run_ok(Command::new("chroot").arg(&root).args(["id", "vigil"]));
    let id = |key: &str| -> u32 {
        ids.split_whitespace().find_map(|p| p.strip_prefix(key)?.split('(').next()?.parse().ok()).unwrap()
    };
    let (uid, gid) = (id("uid="), id("gid="));
    install(Path::new(env!("CARGO_BIN_EXE_vigil")), &root.join("usr/bin/vigil"));
    install(&common::repo("systemd/vigil.service"), &root.join("etc/systemd/system/vigil.service"));
    std::os::unix::fs::symlink(
        "/etc/systemd/system/vigil.service",
        root.join("etc/systemd/system/multi-user.target.wants/vigil.service"),
    )
    .unwrap();
    let cache = vigil::cache::dir();
    let ort = "onnxruntime/1.32.0/libonnxruntime.so.1.32.0";
    install(&cache.join(ort), &root.join("var/cache/vigil").join(ort));
    for model in std::fs::read_dir(cache.join("models")).unwrap().flatten() {
        install(&model.path(), &root.join("var/cache/vigil/models").join(model.file_name()));
    }

    // A settlement window watching a looped clip of Obama (another photo of him is enrolled as a patient).
    let broker = Mosquitto::start(&dir.join("broker"));
    let metrics_port = common::mqtt::free_port();
    let platform = Platform::new(dir);
    let clip = root.join("opt/clips/window.mp4");
    std::fs::create_dir_all(clip.parent().unwrap()).unwrap();
    let person = vigil::analyze::image::frame_from(&common::face_photo("obama3.jpg"), 1280, 720);
    common::media::still_clip(&clip, &person, 40, 4);
    install(&platform.public_pem, &root.join("etc/vigil/platform.pem"));
    let config = |data_dir: &Path, platform_key: &Path, clip: &str| {
        format!(
            "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"{}\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\nkeepalive_secs = 5\nplatform_public_key = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [[cameras]]\nid = \"window\"\nrole = \"settlement_window\"\nurl = \"file://{clip}\"\nloop = true\n",
            data_dir.display(),
            broker.port,
            platform_key.display()
        )
    };
    std::fs::write(
        root.join("etc/vigil/vigil.toml"),
        config(Path::new("/var/lib/vigil"), Path::new("/etc/vigil/platform.pem"), "/opt/clips/window.mp4"),
    )
    .unwrap();
    // The device key and the gallery are made from the host (the same binary), then handed to the user.
    let state = root.join("var/lib/vigil");
    let host_config = dir.join("host.toml");
    std::fs::write(&host_config, config(&state, &platform.public_pem, &clip.display().to_string())).unwrap();
    run_ok(common::vigil().args(["keys", "init", "--config"]).arg(&host_config));
    common::agent::enroll(&host_config, "patient", &[("p-obama", "obama.jpg")]);
    chown_tree(&state, uid, gid);
    run_ok(Command::new("chown").arg(format!("0:{gid}")).arg(root.join("etc/vigil")));
    std::fs::set_permissions(root.join("etc/vigil"), std::os::unix::fs::PermissionsExt::from_mode(0o770)).unwrap();
    assert_eq!(std::fs::metadata(state.join("keys")).unwrap().uid(), uid);

    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let container = Container::boot(&root, &dir.join("console.log"));

    // READY: Type=notify makes the unit active only once the agent said READY=1.
    let active = wait(Duration::from_secs(90), || container.show("ActiveState") == "active");
    assert!(active, "vigil.service not active: {}\n{}", container.show("ActiveState"), container.journal());
    let status = container.show("StatusText");
    assert!(status.starts_with("running: 1 cameras"), "STATUS= after READY: {status:?}\n{}", container.journal());
    assert_eq!(container.show("Type"), "notify");
    assert_eq!(container.show("WatchdogUSec"), "30s");

    // Under the hardening: the broker, the camera's decoding and both face models work.
    let online =
        sub.wait_for(Duration::from_secs(30), |m| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online"));
    assert!(online, "no online status from the container's agent:\n{}", container.journal());
    let args =
        serde_json::json!({"camera": "window", "claimed_id": "p-obama", "transaction_id": "tx-1", "watch_secs": 30});
    sub.publish("vigil/v1/hosp/edge/cmd/settlement", platform.sign("settlement", &args));
    let verified = sub.wait_for(Duration::from_secs(60), |m| kinds(m).iter().any(|k| k == "settlement_verified"));
    assert!(verified, "no settlement_verified: {:?}\n{}", kinds(&sub.messages.lock().unwrap()), container.journal());

    // The metrics listener, and what the agent reads of /proc/self and the data directory under the unit.
    let page = ureq::get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .unwrap_or_else(|e| panic!("GET /metrics of the container's agent: {e}\n{}", container.journal()));
    let sample = |series: &str| -> f64 {
        let line = page.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series}:\n{page}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert!(sample("process_resident_memory_bytes") > 10e6, "{page}");
    assert!(sample("vigil_storage_free_bytes") > 0.0, "{page}");
    assert!(sample("vigil_camera_frames_analysed_total{camera=\"window\"}") > 0.0, "{page}");

    // config_apply under the unit: the agent may rewrite /etc/vigil/vigil.toml (ReadWritePaths=, the
    // directory is the vigil group's), restarts in process (RELOADING=1, then READY=1 again) and systemd
    // neither kills nor restarts it.
    let applied_config = format!(
        "{}[outbox]\nmax_records = 200000\n",
        config(Path::new("/var/lib/vigil"), Path::new("/etc/vigil/platform.pem"), "/opt/clips/window.mp4")
    );
    let args = serde_json::json!({"config": applied_config, "confirm_within_s": 60});
    sub.publish("vigil/v1/hosp/edge/cmd/config_apply", platform.sign("config_apply", &args));
    let applied = sub.wait_for(Duration::from_secs(90), |m| kinds(m).iter().any(|k| k == "config_applied"));
    assert!(applied, "no config_applied: {:?}\n{}", kinds(&sub.messages.lock().unwrap()), container.journal());
    assert_eq!(std::fs::read_to_string(root.join("etc/vigil/vigil.toml")).unwrap(), applied_config);
    assert!(root.join("etc/vigil/vigil.toml.previous").exists());
    assert_eq!((container.show("ActiveState"), container.show("NRestarts")), ("active".to_owned(), "0".to_owned()));
    assert!(container.show("StatusText").starts_with("running: 1 cameras"), "{}", container.show("StatusText"));

    // The score systemd gives the unit, as loaded.
    let security = container.run(&["systemd-analyze", "security", "vigil", "--no-pager"]);
    let score: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for vigil.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{security}"));
    assert!(score <= 2.0, "systemd-analyze security vigil: {score} (> 2.0)\n{security}");
    eprintln!("systemd-analyze security vigil: {score}");

    // A hung analysis thread: the pings stop and systemd restarts the agent (a shorter WatchdogSec so the
    // test waits seconds, not the unit's 30).
    let dropin = root.join("etc/systemd/system/vigil.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(dropin.join("hang.conf"), "[Service]\nWatchdogSec=4\nEnvironment=VIGIL_TEST_HANG_ANALYSIS=window\n")
        .unwrap();
    container.run(&["systemctl", "daemon-reload"]);
    container.run(&["systemctl", "restart", "vigil"]);
    let restarted = wait(Duration::from_secs(60), || container.show("NRestarts").parse::<u32>().unwrap_or(0) >= 1);
    let journal = container.journal();
    assert!(restarted, "no restart by the watchdog (NRestarts {}):\n{journal}", container.show("NRestarts"));
    assert!(journal.contains("Watchdog timeout"), "systemd did not report the watchdog:\n{journal}");
    assert!(journal.contains("threads made no progress") && journal.contains("ana-window"), "{journal}");
    // Nothing the sandbox refused: no error logged, and the clock's synchronisation state was read (the
    // unit gives adjtimex back from @privileged; the container has CAP_SYS_TIME so that nspawn's own
    // filter allows it too, as a real box's PID 1 does).
    assert!(!journal.contains("\"level\":\"ERROR\""), "an error under the unit's sandbox:\n{journal}");
    assert!(!journal.contains("cannot read the clock"), "adjtimex refused under the unit's sandbox:\n{journal}");
    // ONNX Runtime could read the CPU's description (/proc/cpuinfo is not hidden by the unit).
    assert!(!journal.contains("Error in cpuinfo"), "{journal}");
    // The c2pa crate's INFO progress lines stay out of the journal (the default log filter).
    assert!(!journal.contains("c2pa::context"), "{journal}");
}
