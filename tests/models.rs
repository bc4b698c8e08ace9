//! The model bundle on real images shipped by registry packages: detection, alignment, embeddings that
//! agree with dlib's reference implementation, and bad input that never stops a batch.

mod common;

use std::path::PathBuf;

use vigil::analyze::boxes::{self, Rect};
use vigil::analyze::embedder::{Embedding, cosine, distance};
use vigil::analyze::image::{frame_from, load_rgb};

const PHOTOS: [&str; 6] =
    ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg", "biden.jpg"];

fn photo(name: &str) -> PathBuf {
    common::face_images().join(name)
}

#[test]
fn finds_the_face_and_the_person_in_every_sample_photo() {
    let mut models = common::models();
    for name in PHOTOS {
        let img = load_rgb(&photo(name)).unwrap();
        let faces = models.faces.detect(&img).unwrap();
        assert_eq!(faces.len(), 1, "{name}: expected one face, got {faces:?}");
        let face = &faces[0];
        assert!(face.score > 0.7, "{name}: weak face score {}", face.score);
        for p in face.landmarks {
            let b = face.bbox;
            assert!(
                p[0] >= b[0] - 1.0 && p[0] <= b[2] + 1.0 && p[1] >= b[1] - 1.0 && p[1] <= b[3] + 1.0,
                "{name}: landmark {p:?} outside {b:?}"
            );
        }
        // Eyes above the nose, nose above the mouth: the landmark order is what alignment assumes.
        let [le, re, nose, lm, rm] = face.landmarks;
        assert!(
            le[0] < re[0] && lm[0] < rm[0] && le[1] < nose[1] && nose[1] < lm[1],
            "{name}: landmarks out of order {:?}",
            face.landmarks
        );

        let persons = models.persons.detect(&img).unwrap();
        let holder = persons.iter().find(|p| boxes::intersection(&p.bbox, &face.bbox) > 0.9 * boxes::area(&face.bbox));
        assert!(holder.is_some_and(|p| p.score > 0.5), "{name}: no person around the face; persons {persons:?}");
    }
}

/// People lying down (issue 19): real photos turned on their side, where the former detector (NanoDet)
/// found nobody (Biden) or nobody whole (Zidane), give a person, and the box lies as the body does,
/// wider than tall.
#[test]
fn finds_people_lying_on_their_side_in_real_photos() {
    let mut models = common::models();
    let biden = load_rgb(&photo("biden.jpg")).unwrap();
    let zidane = load_rgb(&common::samples("ultralytics-assets").join("zidane.jpg")).unwrap();
    let lying = [
        ("biden.jpg turned left", image::imageops::rotate270(&biden)),
        ("biden.jpg turned right", image::imageops::rotate90(&biden)),
        ("zidane.jpg turned left", image::imageops::rotate270(&zidane)),
    ];
    for (name, img) in &lying {
        let persons = models.persons.detect(img).unwrap();
        let best = persons.iter().max_by(|a, b| a.score.total_cmp(&b.score));
        assert!(best.is_some_and(|p| p.score > 0.5), "{name}: nobody found: {persons:?}");
    }
    for (name, img) in &lying[..2] {
        let persons = models.persons.detect(img).unwrap();
        let lying_box = persons.iter().any(|p| p.score > 0.5 && p.bbox[2] - p.bbox[0] > 1.5 * (p.bbox[3] - p.bbox[1]));
        assert!(lying_box, "{name}: no box lying like the body: {persons:?}");
    }
}

/// The synthetic ward (tests/common/scenes.rs): the patient lying under the blanket fills the bed by the
/// person boxes alone (decide/presence.rs's rule, no reference image), which NanoDet alone never did
/// (0 of 45 frames, docs/benchmarks.md); the empty bed, in plain and dimmed light, is never filled.
#[test]
fn the_lying_patient_fills_the_bed_by_person_boxes_alone() {
    use common::scenes::{Action, BED, Scene};
    use vigil::decide::presence::{Overlap, PresenceSettings};

    let mut models = common::models();
    let scene = Scene::ward(1280, 720);
    let bed = scene.polygon(BED);
    let settings = PresenceSettings::default();
    let lying = scene.events.iter().find(|e| e.action == Action::LieInBed).unwrap();
    let mut filled = 0;
    let mut frames = 0;
    for t in (lying.from as usize + 2..lying.to as usize - 2).step_by(10) {
        let persons = models.persons.detect(&scene.render(t as f64)).unwrap();
        frames += 1;
        filled += usize::from(persons.iter().any(|p| Overlap::of(&bed, p).occupies(&settings)));
    }
    assert!(filled * 10 >= frames * 9, "the lying patient filled the bed in {filled} of {frames} frames");
    for t in [10.0, 40.0, 90.0, 110.0, 260.0] {
        assert!(!scene.occupied(BED, t));
        let persons = models.persons.detect(&scene.render(t)).unwrap();
        let filling: Vec<_> = persons.iter().filter(|p| Overlap::of(&bed, p).occupies(&settings)).collect();
        assert!(filling.is_empty(), "empty bed at {t} s filled by {filling:?}");
    }
}

/// A face window: detection in a region of a camera frame, read straight from the frame, gives boxes and
/// landmarks in frame coordinates and the same person as the whole frame does.
#[test]
fn detection_in_a_region_reports_frame_coordinates() {
    let mut models = common::models();
    let gate = vigil::config::Faces::default().video_quality();
    // obama.jpg fitted into a 1280×720 frame, the face towards the middle.
    let frame = frame_from(&load_rgb(&photo("obama.jpg")).unwrap(), 1280, 720);
    let whole = models.faces.analyse_in(&frame, None, &gate).unwrap();
    assert_eq!(whole.len(), 1, "{:?}", whole.iter().map(|f| &f.face).collect::<Vec<_>>());
    let [x1, y1, x2, _] = whole[0].face.bbox;
    // A window around the face, off-centre, with margin.
    let window =
        Rect { x: (x1 as u32).saturating_sub(150), y: (y1 as u32).saturating_sub(60), width: 500, height: 420 };
    let inside = models.faces.analyse_in(&frame, Some(window), &gate).unwrap();
    assert_eq!(inside.len(), 1);
    for (a, b) in whole[0].face.bbox.iter().zip(inside[0].face.bbox) {
        assert!(
            (a - b).abs() < 0.06 * (x2 - x1),
            "box {:?} in the window, {:?} in the frame",
            inside[0].face.bbox,
            whole[0].face.bbox
        );
    }
    for (a, b) in whole[0].face.landmarks.iter().zip(inside[0].face.landmarks) {
        assert!(
            (a[0] - b[0]).hypot(a[1] - b[1]) < 0.05 * (x2 - x1),
            "landmark {b:?} in the window, {a:?} in the frame"
        );
    }
    let (a, b) = (whole[0].embedding.as_ref().unwrap(), inside[0].embedding.as_ref().unwrap());
    assert!(distance(a, b) < 0.15, "same face, distance {}", distance(a, b));
    // A window beside the face finds nothing; one outside the frame is an error naming it.
    let beside = Rect { x: 0, y: 0, width: (x1 as u32).saturating_sub(40).max(64), height: 720 };
    assert!(models.faces.analyse_in(&frame, Some(beside), &gate).unwrap().is_empty(), "no face left of {x1}");
    let outside = Rect { x: 1300, y: 0, width: 100, height: 100 };
    let error = models.faces.analyse_in(&frame, Some(outside), &gate).unwrap_err().to_string();
    assert!(error.contains("100×100 at (1300, 0)") && error.contains("1280×720"), "{error}");
}

fn embed_all(models: &mut vigil::analyze::Sessions) -> Vec<(String, image::RgbImage, Embedding)> {
    PHOTOS
        .iter()
        .map(|name| {
            let img = load_rgb(&photo(name)).unwrap();
            let face = models.faces.embed_all(&img).unwrap().remove(0);
            (name.to_string(), face.chip, face.embedding)
        })
        .collect()
}

fn dlib_reference(args: &[&str], files: &[PathBuf]) -> Vec<Option<Vec<f32>>> {
    let dlib = common::samples("dlib-reference");
    let out = std::process::Command::new(common::python())
        .arg(common::repo("models/tools/dlib_reference.py"))
        .args(args)
        .arg("--dat")
        .arg(dlib.join("dlib_face_recognition_resnet_model_v1.dat"))
        .arg("--shape-predictor")
        .arg(dlib.join("shape_predictor_5_face_landmarks.dat"))
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "dlib reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(parsed["descriptors"].clone()).unwrap()
}

/// Parity of the port: dlib's own network and our ONNX conversion, fed the very same chips.
#[test]
fn onnx_embeddings_match_dlib_on_the_same_chips() {
    let mut models = common::models();
    let embedded = embed_all(&mut models);
    let dir = tempfile::tempdir().unwrap();
    let chips: Vec<PathBuf> = embedded
        .iter()
        .map(|(name, chip, _)| {
            let path = dir.path().join(format!("{name}.png"));
            chip.save(&path).unwrap();
            path
        })
        .collect();
    let reference = dlib_reference(&["chips"], &chips);
    for ((name, _, ours), theirs) in embedded.iter().zip(reference) {
        let theirs = theirs.expect("chips mode always gives a descriptor");
        let c = cosine(ours, &theirs);
        eprintln!("{name}: cosine(ONNX, dlib) = {c:.9}");
        assert!(c >= 0.999, "{name}: cosine {c} below 0.999");
    }
}

/// Our whole path (CenterFace + our alignment + ONNX) against dlib's whole path (HOG + 5-point shape
/// predictor + get_face_chip + dlib's network) on the same photos: the same person must come out the same,
/// and the verdicts must agree.
#[test]
fn whole_pipeline_agrees_with_dlib_and_separates_people() {
    let mut models = common::models();
    let embedded = embed_all(&mut models);
    let files: Vec<PathBuf> = PHOTOS.iter().map(|n| photo(n)).collect();
    let reference = dlib_reference(&["images"], &files);
    for ((name, _, ours), theirs) in embedded.iter().zip(&reference) {
        if let Some(theirs) = theirs {
            let mut t = [0f32; 128];
            t.copy_from_slice(theirs);
            let d = distance(ours, &t);
            eprintln!("{name}: distance(ours, dlib pipeline) = {d:.4}");
            assert!(d < 0.3, "{name}: our embedding is {d} from dlib's own pipeline's");
        }
    }
    let threshold = vigil::config::Faces::default().match_distance;
    for i in 0..embedded.len() {
        for j in i + 1..embedded.len() {
            let (a, b) = (&embedded[i], &embedded[j]);
            let same = a.0.starts_with("obama") == b.0.starts_with("obama");
            let d = distance(&a.2, &b.2);
            assert_eq!(d < threshold, same, "{} vs {}: distance {d}", a.0, b.0);
        }
    }
}

/// A PNG header claiming 30000×30000 pixels (a decompression bomb): valid chunks, almost no data.
fn bomb_png() -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(30000u32.to_be_bytes());
    ihdr.extend(30000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn bad_images_get_an_error_each_and_the_rest_are_processed() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(photo("obama.jpg")).unwrap();
    let bad = [
        ("zero.jpg", Vec::new(), "empty file"),
        ("truncated.jpg", jpeg[..jpeg.len() / 3].to_vec(), "corrupt or truncated"),
        ("notes.jpg", b"these are not pixels\n".to_vec(), "not an image"),
        ("bomb.png", bomb_png(), "30000×30000 pixels is over the limit"),
    ];
    let mut args = vec![photo("obama.jpg")];
    for (name, bytes, _) in &bad {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        args.push(path);
    }
    args.push(dir.path().join("missing.jpg"));
    args.push(photo("biden.jpg"));
    let out = common::vigil().arg("detect").args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "some files failed, so exit 1; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), args.len(), "one line per file:\n{stdout}");
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 1, "the good file before the bad ones");
    assert_eq!(lines.last().unwrap()["faces"].as_array().unwrap().len(), 1, "the good file after the bad ones");
    for (i, (name, _, message)) in bad.iter().enumerate() {
        let error = lines[i + 1]["error"].as_str().unwrap_or_else(|| panic!("{name}: no error in {}", lines[i + 1]));
        assert!(error.contains(name) && error.contains(message), "{name}: {error}");
    }
    assert!(lines[5]["error"].as_str().unwrap().contains("missing.jpg"));
}

#[test]
fn annotate_writes_a_picture_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        common::vigil().arg("detect").arg("--annotate").arg(dir.path()).arg(photo("obama2.jpg")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let annotated = load_rgb(&dir.path().join("obama2.annotated.png")).unwrap();
    let original = load_rgb(&photo("obama2.jpg")).unwrap();
    assert_eq!(annotated.dimensions(), original.dimensions());
    let green = annotated.pixels().filter(|p| p.0 == [0, 220, 0]).count();
    assert!(green > 500, "face box not drawn ({green} green pixels)");
}

#[test]
fn compare_says_same_or_different() {
    let run = |a: &str, b: &str| {
        let out = common::vigil().arg("compare").arg(photo(a)).arg(photo(b)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("obama.jpg", "obama3.jpg").contains("same person"));
    assert!(run("obama.jpg", "biden.jpg").contains("different people"));
}

/// The project's pair list (models/face-pairs.csv, 16 people from three registry packages): every
/// genuine pair must be closer than every impostor pair, and the default threshold must sit between.
#[test]
fn pair_list_separates_same_from_different_people() {
    let pairs = vigil::cache::dir().join("samples/face-pairs.csv");
    let out = common::vigil().args(["bench", "faces", "--pairs"]).arg(&pairs).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["skipped"].as_array().unwrap().len(), 0, "{report}");
    assert!(report["pairs"].as_u64().unwrap() > 2000, "{report}");
    assert_eq!(report["separated"], true, "genuine and impostor distances overlap: {report}");
    assert_eq!(report["tar"], 1.0, "{report}");
    assert!(report["far"].as_f64().unwrap() < 0.005, "{report}");
}

#[test]
fn malformed_pair_lists_are_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("pairs.csv");
    std::fs::write(&list, "a.jpg,b.jpg,same\na.jpg,b.jpg,maybe\n").unwrap();
    let out = common::vigil().args(["bench", "faces", "--pairs"]).arg(&list).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("pairs.csv:2") && stderr.contains("maybe"), "{stderr}");
}
