//! The `[http]` section of the configuration (`config` embeds it): defaults and documentation here,
//! once; [`HttpSettings::problems`] says what is wrong with it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The HTTPS server. Without an `[http]` section the agent serves nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address and port to listen on (default "0.0.0.0:8443").
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The server's certificate chain (PEM). Unset: a self-signed certificate is made at first start in
    /// `<data_dir>/http/` and its SHA-256 fingerprint logged (phones must trust it once).
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM, PKCS#8 or SEC1); required with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS: allowed on a loopback address, or anywhere when
    /// `insecure_plain_http` is also set (behind a TLS-terminating proxy). Default false.
    #[serde(default)]
    pub plain_http: bool,
    /// Required to serve plain HTTP on a non-loopback address (default false).
    #[serde(default)]
    pub insecure_plain_http: bool,
    /// The address phones reach the box at, used in enrolment links (e.g. "https://vigil-ward3.lan:8443").
    /// Unset: `https://<listen address>` (a wildcard listen address is replaced by the host name).
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes (default 10 MiB: a phone photo).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Seconds a request may take, upload included, before it is answered 408 (default 60).
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Uploads being checked at once; more wait in line (default 4). Bounds memory under a burst.
    #[serde(default = "default_max_concurrent_uploads")]
    pub max_concurrent_uploads: usize,
    /// Requests per minute one client address may make to the phones' page and API before it is answered
    /// 429 (default 120); the console allows ten times as many (its page refreshes camera frames).
    #[serde(default = "default_rate_limit_per_minute")]
    pub rate_limit_per_minute: u32,
    /// Not a setting: only files of older versions have it. Their `[http]` (`enabled`, `listen`,
    /// `tls_cert`, `tls_key`) was documented but never served; a section with `enabled` is taken for
    /// one of those and ignored, with a warning naming what to change ([`HttpSettings::old_section`]),
    /// so an upgraded box keeps running and opens no port nobody chose.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn default_listen() -> String {
    "0.0.0.0:8443".to_owned()
}
fn default_max_body_bytes() -> u64 {
    10 << 20
}
fn default_request_timeout_secs() -> u64 {
    60
}
fn default_max_concurrent_uploads() -> usize {
    4
}
fn default_rate_limit_per_minute() -> u32 {
    120
}

impl HttpSettings {
    /// The listen address, when it parses.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// When this is an older version's `[http]` (it has `enabled`): the warning that says it is ignored
    /// and what to change.
    pub fn old_section(&self) -> Option<String> {
        let enabled = self.enabled?;
        let wanted = if enabled {
            "to serve the ward phones' page now, remove `enabled` and check `listen` (an address and port, \
             default 0.0.0.0:8443), `tls_cert` and `tls_key` against config/vigil.example.toml"
        } else {
            "remove the section (it asked for nothing), or remove `enabled` to serve the ward phones' page"
        };
        Some(format!(
            "[http] has `enabled = {enabled}`, a field of an older version whose [http] was never served: the \
             section is ignored and no HTTP is served; {wanted}"
        ))
    }

    /// Every problem with these settings: (field within `[http]`, message). Pure: no file is read. An
    /// older version's section ([`HttpSettings::old_section`]) has none: it is ignored.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.old_section().is_some() {
            return problems;
        }
        match self.listen_addr() {
            None => problems
                .push(("listen", format!("must be an address and port like \"0.0.0.0:8443\", got {:?}", self.listen))),
            Some(addr) if self.plain_http && !addr.ip().is_loopback() && !self.insecure_plain_http => problems.push((
                "plain_http",
                format!(
                    "plain HTTP on {addr} would send phones' photos unencrypted: listen on 127.0.0.1, or set \
                     insecure_plain_http = true when a TLS proxy is in front"
                ),
            )),
            Some(_) => {}
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => problems.push(("tls_key", "missing: tls_cert is set, so its key is needed".to_owned())),
            (None, Some(_)) => {
                problems.push(("tls_cert", "missing: tls_key is set, so its certificate is needed".to_owned()))
            }
            _ => {}
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push(("public_url", format!("must start with https:// (or http://), got {url:?}")));
        }
        if !(64 << 10..=100 << 20).contains(&self.max_body_bytes) {
            problems.push(("max_body_bytes", format!("must be 65536..104857600, got {}", self.max_body_bytes)));
        }
        if !(5..=600).contains(&self.request_timeout_secs) {
            problems.push(("request_timeout_secs", format!("must be 5..600, got {}", self.request_timeout_secs)));
        }
        if !(1..=64).contains(&self.max_concurrent_uploads) {
            problems.push(("max_concurrent_uploads", format!("must be 1..64, got {}", self.max_concurrent_uploads)));
        }
        if !(1..=100_000).contains(&self.rate_limit_per_minute) {
            problems.push(("rate_limit_per_minute", format!("must be 1..100000, got {}", self.rate_limit_per_minute)));
        }
        problems
    }
}

impl HttpSettings {
    /// What enrolment links start with: `public_url`, or the scheme and the listen address, a wildcard
    /// address replaced by `host_name`.
    pub fn public_url_or(&self, host_name: &str) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.plain_http { "http" } else { "https" };
        match self.listen_addr() {
            Some(addr) if addr.ip().is_unspecified() => format!("{scheme}://{host_name}:{}", addr.port()),
            Some(addr) => format!("{scheme}://{addr}"),
            None => format!("{scheme}://{host_name}"),
        }
    }
}

/// `[metrics]`: `/metrics`, `/healthz` and `/readyz` on a listener of their own, plain HTTP. Without the
/// section the agent serves them at the default address when `[http]` is off (with `[http]` they are on
/// the HTTPS server); with it, as it says, whether `[http]` is on or not.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address and port to listen on (default "127.0.0.1:9464", loopback: a local Prometheus or agent
    /// scrapes it).
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    /// Required to listen on a non-loopback address: the listener is plain HTTP without authentication,
    /// and anyone who reaches it reads the metrics (camera ids, counts; never a person). Default false.
    #[serde(default)]
    pub insecure_plain_http: bool,
    /// false: no metrics listener at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".to_owned()
}
fn default_true() -> bool {
    true
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { listen: default_metrics_listen(), insecure_plain_http: false, enabled: true }
    }
}

impl MetricsSettings {
    /// The listen address, when it parses.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// Every problem with these settings: (field within `[metrics]`, message). Pure.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match self.listen_addr() {
            None => problems.push((
                "listen",
                format!("must be an address and port like \"127.0.0.1:9464\", got {:?}", self.listen),
            )),
            Some(addr) if !addr.ip().is_loopback() && !self.insecure_plain_http => problems.push((
                "listen",
                format!(
                    "{addr} is not a loopback address: the metrics listener is plain HTTP without authentication; \
                     listen on 127.0.0.1, or set insecure_plain_http = true to serve it on the network"
                ),
            )),
            Some(_) => {}
        }
        problems
    }
}

/// This machine's host name (what a self-signed certificate and a default public URL name).
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}
