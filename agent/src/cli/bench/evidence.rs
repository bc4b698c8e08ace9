//! `vigil bench evidence`: bundles written per second, each with a clip remuxed from a recording,
//! snapshot, signed manifest, and every fsync of the protocol.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use vigil::evidence::keys::DeviceKey;
use vigil::evidence::store::{EvidenceRequest, Store};

#[derive(Debug, Serialize)]
pub struct EvidenceBench {
    pub recording: String,
    pub bundles: usize,
    pub clip_seconds: u64,
    pub clip_bytes: u64,
    pub bundles_per_second: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
}

pub fn evidence(recording: &Path, count: usize, clip_seconds: u64, scratch: &Path) -> anyhow::Result<EvidenceBench> {
    let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let recordings = scratch.join("recordings/bench");
    std::fs::create_dir_all(&recordings)?;
    std::fs::copy(recording, vigil::source::pipeline::segment_path(&recordings, start))
        .with_context(|| format!("cannot copy {}", recording.display()))?;
    let key = DeviceKey::init(&scratch.join("key.pem"))?;
    let mut store =
        Store::open(&scratch.join("evidence"), key, "bench", "bench", vec![("none".into(), "0".repeat(64))])?;
    let snapshot = image::RgbImage::from_pixel(1280, 720, image::Rgb([60, 60, 60]));
    let mut times = Vec::with_capacity(count);
    let mut clip_bytes = 0;
    let all = Instant::now();
    for _ in 0..count {
        let at = start + Duration::from_secs(clip_seconds / 2 + 1);
        let request = EvidenceRequest {
            event_id: uuid::Uuid::now_v7(),
            kind: "bench".into(),
            camera: "bench".into(),
            camera_info: vigil::evidence::manifest::CameraIdentity::new("bench", "ward", None, "file:///bench.mp4"),
            at,
            onset: None,
            thresholds: Default::default(),
            details: Default::default(),
            snapshot: snapshot.clone(),
            snapshot_at: at,
            detections: Vec::new(),
            recordings: recordings.clone(),
            clip_from: at - Duration::from_secs(clip_seconds / 2),
            clip_to: at + Duration::from_secs(clip_seconds - clip_seconds / 2),
        };
        let t = Instant::now();
        let bundle = store.write(&request)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        clip_bytes = std::fs::metadata(bundle.dir.join("clip.mp4"))?.len();
    }
    let elapsed = all.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    Ok(EvidenceBench {
        recording: recording.display().to_string(),
        bundles: count,
        clip_seconds,
        clip_bytes,
        bundles_per_second: count as f64 / elapsed,
        median_ms: times[times.len() / 2],
        p90_ms: times[(times.len() * 9 / 10).min(times.len() - 1)],
    })
}
