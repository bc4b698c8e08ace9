//! Helpers shared by the end-to-end tests: where setup put the models and sample images, the Python
//! tooling environment, and the agent binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `$VIGIL_CACHE/samples/<set>`, installed by scripts/setup (models/fetch).
pub fn samples(set: &str) -> PathBuf {
    let dir = vigil::cache::dir().join("samples").join(set);
    assert!(dir.is_dir(), "{} is missing: run scripts/setup first (scripts/test does)", dir.display());
    dir
}

pub fn face_images() -> PathBuf {
    samples("face_recognition-test-images")
}

/// One of face_recognition's test photos, decoded.
pub fn face_photo(name: &str) -> image::RgbImage {
    vigil::analyze::image::load_rgb(&face_images().join(name)).unwrap()
}

/// Sessions of every model with default settings, verified against the manifest.
pub fn models() -> vigil::analyze::Sessions {
    vigil::analyze::Models::load_sessions(&Default::default(), &Default::default(), &Default::default())
        .unwrap_or_else(|e| panic!("models not loadable (scripts/setup installs them): {e}"))
}

/// Python of the tooling venv scripts/setup creates.
pub fn python() -> PathBuf {
    let python = vigil::cache::dir().join("venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup first", python.display());
    python
}

pub mod agent;
pub mod cdp;
pub mod console;
pub mod media;
pub mod mqtt;
pub mod phone;
pub mod photos;
pub mod scenes;
pub mod ward_page;

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

pub fn vigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_LOG").env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs tests/contract_validate.py over `cases` (`[{"label", "schema", "instance"}]`, schemas named
/// relative to docs/contract): its exit status and report.
pub fn validate_against_contract(cases: &[serde_json::Value]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo("tests/contract_validate.py"))
        .arg(repo("docs/contract"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&serde_json::to_vec(cases).unwrap()).unwrap();
    child.wait_with_output().unwrap()
}

/// stdout then stderr of a finished command, as text.
pub fn output_text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs `command`, panicking with its output unless it succeeds; returns stdout and stderr.
pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let said = output_text(&output);
    assert!(output.status.success(), "{command:?} failed ({}):\n{said}", output.status);
    said
}
