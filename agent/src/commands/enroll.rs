//! `vigil enroll` and `vigil gallery`: enrolling people from photos, with every rejected photo named
//! and the reason given; listing and removing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analyze::image::load_rgb;
use crate::analyze::{Models, align};
use crate::gallery::quality::{self, Quality, QualityThresholds};
use crate::gallery::{Entry, Gallery, Role};

#[derive(Debug, Serialize)]
pub struct ImageVerdict {
    pub image: String,
    pub accepted: bool,
    pub reason: Option<String>,
    pub quality: Option<Quality>,
}

/// Checks one enrolment photo: exactly one face, large, sharp, clear and frontal enough.
pub fn check_image(models: &mut Models, path: &Path, t: &QualityThresholds) -> (ImageVerdict, Option<(Vec<f32>, f32)>) {
    let name = path.display().to_string();
    let reject = |reason: String, quality: Option<Quality>| {
        (ImageVerdict { image: name.clone(), accepted: false, reason: Some(reason), quality }, None)
    };
    let img = match load_rgb(path) {
        Ok(img) => img,
        Err(e) => return reject(e.to_string(), None),
    };
    let faces = match models.faces.detect(&img) {
        Ok(f) => f,
        Err(e) => return reject(e.to_string(), None),
    };
    let face = match faces.len() {
        0 => return reject("no face found".into(), None),
        1 => &faces[0],
        n => return reject(format!("{n} faces found; an enrolment photo must show one person"), None),
    };
    let chip = align::extract_chip(&img, &face.landmarks);
    let q = quality::assess(face, &chip, t);
    if !q.ok() {
        return reject(q.problems.join("; "), Some(q));
    }
    let embedding = match models.embedder.embed(std::slice::from_ref(&chip)) {
        Ok(e) => e[0].to_vec(),
        Err(e) => return reject(e.to_string(), Some(q)),
    };
    let score = q.score01(t);
    (ImageVerdict { image: name, accepted: true, reason: None, quality: Some(q) }, Some((embedding, score)))
}

#[derive(Debug, Serialize)]
pub struct EnrollReport {
    pub id: String,
    pub role: Role,
    pub enrolled: bool,
    pub images: Vec<ImageVerdict>,
}

pub fn enroll(
    models: &mut Models,
    gallery: &mut Gallery,
    id: &str,
    role: Role,
    images: &[PathBuf],
    t: &QualityThresholds,
) -> anyhow::Result<EnrollReport> {
    let mut verdicts = Vec::new();
    let mut embeddings = Vec::new();
    let mut scores = Vec::new();
    for path in images {
        let (verdict, accepted) = check_image(models, path, t);
        if let Some((embedding, score)) = accepted {
            embeddings.push(embedding);
            scores.push(score);
        }
        verdicts.push(verdict);
    }
    let enrolled = !embeddings.is_empty();
    if enrolled {
        gallery.upsert(Entry {
            id: id.to_owned(),
            role,
            quality: scores.iter().sum::<f32>() / scores.len() as f32,
            embeddings,
            enrolled_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        gallery.save()?;
    }
    Ok(EnrollReport { id: id.to_owned(), role, enrolled, images: verdicts })
}
