//! The subcommands of `vigil` (modules of the binary, not of the library). Each owns its flags (a clap
//! `Args` struct) and returns a [`CliResult`]; `main` turns a [`CliError`] into the exit code.

pub mod bench;
pub mod detect;
pub mod enroll;
pub mod evidence;
pub mod keys;
pub mod phones;
pub mod run;
pub mod users;

use std::path::Path;
use std::process::ExitCode;

use vigil::analyze::model_set::{self, ModelSet};
use vigil::analyze::{Models, Sessions, runtime};
use vigil::config;

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad configuration or usage (exit 2); the message is printed as is.
    Usage(String),
    /// Failed at run time (exit 1); the message is printed as is.
    Failed(String),
    /// Failed, and the command has already said why (its report, the rejected photos): exit 1.
    Reported,
}

pub type CliResult = Result<(), CliError>;

impl CliError {
    /// Prints the message and gives the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            CliError::Usage(message) => {
                eprintln!("{message}");
                ExitCode::from(2)
            }
            CliError::Failed(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
            CliError::Reported => ExitCode::FAILURE,
        }
    }
}

/// Run-time failure of `vigil <command>`, with the error chain.
pub fn failed(command: &str) -> impl FnOnce(anyhow::Error) -> CliError + '_ {
    move |e| CliError::Failed(format!("vigil {command}: {e:#}"))
}

/// A configuration file, or exit 2 naming every problem in it.
pub fn load_config(file: &Path) -> Result<config::Config, CliError> {
    config::load(file).map_err(|e| CliError::Usage(e.to_string()))
}

/// Settings the model commands use: from a config file when given, else the defaults.
pub struct ModelSettings {
    pub models: config::Models,
    pub faces: config::Faces,
    pub persons: config::Persons,
}

impl ModelSettings {
    pub fn load(file: Option<&Path>, threads: Option<usize>) -> Result<ModelSettings, CliError> {
        let mut settings = match file.map(load_config).transpose()? {
            Some(c) => ModelSettings { models: c.models, faces: c.faces, persons: c.persons },
            None => {
                ModelSettings { models: Default::default(), faces: Default::default(), persons: Default::default() }
            }
        };
        if let Some(threads) = threads {
            settings.models.threads = threads;
        }
        Ok(settings)
    }

    /// One set of sessions of every model (verified first).
    pub fn sessions(&self) -> Result<Sessions, CliError> {
        Models::load_sessions(&self.models, &self.faces.detector(), &self.persons.detector())
            .map_err(|e| CliError::Failed(format!("vigil: {e}")))
    }
}

/// Prints a report as pretty JSON.
pub fn print_json<T: serde::Serialize>(report: &T) -> CliResult {
    let json = serde_json::to_string_pretty(report).map_err(|e| CliError::Failed(format!("vigil: {e}")))?;
    println!("{json}");
    Ok(())
}

pub fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs >= 0.0 {
            return Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?}: {e}; use RFC 3339 (2026-11-24T10:15:00Z) or Unix seconds"))
}

pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text.split_once('x').ok_or_else(|| format!("{text:?}: expected WIDTHxHEIGHT, e.g. 640x360"))?;
    let parse = |v: &str| v.parse::<u32>().ok().filter(|n| (16..=8192).contains(n));
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("{text:?}: sides must be 16..8192 pixels")),
    }
}

pub fn print_version() {
    println!("vigil {}", env!("CARGO_PKG_VERSION"));
    let ort = runtime::library_path(None);
    match runtime::read_version(&ort.path) {
        Ok(version) => println!("onnxruntime {version} ({}, {})", ort.path.display(), ort.origin),
        Err(_) if !ort.path.exists() => {
            println!("onnxruntime not installed ({} not found, {})", ort.path.display(), ort.origin)
        }
        Err(e) => println!("onnxruntime unusable: {e} ({})", ort.origin),
    }
    let manifest = model_set::manifest();
    let names: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    let dir = vigil::analyze::ModelSettings::default().models_dir();
    let status = match ModelSet::open(&dir.path) {
        Ok(b) => format!("verified in {} ({})", b.dir.display(), dir.origin),
        Err(e) => format!("not usable: {e} ({})", dir.origin),
    };
    println!("models {} ({}): {status}", manifest.bundle, names.join(", "));
}
