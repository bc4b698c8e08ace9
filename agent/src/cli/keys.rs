//! `vigil keys init|public` (the device's Ed25519 key) and `vigil sign-command` (a command signed as the
//! platform signs it).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use vigil::evidence::keys::DeviceKey;

use super::{CliError, CliResult, load_config, parse_time};

#[derive(clap::Subcommand)]
pub enum Keys {
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

pub fn keys(keys: Keys) -> CliResult {
    let (config_file, key_file, init) = match keys {
        Keys::Init { config, file } => (config, file, true),
        Keys::Public { config, file } => (config, file, false),
    };
    let path = match (config_file, key_file) {
        (_, Some(path)) => path,
        (Some(file), None) => {
            let config = load_config(&file)?;
            config.storage.key_file(&config.evidence)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let key = if init { DeviceKey::init(&path) } else { DeviceKey::load(&path) };
    let key = key.map_err(|e| CliError::Failed(format!("vigil keys: {e}")))?;
    if init {
        eprintln!("device key created: {} (mode 0600)", path.display());
    }
    print!("{}", key.public().to_pem());
    println!("base64: {}", key.public().to_base64());
    Ok(())
}

#[derive(clap::Args)]
pub struct SignCommandArgs {
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
    issued_at: Option<SystemTime>,
    /// Print a JWS (EdDSA) instead of the deprecated canonical-JSON form.
    #[arg(long)]
    jws: bool,
}

pub fn sign_command(args: SignCommandArgs) -> CliResult {
    let SignCommandArgs { key, name, args, nonce, issued_at, jws } = args;
    let fail = |message: String| CliError::Failed(format!("vigil sign-command: {message}"));
    let Ok(pem) = vigil::input::read_text_limited(&key, vigil::input::MAX_TEXT_BYTES) else {
        return Err(fail(format!("cannot read {}", key.display())));
    };
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.trim()) else {
        return Err(fail(format!("{} is not a PEM private key", key.display())));
    };
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der)
        .or_else(|_| ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der));
    let Ok(pair) = pair else { return Err(fail(format!("{} is not an Ed25519 PKCS#8 key", key.display()))) };
    let text = match args.strip_prefix('@') {
        Some(file) => vigil::input::read_text_limited(Path::new(file), vigil::input::MAX_JSON_BYTES)
            .map_err(|e| fail(format!("--args @{file}: {e}")))?,
        None => args.clone(),
    };
    let args: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return Err(fail("--args must be a JSON object".into())),
    };
    let nonce = nonce.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let issued_at = issued_at.unwrap_or_else(SystemTime::now);
    if jws {
        println!("{}", vigil::publish::commands::sign_jws(&pair, &name, args, issued_at, &nonce));
    } else {
        println!("{}", vigil::publish::commands::sign(&pair, &name, args, issued_at, &nonce));
    }
    Ok(())
}
