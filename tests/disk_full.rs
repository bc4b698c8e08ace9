//! A full disk and a shared data directory, with real `vigil run` processes.
//!
//! The disk is a real 64 MiB file system (a tmpfs mounted by the test, which needs root; the tests say
//! so and skip otherwise) holding the data directory; a camera (a file played like a live stream, about
//! 375 kB/s) records into it, and a ballast file fills it.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use image::RgbImage;
use vigil::evidence::store;
use vigil::source::recorder::{free_bytes, segments};

const MIB: u64 = 1 << 20;

/// A tmpfs of `size_mib` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size_mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a {size_mib} MiB tmpfs at {} (this test needs root): {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there (a failed test's agent) must not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `vigil run` with its log in a file; killed on drop.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(config: &Path, log: PathBuf) -> Running {
        let file = std::fs::File::create(&log).unwrap();
        let child = common::vigil().arg("run").arg("--config").arg(config).stderr(file).spawn().unwrap();
        Running { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, text: &str, limit: Duration) -> bool {
        common::mqtt::wait(limit, || self.log().contains(text))
    }

    /// SIGINT and the clean exit; returns the log.
    fn stop(mut self) -> String {
        Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the agent did not stop within 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = self.log();
        assert!(status.success(), "agent exit {status}; log:\n{log}");
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A camera view for `seconds` at 10 fps: a room (a registry photo with sensor noise) and, from
/// `dark_from`, a covered lens. Written outside the small file system.
fn camera_clip(path: &Path, seconds: usize, dark_from: Option<usize>) {
    let room = vigil::analyze::image::frame_from(
        &vigil::analyze::image::load_rgb(&common::face_images().join("obama.jpg")).unwrap(),
        640,
        360,
    );
    common::media::encode_clip(path, 640, 360, 10, seconds * 10, 10, |i| {
        let dark = dark_from.is_some_and(|d| i >= d * 10);
        let mut img = if dark { RgbImage::from_pixel(640, 360, image::Rgb([8, 8, 8])) } else { room.clone() };
        common::media::add_noise(&mut img, 6, i as u64);
        img
    });
}

/// The config of an agent whose data directory is `data_dir`, one looping file camera, no MQTT.
fn write_config(dir: &Path, data_dir: &Path, clip: &Path, min_free: &str, extra: &str) -> PathBuf {
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"{}\"\n\
             [retention]\nmin_free_bytes = \"{min_free}\"\n{extra}\
             [[cameras]]\nid = \"ward\"\nrole = \"settlement_window\"\nurl = \"file://{}\"\nloop = true\n",
            data_dir.display(),
            clip.display()
        ),
    )
    .unwrap();
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    std::fs::write(dir.join("device-public.pem"), &keys.stdout).unwrap();
    config
}

/// Writes zeros to `path` until the file system has at most `leave` bytes free (0: until it is full).
fn fill(path: &Path, leave: u64) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    loop {
        let free = free_bytes(path.parent().unwrap()).unwrap();
        if free <= leave {
            return;
        }
        let n = (free - leave).min(chunk.len() as u64) as usize;
        match file.write(&chunk[..n]) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return,
            Err(e) => panic!("ballast: {e}"),
        }
    }
}

/// Before: free space was checked once a minute and a fixed 4 segments deleted, so the disk went far
/// below `retention.min_free_bytes`, down to 0, between checks. Now it is checked every second and as
/// many of the oldest segments deleted as it takes: sampled every 100 ms for 40 s while a camera
/// records into a 64 MiB disk left just above the floor, free space is never below it for more than a
/// few seconds, recordings are evicted oldest first, and the newest is kept.
#[test]
fn free_space_floor_is_kept_continuously() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(root.path().join("disk"), 64) else { return };
    let clip = root.path().join("room.mp4");
    camera_clip(&clip, 12, None);
    let data_dir = disk.dir.join("state");
    let config = write_config(root.path(), &data_dir, &clip, "20 MiB", "");
    let floor = 20 * MIB;
    let agent = Running::start(&config, root.path().join("agent.log"));
    let recordings = data_dir.join("recordings/ward");
    // A few closed segments first: the ring to evict from.
    assert!(
        common::mqtt::wait(Duration::from_secs(120), || segments(&recordings).is_ok_and(|s| s.len() >= 3)),
        "the camera did not record:\n{}",
        agent.log()
    );
    let first_segment = segments(&recordings).unwrap()[0].path.clone();
    // Leave 2 MiB above the floor: the camera crosses it within seconds and stays at it.
    fill(&disk.dir.join("ballast"), floor + 2 * MIB);

    let started = Instant::now();
    let (mut below_since, mut longest_below, mut samples_below, mut lowest) =
        (None::<Instant>, Duration::ZERO, 0, u64::MAX);
    while started.elapsed() < Duration::from_secs(40) {
        let free = free_bytes(&disk.dir).unwrap();
        lowest = lowest.min(free);
        if free < floor {
            samples_below += 1;
            let since = *below_since.get_or_insert_with(Instant::now);
            longest_below = longest_below.max(since.elapsed());
        } else {
            below_since = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = agent.stop();
    eprintln!(
        "free-space floor {} MiB: lowest free {:.1} MiB, longest below the floor {:.1} s, \
         {samples_below} of ~400 samples below",
        floor / MIB,
        lowest as f64 / MIB as f64,
        longest_below.as_secs_f64()
    );
    assert!(lowest < floor + MIB, "the camera never brought the disk to the floor (lowest {lowest}):\n{log}");
    assert!(
        longest_below <= Duration::from_secs(4),
        "free space stayed below the floor for {longest_below:?} (lowest {lowest} bytes):\n{log}"
    );
    assert!(!first_segment.exists(), "the oldest segment was not evicted:\n{log}");
    assert!(!segments(&recordings).unwrap().is_empty(), "the newest recordings were deleted too");
    assert!(log.contains("free disk space reached retention.min_free_bytes"), "{log}");
    assert!(!log.contains("DISK FULL"), "recordings could be deleted; the floor was kept:\n{log}");
}

/// Before: on a full disk 12 of 20 bundles were not written and not retried until a restart, and 6 were
/// lost for good because eviction deleted their video. Now: a covered camera raises `camera_tamper`
/// with evidence; the moment its request is saved, the disk is filled and kept full (a ballast refilled
/// as soon as anything is freed) past the bundle's due time; then the ballast is removed. Without a
/// restart, every event announcing evidence gets a bundle that verifies, whose clip starts at or before
/// the requested pre-roll (its video was pinned while the free-space floor deleted every other
/// recording), and no request is left behind.
#[test]
fn evidence_written_after_disk_full_without_restart() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(root.path().join("disk"), 64) else { return };
    // 24 s of room, then 8 s covered: 3 segments before each tamper.
    let clip = root.path().join("covered.mp4");
    camera_clip(&clip, 32, Some(24));
    let data_dir = disk.dir.join("state");
    let config = write_config(
        root.path(),
        &data_dir,
        &clip,
        "16 MiB",
        "[tamper]\ncovered_secs = 2\n[evidence]\npre_roll_secs = 3\npost_roll_secs = 2\n",
    );
    let agent = Running::start(&config, root.path().join("agent.log"));
    let saved = data_dir.join("evidence-pending");
    let requests = || -> BTreeSet<String> {
        std::fs::read_dir(&saved)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
                    .filter(|n| !n.starts_with(".tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        common::mqtt::wait(Duration::from_secs(120), || !requests().is_empty()),
        "no tamper evidence requested:\n{}",
        agent.log()
    );
    // The disk fills up: kept full for 15 s, well past the bundle's due time (post-roll + 3 s).
    let ballast = disk.dir.join("ballast");
    let full = Arc::new(AtomicBool::new(true));
    let filler = {
        let (ballast, full) = (ballast.clone(), full.clone());
        std::thread::spawn(move || {
            while full.load(Ordering::Relaxed) {
                fill(&ballast, 0);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let filled_at = SystemTime::now();
    std::thread::sleep(Duration::from_secs(15));
    let during = agent.log();
    full.store(false, Ordering::Relaxed);
    filler.join().unwrap();
    std::fs::remove_file(&ballast).unwrap();
    let emptied_at = SystemTime::now();
    assert!(
        during.contains("EVIDENCE BUNDLE NOT WRITTEN"),
        "the bundle's write did not fail on the full disk (the test did not fill it):\n{during}"
    );

    // Space is back: without a restart, the waiting bundle is written, and the next tamper's too.
    let evidence = data_dir.join("evidence");
    let written = |n: usize| store::bundles(&evidence).is_ok_and(|b| b.len() >= n) && requests().is_empty();
    assert!(common::mqtt::wait(Duration::from_secs(120), || written(2)), "bundles not written:\n{}", agent.log());
    let log = agent.stop();
    assert!(requests().is_empty(), "evidence requests left behind:\n{log}");
    let disk_full_errors = log.matches("DISK FULL").count();
    assert!((1..=3).contains(&disk_full_errors), "DISK FULL logged {disk_full_errors} times in 15 s:\n{log}");
    assert!(log.contains("free disk space back above retention.min_free_bytes"), "{log}");
    assert!(log.contains("evidence bundles are written again"), "{log}");

    // Nothing lost: every event announcing evidence has its bundle, and there is no other bundle.
    let outbox = vigil::outbox::Outbox::open(&data_dir.join("outbox.sqlite"), 100_000).unwrap();
    let records = outbox.pending_after(0, 100_000).unwrap();
    let announced: BTreeSet<String> = records
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
        .filter(|p| !p["evidence"].is_null() && p["kind"] != "evidence_ready")
        .map(|p| p["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let bundles = store::bundles(&evidence).unwrap();
    let bundled: BTreeSet<String> =
        bundles.iter().map(|(_, dir)| dir.file_name().unwrap().to_str().unwrap()[11..].to_owned()).collect();
    assert!(announced.len() >= 2, "{announced:?}\n{log}");
    assert_eq!(announced, bundled, "events announcing evidence vs bundles written:\n{log}");
    common::agent::assert_evidence_verifies(&config, &evidence);
    for line in log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("bundle written")) {
        eprintln!("{line}");
    }
    // Every clip holds its pre-roll: the video of a bundle not yet written was not evicted. (What the
    // camera had not written when the disk filled, its last second or two, could not be recorded.) A
    // tamper decided after the disk was freed has its whole interval.
    for (_, dir) in &bundles {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let clip = &manifest["clip"];
        let time = |k: &str| humantime::parse_rfc3339(clip[k].as_str().unwrap()).unwrap();
        assert!(
            time("start") <= time("requested_from"),
            "{}: the clip starts at {} after the requested {}: video lost (disk filled at {})",
            dir.display(),
            clip["start"],
            clip["requested_from"],
            humantime::format_rfc3339_millis(filled_at)
        );
        if time("requested_from") > emptied_at + Duration::from_secs(5) {
            assert!(
                time("end") + Duration::from_secs(1) >= time("requested_to"),
                "{}: the clip ends at {}, before the requested {}",
                dir.display(),
                clip["end"],
                clip["requested_to"]
            );
        }
    }
}

/// Before: a second agent on the same data directory ran alongside the first (reconnect fights,
/// "database is locked", duplicate verdicts, a forked evidence chain). Now it exits with status 1 at
/// once, naming the other process's PID and the lock file; the first runs on; once it is gone
/// (stopped, or even killed), the directory can be used again.
#[test]
fn second_agent_on_same_data_dir_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("vigil.toml");
    std::fs::write(&config, "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"state\"\n").unwrap();
    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let mut first = Running::start(&config, root.path().join("first.log"));
    assert!(first.wait_for_log("vigil started", Duration::from_secs(120)), "{}", first.log());
    let lock = root.path().join("state/vigil.lock");

    let started = Instant::now();
    let second = common::vigil().arg("run").arg("--config").arg(&config).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("PID {}", first.child.id())), "the holder's PID is not named: {stderr}");
    assert!(stderr.contains(&lock.display().to_string()), "the lock file is not named: {stderr}");
    assert!(!stderr.contains("vigil started") && !stderr.contains("outbox open"), "{stderr}");
    eprintln!("second agent refused in {:?}: {}", started.elapsed(), stderr.lines().last().unwrap_or(""));

    // The first is unharmed and stops cleanly; then the directory is free again.
    assert!(first.child.try_wait().unwrap().is_none(), "the first agent died:\n{}", first.log());
    first.stop();
    let mut third = Running::start(&config, root.path().join("third.log"));
    assert!(third.wait_for_log("vigil started", Duration::from_secs(120)), "{}", third.log());
    // A killed agent leaves no stale lock: the kernel releases it with the process.
    third.child.kill().unwrap();
    third.child.wait().unwrap();
    let fourth = Running::start(&config, root.path().join("fourth.log"));
    assert!(fourth.wait_for_log("vigil started", Duration::from_secs(120)), "{}", fourth.log());
    fourth.stop();
}
