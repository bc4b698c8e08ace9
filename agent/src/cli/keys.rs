//! `vigil keys init|public` (the device's Ed25519 key) and `vigil sign-command` (a command signed as the
//! platform signs it).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use vigil::evidence::credentials::{self, Credentials, CredentialsError};
use vigil::evidence::keys::{DeviceKey, KeyError};

use super::{CliError, CliResult, load_config, parse_time};

#[derive(clap::Subcommand)]
pub enum Keys {
    /// Create the device key (mode 0600) and self-issue its certificate for Content Credentials
    /// (<data_dir>/keys/device-cert.pem, valid 10 years). Refuses to replace an existing key; on a key
    /// that has no certificate yet, makes just the certificate.
    Init {
        /// The key of this config's device (`evidence.key_file`).
        #[arg(long, short, required_unless_present = "file", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// Or a key at this path (e.g. a platform key for `vigil sign-command`); no certificate.
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
    /// Print a PKCS#10 certificate signing request (PEM) for the device key, for the platform's CA:
    /// subject CN=<site>/<device>, key usage digitalSignature, extended key usages emailProtection and
    /// documentSigning (what C2PA requires of a signing certificate).
    Csr {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Install the certificate chain the platform's CA issued (PEM, the device's certificate first,
    /// then its issuers) as <data_dir>/keys/device-cert.pem, replacing the self-issued one atomically.
    /// Refuses a chain whose first certificate is not for this device's key, lacks what C2PA requires,
    /// or is out of order. Takes effect at the next `vigil run`.
    InstallCert {
        #[arg(long, short)]
        config: PathBuf,
        /// The chain, PEM.
        file: PathBuf,
    },
}

pub fn keys(keys: Keys) -> CliResult {
    let fail = |e: &dyn std::fmt::Display| CliError::Failed(format!("vigil keys: {e}"));
    let (config_file, key_file, init) = match keys {
        Keys::Init { config, file } => (config, file, true),
        Keys::Public { config, file } => (config, file, false),
        Keys::Csr { config } => {
            let config = load_config(&config)?;
            let key = DeviceKey::load(&config.storage.key_file(&config.evidence)).map_err(|e| fail(&e))?;
            let request = credentials::csr(&key, &config.site.id, &config.site.device_id).map_err(|e| fail(&e))?;
            print!("{request}");
            return Ok(());
        }
        Keys::InstallCert { config, file } => {
            let config = load_config(&config)?;
            let key = DeviceKey::load(&config.storage.key_file(&config.evidence)).map_err(|e| fail(&e))?;
            let dest = credentials::cert_path(&config.storage.data_dir);
            let n = credentials::install(&dest, &file, &key).map_err(|e| fail(&e))?;
            let installed = Credentials::load(&dest, &key).map_err(|e| fail(&e))?;
            eprintln!(
                "device certificate installed: {} ({n} certificate{}, subject {}); restart vigil to sign with it",
                dest.display(),
                if n == 1 { "" } else { "s" },
                installed.subject()
            );
            return Ok(());
        }
    };
    let (path, identity) = match (config_file, key_file) {
        (_, Some(path)) => (path, None),
        (Some(file), None) => {
            let config = load_config(&file)?;
            let cert = credentials::cert_path(&config.storage.data_dir);
            (config.storage.key_file(&config.evidence), Some((cert, config.site.id, config.site.device_id)))
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let without_cert = identity.as_ref().is_some_and(|(cert, _, _)| !cert.exists());
    let (key, created) = match init {
        true => match DeviceKey::init(&path) {
            Ok(key) => (key, true),
            // An existing key without a certificate (made before Vigil had them): make just the certificate.
            Err(KeyError::Exists(_)) if without_cert => (DeviceKey::load(&path).map_err(|e| fail(&e))?, false),
            Err(e) => return Err(fail(&e)),
        },
        false => (DeviceKey::load(&path).map_err(|e| fail(&e))?, false),
    };
    if created {
        eprintln!("device key created: {} (mode 0600)", path.display());
    }
    if init {
        if let Some((cert, site, device)) = &identity {
            // A new key (the old one was lost): a certificate left from the old key is of no use.
            if created && matches!(Credentials::load(cert, &key), Err(CredentialsError::WrongKey { .. })) {
                credentials::reissue(cert, &key, site, device).map_err(|e| fail(&e))?;
                eprintln!("device certificate {} was for another key: replaced by a self-issued one", cert.display());
            }
            let (_, issued) = Credentials::load_or_issue(cert, &key, site, device).map_err(|e| fail(&e))?;
            if issued {
                eprintln!(
                    "device certificate self-issued: {} (C2PA; `vigil keys csr` for the platform's CA)",
                    cert.display()
                );
            }
        }
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
