//! `vigil verify`: checks bundles as docs/evidence.md specifies and names every failure.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::canonical;
use super::keys::PublicKey;
use super::store::{GENESIS, SCHEMA, parse_bundle_name, sha256_hex};

const MARKERS: [&str; 3] = ["ACKED", "HOLD", "PRUNED"];

/// The outcome of verifying a set of bundles.
#[derive(Debug, Default)]
pub struct Report {
    pub bundles: usize,
    /// One line per failure, naming the bundle and what is wrong.
    pub problems: Vec<String>,
}

struct Checked {
    name: String,
    sequence: u64,
    previous: String,
    manifest_sha256: String,
}

/// Verifies each path: a bundle directory, or a directory of bundles (also checked as a chain).
pub fn verify(paths: &[PathBuf], key: &PublicKey) -> Report {
    let mut report = Report::default();
    for path in paths {
        if path.join("manifest.json").exists() {
            report.bundles += 1;
            let _ = check_bundle(path, key, &mut report.problems);
        } else {
            verify_store(path, key, &mut report);
        }
    }
    report
}

fn verify_store(dir: &Path, key: &PublicKey, report: &mut Report) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            report.problems.push(format!("{}: cannot read: {e}", dir.display()));
            return;
        }
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let mut checked: Vec<Checked> = Vec::new();
    for bundle in dirs {
        let name = bundle.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            report.problems.push(format!("{name}: incomplete bundle (a write was interrupted); it is not evidence"));
            continue;
        }
        report.bundles += 1;
        if let Some(c) = check_bundle(&bundle, key, &mut report.problems) {
            checked.push(c);
        }
    }
    if report.bundles == 0 {
        report.problems.push(format!("{}: no evidence bundles here", dir.display()));
        return;
    }
    checked.sort_by_key(|c| c.sequence);
    for pair in checked.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.sequence == a.sequence {
            report.problems.push(format!("{} and {}: both claim sequence {}", a.name, b.name, a.sequence));
        } else if b.sequence > a.sequence + 1 {
            let missing = if b.sequence == a.sequence + 2 {
                format!("bundle {} is missing", a.sequence + 1)
            } else {
                format!("bundles {} to {} are missing", a.sequence + 1, b.sequence - 1)
            };
            report.problems.push(format!("{missing} (between {} and {})", a.name, b.name));
        } else if b.previous != a.manifest_sha256 {
            report.problems.push(format!(
                "{}: chain broken: its previous_manifest_sha256 is not the hash of {}'s manifest (bundles reordered or replaced)",
                b.name, a.name
            ));
        }
    }
    if let Some(first) = checked.first() {
        if first.sequence == 1 && first.previous != GENESIS {
            report.problems.push(format!("{}: sequence 1 must start the chain (previous hash all zeros)", first.name));
        }
    }
}

/// Checks one bundle on its own; returns what the chain check needs when its manifest is trustworthy.
fn check_bundle(dir: &Path, key: &PublicKey, problems: &mut Vec<String>) -> Option<Checked> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut fail = |what: String| problems.push(format!("{name}: {what}"));
    let bytes = match std::fs::read(dir.join("manifest.json")) {
        Ok(b) => b,
        Err(e) => {
            fail(format!("manifest.json unreadable: {e}"));
            return None;
        }
    };
    let signature = std::fs::read(dir.join("manifest.sig")).unwrap_or_default();
    if signature.len() != 64 || !key.verify(&bytes, &signature) {
        fail("bad signature: manifest.sig is not a signature of manifest.json by this key (altered manifest, or signed by another key)".into());
        return None;
    }
    let manifest: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            fail(format!("manifest.json is not JSON: {e}"));
            return None;
        }
    };
    if canonical::to_bytes(&manifest).ok().as_deref() != Some(&bytes[..]) {
        fail("manifest.json is not in canonical form".into());
    }
    if manifest["schema"] != SCHEMA {
        fail(format!("unknown schema {}", manifest["schema"]));
    }
    let sequence = manifest["sequence"].as_u64().unwrap_or(0);
    let event_id = manifest["event"]["id"].as_str().unwrap_or("");
    if parse_bundle_name(&name) != Some((sequence, event_id)) {
        fail(format!(
            "directory name does not match its manifest (sequence {sequence}, event {event_id}): renamed or reordered"
        ));
    }
    let pruned = dir.join("PRUNED").exists();
    let files = manifest["files"].as_object().cloned().unwrap_or_default();
    for (file, expected) in &files {
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(data) => {
                if expected["sha256"].as_str() != Some(sha256_hex(&data).as_str())
                    || expected["bytes"].as_u64() != Some(data.len() as u64)
                {
                    fail(format!("{file} was modified (SHA-256 or size differs from the manifest)"));
                }
            }
            Err(_) if pruned => {}
            Err(_) => fail(format!("{file} is missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let known = file == "manifest.json"
                || file == "manifest.sig"
                || files.contains_key(&file)
                || MARKERS.contains(&file.as_str());
            if !known {
                fail(format!("{file} is not part of the bundle"));
            }
        }
    }
    Some(Checked {
        name,
        sequence,
        previous: manifest["previous_manifest_sha256"].as_str().unwrap_or("").to_owned(),
        manifest_sha256: sha256_hex(&bytes),
    })
}
