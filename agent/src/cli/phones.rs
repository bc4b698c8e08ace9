//! `vigil phones add|list|revoke`: ward phones in the registry (`<data_dir>/phones.sqlite`), whether
//! or not the agent is running (both open the same file; the agent reads it at every request).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use qrcode::{Color, QrCode};
use vigil::phones::registry::{Listed, Registry};

use super::{CliError, CliResult, load_config};

#[derive(clap::Subcommand)]
pub enum Phones {
    /// Add a phone to a ward: prints its one-time enrolment link and a QR code of it (open it on the
    /// phone; it works once, until it expires).
    Add(AddArgs),
    /// List the phones (revoked ones too, with when and why).
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a phone (lost, stolen, handed back): its uploads are refused from now on.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        /// The phone's id (`ph-…`, see `vigil phones list`).
        id: String,
        /// Why, for the record (e.g. "lost on ward 3").
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// The ward (an `id` of `[[wards]]`).
    #[arg(long)]
    ward: String,
    /// Who carries the phone (shown on the page, in `list`, in events).
    #[arg(long)]
    name: String,
    /// A physician's own phone (check-in mode), for this physician's roster id.
    #[arg(long)]
    physician: Option<String>,
    /// Also write the QR code as a PNG (to print or send).
    #[arg(long)]
    qr_png: Option<PathBuf>,
}

pub fn phones(command: Phones) -> CliResult {
    match command {
        Phones::Add(args) => add(args),
        Phones::List { config, json } => list(&config, json),
        Phones::Revoke { config, id, reason } => revoke(&config, &id, &reason),
    }
}

fn open(config: &vigil::config::Config) -> Result<Registry, CliError> {
    vigil::fsio::create_dir(&config.storage.data_dir, vigil::fsio::PRIVATE_DIR)
        .map_err(|e| CliError::Failed(format!("vigil phones: {}: {e}", config.storage.data_dir.display())))?;
    Registry::open(&Registry::path_in(&config.storage.data_dir))
        .map_err(|e| CliError::Failed(format!("vigil phones: {e}")))
}

fn add(args: AddArgs) -> CliResult {
    let config = load_config(&args.config)?;
    let registry = open(&config)?;
    let (invitation, link) = vigil::runtime::http::invite(
        &config,
        &registry,
        &args.ward,
        &args.name,
        args.physician.as_deref(),
        SystemTime::now(),
    )
    .map_err(|e| CliError::Usage(format!("vigil phones add: {e}")))?;
    let code = QrCode::new(link.as_bytes()).map_err(|e| CliError::Failed(format!("vigil phones add: QR code: {e}")))?;
    if let Some(file) = &args.qr_png {
        write_png(&code, file).map_err(|e| CliError::Failed(format!("vigil phones add: {}: {e}", file.display())))?;
    }
    let phone = &invitation.phone;
    println!(
        "phone {} ({}) on ward {}{}",
        phone.id,
        phone.name,
        phone.ward,
        match &phone.physician {
            Some(p) => format!(", physician {p}"),
            None => String::new(),
        }
    );
    println!("enrolment link (works once, until {}):", humantime::format_rfc3339_seconds(invitation.expires_at));
    println!("{link}");
    println!();
    print!("{}", terminal_qr(&code));
    if let Some(file) = &args.qr_png {
        println!("QR code written to {}", file.display());
    }
    Ok(())
}

/// The QR code in Unicode half blocks, two module rows per line, with a quiet zone. Light modules are
/// drawn (as `qrencode -t UTF8` does): on a terminal's dark background the code reads dark-on-light.
pub fn terminal_qr(code: &QrCode) -> String {
    const QUIET: usize = 2;
    let width = code.width();
    let colors = code.to_colors();
    let light = |x: isize, y: isize| -> bool {
        let inside = (0..width as isize).contains(&x) && (0..width as isize).contains(&y);
        !inside || colors[y as usize * width + x as usize] == Color::Light
    };
    let side = (width + 2 * QUIET) as isize;
    let mut out = String::new();
    for row in (0..side).step_by(2) {
        for col in 0..side {
            let (x, y) = (col - QUIET as isize, row - QUIET as isize);
            let (top, bottom) = (light(x, y), row + 1 >= side || light(x, y + 1));
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

/// The QR code as a black-on-white PNG: 8 pixels a module, a quiet zone of 4 modules (the standard's).
fn write_png(code: &QrCode, file: &Path) -> Result<(), String> {
    const SCALE: u32 = 8;
    const QUIET: u32 = 4;
    let width = code.width() as u32;
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let image = image::GrayImage::from_fn(side, side, |px, py| {
        let (x, y) = ((px / SCALE) as i64 - i64::from(QUIET), (py / SCALE) as i64 - i64::from(QUIET));
        let inside = (0..i64::from(width)).contains(&x) && (0..i64::from(width)).contains(&y);
        let dark = inside && colors[y as usize * width as usize + x as usize] == Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    });
    image.save_with_format(file, image::ImageFormat::Png).map_err(|e| e.to_string())
}

fn list(file: &Path, json: bool) -> CliResult {
    let config = load_config(file)?;
    let registry = open(&config)?;
    let phones = registry.list().map_err(|e| CliError::Failed(format!("vigil phones list: {e}")))?;
    if json {
        // The key's hash names it; the key itself is of no use to a reader.
        let phones: Vec<Listed> = phones
            .into_iter()
            .map(|mut l| {
                l.phone.public_key = None;
                l
            })
            .collect();
        return super::print_json(&phones);
    }
    if phones.is_empty() {
        println!("no phones (add one with `vigil phones add`)");
        return Ok(());
    }
    println!("{:<14} {:<12} {:<20} {:<24} STATE", "ID", "WARD", "MODE", "NAME");
    for l in &phones {
        let p = &l.phone;
        let state = match (p.revoked_at, p.enrolled_at, l.link_expires_at) {
            (Some(at), _, _) => format!(
                "revoked {} ({})",
                humantime::format_rfc3339_seconds(at),
                l.revoked_reason.as_deref().unwrap_or("")
            ),
            (None, Some(at), _) => format!("enrolled {}", humantime::format_rfc3339_seconds(at)),
            (None, None, Some(until)) if until > SystemTime::now() => {
                format!("waiting for enrolment (link until {})", humantime::format_rfc3339_seconds(until))
            }
            (None, None, _) => "link expired, never enrolled (revoke it and add the phone again)".to_owned(),
        };
        let mode = match &p.physician {
            Some(id) => format!("physician {id}"),
            None => "bedside".to_owned(),
        };
        println!("{:<14} {:<12} {:<20} {:<24} {state}", p.id, p.ward, mode, p.name);
    }
    Ok(())
}

fn revoke(file: &Path, id: &str, reason: &str) -> CliResult {
    let config = load_config(file)?;
    let registry = open(&config)?;
    match registry.revoke(id, reason, SystemTime::now()) {
        Ok(r) if r.already => {
            println!("phone {id} was already revoked at {}", humantime::format_rfc3339_seconds(r.revoked_at));
            Ok(())
        }
        Ok(r) => {
            println!(
                "phone {id} revoked at {}: its requests are refused from now on",
                humantime::format_rfc3339_seconds(r.revoked_at)
            );
            Ok(())
        }
        Err(e @ vigil::phones::registry::RegistryError::UnknownPhone(_)) => {
            Err(CliError::Usage(format!("vigil phones revoke: {e} (see `vigil phones list`)")))
        }
        Err(e @ vigil::phones::registry::RegistryError::Invalid(_)) => {
            Err(CliError::Usage(format!("vigil phones revoke: --reason: {e}")))
        }
        Err(e) => Err(CliError::Failed(format!("vigil phones revoke: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The terminal rendering is the module matrix: each character's halves are two modules.
    #[test]
    fn the_terminal_code_is_the_matrix() {
        let code = QrCode::new(b"https://box:8443/ward/#enrol=abc").unwrap();
        let text = terminal_qr(&code);
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let width = code.width();
        assert_eq!(lines[0].len(), width + 4);
        let colors = code.to_colors();
        for y in 0..width {
            for x in 0..width {
                let c = lines[(y + 2) / 2][x + 2];
                let top_half = (y + 2) % 2 == 0;
                let light = match c {
                    '█' => true,
                    ' ' => false,
                    '▀' => top_half,
                    '▄' => !top_half,
                    other => panic!("unexpected {other:?}"),
                };
                assert_eq!(light, colors[y * width + x] == Color::Light, "module ({x}, {y})");
            }
        }
    }
}
