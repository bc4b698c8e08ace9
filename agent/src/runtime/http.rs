//! The HTTPS server as `vigil run` runs it: started with the agent when `[http]` is set, stopped at the
//! first phase of the shutdown (no new requests; uploads being checked finish and are recorded before
//! the decision and evidence workers drain).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::console::Store;
use crate::http::console_people::PeopleService;
use crate::http::{ConsoleApi, Operations, PhoneApi, Server};
use crate::phones::registry::Registry;
use crate::phones::service::Checkins;

/// Starts the server when the configuration has a (current) `[http]` section, with the operations
/// endpoints reading `ops` (the agent's metrics and readiness) and the console on `console` (the store
/// [`open_console`] opened when `[console]` is enabled), its events reading `events`, its people pages reading
/// `people`.
pub fn start(
    config: &Config,
    registry: Arc<Registry>,
    checkins: Arc<dyn Checkins>,
    ops: Arc<dyn Operations>,
    console: Option<Arc<Store>>,
    events: Option<Arc<dyn crate::http::console_events::Evidence>>,
    people: Arc<dyn PeopleService>,
    cameras: Arc<dyn crate::http::console_cameras::ConsoleCameras>,
) -> anyhow::Result<Option<Server>> {
    let Some(settings) = config.http() else {
        return Ok(None);
    };
    let api = PhoneApi {
        registry,
        checkins,
        skew: Duration::from_secs(config.phones.skew_secs),
        max_body_bytes: settings.max_body_bytes,
    };
    let console = console.map(|store| ConsoleApi {
        store,
        policy: config.console.policy(),
        events,
        people,
        cameras: Some(cameras),
    });
    Ok(Some(Server::start(settings, &config.storage.data_dir, api, console, Some(ops))?))
}

/// The console's store of the data directory (`vigil users` opens the same file).
pub fn open_console(config: &Config) -> anyhow::Result<Arc<Store>> {
    Ok(Arc::new(Store::open(&Store::path_in(&config.storage.data_dir))?))
}

/// The phone registry of the data directory (the CLI opens the same file).
pub fn open_registry(config: &Config) -> anyhow::Result<Arc<Registry>> {
    let registry = Registry::open(&Registry::path_in(&config.storage.data_dir))?;
    Ok(Arc::new(registry))
}

/// A new phone for `ward` (physician mode when `physician` is given) and its enrolment link: what
/// `vigil phones add` and the `phone_add` command do. Refuses an unknown ward, a bad physician id, and
/// a box that serves no phone page (no `[http]`: the link would lead nowhere).
pub fn invite(
    config: &Config,
    registry: &Registry,
    ward: &str,
    name: &str,
    physician: Option<&str>,
    now: std::time::SystemTime,
) -> Result<(crate::phones::registry::Invitation, String), String> {
    let Some(http) = config.http() else {
        return Err(match config.http.as_ref().and_then(|h| h.old_section()) {
            Some(old) => format!("the box serves no phone page: {old}"),
            None => "the box serves no phone page: add an [http] section (config/vigil.example.toml), restart \
                     the agent, then add the phone"
                .to_owned(),
        });
    };
    if !config.wards.iter().any(|w| w.id == ward) {
        let known: Vec<&str> = config.wards.iter().map(|w| w.id.as_str()).collect();
        return Err(if known.is_empty() {
            format!("no ward {ward:?}: the configuration has no [[wards]]")
        } else {
            format!("no ward {ward:?} in [[wards]] (known: {})", known.join(", "))
        });
    }
    if let Some(id) = physician
        && !crate::gallery::enrol::valid_id(id)
    {
        return Err(format!("physician {id:?}: use 1..64 letters, digits, '-' and '_' (the roster's id)"));
    }
    let new = crate::phones::registry::NewPhone {
        ward: ward.to_owned(),
        name: name.trim().to_owned(),
        mode: if physician.is_some() { crate::phones::Mode::Physician } else { crate::phones::Mode::Bedside },
        physician: physician.map(str::to_owned),
    };
    let ttl = Duration::from_secs(config.phones.enrol_link_ttl_mins * 60);
    let invitation = registry.add(new, ttl, now).map_err(|e| e.to_string())?;
    let link = invitation.link(&http.public_url_or(&crate::http::settings::host_name()));
    Ok((invitation, link))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[site]\nid = \"h\"\ndevice_id = \"d\"\n{extra}\n[[wards]]\nid = \"ward-3\"\n\
             geofence = {{ center = [31.2, 121.4], radius_m = 80 }}\n"
        );
        let config = crate::config::parse(Path::new("x.toml"), &text).unwrap();
        assert!(crate::config::validate(&config).is_empty(), "{:?}", crate::config::validate(&config));
        config
    }

    #[test]
    fn a_phone_is_invited_only_to_a_known_ward_of_a_box_that_serves_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&Registry::path_in(dir.path())).unwrap();
        let now = SystemTime::now();
        let served = config("[http]\npublic_url = \"https://vigil-ward3.lan:8443/\"\n");
        let (invitation, link) = invite(&served, &registry, "ward-3", " Li Na ", None, now).unwrap();
        assert_eq!(link, format!("https://vigil-ward3.lan:8443/ward/#enrol={}", invitation.token));
        assert_eq!(invitation.phone.name, "Li Na");
        let ttl = invitation.expires_at.duration_since(now).unwrap_or_default();
        assert!(ttl <= Duration::from_secs(1440 * 60) && ttl > Duration::from_secs(1440 * 60 - 1), "{ttl:?}");
        let err = invite(&served, &registry, "ward-9", "X", None, now).unwrap_err();
        assert!(err.contains("no ward \"ward-9\"") && err.contains("known: ward-3"), "{err}");
        let err = invite(&served, &registry, "ward-3", "X", Some("dr wang"), now).unwrap_err();
        assert!(err.contains("physician \"dr wang\""), "{err}");
        let (doctor, _) = invite(&served, &registry, "ward-3", "Dr Wang", Some("dr-wang"), now).unwrap();
        assert_eq!(doctor.phone.mode, crate::phones::Mode::Physician);

        let err = invite(&config(""), &registry, "ward-3", "X", None, now).unwrap_err();
        assert!(err.contains("add an [http] section"), "{err}");
        let err = invite(&config("[http]\nenabled = true\n"), &registry, "ward-3", "X", None, now).unwrap_err();
        assert!(err.contains("remove `enabled`"), "{err}");
        assert_eq!(registry.list().unwrap().len(), 2, "a refused invitation adds nothing");
    }
}
