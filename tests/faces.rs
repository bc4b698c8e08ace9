//! Enrolment from registry photos: good photos enrolled, every rejected one named with its reason; the
//! gallery is encrypted (no id or embedding readable on disk); listing and removing.

mod common;

use std::path::PathBuf;

use image::imageops;

fn config(dir: &std::path::Path) -> PathBuf {
    let file = dir.join("vigil.toml");
    std::fs::write(&file, "[site]\nid = \"s\"\ndevice_id = \"d\"\n[storage]\ndata_dir = \"state\"\n").unwrap();
    file
}

#[test]
fn enrol_rejects_bad_photos_with_reasons_and_keeps_the_gallery_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path());
    let photos = common::face_images();
    let obama = vigil::analyze::image::load_rgb(&photos.join("obama.jpg")).unwrap();
    let blurred = dir.path().join("blurred.png");
    imageops::blur(&obama, 6.0).save(&blurred).unwrap();
    let small = dir.path().join("small.png");
    imageops::resize(&obama, obama.width() / 8, obama.height() / 8, imageops::FilterType::Triangle)
        .save(&small)
        .unwrap();
    let empty = dir.path().join("empty.png");
    image::RgbImage::from_pixel(400, 300, image::Rgb([120, 130, 140])).save(&empty).unwrap();
    let two = dir.path().join("two.png");
    let mut pair = image::RgbImage::from_pixel(obama.width() * 2, obama.height(), image::Rgb([0, 0, 0]));
    imageops::overlay(&mut pair, &obama, 0, 0);
    imageops::overlay(&mut pair, &obama, i64::from(obama.width()), 0);
    pair.save(&two).unwrap();

    let out = common::vigil()
        .args(["enroll", "--id", "p-0001", "--role", "patient", "--config"])
        .arg(&file)
        .arg(photos.join("obama.jpg"))
        .arg(photos.join("obama2.jpg"))
        .args([&blurred, &small, &empty, &two])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (name, reason) in
        [("blurred.png", "too blurred"), ("small.png", "too small"), ("empty.png", "no face"), ("two.png", "2 faces")]
    {
        assert!(
            stderr.lines().any(|l| l.contains(name) && l.contains(reason)),
            "{name}: expected {reason:?} in\n{stderr}"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"].as_array().unwrap().iter().filter(|v| v["accepted"] == true).count(), 2);

    let gallery_file = dir.path().join("state/gallery.bin");
    let raw = std::fs::read(&gallery_file).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("p-0001"), "the gallery must be encrypted");
    let list = common::vigil().args(["gallery", "list", "--config"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("p-0001") && text.contains("2 embedding(s)") && text.contains("1 enrolled"), "{text}");

    // Only bad photos: nothing enrolled, exit 1.
    let none = common::vigil()
        .args(["enroll", "--id", "p-0002", "--role", "physician", "--config"])
        .arg(&file)
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));

    let removed = common::vigil().args(["gallery", "remove", "--config"]).arg(&file).arg("p-0001").output().unwrap();
    assert!(removed.status.success());
    let list = common::vigil().args(["gallery", "list", "--config"]).arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("0 enrolled"));
}

/// The enrolled embeddings match new photos of the same person, and not of another.
#[test]
fn search_finds_the_enrolled_person() {
    let mut models = common::models();
    let mut entries = Vec::new();
    for (id, photo) in [("obama", "obama.jpg"), ("biden", "biden.jpg")] {
        let img = vigil::analyze::image::load_rgb(&common::face_images().join(photo)).unwrap();
        let face = models.faces.embed_all(&img).unwrap().remove(0);
        entries.push(vigil::gallery::Entry {
            id: id.into(),
            role: vigil::gallery::PersonKind::Patient,
            embeddings: vec![face.embedding.to_vec()],
            quality: 1.0,
            enrolled_at: String::new(),
        });
    }
    let index = vigil::gallery::search::SearchIndex::build(&entries);
    let probe = vigil::analyze::image::load_rgb(&common::face_images().join("obama3.jpg")).unwrap();
    let face = models.faces.embed_all(&probe).unwrap().remove(0);
    let best = index.best(&face.embedding, None).unwrap();
    assert_eq!(best.id, "obama");
    assert!(best.distance < 0.6, "{best:?}");
    assert!(index.distance_to(&face.embedding, "biden").unwrap() > 0.6);
}

/// The one face path on a camera-like frame: a face that passes the video gate is embedded, and its
/// embedding is the one the ungated path gives; under a gate it cannot pass it is kept (its box counts
/// for the settlement's faces seen) but not embedded, the reason named.
#[test]
fn face_path_gates_then_embeds() {
    use vigil::analyze::faces::NotEmbedded;
    let mut models = common::models();
    let frame = vigil::analyze::image::frame_from(&common::face_photo("obama3.jpg"), 1280, 720);
    let video_gate = vigil::config::Faces::default().video_quality();
    let analysed = models.faces.analyse(&frame, &video_gate).unwrap();
    assert_eq!(analysed.len(), 1, "{analysed:?}");
    assert!(analysed[0].quality.ok(), "{:?}", analysed[0].quality);
    let embedding = analysed[0].embedding.clone().expect("embedded");
    let ungated = models.faces.main_face(&frame).unwrap().expect("a face");
    assert_eq!(embedding, ungated.embedding, "the gated and the ungated path embed the same chip");

    let strict = vigil::analyze::quality::QualityThresholds { min_face_px: 5000.0, ..video_gate };
    let analysed = models.faces.analyse(&frame, &strict).unwrap();
    assert_eq!(analysed.len(), 1);
    assert_eq!(analysed[0].embedding, Err(NotEmbedded::BelowGate));
    assert!(analysed[0].quality.problems.iter().any(|p| p.contains("face too small")), "{:?}", analysed[0].quality);
}
