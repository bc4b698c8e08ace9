//! The end-to-end tests live in the top-level `tests/` (DESIGN.md section 2), outside the package, so
//! Cargo does not discover them: each file needs a `[[test]]` entry in agent/Cargo.toml, and a file
//! without one would silently never run. This unit test (in the fast tier, `cargo test -p vigil --lib`)
//! fails naming every such file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The `.rs` files directly in `dir` (helpers live in subfolders such as `tests/common/`).
fn test_files(dir: &Path) -> BTreeSet<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .map(|e| e.expect("tests/ entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.canonicalize().expect("canonical path"))
        .collect()
}

/// The files named by `[[test]]` entries of the manifest at `manifest`, or an error naming a bad entry.
fn registered(manifest: &Path) -> Result<BTreeSet<PathBuf>, String> {
    let text = std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let Some(tests) = table.get("test") else { return Ok(BTreeSet::new()) };
    let tests = tests.as_array().ok_or("[[test]] is not an array of tables")?;
    let base = manifest.parent().expect("manifest in a directory");
    tests
        .iter()
        .map(|t| {
            let path = t.get("path").and_then(|p| p.as_str()).ok_or_else(|| format!("[[test]] {t} has no path"))?;
            base.join(path).canonicalize().map_err(|e| format!("[[test]] path {path:?}: {e}"))
        })
        .collect()
}

/// The names of files in `tests_dir` that no `[[test]]` of `manifest` runs.
fn unregistered(manifest: &Path, tests_dir: &Path) -> Result<Vec<String>, String> {
    let registered = registered(manifest)?;
    Ok(test_files(tests_dir)
        .difference(&registered)
        .map(|p| p.file_name().expect("file name").to_string_lossy().into_owned())
        .collect())
}

#[test]
fn every_file_in_tests_is_a_test_target() {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR"));
    let missing = unregistered(&agent.join("Cargo.toml"), &agent.join("../tests")).unwrap();
    let entries: String = missing
        .iter()
        .map(|f| format!("\n[[test]]\nname = \"{}\"\npath = \"../tests/{f}\"\n", f.trim_end_matches(".rs")))
        .collect();
    assert!(missing.is_empty(), "tests/ files that never run: {missing:?}; add to agent/Cargo.toml:\n{entries}");
}

#[test]
fn a_forgotten_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("tests");
    std::fs::create_dir_all(tests.join("common")).unwrap();
    for f in ["a.rs", "b.rs", "common/mod.rs", "verify.py"] {
        std::fs::write(tests.join(f), "").unwrap();
    }
    let manifest = dir.path().join("agent/Cargo.toml");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(&manifest, "[package]\nname = \"x\"\n\n[[test]]\nname = \"a\"\npath = \"../tests/a.rs\"\n").unwrap();
    assert_eq!(unregistered(&manifest, &tests).unwrap(), ["b.rs"]);
    std::fs::write(&manifest, "[package]\nname = \"x\"\n").unwrap();
    assert_eq!(unregistered(&manifest, &tests).unwrap(), ["a.rs", "b.rs"]);
    std::fs::write(&manifest, "[[test]]\nname = \"gone\"\npath = \"../tests/gone.rs\"\n").unwrap();
    assert!(unregistered(&manifest, &tests).unwrap_err().contains("gone.rs"));
}
