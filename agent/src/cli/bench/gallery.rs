//! `vigil bench gallery`: size and load time of the sealed gallery file, the binary form Vigil writes
//! against the JSON form older Vigils wrote, on one synthetic gallery (128-d embeddings with full f32
//! precision, as a network computes them).
//!
//! A load is what `Gallery::open` does: read the file, decrypt it (AES-256-GCM), decode the entries. Both
//! forms are loaded by the same function (`gallery::store::read`), alternating which goes first each
//! round, from the page cache (both files were just written). The migration (open a JSON file, rewrite
//! it in binary) is timed once at the end.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::search::Rng;
use vigil::gallery::store::{self, Form};
use vigil::gallery::{Entry, Gallery, PersonKind, SealKey};

#[derive(Debug, Serialize)]
pub struct FormFigures {
    pub file_bytes: u64,
    pub median_load_ms: f64,
    pub load_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct GalleryBench {
    pub people: usize,
    pub embeddings_per_person: usize,
    pub rounds: usize,
    pub json: FormFigures,
    pub binary: FormFigures,
    /// JSON file size / binary file size.
    pub size_ratio: f64,
    /// Median JSON load / median binary load.
    pub load_ratio: f64,
    /// `Gallery::open` of the JSON file: load, then the rewrite in the binary form (fsync'd).
    pub migration_ms: f64,
}

pub fn gallery(dir: &Path, people: usize, per_person: usize, rounds: usize) -> anyhow::Result<GalleryBench> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let entries: Vec<Entry> = (0..people)
        .map(|i| Entry {
            id: format!("p-{i:06}"),
            role: if i % 10 == 0 { PersonKind::Physician } else { PersonKind::Patient },
            embeddings: (0..per_person).map(|_| (0..128).map(|_| rng.next()).collect()).collect(),
            quality: 0.5 + rng.next(),
            enrolled_at: "2026-11-28T10:00:00Z".into(),
        })
        .collect();
    std::fs::create_dir_all(dir)?;
    let key_path = dir.join("gallery.key");
    let key = SealKey::load_or_create(&key_path)?;
    let (json_path, binary_path) = (dir.join("gallery-json.bin"), dir.join("gallery.bin"));
    key.seal(&json_path, store::MAGIC_JSON, store::encode_json(&entries))?;
    store::write(&key, &binary_path, &entries)?;
    drop(entries);

    let load = |path: &Path, form: Form| -> anyhow::Result<f64> {
        let start = Instant::now();
        let (loaded, found) = store::read(&key, path)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(found == form && loaded.len() == people, "{} did not load as written", path.display());
        drop(loaded);
        Ok(ms)
    };
    let (mut json_ms, mut binary_ms) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            json_ms.push(load(&json_path, Form::Json)?);
            binary_ms.push(load(&binary_path, Form::Binary)?);
        } else {
            binary_ms.push(load(&binary_path, Form::Binary)?);
            json_ms.push(load(&json_path, Form::Json)?);
        }
    }
    let figures = |path: &Path, load_ms: Vec<f64>| -> anyhow::Result<FormFigures> {
        Ok(FormFigures { file_bytes: std::fs::metadata(path)?.len(), median_load_ms: median(&load_ms), load_ms })
    };
    let json = figures(&json_path, json_ms)?;
    let binary = figures(&binary_path, binary_ms)?;

    let start = Instant::now();
    let migrated = Gallery::open(&json_path, &key_path)?;
    let migration_ms = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(migrated.entries().len() == people, "migration lost entries");
    anyhow::ensure!(
        std::fs::read(&json_path)?.starts_with(store::MAGIC_BINARY),
        "the JSON gallery was not rewritten in the binary form"
    );
    Ok(GalleryBench {
        people,
        embeddings_per_person: per_person,
        rounds,
        size_ratio: json.file_bytes as f64 / binary.file_bytes as f64,
        load_ratio: json.median_load_ms / binary.median_load_ms,
        json,
        binary,
        migration_ms,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
