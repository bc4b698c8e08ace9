//! A running `vigil run` and the platform that talks to it: the platform's signing key, signed commands,
//! and the agent process (killed on drop, so a failing assertion leaves nothing running).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The platform's Ed25519 key pair, made with `vigil keys init --file`.
pub struct Platform {
    pub private_pem: PathBuf,
    pub public_pem: PathBuf,
}

impl Platform {
    pub fn new(dir: &Path) -> Platform {
        let private_pem = dir.join("platform.pem");
        let out = super::vigil().args(["keys", "init", "--file"]).arg(&private_pem).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let public_pem = dir.join("platform-public.pem");
        let text = String::from_utf8_lossy(&out.stdout);
        std::fs::write(&public_pem, text.split("base64:").next().unwrap()).unwrap();
        Platform { private_pem, public_pem }
    }

    /// A signed command, as `vigil sign-command` makes it.
    pub fn sign(&self, name: &str, args: &serde_json::Value) -> Vec<u8> {
        let file = self.private_pem.with_file_name(format!("args-{}.json", uuid::Uuid::now_v7()));
        std::fs::write(&file, args.to_string()).unwrap();
        let out = super::vigil()
            .args(["sign-command", "--name", name, "--args", &format!("@{}", file.display()), "--key"])
            .arg(&self.private_pem)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

/// `vigil run --config F` with its log in `<dir>/agent-N.log`.
pub struct Agent {
    child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(config: &Path, log: PathBuf) -> Agent {
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = super::vigil();
        if let Ok(filter) = std::env::var("VIGIL_TEST_LOG") {
            cmd.env("VIGIL_LOG", filter);
        }
        let child = cmd.arg("run").arg("--config").arg(config).stderr(file).spawn().unwrap();
        Agent { child, log }
    }

    /// SIGINT, wait for the clean exit; returns the log.
    pub fn stop(mut self) -> String {
        Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "agent exit {status}; log:\n{log}");
        log
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `kind` of every event message received.
pub fn kinds(messages: &[(String, Vec<u8>, bool)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(t, _, _)| t.contains("/events/"))
        .filter_map(|(_, p, _)| serde_json::from_slice::<serde_json::Value>(p).ok())
        .map(|p| p["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The head of an end-to-end test config: site `hosp`, device `edge`, state in `./state`, no HTTP, and
/// MQTT to the broker on `port` with this platform's command key. Tables and cameras follow.
pub fn config_head(port: u16, platform: &Platform) -> String {
    format!(
        "[site]\nid = \"hosp\"\ndevice_id = \"edge\"\n[storage]\ndata_dir = \"state\"\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive_secs = 5\nplatform_public_key = \"{}\"\n",
        platform.public_pem.display()
    )
}

/// `vigil enroll` of each (id, photo of face_recognition's test images) with `role`, before the agent runs.
pub fn enroll(config: &Path, role: &str, people: &[(&str, &str)]) {
    for (id, photo) in people {
        let out = super::vigil()
            .args(["enroll", "--role", role, "--id", id, "--config"])
            .arg(config)
            .arg(super::face_images().join(photo))
            .output()
            .unwrap();
        assert!(out.status.success(), "enroll {id}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `vigil verify` of the box's evidence directory with the device's public key: every bundle, the chain.
pub fn assert_evidence_verifies(config: &Path, evidence: &Path) {
    let public = super::vigil().args(["keys", "public", "--config"]).arg(config).output().unwrap();
    let pem = config.with_file_name("device-public.pem");
    std::fs::write(&pem, String::from_utf8_lossy(&public.stdout).split("base64:").next().unwrap()).unwrap();
    let verify = super::vigil().args(["verify", "--key"]).arg(&pem).arg(evidence).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// `vigil users add` of a console user with `role`, the password given on standard input.
pub fn add_console_user(config: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write as _;
    let mut child = super::vigil()
        .args(["users", "add", "--name", name, "--role", role, "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
}
