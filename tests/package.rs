//! The packages as a hospital box without internet gets them. `scripts/package --profile dev
//! --offline-bundle` packages the binaries already built (target/debug/vigil by cargo, the arm64 one by
//! scripts/cross-arm64) with the dependency closure for a Debian 12 minbase system.
//!
//! amd64: a clean minbase root (debootstrap'd once by scripts/package, cached as a tarball in
//! $VIGIL_CACHE/package) gets `apt-get install ./*.deb` in a chroot inside a network namespace with no
//! interface up: nothing can be downloaded. Then `vigil --version` finds ONNX Runtime and the models
//! where vigil-runtime put them; an upgrade to a newer vigil keeps an edited config and the state;
//! purge deletes /etc/vigil and the cache, keeps /var/lib/vigil and says what it left.
//!
//! arm64: no binfmt_misc here, so dpkg cannot run arm64 maintainer scripts: the packages and their
//! closure are unpacked into an arm64 minbase root, and qemu-user-static, started explicitly inside a
//! chroot of it, runs the packaged binary with the aarch64 ONNX Runtime.
//!
//! Needs root (chroot, unshare) and, on a cold cache, Debian's mirror (the base root, the closure).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{output_text, run_ok};

const INSTALLED_ORT: &str =
    "onnxruntime 1.32.0 (/usr/lib/vigil/libonnxruntime.so.1.32.0, installed by the vigil-runtime package)";
const INSTALLED_MODELS: &str = "verified in /usr/share/vigil/models (installed by the vigil-runtime package)";

/// Builds the packages of `arch` (dev profile, with the offline bundle) and returns their directory.
fn packages(arch: &str) -> PathBuf {
    assert!(unsafe { libc::geteuid() } == 0, "tests/package.rs needs root (chroot, unshare, mount)");
    let out = common::repo("target/package-test");
    let output = Command::new(common::repo("scripts/package"))
        .args(["--arch", arch, "--profile", "dev", "--no-build", "--offline-bundle", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/package --arch {arch} failed (for arm64: run scripts/cross-arm64 first, it builds the binary):\n{}",
        output_text(&output)
    );
    let dir = out.join(arch);
    let ours: Vec<PathBuf> = ["vigil_", "vigil-runtime_"]
        .iter()
        .map(|prefix| deb(&dir, prefix).unwrap_or_else(|| panic!("no {prefix}*_{arch}.deb in {}", dir.display())))
        .collect();
    // Debian's own checker: no error and no warning (vigil-runtime overrides the two it cannot fix: the
    // copies of curl and mbedtls inside Microsoft's ONNX Runtime build).
    let said =
        run_ok(Command::new("lintian").args(["--fail-on", "error,warning", "--tag-display-limit", "0"]).args(&ours));
    assert!(!said.lines().any(|l| l.starts_with("E: ") || l.starts_with("W: ")), "{said}");
    dir
}

fn deb(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| {
        p.file_name().unwrap().to_string_lossy().starts_with(prefix) && p.extension().is_some_and(|e| e == "deb")
    })
}

/// A fresh copy of the cached minbase root of `arch`, in a directory removed at the end.
fn base_root(arch: &str) -> tempfile::TempDir {
    let tarball = vigil::cache::dir().join(format!("package/bookworm-minbase-{arch}.tar.zst"));
    assert!(tarball.is_file(), "{} missing: scripts/package --offline-bundle makes it", tarball.display());
    let root = tempfile::Builder::new().prefix("package-root-").tempdir_in(common::repo("target")).unwrap();
    run_ok(Command::new("tar").arg("-C").arg(root.path()).args(["--zstd", "-xf"]).arg(&tarball));
    root
}

/// A command in the chroot `root`, with a clean environment (no VIGIL_CACHE or ORT_DYLIB_PATH of ours).
fn chroot(root: &Path, script: &str) -> Command {
    let mut command = Command::new("chroot");
    command.arg(root).args(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C.UTF-8"]);
    command.args(["DEBIAN_FRONTEND=noninteractive", "sh", "-c", script]);
    command
}

/// The same, in a new network namespace (only a loopback, down) and mount namespace (its /proc mount
/// goes away with it): what a box without internet does.
fn offline(root: &Path, script: &str) -> Command {
    let chrooted = chroot(root, script);
    let mut args: Vec<String> = vec![chrooted.get_program().to_string_lossy().into_owned()];
    args.extend(chrooted.get_args().map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''"))));
    let inner = format!("mount -t proc proc '{}/proc' && exec {}", root.display(), args.join(" "));
    let mut command = Command::new("unshare");
    command.args(["--net", "--mount", "--fork", "sh", "-c", &inner]);
    command
}

fn sha256(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_owned()
}

/// The vigil package again under a higher version: an upgrade as dpkg sees it.
fn bumped(deb: &Path, into: &Path) -> PathBuf {
    let tree = into.join("bumped");
    run_ok(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let old = std::fs::read_to_string(&control).unwrap();
    let version = old.lines().find_map(|l| l.strip_prefix("Version: ")).unwrap().to_owned();
    std::fs::write(&control, old.replace(&format!("Version: {version}\n"), &format!("Version: {version}+1\n")))
        .unwrap();
    let arch = old.lines().find_map(|l| l.strip_prefix("Architecture: ")).unwrap();
    let out = into.join(format!("vigil_{version}+1_{arch}.deb"));
    run_ok(Command::new("dpkg-deb").args(["--root-owner-group", "-Zgzip", "-z1", "--build"]).arg(&tree).arg(&out));
    std::fs::remove_dir_all(&tree).unwrap();
    out
}

#[test]
fn amd64_installs_offline_from_the_bundle_upgrades_keeping_state_and_purges_keeping_evidence() {
    let dir = packages("amd64");
    let root = base_root("amd64");
    let r = root.path();
    // As in any chroot: no service may start (the closure has daemons' packages).
    std::fs::write(r.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n").unwrap();
    run_ok(Command::new("chmod").arg("0755").arg(r.join("usr/sbin/policy-rc.d")));
    let bundle = r.join("root/bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, bundle.join(path.file_name().unwrap())).unwrap();
    }

    let apt = "cd /root/bundle && apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-unsafe-io";
    let started = std::time::Instant::now();
    let said = run_ok(&mut offline(r, &format!("{apt} ./*.deb")));
    // A measurement for docs/install.md, not an assertion.
    let count = std::fs::read_dir(&bundle).unwrap().count();
    eprintln!("offline install of {count} packages into a minbase root: {:.0?}", started.elapsed());
    assert!(said.contains("Setting up vigil (") && said.contains("Setting up vigil-runtime ("), "{said}");
    assert!(said.contains("the service is disabled and not started until this box is configured"), "{said}");

    let version = run_ok(&mut chroot(r, "vigil --version"));
    assert!(version.contains(INSTALLED_ORT) && version.contains(INSTALLED_MODELS), "{version}");
    let check = run_ok(&mut chroot(r, "vigil check-config /etc/vigil/vigil.toml"));
    assert!(check.contains("OK") && check.contains("0 cameras"), "{check}");
    let owners = run_ok(&mut chroot(
        r,
        "getent passwd vigil && stat -c '%a %U:%G %n' /etc/vigil /etc/vigil/vigil.toml /var/lib/vigil /var/cache/vigil",
    ));
    for line in [
        "770 root:vigil /etc/vigil\n",
        "640 root:vigil /etc/vigil/vigil.toml\n",
        "750 vigil:vigil /var/lib/vigil\n",
        "750 vigil:vigil /var/cache/vigil\n",
    ] {
        assert!(owners.contains(line), "{line:?} not in\n{owners}");
    }
    assert!(r.join("lib/systemd/system/vigil.service").is_file());
    assert!(
        !r.join("etc/systemd/system/multi-user.target.wants/vigil.service").exists(),
        "a fresh install must not enable the unit (the config has no cameras)"
    );

    // The box in use: an edited config, a device key, evidence, an outbox.
    let config = r.join("etc/vigil/vigil.toml");
    let edited = std::fs::read_to_string(&config).unwrap().replace("unconfigured-site", "hosp-0427");
    std::fs::write(&config, &edited).unwrap();
    run_ok(&mut chroot(r, "runuser -u vigil -- vigil keys init --config /etc/vigil/vigil.toml"));
    let state = [
        "var/lib/vigil/keys/device-ed25519.pem",
        "var/lib/vigil/evidence/2026-12-06/evt-1/manifest.json",
        "var/lib/vigil/outbox.sqlite",
    ];
    for file in &state[1..] {
        std::fs::create_dir_all(r.join(file).parent().unwrap()).unwrap();
        std::fs::write(r.join(file), format!("{file}: kept across upgrade and purge")).unwrap();
    }
    let hashes: Vec<String> = state.iter().map(|f| sha256(&r.join(f))).collect();

    let newer = bumped(&deb(&dir, "vigil_").unwrap(), &bundle);
    let name = newer.file_name().unwrap().to_string_lossy().into_owned();
    let said = run_ok(&mut offline(r, &format!("{apt} ./{name}")));
    assert!(said.contains("Unpacking vigil (") && said.contains("over ("), "not an upgrade:\n{said}");
    assert!(
        !said.contains("the service is disabled and not started"),
        "upgrade printed the first-install note:\n{said}"
    );
    let installed = run_ok(&mut chroot(r, "dpkg-query -W -f '${Version}' vigil"));
    assert!(installed.ends_with("+1"), "{installed}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited, "the upgrade replaced the edited config");
    let after: Vec<String> = state.iter().map(|f| sha256(&r.join(f))).collect();
    assert_eq!(after, hashes, "the upgrade changed state in /var/lib/vigil");

    let said = run_ok(&mut offline(r, "apt-get purge -y -q vigil"));
    assert!(said.contains("left behind on purpose"), "{said}");
    assert!(said.contains("/var/lib/vigil/evidence") && said.contains("retention policy"), "{said}");
    assert!(!r.join("etc/vigil").exists(), "purge left /etc/vigil");
    assert!(!r.join("var/cache/vigil").exists(), "purge left /var/cache/vigil");
    let after: Vec<String> = state.iter().map(|f| sha256(&r.join(f))).collect();
    assert_eq!(after, hashes, "purge touched /var/lib/vigil");
}

#[test]
fn arm64_package_runs_under_qemu_with_its_own_runtime() {
    let dir = packages("arm64");
    let root = base_root("arm64");
    let r = root.path();
    // dpkg-deb -x would replace the merged-/usr symlinks (/lib → usr/lib) with directories.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        run_ok(Command::new("sh").arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -C '{}' --keep-directory-symlink -xf -",
            path.display(),
            r.display()
        )));
    }
    // qemu-user-static inside the root, started explicitly (no binfmt_misc needed): every path the arm64
    // binary opens or stats is the root's. (`qemu-aarch64 -L ROOT` is not enough: it maps open() into
    // ROOT but not statx(), so the agent would not see /usr/lib/vigil.) /proc and /sys in a private
    // mount namespace: ONNX Runtime reads the CPU's description there.
    std::fs::copy("/usr/bin/qemu-aarch64-static", r.join("usr/bin/qemu-aarch64-static"))
        .expect("/usr/bin/qemu-aarch64-static: run scripts/setup (qemu-user-static)");
    let qemu = |args: &[&str]| {
        let script = format!(
            "mount -t proc proc '{root}/proc' && mount --bind /sys '{root}/sys' && \
             exec chroot '{root}' /usr/bin/qemu-aarch64-static /usr/bin/vigil {args}",
            root = r.display(),
            args = args.join(" ")
        );
        let mut command = Command::new("unshare");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("HOME", "/root");
        command.args(["--mount", "--fork", "sh", "-c", &script]);
        command
    };
    let version = run_ok(&mut qemu(&["--version"]));
    assert!(version.contains(INSTALLED_ORT) && version.contains(INSTALLED_MODELS), "{version}");
    let check = run_ok(&mut qemu(&["check-config", "/etc/vigil/vigil.toml"]));
    assert!(check.contains("OK") && check.contains("0 cameras"), "{check}");
}
