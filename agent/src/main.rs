//! `vigil`: command line. Parses arguments, sets up logging, hands over to the library, and maps the
//! outcome to an exit code: 0 success, 1 failure at run time, 2 bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vigil::analyze::{Models, bundle, runtime};
use vigil::{app, commands, config};

#[derive(Parser)]
#[command(name = "vigil", about = "Edge agent: hospital cameras → signed evidence → MQTT", disable_version_flag = true)]
struct Cli {
    /// Print version information (agent, ONNX Runtime, model bundle) and exit.
    #[arg(short = 'V', long = "version", global = false)]
    version: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `vigil=debug` (also read from VIGIL_LOG).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGINT or SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and print every problem in it (exit 2 if any).
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
    },
    /// Detect faces and persons in images; print one JSON object per image.
    Detect {
        /// Configuration file (model settings); default settings without it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also write each image with boxes drawn (faces green with landmarks red, persons blue) here.
        #[arg(long, value_name = "DIR")]
        annotate: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Compare the largest faces of two images: embedding distance and same / different person.
    Compare {
        /// Configuration file (model settings, faces.match_distance); default settings without it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        a: PathBuf,
        b: PathBuf,
    },
    /// Cut an evidence clip from a camera's recording (no re-encoding; starts on the keyframe at or
    /// before --from).
    Clip {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        camera: String,
        /// Start: RFC 3339 (2026-11-24T10:15:00Z, or with a space and no zone for UTC) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        from: std::time::SystemTime,
        /// End, same forms as --from.
        #[arg(long, value_parser = parse_time)]
        to: std::time::SystemTime,
        /// Output MP4 file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Capture a camera's reference frame now (view-moved detection compares with it): after installing
    /// or re-aiming a camera. With --empty: the beds or chairs are empty now, and the frame is also
    /// their empty reference (occupancy compares each region with it). Restart the agent afterwards.
    Reference {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        camera: String,
        /// The camera's regions (beds, chairs) are empty in this frame.
        #[arg(long)]
        empty: bool,
        /// The view is uniform by nature (a bare counter or wall), not covered: accept it, and count the
        /// camera as covered only when its brightness changes.
        #[arg(long)]
        uniform: bool,
    },
    /// The device's Ed25519 signing key.
    #[command(subcommand)]
    Keys(Keys),
    /// Verify evidence bundles (a bundle, or a directory of bundles as a hash chain) against a public key.
    Verify {
        /// Public key: a PEM file from `vigil keys public`, or the base64 of its 32 bytes.
        #[arg(long)]
        key: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Enrol a patient or physician from photos (each must show one sharp, frontal, large enough face;
    /// rejected photos are named with the reason). Stores embeddings only, encrypted.
    Enroll {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long, value_enum)]
        role: vigil::gallery::Role,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// The enrolled gallery.
    #[command(subcommand)]
    Gallery(GalleryCmd),
    /// Sign a command as the platform does (for integrators and tests); prints the JSON to publish on
    /// `vigil/v1/<site>/<device>/cmd/<name>`.
    SignCommand {
        /// The platform's Ed25519 private key (PKCS#8 PEM, e.g. from `vigil keys init --file`).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        name: String,
        /// Arguments, a JSON object; `@FILE` reads it from a file (enrolment photos are too large for a
        /// command line).
        #[arg(long, default_value = "{}")]
        args: String,
        /// Default: random.
        #[arg(long)]
        nonce: Option<String>,
        /// Default: now. RFC 3339 or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        issued_at: Option<std::time::SystemTime>,
    },
    /// Place (or release) a legal hold on an event's evidence bundle: it is never pruned while held.
    Hold {
        #[arg(long, short)]
        config: PathBuf,
        /// Why (recorded in the bundle's HOLD marker).
        #[arg(long, default_value = "legal hold")]
        reason: String,
        /// Lift the hold instead.
        #[arg(long)]
        release: bool,
        event_id: String,
    },
    /// Measurements (not tests): face-matching accuracy, model speed.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum GalleryCmd {
    /// List enrolled people (id, role, embeddings, quality; never the embeddings themselves).
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Remove a person.
    Remove {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
}

#[derive(Subcommand)]
enum Keys {
    /// Create the device key (mode 0600); refuses to replace an existing one.
    Init {
        /// The key of this config's device (`evidence.key_file`).
        #[arg(long, short, required_unless_present = "file", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// Or a key at this path (e.g. a platform key for `vigil sign-command`).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print the public key as PEM and as base64, for the platform.
    Public {
        #[arg(long, short, required_unless_present = "file", conflicts_with = "file")]
        config: Option<PathBuf>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Bench {
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
    /// CPU share of one core per camera and memory, for N cameras playing an H.264 MP4 in a loop.
    Cameras {
        /// An H.264 MP4 (e.g. 1080p25 with a 2 s GOP).
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 1)]
        cameras: usize,
        /// Decode keyframes only.
        #[arg(long)]
        keyframes_only: bool,
        /// Frames per second to analysis when decoding all frames.
        #[arg(long, default_value_t = 5.0)]
        analysis_fps: f64,
        /// Also record each camera into a ring of segments (in a scratch folder, removed afterwards).
        #[arg(long)]
        record: bool,
        /// Analysis of each frame besides tamper detection: faces (settlement window: detect, align,
        /// gate, embed, search) or presence (ward: persons, two beds, a roll-call a minute).
        #[arg(long, value_enum, default_value = "tamper")]
        analysis: commands::bench_cameras::Analysis,
        /// Seconds measured, after 5 s of warm-up.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Meanwhile run the MQTT `enroll` command with this many photos (1..20) again and again, as
        /// `vigil run` would (same handler, same models).
        #[arg(long, value_name = "N")]
        enroll_during: Option<usize>,
        /// Enrolment photos for --enroll-during (used in turn).
        #[arg(long, value_name = "FILE")]
        enroll_photo: Vec<PathBuf>,
    },
    /// Accuracy on a labelled pair list (`a,b,same|different` per line; paths relative to the list).
    Faces {
        #[arg(long)]
        pairs: PathBuf,
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
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before any file exists: everything Vigil writes (outbox, recordings, clips, evidence, state) holds
    // patients' data and is for its own user only, whatever started it (a shell's 022 would make it
    // world-readable). Same as the shipped unit's UMask=0077; group access is not needed by anything.
    // SAFETY: umask has no preconditions; no other thread exists yet.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("vigil: a command is needed; see `vigil --help`");
        return ExitCode::from(2);
    };
    init_logging(cli.log_format, cli.log_level.as_deref());
    if !matches!(command, Command::Run { .. }) {
        // One-shot commands behave like Unix tools when their output is closed (`vigil detect … | head`):
        // end quietly instead of panicking on EPIPE. `run` keeps SIGPIPE ignored: a broken MQTT socket
        // must be an error to handle, not a signal that kills the agent.
        // SAFETY: setting a signal disposition to its default has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run { config } => run(&config),
        Command::Detect { config, annotate, images } => with_models(config.as_deref(), None, |models, _| {
            let failed = commands::detect::detect(models, &images, annotate.as_deref())?;
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }),
        Command::Reference { config, camera, empty, uniform } => reference(&config, &camera, empty, uniform),
        Command::Enroll { config, id, role, images } => enroll(&config, &id, role, &images),
        Command::Gallery(GalleryCmd::List { config }) => gallery(&config, None),
        Command::Gallery(GalleryCmd::Remove { config, id }) => gallery(&config, Some(&id)),
        Command::Keys(Keys::Init { config, file }) => keys(config.as_deref(), file.as_deref(), true),
        Command::Keys(Keys::Public { config, file }) => keys(config.as_deref(), file.as_deref(), false),
        Command::SignCommand { key, name, args, nonce, issued_at } => {
            sign_command(&key, &name, &args, nonce, issued_at)
        }
        Command::Verify { key, paths } => verify(&key, &paths),
        Command::Hold { config, reason, release, event_id } => hold(&config, &event_id, &reason, release),
        Command::Clip { config, camera, from, to, output } => clip(&config, &camera, from, to, &output),
        Command::Compare { config, a, b } => with_models(config.as_deref(), None, |models, settings| {
            let c = commands::detect::compare(models, &a, &b, settings.faces.match_distance)?;
            let verdict = if c.same_person { "same person" } else { "different people" };
            println!("distance {:.4}: {verdict} (threshold {})", c.distance, c.threshold);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Bench(Bench::Faces { pairs, config }) => with_models(config.as_deref(), None, |models, settings| {
            let pairs = commands::bench::read_pairs(&pairs)?;
            let report = commands::bench::faces(models, &pairs, settings.faces.match_distance);
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Bench(Bench::Cameras {
            file,
            cameras,
            keyframes_only,
            analysis_fps,
            record,
            analysis,
            seconds,
            enroll_during,
            enroll_photo,
        }) => {
            let scratch = commands::bench_cameras::scratch_dir();
            let enrol = match enroll_during
                .map(|n| commands::bench_cameras::EnrolLoad::new(&enroll_photo, n, scratch.join("enrol")))
                .transpose()
            {
                Ok(enrol) => enrol,
                Err(e) => {
                    eprintln!("vigil bench cameras: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let result = commands::bench_cameras::cameras(
                &file,
                cameras.max(1),
                keyframes_only,
                analysis_fps,
                analysis,
                record.then_some(scratch.as_path()),
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(seconds.max(1)),
                enrol.as_ref(),
            );
            let _ = std::fs::remove_dir_all(&scratch);
            print_report("cameras", result)
        }
        Command::Bench(Bench::Search { entries, queries, rounds, compare, cold }) => {
            let report = commands::bench_search::search(entries.max(1), queries.max(1), rounds.max(1), compare, cold);
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Command::Bench(Bench::Delivery { port, appends, events, rate }) => {
            let scratch = commands::bench_cameras::scratch_dir();
            let result =
                commands::bench_delivery::delivery(&scratch, port, appends.max(1), events.max(1), rate.max(1.0));
            let _ = std::fs::remove_dir_all(&scratch);
            print_report("delivery", result)
        }
        Command::Bench(Bench::Evidence { recording, count, clip_seconds }) => {
            let scratch = commands::bench_cameras::scratch_dir();
            let result = vigil::source::pipeline::init().map_err(anyhow::Error::from).and_then(|()| {
                commands::bench_evidence::evidence(&recording, count.max(1), clip_seconds.max(1), &scratch)
            });
            let _ = std::fs::remove_dir_all(&scratch);
            print_report("evidence", result)
        }
        Command::Bench(Bench::Models { image, frame, save_frame, runs, threads, config }) => {
            with_models(config.as_deref(), threads, |models, settings| {
                let mut img = vigil::analyze::image::load_rgb(&image)?;
                if let Some((w, h)) = frame {
                    img = commands::bench::frame_from(&img, w, h);
                }
                if let Some(path) = &save_frame {
                    img.save(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                }
                let report =
                    commands::bench::models(models, &image, &img, runs.max(1), settings.models.threads.max(1))?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// Settings the model commands use: from a config file when given, else the defaults.
struct ModelSettings {
    models: config::Models,
    faces: config::Faces,
    persons: config::Persons,
}

fn with_models(
    file: Option<&std::path::Path>,
    threads: Option<usize>,
    body: impl FnOnce(&mut Models, &ModelSettings) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let mut settings = match file.map(config::load).transpose() {
        Ok(Some(c)) => ModelSettings { models: c.models, faces: c.faces, persons: c.persons },
        Ok(None) => {
            ModelSettings { models: Default::default(), faces: Default::default(), persons: Default::default() }
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(threads) = threads {
        settings.models.threads = threads;
    }
    let mut models = match Models::load(&settings.models, &settings.faces, &settings.persons) {
        Ok(models) => models,
        Err(e) => {
            eprintln!("vigil: {e}");
            return ExitCode::FAILURE;
        }
    };
    match body(&mut models, &settings) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_for_run(file) {
        Ok(config) => {
            println!(
                "{}: OK (site {}, device {}, {} camera{})",
                file.display(),
                config.site.id,
                config.site.device_id,
                config.cameras.len(),
                if config.cameras.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run(file: &std::path::Path) -> ExitCode {
    let config = match config::load_for_run(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match app::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open_gallery(config: &config::Config) -> Result<vigil::gallery::Gallery, ExitCode> {
    vigil::gallery::Gallery::open(&config.storage.gallery_file(), &config.storage.gallery_key_file()).map_err(|e| {
        eprintln!("vigil: {e}");
        ExitCode::FAILURE
    })
}

fn enroll(file: &std::path::Path, id: &str, role: vigil::gallery::Role, images: &[PathBuf]) -> ExitCode {
    let config = match load_or_exit(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !commands::enroll::valid_id(id) {
        eprintln!("vigil enroll: --id {id:?}: use 1..64 letters, digits, '-' and '_'");
        return ExitCode::from(2);
    }
    let mut gallery = match open_gallery(&config) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let thresholds = config.faces.quality();
    with_models(Some(file), None, |models, _| {
        let photos: Vec<_> = images.iter().map(|p| commands::enroll::Photo::File(p)).collect();
        let report = commands::enroll::enroll(models, &mut gallery, id, role, &photos, Vec::new(), &thresholds)?;
        for v in report.images.iter().filter(|v| !v.accepted) {
            eprintln!("rejected {}: {}", v.image, v.reason.as_deref().unwrap_or(""));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(if report.enrolled { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

fn gallery(file: &std::path::Path, remove: Option<&str>) -> ExitCode {
    let config = match load_or_exit(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut gallery = match open_gallery(&config) {
        Ok(g) => g,
        Err(code) => return code,
    };
    if let Some(id) = remove {
        if !gallery.remove(id) {
            eprintln!("vigil gallery: no {id:?} in the gallery");
            return ExitCode::FAILURE;
        }
        if let Err(e) = gallery.save() {
            eprintln!("vigil gallery: {e}");
            return ExitCode::FAILURE;
        }
        println!("removed {id}");
        return ExitCode::SUCCESS;
    }
    for e in gallery.entries() {
        println!(
            "{}	{:?}	{} embedding(s)	quality {:.2}	enrolled {}",
            e.id,
            e.role,
            e.embeddings.len(),
            e.quality,
            e.enrolled_at
        );
    }
    println!("{} enrolled", gallery.entries().len());
    ExitCode::SUCCESS
}

fn reference(file: &std::path::Path, camera: &str, empty: bool, uniform: bool) -> ExitCode {
    let config = match config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(cam) = config.cameras.iter().find(|c| c.id == camera) else {
        eprintln!("vigil reference: no camera {camera:?} in {}", file.display());
        return ExitCode::from(2);
    };
    match app::capture_reference(&config, cam, std::time::Duration::from_secs(60), empty, uniform) {
        Ok(path) => {
            println!("reference frame of {camera} saved to {}", path.display());
            if empty {
                println!("(also the empty reference of its regions)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil reference: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_or_exit(file: &std::path::Path) -> Result<config::Config, ExitCode> {
    config::load(file).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn keys(config_file: Option<&std::path::Path>, key_file: Option<&std::path::Path>, init: bool) -> ExitCode {
    use vigil::evidence::keys::DeviceKey;
    let path = match (config_file, key_file) {
        (_, Some(path)) => path.to_owned(),
        (Some(file), None) => match load_or_exit(file) {
            Ok(config) => config.storage.key_file(&config.evidence),
            Err(code) => return code,
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let key = if init { DeviceKey::init(&path) } else { DeviceKey::load(&path) };
    match key {
        Ok(key) => {
            if init {
                eprintln!("device key created: {} (mode 0600)", path.display());
            }
            print!("{}", key.public().to_pem());
            println!("base64: {}", key.public().to_base64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil keys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sign_command(
    key: &std::path::Path,
    name: &str,
    args: &str,
    nonce: Option<String>,
    issued_at: Option<std::time::SystemTime>,
) -> ExitCode {
    let fail = |message: String| {
        eprintln!("vigil sign-command: {message}");
        ExitCode::FAILURE
    };
    let Ok(pem) = vigil::input::read_text_limited(key, vigil::input::MAX_TEXT_BYTES) else {
        return fail(format!("cannot read {}", key.display()));
    };
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.trim()) else {
        return fail(format!("{} is not a PEM private key", key.display()));
    };
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der)
        .or_else(|_| ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der));
    let Ok(pair) = pair else { return fail(format!("{} is not an Ed25519 PKCS#8 key", key.display())) };
    let text = match args.strip_prefix('@') {
        Some(file) => match vigil::input::read_text_limited(std::path::Path::new(file), vigil::input::MAX_JSON_BYTES) {
            Ok(text) => text,
            Err(e) => return fail(format!("--args @{file}: {e}")),
        },
        None => args.to_owned(),
    };
    let args: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return fail("--args must be a JSON object".into()),
    };
    let nonce = nonce.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let command =
        vigil::publish::commands::sign(&pair, name, args, issued_at.unwrap_or_else(std::time::SystemTime::now), &nonce);
    println!("{command}");
    ExitCode::SUCCESS
}

fn verify(key: &str, paths: &[PathBuf]) -> ExitCode {
    let text = vigil::input::read_text_limited(std::path::Path::new(key), vigil::input::MAX_TEXT_BYTES)
        .unwrap_or_else(|_| key.to_owned());
    let Some(public) = vigil::evidence::keys::PublicKey::parse(&text) else {
        eprintln!("vigil verify: {key:?} is neither a PEM public key file nor base64 of 32 bytes");
        return ExitCode::from(2);
    };
    let report = vigil::evidence::verify::verify(paths, &public);
    for problem in &report.problems {
        println!("FAIL {problem}");
    }
    if report.problems.is_empty() {
        println!("OK: {} bundle(s) verified: files, signatures and chain", report.bundles);
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s) in {} bundle(s)", report.problems.len(), report.bundles);
        ExitCode::FAILURE
    }
}

fn hold(file: &std::path::Path, event_id: &str, reason: &str, release: bool) -> ExitCode {
    use vigil::evidence::store;
    let config = match load_or_exit(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dir = config.storage.evidence_dir();
    let result = if release {
        store::release(&dir, event_id).map(|b| format!("hold released on {}", b.display()))
    } else {
        store::hold(&dir, event_id, reason, std::time::SystemTime::now())
            .map(|b| format!("legal hold placed on {}", b.display()))
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil hold: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs >= 0.0 {
            return Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?}: {e}; use RFC 3339 (2026-11-24T10:15:00Z) or Unix seconds"))
}

fn clip(
    file: &std::path::Path,
    camera: &str,
    from: std::time::SystemTime,
    to: std::time::SystemTime,
    output: &std::path::Path,
) -> ExitCode {
    let config = match config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !config.cameras.iter().any(|c| c.id == camera) {
        let known: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        eprintln!("vigil clip: no camera {camera:?} in {}; cameras: {}", file.display(), known.join(", "));
        return ExitCode::from(2);
    }
    if let Err(e) = vigil::source::pipeline::init() {
        eprintln!("vigil clip: {e}");
        return ExitCode::FAILURE;
    }
    let dir = config.storage.recordings_dir().join(camera);
    match vigil::source::clip::cut(&dir, from, to, output) {
        Ok(info) => {
            println!(
                "{}: {} frames from {} segment(s), {} to {}",
                output.display(),
                info.frames,
                info.segments,
                humantime::format_rfc3339_millis(info.start),
                humantime::format_rfc3339_millis(info.end)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil clip: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a benchmark report as JSON, or the error that stopped it.
fn print_report<T: serde::Serialize>(bench: &str, result: anyhow::Result<T>) -> ExitCode {
    match result.and_then(|r| Ok(serde_json::to_string_pretty(&r)?)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil bench {bench}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text.split_once('x').ok_or_else(|| format!("{text:?}: expected WIDTHxHEIGHT, e.g. 640x360"))?;
    let parse = |v: &str| v.parse::<u32>().ok().filter(|n| (16..=8192).contains(n));
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("{text:?}: sides must be 16..8192 pixels")),
    }
}

fn print_version() {
    println!("vigil {}", env!("CARGO_PKG_VERSION"));
    let (path, origin) = runtime::library_path(None);
    match runtime::read_version(&path) {
        Ok(version) => println!("onnxruntime {version} ({})", path.display()),
        Err(_) if !path.exists() => println!("onnxruntime not installed ({} not found, {origin})", path.display()),
        Err(e) => println!("onnxruntime unusable: {e}"),
    }
    let manifest = bundle::manifest();
    let names: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    let status = match bundle::Bundle::open(&bundle::Bundle::default_dir()) {
        Ok(b) => format!("verified in {}", b.dir.display()),
        Err(e) => format!("not usable: {e}"),
    };
    println!("models {} ({}): {status}", manifest.bundle, names.join(", "));
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}
