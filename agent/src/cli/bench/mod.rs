//! `vigil bench …`: measurements, never tests. Their figures go in docs/benchmarks.md with the command
//! that produced them.

pub mod cameras;
pub mod delivery;
pub mod evidence;
pub mod gallery;
pub mod models;
pub mod search;
pub mod settlement;

use std::path::PathBuf;

use super::{CliError, CliResult, ModelSettings, parse_size, print_json};

#[derive(clap::Subcommand)]
pub enum Bench {
    /// 1:N face search over synthetic 128-d embeddings: latency per query.
    Search {
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        /// Timed queries per round.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Rounds (figures per round, and medians over them).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Also time the previous bfloat16 search on the same gallery and queries, alternating each round.
        #[arg(long)]
        compare: bool,
        /// Evict the gallery from the caches before each query (reads 64 MB, untimed).
        #[arg(long)]
        cold: bool,
    },
    /// Durable outbox appends per second, and emit → PUBACK latency through an MQTT broker.
    Delivery {
        /// Port of a broker on 127.0.0.1.
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 500)]
        appends: usize,
        #[arg(long, default_value_t = 1000)]
        events: usize,
        /// Events per second for the latency run.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
    },
    /// Evidence bundles written per second (clip remuxed from a recording, signed, fsync'd).
    Evidence {
        /// An H.264 MP4 used as the camera's recording (longer than the clip).
        #[arg(long)]
        recording: PathBuf,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value_t = 10)]
        clip_seconds: u64,
    },
    /// Gallery file size and load time, binary form against the JSON form of older Vigils.
    Gallery {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        /// Embeddings per person (one per accepted enrolment photo).
        #[arg(long, default_value_t = 1)]
        embeddings: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// CPU share of one core per camera and memory, for N cameras playing an H.264 MP4 in a loop.
    Cameras(cameras::CamerasArgs),
    /// Latency from a `settlement` command to its verdict, the person already at the window.
    Settlement(settlement::SettlementArgs),
    /// Accuracy on a labelled pair list (`a,b,same|different` per line; paths relative to the list).
    Faces {
        #[arg(long)]
        pairs: PathBuf,
        /// The worst case of a detector input sized to the face: each image is scaled so its face
        /// measures `min_face_px`, put in a 1280×720 frame and searched with the detector's input
        /// scaled so that face measures this many pixels there (0: the detector's max side alone).
        #[arg(long, value_name = "PX")]
        face_px: Option<f32>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Median time per model call and per detect+align+embed on one image.
    Models {
        /// An image with a face in it.
        #[arg(long)]
        image: PathBuf,
        /// Fit the image into a camera frame of this size first (centred, grey around), e.g. 640x360.
        #[arg(long, value_name = "WxH", value_parser = parse_size)]
        frame: Option<(u32, u32)>,
        /// Write the frame that was timed here (PNG), so a peer implementation can time the same pixels.
        #[arg(long, value_name = "FILE")]
        save_frame: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// ONNX Runtime intra-op threads per model (overrides the config).
        #[arg(long)]
        threads: Option<usize>,
        /// Size a `min_face_px` face is scaled to at the detector's input (overrides the config; 0: the
        /// detector's max side alone).
        #[arg(long, value_name = "PX")]
        face_px: Option<f32>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// A scratch folder for a benchmark's files, removed afterwards.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()))
}

/// Runs `body` with a scratch folder, removes it, and prints the report (or the error that stopped it).
fn with_scratch<T: serde::Serialize>(
    bench: &str,
    body: impl FnOnce(&std::path::Path) -> anyhow::Result<T>,
) -> CliResult {
    let scratch = scratch_dir();
    let result = body(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result.map_err(|e| CliError::Failed(format!("vigil bench {bench}: {e:#}")))?;
    print_json(&report)
}

pub fn bench(bench: Bench) -> CliResult {
    let failed = |e: anyhow::Error| CliError::Failed(format!("vigil: {e:#}"));
    match bench {
        Bench::Faces { pairs, face_px, config } => {
            let settings = ModelSettings::load(config.as_deref(), None)?;
            let mut models = settings.sessions()?;
            let pairs = models::read_pairs(&pairs).map_err(failed)?;
            print_json(&models::faces(&mut models, &pairs, settings.faces.match_distance, face_px))
        }
        Bench::Cameras(args) => cameras::run(args),
        Bench::Settlement(args) => settlement::run(args),
        Bench::Gallery { people, embeddings, rounds } => {
            with_scratch("gallery", |scratch| gallery::gallery(scratch, people.max(1), embeddings, rounds.max(1)))
        }
        Bench::Search { entries, queries, rounds, compare, cold } => {
            let report = search::search(entries.max(1), queries.max(1), rounds.max(1), compare, cold);
            print_json(&report)
        }
        Bench::Delivery { port, appends, events, rate } => with_scratch("delivery", |scratch| {
            delivery::delivery(scratch, port, appends.max(1), events.max(1), rate.max(1.0))
        }),
        Bench::Evidence { recording, count, clip_seconds } => with_scratch("evidence", |scratch| {
            vigil::source::pipeline::init()?;
            evidence::evidence(&recording, count.max(1), clip_seconds.max(1), scratch)
        }),
        Bench::Models { image, frame, save_frame, runs, threads, face_px, config } => {
            let settings = ModelSettings::load(config.as_deref(), threads)?;
            let mut models = settings.sessions()?;
            if let Some(face_px) = face_px {
                let options = models.faces.detector.options();
                models
                    .faces
                    .detector
                    .set_options(vigil::analyze::face_detector::FaceDetectorOptions { face_px, ..options });
            }
            let mut img = vigil::analyze::image::load_rgb(&image).map_err(|e| failed(e.into()))?;
            if let Some((w, h)) = frame {
                img = vigil::analyze::image::frame_from(&img, w, h);
            }
            if let Some(path) = &save_frame {
                img.save(path).map_err(|e| failed(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
            }
            let report = models::models(&mut models, &image, &img, runs.max(1), settings.models.threads.max(1))
                .map_err(failed)?;
            print_json(&report)
        }
    }
}
