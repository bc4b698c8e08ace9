//! `vigil`: command line. Parses arguments, sets up logging, dispatches to the command, and maps the
//! outcome to an exit code ([`cli::CliError`]): 0 success, 1 failure at run time, 2 bad configuration or
//! usage. The commands live in `cli/`, each with its own flags; the library knows nothing of them.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

#[derive(Parser)]
#[command(name = "vigil", about = "Edge agent: hospital cameras → signed evidence → MQTT", disable_version_flag = true)]
struct Cli {
    /// Print version information (agent, ONNX Runtime, model set) and exit.
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
    Run(cli::run::RunArgs),
    /// Check a configuration file and print every problem in it (exit 2 if any).
    CheckConfig(cli::run::CheckConfigArgs),
    /// Detect faces and persons in images; print one JSON object per image.
    Detect(cli::detect::DetectArgs),
    /// Compare the largest faces of two images: embedding distance and same / different person.
    Compare(cli::detect::CompareArgs),
    /// Cut an evidence clip from a camera's recording (no re-encoding; starts on the keyframe at or
    /// before --from).
    Clip(cli::evidence::ClipArgs),
    /// Capture a camera's reference frame now (view-moved detection compares with it): after installing
    /// or re-aiming a camera. With --empty: the beds or chairs are empty now, and the frame is also
    /// their empty reference (occupancy compares each region with it). Restart the agent afterwards.
    Reference(cli::run::ReferenceArgs),
    /// The device's Ed25519 signing key and its certificate (Content Credentials).
    #[command(subcommand)]
    Keys(cli::keys::Keys),
    /// Verify evidence bundles (a bundle, or a directory of bundles as a hash chain) against a public key.
    Verify(cli::evidence::VerifyArgs),
    /// Enrol a patient or physician from photos (each must show one sharp, frontal, large enough face;
    /// rejected photos are named with the reason). Stores embeddings only, encrypted.
    Enroll(cli::enroll::EnrollArgs),
    /// The enrolled gallery.
    #[command(subcommand)]
    Gallery(cli::enroll::GalleryCmd),
    /// Sign a command as the platform does (for integrators and tests); prints the JSON to publish on
    /// `vigil/v1/<site>/<device>/cmd/<name>`.
    SignCommand(cli::keys::SignCommandArgs),
    /// Place (or release) a legal hold on an event's evidence bundle: it is never pruned while held.
    Hold(cli::evidence::HoldArgs),
    /// Ward phones: add one (its one-time enrolment link and QR code), list them, revoke one.
    #[command(subcommand)]
    Phones(cli::phones::Phones),
    /// Console users: add one with a role (installer, supervisor, viewer), list, remove, new password.
    #[command(subcommand)]
    Users(cli::users::Users),
    /// Measurements (not tests): face-matching accuracy, model speed.
    #[command(subcommand)]
    Bench(cli::bench::Bench),
}

fn main() -> ExitCode {
    // Before any file exists: everything Vigil writes (outbox, recordings, clips, evidence, state) holds
    // patients' data and is for its own user only, whatever started it (a shell's 022 would make it
    // world-readable). Same as the shipped unit's UMask=0077; group access is not needed by anything.
    // SAFETY: umask has no preconditions; no other thread exists yet.
    unsafe {
        libc::umask(0o077);
    }
    // Before any thread: a resident size that stays flat over months of pipeline rebuilds.
    vigil::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    if cli.version {
        cli::print_version();
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("vigil: a command is needed; see `vigil --help`");
        return ExitCode::from(2);
    };
    init_logging(cli.log_format, cli.log_level.as_deref());
    if !matches!(command, Command::Run(_)) {
        // One-shot commands behave like Unix tools when their output is closed (`vigil detect … | head`):
        // end quietly instead of panicking on EPIPE. `run` keeps SIGPIPE ignored: a broken MQTT socket
        // must be an error to handle, not a signal that kills the agent.
        // SAFETY: setting a signal disposition to its default has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match command {
        Command::Run(args) => cli::run::run(args),
        Command::CheckConfig(args) => cli::run::check_config(args),
        Command::Detect(args) => cli::detect::detect(args),
        Command::Compare(args) => cli::detect::compare(args),
        Command::Clip(args) => cli::evidence::clip(args),
        Command::Reference(args) => cli::run::reference(args),
        Command::Keys(keys) => cli::keys::keys(keys),
        Command::Verify(args) => cli::evidence::verify(args),
        Command::Enroll(args) => cli::enroll::enroll(args),
        Command::Gallery(cmd) => cli::enroll::gallery(cmd),
        Command::SignCommand(args) => cli::keys::sign_command(args),
        Command::Hold(args) => cli::evidence::hold(args),
        Command::Phones(command) => cli::phones::phones(command),
        Command::Users(command) => cli::users::users(command),
        Command::Bench(bench) => cli::bench::bench(bench),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// INFO, except the c2pa crate's, which logs each phase of every manifest it signs at INFO (a dozen lines
/// per evidence bundle in the journal); its warnings and errors still show.
const DEFAULT_LOG_FILTER: &str = "info,c2pa=warn";

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}
