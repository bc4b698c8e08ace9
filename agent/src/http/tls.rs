//! The server's certificate: the operator's (`[http] tls_cert` / `tls_key`, PEM), or a self-signed one
//! made once in `<data_dir>/http/` (key mode 0600) for the box's host name and addresses. Its SHA-256
//! fingerprint is logged at every start: it is what a ward assistant compares when the phone asks
//! whether to trust the box (docs/ward-phones.md, "Certificate").

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::HttpSettings;
use crate::fsio;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls_cert {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("http.tls_key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the self-signed certificate in {path}: {message}")]
    SelfSigned { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate in use, for the log and the operator.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// SHA-256 of the leaf certificate (DER), upper-case hex pairs separated by colons, as browsers show it.
    pub fingerprint: String,
    pub cert_file: PathBuf,
    pub self_signed: bool,
}

/// The rustls configuration (ring provider, HTTP/1.1) and what certificate it serves.
pub fn server_config(
    settings: &HttpSettings,
    data_dir: &Path,
    names: &[String],
) -> Result<(Arc<rustls::ServerConfig>, CertInfo), TlsError> {
    let (chain, key, info) = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            let (chain, key) = load(cert, key)?;
            let info = CertInfo { fingerprint: fingerprint(&chain[0]), cert_file: cert.clone(), self_signed: false };
            (chain, key, info)
        }
        _ => {
            let dir = data_dir.join("http");
            let (chain, key) = self_signed(&dir, names)?;
            let info =
                CertInfo { fingerprint: fingerprint(&chain[0]), cert_file: dir.join("cert.pem"), self_signed: true };
            (chain, key, info)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("the certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), info))
}

fn load(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_error = |message: String| TlsError::Cert { path: cert.to_owned(), message };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: format!("no usable private key (PEM, PKCS#8, SEC1 or PKCS#1): {e}"),
    })?;
    Ok((chain, key))
}

/// The self-signed certificate in `dir`, made now if absent.
fn self_signed(
    dir: &Path,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    let error = |message: String| TlsError::SelfSigned { path: dir.to_owned(), message };
    if cert_file.exists() && key_file.exists() {
        let (chain, key) = load(&cert_file, &key_file)?;
        let missing: Vec<&String> = names.iter().filter(|n| !covers(&chain[0], n)).collect();
        if !missing.is_empty() {
            tracing::warn!(path = %cert_file.display(), missing = ?missing,
                "the self-signed certificate was made for other names than this box has now: phones reaching \
                 it by these names will refuse it; to make a new one, stop the agent, delete cert.pem and \
                 key.pem in this directory and start it (phones must then trust the new fingerprint)");
        }
        return Ok((chain, key));
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| error(e.to_string()))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("Vigil {}", names[0]));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(10 * 365);
    let key = rcgen::KeyPair::generate().map_err(|e| error(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| error(e.to_string()))?;
    fsio::create_dir(dir, fsio::PRIVATE_DIR).map_err(|e| error(e.to_string()))?;
    fsio::write(&key_file, pem("PRIVATE KEY", &key.serialize_der()).as_bytes(), fsio::PRIVATE_FILE)
        .map_err(|e| error(format!("{}: {e}", key_file.display())))?;
    fsio::write(&cert_file, pem("CERTIFICATE", cert.der()).as_bytes(), 0o644)
        .map_err(|e| error(format!("{}: {e}", cert_file.display())))?;
    tracing::warn!(path = %cert_file.display(), names = %names.join(", "),
        "no [http] tls_cert: made a self-signed certificate; phones must be told to trust it \
         (docs/ward-phones.md, \"Certificate\")");
    load(&cert_file, &key_file)
}

/// Whether `cert` names `name` among its subject alternative names (a DNS name or an IP address).
fn covers(cert: &[u8], name: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else { return false };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
    let ip: Option<IpAddr> = name.parse().ok();
    san.value.general_names.iter().any(|g| match (g, ip) {
        (GeneralName::DNSName(dns), None) => dns.eq_ignore_ascii_case(name),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V4(v4))) => *bytes == v4.octets(),
        (GeneralName::IPAddress(bytes), Some(IpAddr::V6(v6))) => *bytes == v6.octets(),
        _ => false,
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// `AB:CD:…`: the SHA-256 of a certificate as browsers and `openssl x509 -fingerprint -sha256` show it.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The names a self-signed certificate is made for: the host name, the host of `public_url`, and the
/// listen address when it is a specific one (a wildcard address names no one).
pub fn certificate_names(settings: &HttpSettings, host_name: &str) -> Vec<String> {
    let mut names = vec![host_name.to_owned()];
    if let Some(host) = settings.public_url.as_deref().and_then(url_host) {
        names.push(host);
    }
    if let Some(addr) = settings.listen_addr().filter(|a| !a.ip().is_unspecified()) {
        names.push(addr.ip().to_string());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The host of an `https://host[:port][/…]` URL (brackets of an IPv6 literal removed).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.to_owned(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_owned(),
    };
    if host.is_empty() { None } else { Some(host.parse::<IpAddr>().map_or(host, |ip| ip.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listen: &str, public_url: Option<&str>) -> HttpSettings {
        let mut text = format!("listen = {listen:?}\n");
        if let Some(url) = public_url {
            text.push_str(&format!("public_url = {url:?}\n"));
        }
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn names_come_from_the_host_the_url_and_a_specific_listen_address() {
        assert_eq!(certificate_names(&settings("0.0.0.0:8443", None), "box3"), vec!["box3"]);
        assert_eq!(
            certificate_names(&settings("10.1.2.3:8443", Some("https://vigil-ward3.lan:8443/")), "box3"),
            vec!["box3", "vigil-ward3.lan", "10.1.2.3"]
        );
        assert_eq!(
            certificate_names(&settings("[::]:8443", Some("https://[fd00::7]:8443")), "box3"),
            vec!["box3", "fd00::7"]
        );
    }

    /// Made once, key private, reused at the next start (same fingerprint).
    #[test]
    fn the_self_signed_certificate_is_made_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = settings("127.0.0.1:8443", None);
        let names = certificate_names(&s, "box3");
        let (_, first) = server_config(&s, dir.path(), &names).unwrap();
        assert!(first.self_signed && first.fingerprint.len() == 32 * 3 - 1, "{first:?}");
        let mode = std::fs::metadata(dir.path().join("http/key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, again) = server_config(&s, dir.path(), &names).unwrap();
        assert_eq!(again.fingerprint, first.fingerprint);
        let pem = std::fs::read(dir.path().join("http/cert.pem")).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(fingerprint(&der), first.fingerprint);
        for name in &names {
            assert!(covers(&der, name), "{name} not in the certificate");
        }
        assert!(!covers(&der, "other-box") && !covers(&der, "10.9.9.9"));
    }

    #[test]
    fn a_missing_or_bad_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let text = format!("tls_cert = {:?}\ntls_key = {:?}\n", cert, dir.path().join("missing.pem"));
        let s: HttpSettings = toml::from_str(&text).unwrap();
        let err = server_config(&s, dir.path(), &["x".into()]).unwrap_err().to_string();
        assert!(err.starts_with("http.tls_cert") && err.contains("c.pem"), "{err}");
    }
}
