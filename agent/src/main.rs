//! `vigil`: command line. Parses arguments, sets up logging, hands over to the library, and maps the
//! outcome to an exit code: 0 success, 1 failure at run time, 2 bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vigil::{analyze::runtime, app, config};

#[derive(Parser)]
#[command(
    name = "vigil",
    about = "Edge agent: hospital cameras → signed evidence → MQTT",
    disable_version_flag = true
)]
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
}

fn main() -> ExitCode {
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
    match command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run { config } => run(&config),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
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
    let config = match config::load(file) {
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

fn print_version() {
    println!("vigil {}", env!("CARGO_PKG_VERSION"));
    let (path, origin) = runtime::library_path(None);
    match runtime::read_version(&path) {
        Ok(version) => println!("onnxruntime {version} ({})", path.display()),
        Err(_) if !path.exists() => println!(
            "onnxruntime not installed ({} not found, {origin})",
            path.display()
        ),
        Err(e) => println!("onnxruntime unusable: {e}"),
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
