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

/// What a manifest says, as far as verification needs it.
#[derive(Debug)]
pub struct Manifest {
    pub sequence: u64,
    pub event_id: String,
    pub previous_manifest_sha256: String,
    /// (file name, SHA-256 hex, size in bytes) as listed; a missing or mistyped hash or size is `None`
    /// and fails the comparison with the file.
    pub files: Vec<(String, Option<String>, Option<u64>)>,
}

/// Parses a manifest's bytes as `vigil verify` reads them, after the signature check: JSON, canonical
/// form, schema, and file names that stay inside the bundle. Problems are pushed to `problems` (without
/// the bundle's name); `None` when the bytes are not a JSON object. Never panics, whatever the bytes
/// (fuzzed: `vigil::fuzzing::manifest`).
pub fn parse_manifest(bytes: &[u8], problems: &mut Vec<String>) -> Option<Manifest> {
    let manifest: Value = match serde_json::from_slice(bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            problems.push("manifest.json is not a JSON object".into());
            return None;
        }
        Err(e) => {
            problems.push(format!("manifest.json is not JSON: {e}"));
            return None;
        }
    };
    if canonical::to_bytes(&manifest).ok().as_deref() != Some(bytes) {
        problems.push("manifest.json is not in canonical form".into());
    }
    if manifest["schema"] != SCHEMA {
        problems.push(format!("unknown schema {}", manifest["schema"]));
    }
    let mut files = Vec::new();
    for (file, expected) in manifest["files"].as_object().into_iter().flatten() {
        // A bundle is one flat directory: a listed "../x" or "a/b" would make verify read outside it.
        let plain = !file.is_empty() && file != "." && file != ".." && !file.contains(['/', '\0']);
        if !plain {
            problems.push(format!("manifest lists {file:?}, which is not a file name inside the bundle"));
            continue;
        }
        files.push((file.clone(), expected["sha256"].as_str().map(str::to_owned), expected["bytes"].as_u64()));
    }
    Some(Manifest {
        sequence: manifest["sequence"].as_u64().unwrap_or(0),
        event_id: manifest["event"]["id"].as_str().unwrap_or("").to_owned(),
        previous_manifest_sha256: manifest["previous_manifest_sha256"].as_str().unwrap_or("").to_owned(),
        files,
    })
}

/// SHA-256 (hex) and size of a file, read in blocks: a bundle's clip may be large.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut buf, mut size) = (vec![0u8; 1 << 16], 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
        size += n as u64;
    }
    Ok((crate::hashing::hex(context.finish().as_ref()), size))
}

/// Checks one bundle on its own; returns what the chain check needs when its manifest is trustworthy.
fn check_bundle(dir: &Path, key: &PublicKey, problems: &mut Vec<String>) -> Option<Checked> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut fail = |what: String| problems.push(format!("{name}: {what}"));
    let bytes = match crate::input::read_limited(&dir.join("manifest.json"), crate::input::MAX_JSON_BYTES) {
        Ok(b) => b,
        Err(e) => {
            fail(format!("manifest.json unreadable: {e}"));
            return None;
        }
    };
    let signature = crate::input::read_limited(&dir.join("manifest.sig"), 64).unwrap_or_default();
    if signature.len() != 64 || !key.verify(&bytes, &signature) {
        fail("bad signature: manifest.sig is not a signature of manifest.json by this key (altered manifest, or signed by another key)".into());
        return None;
    }
    let mut found = Vec::new();
    let manifest = parse_manifest(&bytes, &mut found);
    for problem in found {
        fail(problem);
    }
    let manifest = manifest?;
    let (sequence, event_id) = (manifest.sequence, manifest.event_id.as_str());
    if parse_bundle_name(&name) != Some((sequence, event_id)) {
        fail(format!(
            "directory name does not match its manifest (sequence {sequence}, event {event_id}): renamed or reordered"
        ));
    }
    let pruned = dir.join("PRUNED").exists();
    for (file, sha256, size) in &manifest.files {
        match hash_file(&dir.join(file)) {
            Ok((actual_sha256, actual_size)) => {
                if sha256.as_deref() != Some(actual_sha256.as_str()) || *size != Some(actual_size) {
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
                || manifest.files.iter().any(|(listed, _, _)| *listed == file)
                || MARKERS.contains(&file.as_str());
            if !known {
                fail(format!("{file} is not part of the bundle"));
            }
        }
    }
    Some(Checked { name, sequence, previous: manifest.previous_manifest_sha256, manifest_sha256: sha256_hex(&bytes) })
}
