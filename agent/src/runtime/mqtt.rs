//! The publisher's settings from the configuration (credentials, TLS files, the platform's key).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::evidence::keys::PublicKey;
use crate::publish::publisher::{PublisherSettings, TlsFiles};

pub fn publisher_settings(
    config: &Config,
    mqtt: &crate::config::Mqtt,
    base: &str,
) -> anyhow::Result<PublisherSettings> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).with_context(|| format!("mqtt: cannot read the {what} {}", path.display()))
    };
    let credentials = match (&mqtt.username, &mqtt.password_file) {
        (Some(user), Some(file)) => {
            let text = String::from_utf8(read(file, "password file")?).context("mqtt.password_file is not UTF-8")?;
            Some((user.clone(), text.lines().next().unwrap_or("").to_owned()))
        }
        (Some(user), None) => Some((user.clone(), String::new())),
        _ => None,
    };
    let tls = match &mqtt.tls {
        Some(tls) => Some(TlsFiles {
            ca: read(&tls.ca_file, "CA file")?,
            client: match (&tls.client_cert, &tls.client_key) {
                (Some(cert), Some(key)) => Some((read(cert, "client certificate")?, read(key, "client key")?)),
                _ => None,
            },
        }),
        None => None,
    };
    let platform_key = match &mqtt.platform_public_key {
        Some(text) => {
            let pem = std::fs::read_to_string(text).unwrap_or_else(|_| text.clone());
            Some(PublicKey::parse(&pem).with_context(|| {
                format!("mqtt.platform_public_key: {text:?} is neither a PEM public key file nor base64 of 32 bytes")
            })?)
        }
        None => None,
    };
    Ok(PublisherSettings {
        host: mqtt.host.clone(),
        port: mqtt.port.unwrap_or(if mqtt.tls.is_some() { 8883 } else { 1883 }),
        client_id: mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("vigil-{}-{}", config.site.id, config.site.device_id)),
        credentials,
        keepalive: Duration::from_secs(mqtt.keepalive_secs),
        tls,
        base_topic: base.to_owned(),
        inflight: mqtt.inflight,
        platform_key,
        command_window: Duration::from_secs(mqtt.command_window_secs),
    })
}

/// Sends each delivered record's evidence bundle to the acknowledgement task (the publisher does not
/// touch evidence files, and must not wait for the store).
pub fn acknowledge_bundles(
    acks: std::sync::mpsc::Sender<super::evidence::Ack>,
) -> std::sync::Arc<dyn Fn(&crate::publish::publisher::Delivered) + Send + Sync> {
    std::sync::Arc::new(move |delivered: &crate::publish::publisher::Delivered| {
        if let Some(event) = &delivered.evidence {
            if acks.send((event.clone(), std::time::SystemTime::now())).is_err() {
                tracing::warn!(event, "the acknowledgement task has stopped: the bundle stays unacknowledged");
            }
        }
    })
}
