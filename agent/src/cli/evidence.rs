//! `vigil verify`, `vigil hold` and `vigil clip`: evidence bundles and the recordings they cut from.

use std::path::PathBuf;
use std::time::SystemTime;

use vigil::evidence::{store, verify};

use super::{CliError, CliResult, load_config, parse_time};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Public key: a PEM file from `vigil keys public`, or the base64 of its 32 bytes.
    #[arg(long)]
    key: String,
    /// A head the platform received (`SEQ:SHA256`, from `evidence_ready` or the retained `…/evidence/head`):
    /// it must be an entry of the chain with that manifest hash. Repeatable.
    #[arg(long = "expect-head", value_name = "SEQ:SHA256", value_parser = parse_head)]
    expect_head: Vec<verify::Head>,
    /// A file of heads the platform received: one `SEQ:SHA256` per line, `#` comments and blank lines
    /// ignored, further tokens on a line ignored (so the agent's `<data_dir>/evidence-head` is one).
    #[arg(long, value_name = "FILE")]
    heads: Vec<PathBuf>,
    /// Store directories (their entries and the chain across them) or entry directories (each alone).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn parse_head(text: &str) -> Result<verify::Head, String> {
    verify::Head::parse(text)
}

pub fn verify(args: VerifyArgs) -> CliResult {
    let VerifyArgs { key, expect_head, heads, paths } = args;
    let text = vigil::input::read_text_limited(std::path::Path::new(&key), vigil::input::MAX_TEXT_BYTES)
        .unwrap_or_else(|_| key.clone());
    let Some(public) = vigil::evidence::keys::PublicKey::parse(&text) else {
        return Err(CliError::Usage(format!(
            "vigil verify: {key:?} is neither a PEM public key file nor base64 of 32 bytes"
        )));
    };
    let mut options = verify::Options { heads: expect_head };
    for file in heads {
        let text = vigil::input::read_text_limited(&file, vigil::input::MAX_TEXT_BYTES)
            .map_err(|e| CliError::Usage(format!("vigil verify --heads: {e}")))?;
        let found = verify::Head::parse_file(&text)
            .map_err(|e| CliError::Usage(format!("vigil verify --heads {}: {e}", file.display())))?;
        options.heads.extend(found);
    }
    let report = verify::verify_with(&paths, &public, &options);
    for problem in &report.problems {
        println!("FAIL {problem}");
    }
    for warning in &report.warnings {
        println!("WARN {warning}");
    }
    if report.problems.is_empty() {
        println!("OK: verified {}", report.verified());
        Ok(())
    } else {
        println!("{} problem(s) in {} entries", report.problems.len(), report.entries);
        Err(CliError::Reported)
    }
}

#[derive(clap::Args)]
pub struct HoldArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Why (recorded in the bundle's HOLD marker).
    #[arg(long, default_value = "legal hold")]
    reason: String,
    /// Lift the hold instead.
    #[arg(long)]
    release: bool,
    event_id: String,
}

pub fn hold(args: HoldArgs) -> CliResult {
    let config = load_config(&args.config)?;
    let dir = config.storage.evidence_dir();
    let result = if args.release {
        store::release(&dir, &args.event_id).map(|b| format!("hold released on {}", b.display()))
    } else {
        store::hold(&dir, &args.event_id, &args.reason, SystemTime::now())
            .map(|b| format!("legal hold placed on {}", b.display()))
    };
    let message = result.map_err(|e| CliError::Failed(format!("vigil hold: {e}")))?;
    println!("{message}");
    Ok(())
}

#[derive(clap::Args)]
pub struct ClipArgs {
    #[arg(long, short)]
    config: PathBuf,
    #[arg(long)]
    camera: String,
    /// Start: RFC 3339 (2026-11-24T10:15:00Z, or with a space and no zone for UTC) or Unix seconds.
    #[arg(long, value_parser = parse_time)]
    from: SystemTime,
    /// End, same forms as --from.
    #[arg(long, value_parser = parse_time)]
    to: SystemTime,
    /// Output MP4 file.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn clip(args: ClipArgs) -> CliResult {
    let ClipArgs { config: file, camera, from, to, output } = args;
    let config = load_config(&file)?;
    if !config.cameras.iter().any(|c| c.id == camera) {
        let known: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        return Err(CliError::Usage(format!(
            "vigil clip: no camera {camera:?} in {}; cameras: {}",
            file.display(),
            known.join(", ")
        )));
    }
    vigil::source::pipeline::init().map_err(|e| CliError::Failed(format!("vigil clip: {e}")))?;
    let dir = config.storage.recordings_dir().join(&camera);
    let info =
        vigil::source::clip::cut(&dir, from, to, &output).map_err(|e| CliError::Failed(format!("vigil clip: {e}")))?;
    println!(
        "{}: {} frames from {} segment(s), {} to {}",
        output.display(),
        info.frames,
        info.segments,
        humantime::format_rfc3339_millis(info.start),
        humantime::format_rfc3339_millis(info.end)
    );
    Ok(())
}
