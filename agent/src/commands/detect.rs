//! `vigil detect IMAGE...` and `vigil compare A B`: the models on still images, for operators checking
//! an installation and for tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use serde::Serialize;

use crate::analyze::face_detector::Face;
use crate::analyze::image::{draw_box, draw_dot, load_rgb};
use crate::analyze::person_detector::Person;
use crate::analyze::{EmbeddedFace, Models, embedder};

#[derive(Serialize)]
struct Detections<'a> {
    image: &'a str,
    width: u32,
    height: u32,
    faces: Vec<Face>,
    persons: Vec<Person>,
}

#[derive(Serialize)]
struct Failure<'a> {
    image: &'a str,
    error: String,
}

/// Runs both detectors on each image and prints one JSON object per image and line. A file that
/// cannot be read is reported (JSON `error` and stderr) and the others still run. Returns the number
/// of files that failed.
pub fn detect(models: &mut Models, images: &[PathBuf], annotate: Option<&Path>) -> anyhow::Result<usize> {
    if let Some(dir) = annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let stdout = std::io::stdout();
    let mut failures = 0;
    for path in images {
        let name = path.display().to_string();
        let line = match detect_one(models, path, annotate) {
            Ok((img, faces, persons)) => serde_json::to_string(&Detections {
                image: &name,
                width: img.width(),
                height: img.height(),
                faces,
                persons,
            })?,
            Err(e) => {
                failures += 1;
                eprintln!("vigil detect: {e:#}");
                serde_json::to_string(&Failure { image: &name, error: format!("{e:#}") })?
            }
        };
        writeln!(stdout.lock(), "{line}")?;
    }
    Ok(failures)
}

fn detect_one(
    models: &mut Models,
    path: &Path,
    annotate: Option<&Path>,
) -> anyhow::Result<(RgbImage, Vec<Face>, Vec<Person>)> {
    let img = load_rgb(path)?;
    let faces = models.faces.detect(&img)?;
    let persons = models.persons.detect(&img)?;
    if let Some(dir) = annotate {
        let out = dir.join(annotated_name(path));
        let mut canvas = img.clone();
        let thickness = (img.width().max(img.height()) / 400).max(2);
        for p in &persons {
            draw_box(&mut canvas, p.bbox, [40, 120, 255], thickness);
        }
        for f in &faces {
            draw_box(&mut canvas, f.bbox, [0, 220, 0], thickness);
            for point in f.landmarks {
                draw_dot(&mut canvas, point, [255, 40, 40], thickness);
            }
        }
        canvas.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok((img, faces, persons))
}

/// `photo.jpg` → `photo.annotated.png` (lossless, so thin boxes stay crisp).
fn annotated_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    format!("{stem}.annotated.png")
}

/// The largest face in an image, embedded; an error names the file when there is none.
pub fn main_face(models: &mut Models, path: &Path) -> anyhow::Result<EmbeddedFace> {
    let img = load_rgb(path)?;
    let faces = models.embed_faces(&img)?;
    faces
        .into_iter()
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .ok_or_else(|| anyhow::anyhow!("{}: no face found", path.display()))
}

#[derive(Serialize)]
pub struct Comparison {
    pub distance: f32,
    pub threshold: f32,
    pub same_person: bool,
}

/// Distance between the largest faces of two images, and the verdict at `threshold`.
pub fn compare(models: &mut Models, a: &Path, b: &Path, threshold: f32) -> anyhow::Result<Comparison> {
    let fa = main_face(models, a)?;
    let fb = main_face(models, b)?;
    let distance = embedder::distance(&fa.embedding, &fb.embedding);
    Ok(Comparison { distance, threshold, same_person: distance < threshold })
}
