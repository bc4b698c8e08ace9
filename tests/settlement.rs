//! Settlement decisions on real embeddings of registry photos (the decision logic; the camera path joins
//! it in the next step): verified, identity mismatch with the best enrolled match, no face, several good
//! frames required, card lending.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil::analyze::embedder::Embedding;
use vigil::decide::settlement::{FaceObservation, SettledFace, SettlementRules, Verdict, Watch, shared_identity};
use vigil::gallery::search::SearchIndex;
use vigil::gallery::{Entry, Role};

fn embedding(models: &mut vigil::analyze::Models, photo: &str) -> Embedding {
    let img = vigil::analyze::image::load_rgb(&common::face_images().join(photo)).unwrap();
    models.embed_faces(&img).unwrap().remove(0).embedding
}

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

struct Fixture {
    gallery: SearchIndex,
    obama_frames: Vec<Embedding>,
}

fn fixture() -> Fixture {
    let mut models = common::models();
    let entries: Vec<Entry> = [("p-obama", "obama.jpg"), ("p-biden", "biden.jpg")]
        .iter()
        .map(|(id, photo)| Entry {
            id: (*id).into(),
            role: Role::Patient,
            embeddings: vec![embedding(&mut models, photo).to_vec()],
            quality: 1.0,
            enrolled_at: String::new(),
        })
        .collect();
    let obama_frames =
        ["obama2.jpg", "obama3.jpg", "obama_partial_face2.jpg"].iter().map(|p| embedding(&mut models, p)).collect();
    Fixture { gallery: SearchIndex::build(&entries), obama_frames }
}

/// Frames of one face at the window, moving slightly; every `bad`-th frame fails the quality gate.
fn frames(f: &Fixture, n: usize, bad: usize) -> Vec<Vec<FaceObservation>> {
    (0..n)
        .map(|i| {
            let x = 100.0 + i as f32 * 3.0;
            let good = bad == 0 || i % bad != 0;
            vec![FaceObservation {
                bbox: [x, 80.0, x + 120.0, 230.0],
                embedding: good.then(|| f.obama_frames[i % f.obama_frames.len()]),
            }]
        })
        .collect()
}

#[test]
fn the_claimed_person_at_the_window_is_verified_on_several_good_frames() {
    let f = fixture();
    let rules = SettlementRules::default();
    let mut watch = Watch::open("tx-1", "p-obama", "window-1", t(0), Duration::from_secs(30));
    let mut outcome = None;
    for (i, frame) in frames(&f, 10, 2).iter().enumerate() {
        outcome = watch.observe(frame, t(i as u64), &f.gallery, &rules);
        if outcome.is_some() {
            // Frames 1, 3, 5 are the first three good ones (every 2nd frame fails the gate).
            assert_eq!(i, 5, "decided on the third good frame, not before");
            break;
        }
    }
    match outcome.unwrap().verdict {
        Verdict::Verified { distance, good_frames } => {
            assert!(distance < 0.6 && good_frames == 3, "{distance} {good_frames}")
        }
        other => panic!("expected verified, got {other:?}"),
    }
}

#[test]
fn another_person_under_the_claimed_id_is_a_mismatch_naming_the_best_match() {
    let f = fixture();
    let rules = SettlementRules::default();
    let mut watch = Watch::open("tx-2", "p-biden", "window-1", t(0), Duration::from_secs(30));
    let outcome = frames(&f, 5, 0)
        .iter()
        .enumerate()
        .find_map(|(i, frame)| watch.observe(frame, t(i as u64), &f.gallery, &rules))
        .unwrap();
    match outcome.verdict {
        Verdict::IdentityMismatch { distance, best_match, .. } => {
            assert!(distance.unwrap() > 0.6, "{distance:?}");
            assert_eq!(best_match.as_deref(), Some("p-obama"));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn an_empty_window_until_the_deadline_is_no_face() {
    let f = fixture();
    let rules = SettlementRules::default();
    let mut watch = Watch::open("tx-3", "p-obama", "window-1", t(0), Duration::from_secs(20));
    assert!(watch.observe(&[], t(10), &f.gallery, &rules).is_none());
    // One poor-quality face is not enough either.
    let blurry = [FaceObservation { bbox: [0.0, 0.0, 50.0, 50.0], embedding: None }];
    assert!(watch.observe(&blurry, t(15), &f.gallery, &rules).is_none());
    let outcome = watch.observe(&[], t(20), &f.gallery, &rules).unwrap();
    assert_eq!(outcome.verdict, Verdict::NoFace { faces_seen: 1 });
}

#[test]
fn one_face_under_two_claimed_ids_is_card_lending() {
    let f = fixture();
    let rules = SettlementRules::default();
    let judge = |tx: &str, claimed: &str, at: u64| {
        let mut watch = Watch::open(tx, claimed, "window-1", t(at), Duration::from_secs(30));
        frames(&f, 5, 0)
            .iter()
            .enumerate()
            .find_map(|(i, frame)| watch.observe(frame, t(at + i as u64), &f.gallery, &rules))
            .unwrap()
    };
    let first = judge("tx-10", "p-obama", 0);
    let history = vec![SettledFace {
        transaction_id: first.transaction_id.clone(),
        claimed_id: first.claimed_id.clone(),
        at: first.at,
        embedding: first.embedding.unwrap(),
    }];
    let second = judge("tx-11", "p-biden", 3600);
    let shared = shared_identity(&history, &second, &rules);
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].transaction_id, "tx-10");
    // The same claimed id twice is not lending; outside the window neither.
    let third = judge("tx-12", "p-obama", 7200);
    assert!(shared_identity(&history, &third, &rules).is_empty());
    let late = judge("tx-13", "p-biden", 40 * 86_400);
    assert!(shared_identity(&history, &late, &rules).is_empty());
}
