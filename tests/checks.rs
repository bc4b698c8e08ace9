//! The checks a phone upload passes on the box (`phones::checks::Checker`), with the real face models
//! on real registry photos carrying EXIF written by a library: a verified bedside photo, then each way
//! an upload is rejected — outside the geofence, stale or future time, replays (exact, re-encoded,
//! resized), the wrong patient, no face, two faces, not an image, a truncated JPEG, too many pixels,
//! EXIF GPS far from the browser's position.
//!
//! The models are loaded and two people enrolled once per test binary; the checker is shared behind a
//! mutex. Each test uses its own ward, so the replay index (one file for the binary) never sees another
//! test's photos.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use common::photos::{self, ExifTags};
use vigil::analyze::quality::QualityThresholds;
use vigil::gallery::enrol::{Photo, check_image};
use vigil::gallery::search::SearchIndex;
use vigil::gallery::{Entry, PersonKind};
use vigil::phones::checks::{Checked, Checker, FaceRules, SiteFacts};
use vigil::phones::image::PhotoFormat;
use vigil::phones::phash;
use vigil::phones::replay::ReplayIndex;
use vigil::phones::service::SignedUpload;
use vigil::phones::{CheckName, Geofence, Mode, Outcome, Phone, PhoneSettings, Position, UploadMeta, Ward};

/// Beijing: the site's wall clock, for EXIF times without an offset.
const SITE_OFFSET: i32 = 8 * 3600;
/// Inside the hospital block below, near its middle.
const INSIDE: [f64; 2] = [39.9131, 116.4170];
/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_195.0;

/// Peking Union Medical College Hospital's east campus (as in `phones::geofence`'s unit tests).
fn hospital_block() -> Geofence {
    Geofence {
        center: None,
        radius_m: None,
        polygon: Some(vec![[39.9140, 116.4155], [39.9140, 116.4185], [39.9122, 116.4185], [39.9122, 116.4155]]),
    }
}

/// `p` moved north by `m` metres.
fn north(p: [f64; 2], m: f64) -> [f64; 2] {
    [p[0] + m / M_PER_DEG, p[1]]
}

/// One ward (`ward`, camera `cam-<ward>`), the roster (obama in bed-1, biden in bed-2 of that camera,
/// carter in another ward's camera) and the presence history (bed-1 occupied, bed-2 empty).
struct Site {
    ward: Ward,
    beds: HashMap<&'static str, (String, String)>,
}

impl Site {
    fn new(ward: &str) -> Site {
        let camera = format!("cam-{ward}");
        Site {
            ward: Ward {
                id: ward.to_owned(),
                name: Some(format!("Ward {ward}")),
                cameras: vec![camera.clone()],
                geofence: hospital_block(),
            },
            beds: HashMap::from([
                ("obama", (camera.clone(), "bed-1".to_owned())),
                ("biden", (camera, "bed-2".to_owned())),
                ("carter", ("cam-elsewhere".to_owned(), "bed-9".to_owned())),
            ]),
        }
    }
}

impl SiteFacts for Site {
    fn ward(&self, id: &str) -> Option<Ward> {
        (id == self.ward.id).then(|| self.ward.clone())
    }
    fn bed_of(&self, patient: &str) -> Option<(String, String)> {
        self.beds.get(patient).cloned()
    }
    fn occupied(&self, _camera: &str, bed: &str, _at: SystemTime) -> Option<bool> {
        match bed {
            "bed-1" => Some(true),
            "bed-2" => Some(false),
            _ => None,
        }
    }
}

struct Fixture {
    checker: Mutex<Checker>,
    _dir: tempfile::TempDir,
}

/// The checker with real models; obama (from `obama.jpg`) and biden (`biden.jpg`) enrolled as patients
/// through enrolment's own photo check.
fn checker() -> std::sync::MutexGuard<'static, Checker> {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| {
        let models = vigil::analyze::Models::load(&Default::default(), &Default::default(), &Default::default())
            .unwrap_or_else(|e| panic!("models not loadable (scripts/setup installs them): {e}"));
        let mut faces = models.face_analyzer().unwrap();
        let quality = QualityThresholds::default();
        let entries: Vec<Entry> = [("obama", "obama.jpg"), ("biden", "biden.jpg")]
            .iter()
            .map(|(id, file)| {
                let bytes = photos::registry_face(file);
                let (verdict, accepted) =
                    check_image(&mut faces, &Photo::Bytes { name: file.to_string(), bytes: &bytes }, &quality);
                let (embedding, score) = accepted.unwrap_or_else(|| panic!("{file} not enrollable: {verdict:?}"));
                Entry {
                    id: id.to_string(),
                    role: PersonKind::Patient,
                    embeddings: vec![embedding],
                    quality: score,
                    enrolled_at: String::new(),
                }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let replay = ReplayIndex::open(&ReplayIndex::path_in(dir.path()), 30).unwrap();
        let checker = Checker::new(
            PhoneSettings::default(),
            faces,
            Arc::new(RwLock::new(SearchIndex::build(&entries))),
            FaceRules { match_distance: 0.6, quality },
            SITE_OFFSET,
            replay,
        );
        Fixture { checker: Mutex::new(checker), _dir: dir }
    });
    fixture.checker.lock().unwrap_or_else(|e| e.into_inner())
}

fn phone(ward: &str, mode: Mode) -> Phone {
    Phone {
        id: format!("ph-{ward}"),
        ward: ward.to_owned(),
        name: "Nurse Li".to_owned(),
        mode,
        physician: (mode == Mode::Physician).then(|| "obama".to_owned()),
        public_key: None,
        created_at: SystemTime::now(),
        enrolled_at: Some(SystemTime::now()),
        revoked_at: None,
    }
}

/// What a phone on `ward` sends: `photo` of `patient`, captured `ago` before now (negative: in the
/// future), at `at` with `accuracy_m`.
struct Capture<'a> {
    ward: &'a str,
    mode: Mode,
    patient: Option<&'a str>,
    photo: Vec<u8>,
    ago: i64,
    at: Option<[f64; 2]>,
    accuracy_m: f64,
    capture_id: uuid::Uuid,
}

impl<'a> Capture<'a> {
    fn bedside(ward: &'a str, patient: &'a str, photo: Vec<u8>) -> Capture<'a> {
        Capture {
            ward,
            mode: Mode::Bedside,
            patient: Some(patient),
            photo,
            ago: 5,
            at: Some(INSIDE),
            accuracy_m: 15.0,
            capture_id: uuid::Uuid::now_v7(),
        }
    }

    fn upload(&self) -> SignedUpload {
        let received_at = SystemTime::now();
        let captured = if self.ago >= 0 {
            received_at - Duration::from_secs(self.ago as u64)
        } else {
            received_at + Duration::from_secs((-self.ago) as u64)
        };
        SignedUpload {
            phone: phone(self.ward, self.mode),
            revoked: false,
            meta: UploadMeta {
                capture_id: self.capture_id,
                mode: self.mode,
                patient: self.patient.map(str::to_owned),
                captured_at: vigil::times::format(captured),
                position: self.at.map(|p| Position { lat: p[0], lon: p[1], accuracy_m: self.accuracy_m }),
                photo_sha256: photos::sha256_hex(&self.photo),
            },
            photo: self.photo.clone(),
            content_type: Some("image/jpeg".to_owned()),
            received_at,
        }
    }

    /// Judged by the shared checker against this ward's site.
    fn judge(&self) -> Checked {
        self.judge_as(uuid::Uuid::now_v7())
    }

    fn judge_as(&self, event_id: uuid::Uuid) -> Checked {
        let checked = checker().check(&self.upload(), event_id, &Site::new(self.ward)).unwrap();
        let names: Vec<CheckName> = checked.report.checks.iter().map(|c| c.name).collect();
        assert_eq!(names, CheckName::ALL[1..], "every check but the signature, in order");
        checked
    }
}

/// `obama2.jpg` as a phone camera app saves it: EXIF GPS `gps` and DateTimeOriginal `ago` seconds before
/// now, in the site's wall-clock time without an offset.
fn phone_photo(name: &str, gps: [f64; 2], ago: u64) -> Vec<u8> {
    photos::face_with_exif(
        name,
        &ExifTags {
            gps: Some(gps),
            taken: Some(SystemTime::now() - Duration::from_secs(ago)),
            utc_offset_secs: SITE_OFFSET,
            write_offset: false,
        },
    )
}

/// (outcome, reason) of one check.
fn verdict(checked: &Checked, name: CheckName) -> (Outcome, &str) {
    let check = checked.report.checks.iter().find(|c| c.name == name).unwrap();
    (check.outcome, check.reason.as_str())
}

fn fact<'a>(checked: &'a Checked, name: CheckName, fact: &str) -> &'a str {
    let check = checked.report.checks.iter().find(|c| c.name == name).unwrap();
    check.facts.get(fact).unwrap_or_else(|| panic!("{name:?} has no fact {fact:?}: {:?}", check.facts)).as_str()
}

use Outcome::{Failed, Passed, Skipped};

#[test]
fn a_bedside_photo_of_the_right_patient_inside_the_ward_on_time_is_verified() {
    let photo = phone_photo("obama2.jpg", north(INSIDE, 30.0), 5);
    let send = Capture::bedside("w-ok", "obama", photo);
    let checked = send.judge();
    let report = &checked.report;
    assert!(report.verified(), "{:#?}", report.checks);
    assert_eq!(verdict(&checked, CheckName::Image), (Passed, "decoded"));
    assert_eq!(fact(&checked, CheckName::Image, "exif"), "read");
    assert_eq!(verdict(&checked, CheckName::Position), (Passed, "exif_agrees"));
    assert_eq!(fact(&checked, CheckName::Position, "lat"), "39.913100");
    assert_eq!(verdict(&checked, CheckName::Geofence), (Passed, "inside"));
    assert_eq!(verdict(&checked, CheckName::Time), (Passed, "on_time"));
    assert!(fact(&checked, CheckName::Time, "exif_offset_secs").parse::<i64>().unwrap().abs() <= 2);
    assert_eq!(verdict(&checked, CheckName::Replay), (Passed, "new_photo"));
    assert_eq!(verdict(&checked, CheckName::Face), (Passed, "matches"));
    assert!(fact(&checked, CheckName::Face, "distance").parse::<f32>().unwrap() < 0.6);
    assert_eq!(verdict(&checked, CheckName::BedCamera), (Passed, "occupied"));
    assert_eq!((report.bed.as_deref(), report.camera.as_deref()), (Some("bed-1"), Some("cam-w-ok")));
    assert_eq!((report.claimed.as_str(), report.late, report.mode), ("obama", false, Mode::Bedside));
    // What the evidence bundle needs.
    assert_eq!(checked.format, PhotoFormat::Jpeg);
    assert_eq!(checked.format.extension(), "jpg");
    assert_eq!(checked.sha256, photos::sha256_hex(&send.photo));
    let image = checked.image.as_ref().expect("decoded");
    assert_eq!(image.dimensions(), (626, 1200));
    assert_eq!(checked.faces.len(), 1);
    assert!(checked.face_passed);
    let annotated = checked.annotated().unwrap();
    let [x1, y1, _, _] = checked.faces[0];
    assert_eq!(annotated.get_pixel(x1.round() as u32 + 1, y1.round() as u32 + 1).0, [0, 200, 0], "a green box");
    // The same capture sent again (the phone did not hear the answer) is not a replay of itself.
    assert_eq!(verdict(&send.judge(), CheckName::Replay), (Passed, "new_photo"));
}

#[test]
fn a_physician_checks_in_with_their_own_face_and_no_bed() {
    let mut send = Capture::bedside("w-doc", "ignored", photos::registry_face("obama3.jpg"));
    send.mode = Mode::Physician;
    send.patient = None;
    let checked = send.judge();
    assert!(checked.report.verified(), "{:#?}", checked.report.checks);
    assert_eq!(checked.report.claimed, "obama");
    assert_eq!(fact(&checked, CheckName::Image, "exif"), "none");
    assert_eq!(verdict(&checked, CheckName::Position), (Passed, "browser_position"));
    assert_eq!(verdict(&checked, CheckName::Face), (Passed, "matches"));
    assert_eq!(verdict(&checked, CheckName::BedCamera), (Skipped, "not_applicable"));

    // A PNG (RGBA) is a photo too.
    let png = std::fs::read(common::face_images().join("32bit.png")).unwrap();
    let mut send = Capture::bedside("w-png", "obama", png);
    send.mode = Mode::Physician;
    send.patient = None;
    let checked = send.judge();
    assert_eq!((checked.format, checked.format.extension()), (PhotoFormat::Png, "png"));
    assert_eq!(verdict(&checked, CheckName::Image), (Passed, "decoded"));
    assert_eq!(verdict(&checked, CheckName::Face), (Passed, "matches"), "{:#?}", checked.report.checks);
}

#[test]
fn outside_the_geofence_fails_unless_within_the_accuracy() {
    let edge = [39.9140, 116.4170];
    let mut far = Capture::bedside("w-fence", "obama", phone_photo("obama2.jpg", north(edge, 200.0), 5));
    far.at = Some(north(edge, 200.0));
    far.accuracy_m = 20.0;
    let checked = far.judge();
    assert_eq!(verdict(&checked, CheckName::Geofence), (Failed, "outside_geofence"));
    let metres: f64 = fact(&checked, CheckName::Geofence, "distance_outside_m").parse().unwrap();
    assert!((metres - 200.0).abs() < 1.0, "{metres}");
    assert_eq!(checked.report.failed(), vec!["geofence"], "{:#?}", checked.report.checks);

    let mut near = Capture::bedside("w-fence", "obama", photos::registry_face("obama3.jpg"));
    near.at = Some(north(edge, 10.0));
    near.accuracy_m = 20.0;
    assert_eq!(verdict(&near.judge(), CheckName::Geofence), (Passed, "within_accuracy"));
}

#[test]
fn capture_times_stale_late_future_and_an_exif_time_that_disagrees() {
    // 30 h on the phone: over the 24 h an offline capture may wait.
    let mut stale = Capture::bedside("w-time-a", "obama", photos::registry_face("obama2.jpg"));
    stale.ago = 30 * 3600;
    let checked = stale.judge();
    assert_eq!(verdict(&checked, CheckName::Time), (Failed, "too_old"));
    assert!(!checked.report.late);

    // 3 h: sent late from the phone's queue, judged by its capture time, flagged.
    // Its EXIF says when in local time with the offset (+08:00) a newer phone writes.
    let tags = ExifTags {
        gps: Some(INSIDE),
        taken: Some(SystemTime::now() - Duration::from_secs(3 * 3600)),
        utc_offset_secs: SITE_OFFSET,
        write_offset: true,
    };
    let mut late = Capture::bedside("w-time-b", "obama", photos::face_with_exif("obama2.jpg", &tags));
    late.ago = 3 * 3600;
    let checked = late.judge();
    assert_eq!(verdict(&checked, CheckName::Time), (Passed, "late"));
    assert!(checked.report.late);
    assert!(checked.report.verified(), "{:#?}", checked.report.checks);
    assert!(fact(&checked, CheckName::Time, "exif_time").ends_with("+08:00"));
    let captured = vigil::times::format(checked.report.captured_at);
    assert_eq!(fact(&checked, CheckName::Time, "captured_at"), captured);

    // An hour ahead of the box: the phone's clock is wrong.
    let mut future = Capture::bedside("w-time-c", "obama", photos::registry_face("obama2.jpg"));
    future.ago = -3600;
    assert_eq!(verdict(&future.judge(), CheckName::Time), (Failed, "in_the_future"));

    // The photo's own clock says two hours before the capture time sent with it.
    let exif_early = Capture::bedside("w-time-d", "obama", phone_photo("obama2.jpg", INSIDE, 2 * 3600 + 5));
    let checked = exif_early.judge();
    assert_eq!(verdict(&checked, CheckName::Time), (Failed, "exif_time_disagrees"));
    let off: i64 = fact(&checked, CheckName::Time, "exif_offset_secs").parse().unwrap();
    assert!((-7201..=-7199).contains(&off), "{off}");
}

#[test]
fn replays_exact_reencoded_and_resized_are_caught() {
    let ward = "w-replay";
    let original = phone_photo("obama2.jpg", INSIDE, 5);
    let first_event = uuid::Uuid::now_v7();
    let first = Capture::bedside(ward, "obama", original.clone()).judge_as(first_event);
    assert_eq!(verdict(&first, CheckName::Replay), (Passed, "new_photo"));

    let exact = Capture::bedside(ward, "obama", original.clone()).judge();
    assert_eq!(verdict(&exact, CheckName::Replay), (Failed, "exact_replay"));
    assert_eq!(fact(&exact, CheckName::Replay, "earlier_event"), first_event.to_string());
    assert_eq!(exact.report.failed(), vec!["replay"]);

    for (what, copy) in [("re-encoded", photos::reencoded(&original, 60)), ("resized", photos::resized(&original, 50))]
    {
        let checked = Capture::bedside(ward, "obama", copy).judge();
        assert_eq!(verdict(&checked, CheckName::Replay), (Failed, "near_duplicate"), "{what}");
        assert_eq!(fact(&checked, CheckName::Replay, "earlier_event"), first_event.to_string(), "{what}");
        let bits: u32 = fact(&checked, CheckName::Replay, "hamming_bits").parse().unwrap();
        eprintln!("{what} copy: {bits} bits from the original");
        assert!(bits <= 10, "{what}: {bits}");
    }

    // Another photo of the same patient is not a replay; the same photo on another ward is that ward's first.
    let other = Capture::bedside(ward, "obama", photos::registry_face("obama3.jpg")).judge();
    assert_eq!(verdict(&other, CheckName::Replay), (Passed, "new_photo"));
    let elsewhere = Capture::bedside("w-replay-2", "obama", original).judge();
    assert_eq!(verdict(&elsewhere, CheckName::Replay), (Passed, "new_photo"));
}

#[test]
fn the_wrong_patient_and_a_patient_not_enrolled_or_not_on_the_ward() {
    // Obama's photo, claimed to be Biden (in bed-2, which the camera saw empty).
    let checked = Capture::bedside("w-who", "biden", photos::registry_face("obama2.jpg")).judge();
    assert_eq!(verdict(&checked, CheckName::Face), (Failed, "not_the_claimed_person"));
    assert_eq!(fact(&checked, CheckName::Face, "best_match"), "obama");
    assert!(fact(&checked, CheckName::Face, "distance").parse::<f32>().unwrap() >= 0.6);
    assert!(!checked.face_passed);
    assert_eq!(checked.faces.len(), 1, "the box is still drawn (red)");
    let [x1, y1, _, _] = checked.faces[0];
    assert_eq!(checked.annotated().unwrap().get_pixel(x1.round() as u32 + 1, y1.round() as u32 + 1).0, [220, 0, 0]);
    assert_eq!(verdict(&checked, CheckName::BedCamera), (Failed, "bed_empty"));

    // Carter is on the roster of another ward's camera and not enrolled.
    let checked = Capture::bedside("w-who-2", "carter", photos::registry_face("obama3.jpg")).judge();
    assert_eq!(verdict(&checked, CheckName::Face), (Failed, "not_enrolled"));
    assert_eq!(verdict(&checked, CheckName::BedCamera), (Failed, "not_on_this_ward"));

    // No patient named at all in bedside mode: a clear failure, not a panic.
    let mut nobody = Capture::bedside("w-who-3", "x", photos::registry_face("biden.jpg"));
    nobody.patient = None;
    let checked = nobody.judge();
    assert_eq!(verdict(&checked, CheckName::Face), (Failed, "no_patient"));
    assert_eq!(verdict(&checked, CheckName::BedCamera), (Skipped, "no_patient"));
}

#[test]
fn no_face_and_two_faces_fail_the_face_check() {
    let checked = Capture::bedside("w-faces", "obama", photos::no_face()).judge();
    assert_eq!(verdict(&checked, CheckName::Face), (Failed, "no_face"), "{:#?}", checked.report.checks);
    assert!(checked.image.is_some());

    let checked = Capture::bedside("w-faces", "obama", photos::two_faces()).judge();
    assert_eq!(verdict(&checked, CheckName::Face), (Failed, "several_faces"), "{:#?}", checked.report.checks);
    assert_eq!(fact(&checked, CheckName::Face, "faces_usable"), "2");
    assert_eq!(checked.faces.len(), 2);
}

#[test]
fn not_an_image_truncated_and_too_many_pixels_fail_the_image_check_without_decoding() {
    let whole = phone_photo("obama2.jpg", INSIDE, 5);
    let oversize = photos::oversize_png(8000, 6000);
    eprintln!("oversize PNG: 8000×6000 in {} bytes", oversize.len());
    assert!(oversize.len() < 200_000);
    let cases = [
        (b"<html><body>not a photo</body></html>".to_vec(), "not_an_image", PhotoFormat::Unknown),
        (photos::truncated(&whole, 60), "corrupt_image", PhotoFormat::Jpeg),
        (oversize, "too_many_pixels", PhotoFormat::Png),
    ];
    for (body, reason, format) in cases {
        let checked = Capture::bedside("w-bad", "obama", body).judge();
        assert_eq!(verdict(&checked, CheckName::Image), (Failed, reason));
        assert_eq!(checked.format, format, "{reason}");
        assert!(checked.image.is_none() && checked.faces.is_empty() && !checked.face_passed);
        assert_eq!(verdict(&checked, CheckName::Replay), (Skipped, "no_image"));
        assert_eq!(verdict(&checked, CheckName::Face), (Skipped, "no_image"));
        // What needs no pixels is still judged.
        assert_eq!(verdict(&checked, CheckName::Geofence), (Passed, "inside"));
        assert_eq!(verdict(&checked, CheckName::Time), (Passed, "on_time"));
        assert_eq!(checked.report.failed(), vec!["image"], "{reason}");
    }
}

#[test]
fn an_exif_position_far_from_the_browser_s_and_no_position() {
    // The photo's GPS says Tianjin, 110 km away, while the browser says the ward.
    let checked = Capture::bedside("w-where", "obama", phone_photo("obama2.jpg", [39.0842, 117.2009], 5)).judge();
    assert_eq!(verdict(&checked, CheckName::Position), (Failed, "exif_position_disagrees"));
    let km: f64 = fact(&checked, CheckName::Position, "exif_distance_m").parse::<f64>().unwrap() / 1000.0;
    assert!((100.0..130.0).contains(&km), "{km} km");
    assert_eq!(verdict(&checked, CheckName::Geofence), (Passed, "inside"), "the browser's position is still placed");

    let mut blind = Capture::bedside("w-where-2", "obama", photos::registry_face("obama3.jpg"));
    blind.at = None;
    let checked = blind.judge();
    assert_eq!(verdict(&checked, CheckName::Position), (Failed, "no_position"));
    assert_eq!(verdict(&checked, CheckName::Geofence), (Skipped, "no_position"));

    let mut vague = Capture::bedside("w-where-3", "obama", photos::registry_face("biden.jpg"));
    vague.patient = Some("biden");
    vague.accuracy_m = 1500.0;
    let checked = vague.judge();
    assert_eq!(verdict(&checked, CheckName::Position), (Failed, "position_too_vague"));
    assert_eq!(verdict(&checked, CheckName::Geofence), (Skipped, "position_too_vague"));
}

#[test]
fn a_revoked_phone_s_upload_is_not_judged() {
    let send = Capture::bedside("w-revoked", "obama", photos::registry_face("obama2.jpg"));
    let mut upload = send.upload();
    upload.revoked = true;
    let checked = checker().check(&upload, uuid::Uuid::now_v7(), &Site::new("w-revoked")).unwrap();
    assert!(checked.report.checks.iter().all(|c| c.outcome == Skipped && c.reason == "phone_revoked"));
    assert_eq!(checked.report.checks.len(), 7);
    // Not recorded: the same photo from an enrolled phone is new.
    assert_eq!(verdict(&send.judge(), CheckName::Replay), (Passed, "new_photo"));
}

/// The measured distances behind `near_duplicate_bits = 10`: copies of a real photo stay within a few
/// bits, different real photos (the same person's included) are tens of bits apart.
#[test]
fn perceptual_hash_distances_of_real_photos() {
    let names = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"];
    let originals: Vec<Vec<u8>> = names.iter().map(|n| photos::registry_face(n)).collect();
    let hash = |bytes: &[u8]| phash::phash(&photos::pixels(bytes));
    let hashes: Vec<u64> = originals.iter().map(|b| hash(b)).collect();
    let mut worst_copy = 0;
    for ((name, bytes), h) in names.iter().zip(&originals).zip(&hashes) {
        let q60 = phash::distance(*h, hash(&photos::reencoded(bytes, 60)));
        let half = phash::distance(*h, hash(&photos::resized(bytes, 50)));
        let quarter = phash::distance(*h, hash(&photos::resized(bytes, 25)));
        let both = phash::distance(*h, hash(&photos::reencoded(&photos::resized(bytes, 50), 30)));
        worst_copy = worst_copy.max(q60).max(half).max(quarter).max(both);
        // Not asserted, for the record of what the hash does not claim to catch: a crop shifts the picture.
        let img = photos::pixels(bytes);
        let (w, h5) = (img.width(), img.height() / 20);
        let cropped = image::imageops::crop_imm(&img, w / 20, h5, w - w / 10, img.height() - 2 * h5).to_image();
        let crop = phash::distance(*h, phash::phash(&cropped));
        eprintln!(
            "{name}: re-encoded q60 {q60} bits, resized 50 % {half}, 25 % {quarter}, 50 % + q30 {both}; cropped 5 % a side {crop}"
        );
    }
    let mut nearest_other = 64;
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            let d = phash::distance(hashes[i], hashes[j]);
            eprintln!("{} vs {}: {d} bits", names[i], names[j]);
            nearest_other = nearest_other.min(d);
        }
    }
    let composite = hash(&photos::two_faces());
    let no_face = hash(&photos::no_face());
    eprintln!("worst copy {worst_copy} bits; nearest different photo {nearest_other} bits");
    assert!(worst_copy <= 10, "a copy is {worst_copy} bits away");
    assert!(nearest_other > 20, "two different photos are only {nearest_other} bits apart");
    assert!(hashes.iter().all(|h| phash::distance(*h, composite) > 10 && phash::distance(*h, no_face) > 10));
}
