//! `vigil bench faces` and `vigil bench models`. `faces` scores a labelled pair list (accuracy, TAR, FAR
//! at the configured threshold, and the two distance distributions); `models` times every model call
//! and the whole detect+align+embed path on one image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use image::RgbImage;
use serde::Serialize;

use vigil::analyze::face_detector::FaceDetectorOptions;
use vigil::analyze::faces::EmbeddedFace;
use vigil::analyze::session::CallTiming;
use vigil::analyze::{Sessions, align, embedder};

/// One line of a pair list: `a,b,same` or `a,b,different`; paths relative to the list's directory.
#[derive(Debug, Clone)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
}

pub fn read_pairs(file: &Path) -> anyhow::Result<Vec<Pair>> {
    let text = vigil::input::read_text_limited(file, vigil::input::MAX_JSON_BYTES)
        .with_context(|| format!("cannot read pair list {}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let same = match fields.as_slice() {
            [_, _, "same"] => true,
            [_, _, "different"] => false,
            _ => bail!("{}:{}: expected `a,b,same|different`, got {line:?}", file.display(), n + 1),
        };
        pairs.push(Pair { a: base.join(fields[0]), b: base.join(fields[1]), same });
    }
    Ok(pairs)
}

#[derive(Debug, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub min: f32,
    pub median: f32,
    pub max: f32,
}

impl Distribution {
    fn of(mut values: Vec<f32>) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f32::total_cmp);
        Some(Distribution {
            count: values.len(),
            min: values[0],
            median: median_sorted(&values),
            max: values[values.len() - 1],
        })
    }
}

fn median_sorted(v: &[f32]) -> f32 {
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[derive(Debug, Serialize)]
pub struct PairReport {
    pub pairs: usize,
    pub evaluated: usize,
    /// Pairs skipped because an image had no face (or could not be read), with the reason.
    pub skipped: Vec<String>,
    pub threshold: f32,
    pub accuracy: f64,
    /// True accept rate: genuine pairs (same person) below the threshold.
    pub tar: f64,
    /// False accept rate: impostor pairs (different people) below the threshold.
    pub far: f64,
    pub genuine: Option<Distribution>,
    pub impostor: Option<Distribution>,
    /// The largest genuine distance is below the smallest impostor distance.
    pub separated: bool,
}

/// Embeds the largest face of every image once, then scores every pair at `threshold`. With `face_px`,
/// each image's face is first found with the configured options, then found again with the detector's
/// input scaled so that face measures `face_px` there (the worst case of a camera frame, where a face
/// of exactly `min_face_px` is scaled to `face_px`); the chip is still cut from the full image.
pub fn faces(models: &mut Sessions, pairs: &[Pair], threshold: f32, face_px: Option<f32>) -> PairReport {
    let mut cache: HashMap<PathBuf, Result<embedder::Embedding, String>> = HashMap::new();
    let mut embed = |path: &PathBuf| {
        cache
            .entry(path.clone())
            .or_insert_with(|| {
                let face = match face_px {
                    None => crate::cli::detect::main_face(models, path),
                    Some(face_px) => main_face_at(models, path, face_px),
                };
                face.map(|f| f.embedding).map_err(|e| format!("{e:#}"))
            })
            .clone()
    };
    let (mut genuine, mut impostor, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for pair in pairs {
        match (embed(&pair.a), embed(&pair.b)) {
            (Ok(a), Ok(b)) => {
                let d = embedder::distance(&a, &b);
                if pair.same { genuine.push(d) } else { impostor.push(d) }
            }
            (Err(e), _) | (_, Err(e)) => skipped.push(e),
        }
    }
    let accepted = |v: &[f32]| v.iter().filter(|d| **d < threshold).count();
    let rate = |n: usize, of: usize| {
        if of == 0 { f64::NAN } else { n as f64 / of as f64 }
    };
    let evaluated = genuine.len() + impostor.len();
    let correct = accepted(&genuine) + (impostor.len() - accepted(&impostor));
    let separated = match (genuine.iter().copied().reduce(f32::max), impostor.iter().copied().reduce(f32::min)) {
        (Some(g), Some(i)) => g < i,
        _ => false,
    };
    PairReport {
        pairs: pairs.len(),
        evaluated,
        skipped,
        threshold,
        accuracy: rate(correct, evaluated),
        tar: rate(accepted(&genuine), genuine.len()),
        far: rate(accepted(&impostor), impostor.len()),
        separated,
        genuine: Distribution::of(genuine),
        impostor: Distribution::of(impostor),
    }
}

/// The camera frame the faces of `--face-px` are put in.
const FRAME: (u32, u32) = (1280, 720);

/// The largest face of an image as a camera would see it at the smallest size wanted: the image scaled
/// so its face (found first, as configured) measures the gate's `min_face_px`, centred in a grey
/// 1280×720 frame, and found there with the detector's input sized by `face_px` (0: its max side alone).
/// Both the landmarks and the chip then come from a face of that size.
fn main_face_at(models: &mut Sessions, path: &Path, face_px: f32) -> anyhow::Result<EmbeddedFace> {
    let first = crate::cli::detect::main_face(models, path)?;
    let [x1, y1, x2, y2] = first.face.bbox;
    let options = models.faces.detector.options();
    let img = vigil::analyze::image::load_rgb(path)?;
    let scale = (options.min_face_px / (x2 - x1).min(y2 - y1)).min(1.0);
    let (w, h) = ((img.width() as f32 * scale).round() as u32, (img.height() as f32 * scale).round() as u32);
    let small = image::imageops::resize(&img, w.max(1), h.max(1), image::imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(FRAME.0, FRAME.1, image::Rgb([128, 128, 128]));
    let (left, top) = ((i64::from(FRAME.0) - i64::from(w)) / 2, (i64::from(FRAME.1) - i64::from(h)) / 2);
    image::imageops::overlay(&mut frame, &small, left, top);
    models.faces.detector.set_options(FaceDetectorOptions { face_px, ..options });
    let again = models.faces.main_face(&frame);
    models.faces.detector.set_options(options);
    again?.with_context(|| {
        format!(
            "{}: no face found with the face at {} px in a frame, {face_px} px at the detector",
            path.display(),
            options.min_face_px
        )
    })
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub pre_ms: f64,
    pub run_ms: f64,
    pub post_ms: f64,
    pub total_ms: f64,
    /// Share of the call spent outside `session.run`.
    pub outside_run: f64,
}

#[derive(Debug, Serialize)]
pub struct SpeedReport {
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub runs: usize,
    pub threads: usize,
    /// Width and height of the face detector's input.
    pub centerface_input: [usize; 2],
    pub centerface: Phase,
    pub align_ms: f64,
    pub embedder: Phase,
    /// The person detector (MoveNet multi-pose, then BlazePose where it found nobody).
    pub person_detector: Phase,
    /// detect + align + embed of the largest face, whole path.
    pub face_pipeline_ms: f64,
    pub face_pipeline_outside_run: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn phase(timings: &[CallTiming]) -> Phase {
    let pre = median(timings.iter().map(|t| ms(t.pre)).collect());
    let run = median(timings.iter().map(|t| ms(t.run)).collect());
    let post = median(timings.iter().map(|t| ms(t.post)).collect());
    let total = median(timings.iter().map(|t| ms(t.total())).collect());
    Phase { pre_ms: pre, run_ms: run, post_ms: post, total_ms: total, outside_run: (pre + post) / (pre + run + post) }
}

/// Times each model `runs` times on `img` (after two warm-up calls) and reports medians; `image` names
/// where it came from.
pub fn models(
    models: &mut Sessions,
    image: &Path,
    img: &RgbImage,
    runs: usize,
    threads: usize,
) -> anyhow::Result<SpeedReport> {
    let (mut cf, mut emb, mut nd) = (Vec::new(), Vec::new(), Vec::new());
    let (mut align_ms, mut pipeline_ms, mut outside) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 2 {
        let started = Instant::now();
        let faces = models.faces.detect(img)?;
        let face = faces
            .iter()
            .max_by(|a, b| vigil::analyze::boxes::area(&a.bbox).total_cmp(&vigil::analyze::boxes::area(&b.bbox)))
            .with_context(|| format!("{}: no face found; the benchmark needs one", image.display()))?;
        let t_align = Instant::now();
        let chip = align::extract_chip(img, &face.landmarks);
        let align_time = t_align.elapsed();
        models.faces.embedder.embed(std::slice::from_ref(&chip))?;
        let whole = started.elapsed();
        models.persons.detect(img)?;
        if i >= 2 {
            cf.push(models.faces.detector.last);
            emb.push(models.faces.embedder.last);
            nd.push(models.persons.last);
            align_ms.push(ms(align_time));
            pipeline_ms.push(ms(whole));
            let inside = models.faces.detector.last.run + models.faces.embedder.last.run;
            outside.push(1.0 - inside.as_secs_f64() / whole.as_secs_f64());
        }
    }
    Ok(SpeedReport {
        image: image.display().to_string(),
        width: img.width(),
        height: img.height(),
        runs,
        threads,
        centerface_input: models.faces.detector.last_input,
        centerface: phase(&cf),
        align_ms: median(align_ms),
        embedder: phase(&emb),
        person_detector: phase(&nd),
        face_pipeline_ms: median(pipeline_ms),
        face_pipeline_outside_run: median(outside),
    })
}
