//! Checks a parsed configuration and reports **every** problem, each naming the field path and the bad
//! value, so an operator fixes a file in one pass. Pure: no file system, no network.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::raw::{Camera, Config, HttpSettings, Role};
use crate::redact::redact_url;

/// One problem in the configuration, e.g. `cameras[2].regions.bed-7: polygon needs ≥3 points, got 2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field in the file: `site.id`, `cameras[2].url`, `cameras[0].regions.bed-7[1]`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects errors as validation walks the tree.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }
}

/// Returns all problems found in `config`; empty when it is valid.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Errors::default();
    check_id(&mut errors, "site.id", &config.site.id);
    check_id(&mut errors, "site.device_id", &config.site.device_id);
    check_storage(&mut errors, config);

    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (index, camera) in config.cameras.iter().enumerate() {
        let path = format!("cameras[{index}]");
        check_camera(&mut errors, &path, camera);
        if let Some(previous) = first_use.insert(&camera.id, index) {
            // Keep pointing at the first use so a third duplicate names the same original.
            first_use.insert(&camera.id, previous);
            errors.add(
                format!("{path}.id"),
                format!("duplicate camera id {:?}, already used by cameras[{previous}]", camera.id),
            );
        }
    }

    if let Some(mqtt) = &config.mqtt {
        if mqtt.host.trim().is_empty() {
            errors.add("mqtt.host", "must not be empty");
        }
        if mqtt.port == Some(0) {
            errors.add("mqtt.port", "must be 1..65535, got 0");
        }
        if let Some(client_id) = &mqtt.client_id {
            if client_id.is_empty() || client_id.len() > 128 {
                errors.add("mqtt.client_id", format!("must be 1..128 characters, got {}", client_id.len()));
            }
        }
        if !(5..=3600).contains(&mqtt.keepalive_secs) {
            errors.add("mqtt.keepalive_secs", format!("must be 5..3600 seconds, got {}", mqtt.keepalive_secs));
        }
        let prefix = &mqtt.topic_prefix;
        if prefix.is_empty() || prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(['+', '#', '\0']) {
            errors.add(
                "mqtt.topic_prefix",
                format!(
                    "{prefix:?} is not a usable topic prefix (non-empty, no leading or trailing '/', no '+' or '#')"
                ),
            );
        }
        check_optional_path(&mut errors, "mqtt.password_file", mqtt.password_file.as_deref());
        if !(1..=1000).contains(&mqtt.inflight) {
            errors.add("mqtt.inflight", format!("must be 1..1000, got {}", mqtt.inflight));
        }
        if !(10..=86_400).contains(&mqtt.command_window_secs) {
            errors.add(
                "mqtt.command_window_secs",
                format!("must be 10..86400 seconds, got {}", mqtt.command_window_secs),
            );
        }
        if mqtt.platform_public_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            errors.add("mqtt.platform_public_key", "must not be empty (a PEM file path or base64 of 32 bytes)");
        }
        if let Some(tls) = &mqtt.tls {
            check_path(&mut errors, "mqtt.tls.ca_file", &tls.ca_file);
            check_optional_path(&mut errors, "mqtt.tls.client_cert", tls.client_cert.as_deref());
            check_optional_path(&mut errors, "mqtt.tls.client_key", tls.client_key.as_deref());
            match (&tls.client_cert, &tls.client_key) {
                (Some(_), None) => {
                    errors.add("mqtt.tls.client_key", "missing: client_cert is set, so its key is needed")
                }
                (None, Some(_)) => {
                    errors.add("mqtt.tls.client_cert", "missing: client_key is set, so its certificate is needed")
                }
                _ => {}
            }
        }
    }

    for (field, message) in config.models.problems() {
        errors.add(format!("models.{field}"), message);
    }

    let faces = &config.faces;
    if !(faces.match_distance > 0.0 && faces.match_distance < 2.0) {
        errors.add(
            "faces.match_distance",
            format!("must be between 0 and 2 (dlib's model uses 0.6), got {}", faces.match_distance),
        );
    }
    check_score(&mut errors, "faces.detector_threshold", faces.detector_threshold);
    // Negative or NaN would let every face through the size gate (and NaN compares false both ways).
    if !(MIN_FACE_PX_RANGE.0..=MIN_FACE_PX_RANGE.1).contains(&faces.min_face_px) {
        errors.add(
            "faces.min_face_px",
            format!(
                "must be {}..{} pixels (the shorter side of a face's box), got {}",
                MIN_FACE_PX_RANGE.0, MIN_FACE_PX_RANGE.1, faces.min_face_px
            ),
        );
    }
    if !(faces.detector_face_px == 0.0 || (16.0..=4096.0).contains(&faces.detector_face_px)) {
        errors.add(
            "faces.detector_face_px",
            format!("must be 0 (off) or 16..4096 pixels, got {}", faces.detector_face_px),
        );
    }
    if !(64..=4096).contains(&faces.detector_max_side) {
        errors.add("faces.detector_max_side", format!("must be 64..4096 pixels, got {}", faces.detector_max_side));
    }
    for (field, value) in
        [("faces.min_sharpness", faces.min_sharpness), ("faces.min_sharpness_video", faces.min_sharpness_video)]
    {
        if !(0.0..=10_000.0).contains(&value) {
            errors.add(field, format!("must be 0..10000, got {value}"));
        }
    }
    check_score(&mut errors, "persons.detector_threshold", config.persons.detector_threshold);

    for (section, problems) in [
        ("settlement", config.settlement.problems()),
        ("liveness", config.liveness.problems()),
        ("physicians", config.physicians.problems()),
        ("presence", config.presence.problems()),
        ("dialysis", config.dialysis.problems()),
    ] {
        for (field, message) in problems {
            errors.add(format!("{section}.{field}"), message);
        }
    }
    check_optional_path(&mut errors, "roster.file", config.roster.file.as_deref());

    // The seed is not known here (it may be made at first start): check with a stand-in.
    if let Err(problems) = config.rollcalls.schedule(config.rollcalls.seed.unwrap_or(1)) {
        for (field, message) in problems {
            errors.add(&field, message);
        }
    }
    for (field, message) in config.tamper.problems() {
        errors.add(format!("tamper.{field}"), message);
    }

    for (field, message) in config.evidence.problems() {
        errors.add(format!("evidence.{field}"), message);
    }
    for (field, message) in config.outbox.problems() {
        errors.add(format!("outbox.{field}"), message);
    }
    if let Some(http) = &config.http {
        for (field, message) in http.problems() {
            errors.add(format!("http.{field}"), message);
        }
    }
    if let Some(metrics) = &config.metrics {
        for (field, message) in metrics.problems() {
            errors.add(format!("metrics.{field}"), message);
        }
        // Two listeners cannot share a port (port 0, "any free port", can).
        let same = |http: &HttpSettings| {
            let (a, b) = (http.listen_addr(), metrics.listen_addr());
            a.is_some_and(|a| a.port() != 0 && Some(a) == b)
        };
        if metrics.enabled && config.http().is_some_and(same) {
            errors.add("metrics.listen", format!("{} is [http]'s listen address: choose another port", metrics.listen));
        }
    }
    for (field, message) in config.phones.problems() {
        errors.add(format!("phones.{field}"), message);
    }
    for (field, message) in config.console.problems() {
        errors.add(format!("console.{field}"), message);
    }
    let mut ward_ids = std::collections::HashSet::new();
    for (i, ward) in config.wards.iter().enumerate() {
        for (field, message) in ward.problems() {
            errors.add(format!("wards[{i}].{field}"), message);
        }
        if !ward_ids.insert(ward.id.as_str()) {
            errors.add(format!("wards[{i}].id"), format!("{:?} is used by two wards", ward.id));
        }
        for camera in &ward.cameras {
            match config.cameras.iter().find(|c| &c.id == camera) {
                None => errors.add(format!("wards[{i}].cameras"), format!("no camera {camera:?}")),
                Some(c) if c.role != Role::Ward => errors.add(
                    format!("wards[{i}].cameras"),
                    format!("{camera:?} is a {} camera, not a ward camera", c.role.as_str()),
                ),
                Some(_) => {}
            }
        }
    }

    let retention = &config.retention;
    if retention.recordings_max_bytes_per_camera.0 < 100 << 20 {
        errors.add(
            "retention.recordings_max_bytes_per_camera",
            format!(
                "must be at least 100 MiB (a few minutes of HD video), got {}",
                retention.recordings_max_bytes_per_camera
            ),
        );
    }
    if retention.evidence_days == 0 {
        errors.add("retention.evidence_days", "must be at least 1 day, got 0");
    }

    errors.0
}

/// Smallest and largest `faces.min_face_px`: below 10 px a face has no features left to match; above
/// 4096 px no face in a frame or photo Vigil accepts could pass.
const MIN_FACE_PX_RANGE: (f32, f32) = (10.0, 4096.0);

/// Ids appear in MQTT topics and file names: keep them to a safe alphabet.
fn check_id(errors: &mut Errors, path: &str, id: &str) {
    if id.is_empty() {
        errors.add(path, "must not be empty");
    } else if id.len() > 64 {
        errors.add(path, format!("{id:?} is longer than 64 characters"));
    } else if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        errors.add(path, format!("{id:?} contains {bad:?}; use letters, digits, '-' and '_' only"));
    }
}

fn check_score(errors: &mut Errors, path: &str, value: f32) {
    if !(value > 0.0 && value < 1.0) {
        errors.add(path, format!("must be a score strictly between 0 and 1, got {value}"));
    }
}

fn check_path(errors: &mut Errors, path: &str, value: &Path) {
    if value.as_os_str().is_empty() {
        errors.add(path, "must not be empty");
    }
}

fn check_optional_path(errors: &mut Errors, path: &str, value: Option<&Path>) {
    if let Some(value) = value {
        check_path(errors, path, value);
    }
}

fn check_storage(errors: &mut Errors, config: &Config) {
    let storage = &config.storage;
    check_path(errors, "storage.data_dir", &storage.data_dir);
    check_optional_path(errors, "storage.recordings_dir", storage.recordings_dir.as_deref());
    check_optional_path(errors, "storage.evidence_dir", storage.evidence_dir.as_deref());
}

/// Patterns of GStreamer's `videotestsrc` offered as `test://PATTERN`.
pub const TEST_PATTERNS: &[&str] = &["smpte", "ball", "snow", "black", "white", "gradient"];

fn check_camera(errors: &mut Errors, path: &str, camera: &Camera) {
    check_id(errors, &format!("{path}.id"), &camera.id);
    check_source_url(errors, &format!("{path}.url"), &camera.url);
    if let Some(url) = &camera.detect_url {
        check_source_url(errors, &format!("{path}.detect_url"), url);
    }
    if camera.decode.is_some() && camera.keyframes_only.is_some() {
        errors.add(
            format!("{path}.keyframes_only"),
            "set either decode or keyframes_only (its older spelling), not both",
        );
    }

    if let Some(fps) = camera.analysis_fps {
        if !(fps > 0.0 && fps <= 30.0) {
            errors.add(format!("{path}.analysis_fps"), format!("must be above 0 and at most 30, got {fps}"));
        } else if !camera.keyframes_only() && 1.0 / fps >= camera.stall_secs as f64 {
            // The stall detector counts analysed frames: slower than it, a healthy camera would restart.
            errors.add(
                format!("{path}.analysis_fps"),
                format!(
                    "{fps} is one frame every {:.1} s, not within stall_secs ({}): raise analysis_fps or stall_secs",
                    1.0 / fps,
                    camera.stall_secs
                ),
            );
        }
    }
    if let Some(width) = camera.analysis_max_width.filter(|w| !(160..=3840).contains(w)) {
        errors.add(format!("{path}.analysis_max_width"), format!("must be 160..3840 pixels, got {width}"));
    }
    if !(2..=600).contains(&camera.stall_secs) {
        errors.add(format!("{path}.stall_secs"), format!("must be 2..600 seconds, got {}", camera.stall_secs));
    }
    if camera.loop_file && !camera.url.starts_with("file://") {
        errors.add(format!("{path}.loop"), "only file:// sources can loop");
    }
    if camera.role == Role::Ward && camera.regions.is_empty() {
        errors.add(format!("{path}.regions"), "a ward camera needs at least one bed region; none given");
    }
    if camera.role == Role::SettlementWindow && !camera.regions.is_empty() {
        let names: Vec<&str> = camera.regions.keys().map(String::as_str).collect();
        errors.add(
            format!("{path}.regions"),
            format!("a settlement_window camera has no beds or chairs (got {}); use face_window", names.join(", ")),
        );
    }
    if let Some(window) = &camera.face_window {
        if camera.role == Role::SettlementWindow {
            check_polygon(errors, &format!("{path}.face_window"), window);
        } else {
            errors.add(
                format!("{path}.face_window"),
                format!("only a settlement_window camera has a face window; this one is {}", camera.role.as_str()),
            );
        }
    }
    for (name, points) in &camera.regions {
        let region_path = format!("{path}.regions.{name}");
        check_id(errors, &region_path, name);
        check_polygon(errors, &region_path, points);
    }
}

fn check_source_url(errors: &mut Errors, path: &str, url: &str) {
    let shown = redact_url(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        errors.add(path, format!("{shown:?} is not a URL; expected rtsp://, rtsps://, file:// or test://"));
        return;
    };
    match scheme {
        "rtsp" | "rtsps" => {
            // The authority ends at the first '/', '?' or '#' (RFC 3986); the user info in it ends at its
            // last '@'. GStreamer's RTSP URL parser ends the user info at the first '@' instead, so a
            // literal '@' in a password must be refused as well as a '/'.
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let path_part = tail.split(['?', '#']).next().unwrap_or("");
            let host_port = authority.rsplit('@').next().unwrap_or("");
            let (host, port) = match host_port.strip_prefix('[') {
                // An IPv6 literal: [::1]:554.
                Some(v6) => match v6.split_once(']') {
                    Some((h, after)) => (h, after.strip_prefix(':')),
                    None => ("", None),
                },
                None => match host_port.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (host_port, None),
                },
            };
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
            let cut_short = !authority.contains('@') && tail.contains('@') && (path_part.contains('@') || !port_ok);
            if cut_short || authority.matches('@').count() > 1 {
                // `rtsp://admin:pa/ss@cam/live`: a '/' (or '?', '#') in the password cuts the authority
                // short, so the camera would be dialled at host "admin" and the password taken for a path.
                // The URL is not shown: the redaction cannot find a password the URL does not delimit.
                errors.add(
                    path,
                    "the user name or password contains '/', '?', '#' or '@' (or the path contains '@'): \
                     percent-encode them ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40); the URL is not \
                     shown because it holds a password",
                );
            } else if host.is_empty() {
                errors.add(path, format!("{shown:?} has no host"));
            } else if !port_ok {
                errors.add(path, format!("{shown:?}: the port must be a number 1..65535"));
            }
        }
        "file" => {
            if !rest.starts_with('/') {
                errors.add(path, format!("{shown:?} must name an absolute path (file:///path/to/clip.mp4)"));
            } else {
                let lower = rest.to_ascii_lowercase();
                if ![".mp4", ".m4v", ".mov", ".mkv"].iter().any(|ext| lower.ends_with(ext)) {
                    errors
                        .add(path, format!("{shown:?}: file sources must be MP4 or Matroska (.mp4, .m4v, .mov, .mkv)"));
                }
            }
        }
        "test" => {
            if !TEST_PATTERNS.contains(&rest) {
                errors.add(
                    path,
                    format!("{shown:?}: unknown test pattern {rest:?}; one of {}", TEST_PATTERNS.join(", ")),
                );
            }
        }
        other => errors.add(path, format!("{shown:?}: unsupported scheme {other:?}; use rtsp, rtsps, file or test")),
    }
}

fn check_polygon(errors: &mut Errors, path: &str, points: &[Vec<f64>]) {
    if points.len() < 3 {
        errors.add(path, format!("polygon needs ≥3 points, got {}", points.len()));
        return;
    }
    let mut usable = true;
    for (i, point) in points.iter().enumerate() {
        if point.len() != 2 {
            errors.add(format!("{path}[{i}]"), format!("a point is [x, y], got {} numbers", point.len()));
            usable = false;
        } else if let Some(v) = point.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            errors.add(format!("{path}[{i}]"), format!("coordinates are normalised to 0..1, got {v} in {point:?}"));
            usable = false;
        }
    }
    if !usable {
        return;
    }
    let pts: Vec<(f64, f64)> = points.iter().map(|p| (p[0], p[1])).collect();
    let area = shoelace_area(&pts);
    if area < 1e-4 {
        errors
            .add(path, format!("polygon has no area ({area:.6} of the image); are the points in a line or repeated?"));
    } else if let Some((a, b)) = first_self_intersection(&pts) {
        errors.add(
            path,
            format!("polygon crosses itself (edge {a} crosses edge {b}); list the points in order around the region"),
        );
    }
}

fn shoelace_area(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (x1, y1) = pts[i];
            let (x2, y2) = pts[(i + 1) % n];
            x1 * y2 - x2 * y1
        })
        .sum();
    twice.abs() / 2.0
}

/// Edges i and j (edge k joins point k to point k+1) that properly cross, if any.
fn first_self_intersection(pts: &[(f64, f64)]) -> Option<(usize, usize)> {
    let n = pts.len();
    let edge = |k: usize| (pts[k], pts[(k + 1) % n]);
    for i in 0..n {
        for j in i + 1..n {
            // Adjacent edges share a point; that is not a crossing.
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue;
            }
            let (a, b) = edge(i);
            let (c, d) = edge(j);
            if segments_cross(a, b, c, d) {
                return Some((i, j));
            }
        }
    }
    None
}

fn segments_cross(a: (f64, f64), b: (f64, f64), c: (f64, f64), d: (f64, f64)) -> bool {
    let orient = |p: (f64, f64), q: (f64, f64), r: (f64, f64)| (q.0 - p.0) * (r.1 - p.1) - (q.1 - p.1) * (r.0 - p.0);
    let (o1, o2) = (orient(a, b, c), orient(a, b, d));
    let (o3, o4) = (orient(c, d, a), orient(c, d, b));
    o1 * o2 < 0.0 && o3 * o4 < 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::settings::Decode;

    fn parse(text: &str) -> Config {
        toml::from_str(text).expect("test config parses")
    }

    const MINIMAL: &str = r#"
        [site]
        id = "hosp-01"
        device_id = "edge-01"
    "#;

    #[test]
    fn minimal_config_is_valid() {
        assert_eq!(validate(&parse(MINIMAL)), vec![]);
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let config = parse(
            r#"
            [site]
            id = "hosp/01"
            device_id = ""

            [[cameras]]
            id = "w1"
            role = "ward"
            url = "rtsp://admin:hunter2@/stream"

            [[cameras]]
            id = "w1"
            role = "dialysis_room"
            url = "file://relative.mp4"
            [cameras.regions]
            chair-1 = [[0.1, 0.1], [0.2, 0.1]]
            chair-2 = [[0.1, 0.1], [1.5, 0.1], [0.2, 0.3]]

            [mqtt]
            host = ""
            keepalive_secs = 1

            [outbox]
            max_records = 5

            [models]
            threads = 0
            "#,
        );
        let errors: Vec<String> = validate(&config).iter().map(ToString::to_string).collect();
        let expected = [
            "site.id: \"hosp/01\" contains '/'",
            "site.device_id: must not be empty",
            "cameras[0].url: \"rtsp://admin:***@/stream\" has no host",
            "cameras[0].regions: a ward camera needs at least one bed region",
            "cameras[1].url: \"file://relative.mp4\" must name an absolute path",
            "cameras[1].regions.chair-1: polygon needs ≥3 points, got 2",
            "cameras[1].regions.chair-2[1]: coordinates are normalised to 0..1, got 1.5",
            "cameras[1].id: duplicate camera id \"w1\", already used by cameras[0]",
            "mqtt.host: must not be empty",
            "mqtt.keepalive_secs: must be 5..3600 seconds, got 1",
            "outbox.max_records: must be at least 100, got 5",
            "models.threads: must be 1..64, got 0",
        ];
        for want in expected {
            assert!(errors.iter().any(|e| e.starts_with(want)), "missing {want:?} in {errors:#?}");
        }
        assert_eq!(errors.len(), expected.len(), "unexpected extra errors: {errors:#?}");
        assert!(!errors.iter().any(|e| e.contains("hunter2")), "a password leaked into an error: {errors:#?}");
    }

    #[test]
    fn fractional_analysis_rates_are_accepted_within_the_stall_time() {
        let camera = |extra: &str| {
            errors_of(&format!(
                "[[cameras]]\nid = \"c\"\nrole = \"settlement_window\"\nurl = \"test://ball\"\n{extra}\n"
            ))
        };
        for good in ["analysis_fps = 0.2", "analysis_fps = 2.5", "analysis_fps = 0.05\nstall_secs = 30"] {
            assert_eq!(camera(good), Vec::<String>::new(), "{good}");
        }
        assert_eq!(
            camera("analysis_fps = 0.1"),
            vec![
                "cameras[0].analysis_fps: 0.1 is one frame every 10.0 s, not within stall_secs (10): raise \
                  analysis_fps or stall_secs"
            ]
        );
        assert_eq!(camera("analysis_fps = 0"), vec!["cameras[0].analysis_fps: must be above 0 and at most 30, got 0"]);
    }

    /// `decode` and its older spelling: each works alone, both together are refused; the role decides
    /// when neither is set; a sub-stream is checked like the main one.
    #[test]
    fn decode_its_older_spelling_and_the_sub_stream() {
        let camera = |role: &str, extra: &str| {
            format!("[[cameras]]\nid = \"c\"\nrole = \"{role}\"\nurl = \"test://ball\"\n{extra}\n")
        };
        let decode =
            |role: &str, extra: &str| parse(&format!("{MINIMAL}\n{}", camera(role, extra))).cameras[0].decode();
        assert_eq!(decode("ward", ""), Decode::Keyframes);
        assert_eq!(decode("settlement_window", ""), Decode::OnDemand);
        assert_eq!(decode("dialysis_room", ""), Decode::OnDemand);
        assert_eq!(decode("ward", "decode = \"all\""), Decode::All);
        assert_eq!(decode("settlement_window", "keyframes_only = true"), Decode::Keyframes);
        assert_eq!(decode("settlement_window", "keyframes_only = false"), Decode::All);
        assert_eq!(
            errors_of(&camera("dialysis_room", "decode = \"keyframes\"\nkeyframes_only = true")),
            vec!["cameras[0].keyframes_only: set either decode or keyframes_only (its older spelling), not both"]
        );
        let bad = errors_of(&camera("dialysis_room", "detect_url = \"http://192.0.2.1/sub\""));
        assert!(bad.len() == 1 && bad[0].starts_with("cameras[0].detect_url: "), "{bad:?}");
        let unknown = toml::from_str::<Config>(&format!("{MINIMAL}\n{}", camera("ward", "decode = \"sometimes\"")))
            .expect_err("not a decode mode")
            .to_string();
        assert!(unknown.contains("on_demand"), "the error lists the modes: {unknown}");
    }

    /// A camera that decodes keyframes only and looks for no faces analyses 640-wide frames unless told
    /// otherwise; every other camera 1280; a set width always wins and is range-checked.
    #[test]
    fn analysis_width_follows_the_cameras_duties() {
        let camera = |role: &str, extra: &str| {
            format!("[[cameras]]\nid = \"c\"\nrole = \"{role}\"\nurl = \"test://ball\"\n{extra}\n")
        };
        let width = |role: &str, extra: &str| {
            let config = parse(&format!("{MINIMAL}\n{}", camera(role, extra)));
            assert_eq!(config.cameras[0].stream().analysis_max_width, config.cameras[0].analysis_max_width());
            config.cameras[0].analysis_max_width()
        };
        assert_eq!(width("ward", ""), 640);
        assert_eq!(width("ward", "watch_physicians = true"), 1280);
        assert_eq!(width("ward", "decode = \"all\""), 1280);
        assert_eq!(width("ward", "analysis_max_width = 1280"), 1280);
        assert_eq!(width("settlement_window", ""), 1280);
        assert_eq!(width("settlement_window", "decode = \"keyframes\""), 640);
        assert_eq!(width("dialysis_room", "decode = \"keyframes\""), 1280);
        assert_eq!(
            errors_of(&camera("settlement_window", "analysis_max_width = 100")),
            vec!["cameras[0].analysis_max_width: must be 160..3840 pixels, got 100"]
        );
    }

    #[test]
    fn rejects_degenerate_and_crossing_polygons() {
        let mut errors = Errors::default();
        check_polygon(&mut errors, "r", &[vec![0.1, 0.1], vec![0.2, 0.2], vec![0.3, 0.3]]);
        // A lopsided bow tie (a symmetric one has zero area): edges 1 and 3 cross.
        check_polygon(&mut errors, "r", &[vec![0.1, 0.1], vec![0.9, 0.1], vec![0.2, 0.9], vec![0.9, 0.6]]);
        // A proper rectangle, points in order.
        check_polygon(&mut errors, "r", &[vec![0.1, 0.1], vec![0.9, 0.1], vec![0.9, 0.9], vec![0.1, 0.9]]);
        let messages: Vec<_> = errors.0.iter().map(|e| e.message.clone()).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].contains("no area"));
        assert!(messages[1].contains("edge 1 crosses edge 3"), "{messages:#?}");
    }

    fn errors_of(extra: &str) -> Vec<String> {
        validate(&parse(&format!("{MINIMAL}\n{extra}"))).iter().map(ToString::to_string).collect()
    }

    /// `[liveness]` is checked whether enabled or not, every bad field named; unknown fields are refused.
    #[test]
    fn liveness_settings_are_validated() {
        assert_eq!(errors_of("[liveness]\nenabled = true\n"), Vec::<String>::new());
        let errors = errors_of("[liveness]\nspoof_threshold = 2.0\nmin_frames = 100\nmin_secs = 0.1\n");
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("liveness.spoof_threshold: must be 0.05..1, got 2"), "{errors:#?}");
        assert!(errors[1].starts_with("liveness.min_frames: must be 3..48, got 100"), "{errors:#?}");
        assert!(errors[2].starts_with("liveness.min_secs: must be 0.5..20 seconds, got 0.1"), "{errors:#?}");
        assert!(toml::from_str::<Config>(&format!("{MINIMAL}\n[liveness]\nenable = true\n")).is_err());
    }

    #[test]
    fn negative_or_absurd_min_face_px_is_refused() {
        for bad in ["-80.0", "0.0", "5000.0", "nan"] {
            let errors = errors_of(&format!("[faces]\nmin_face_px = {bad}\n"));
            assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
            assert!(errors[0].starts_with("faces.min_face_px: must be 10..4096 pixels"), "{errors:#?}");
        }
        assert_eq!(errors_of("[faces]\nmin_face_px = 40.0\n"), Vec::<String>::new());
    }

    #[test]
    fn utc_offsets_outside_the_earth_s_range_are_refused() {
        for bad in ["+15:00", "-12:30", "+18:00"] {
            let errors = errors_of(&format!("[rollcalls]\nutc_offset = \"{bad}\"\n"));
            assert_eq!(
                errors,
                vec![format!("rollcalls.utc_offset: \"{bad}\" is out of range: UTC offsets run from -12:00 to +14:00")]
            );
        }
        for good in ["+14:00", "-12:00", "+05:45", "+00:00"] {
            assert_eq!(errors_of(&format!("[rollcalls]\nutc_offset = \"{good}\"\n")), Vec::<String>::new(), "{good}");
        }
        let errors = errors_of("[rollcalls]\nutc_offset = \"8\"\n");
        assert_eq!(errors, vec!["rollcalls.utc_offset: \"8\" is not an offset like \"+08:00\"".to_owned()]);
    }

    #[test]
    fn presence_lighting_bounds_and_stale_time_are_checked() {
        let errors = errors_of("[presence]\nnight_max_colour = 0.05\nday_min_colour = 0.03\nstale_secs = 7200\n");
        assert_eq!(
            errors,
            vec![
                "presence.stale_secs: must be at most 3600 seconds, got 7200".to_owned(),
                "presence.day_min_colour: must be at least night_max_colour (0.05), got 0.03: a picture would be \
                 day and night at once"
                    .to_owned(),
            ]
        );
        let errors = errors_of("[presence]\nnight_max_colour = 0.0\nday_min_colour = 1.5\n");
        assert_eq!(
            errors,
            vec![
                "presence.night_max_colour: must be above 0 and below 1, got 0".to_owned(),
                "presence.day_min_colour: must be above 0 and below 1, got 1.5".to_owned(),
            ]
        );
        assert_eq!(
            errors_of("[presence]\nnight_max_colour = 0.03\nday_min_colour = 0.03\nstale_secs = 0\n"),
            Vec::<String>::new()
        );
    }

    fn url_errors(url: &str) -> Vec<String> {
        errors_of(&format!("[[cameras]]\nid = \"c\"\nrole = \"settlement_window\"\nurl = \"{url}\"\n"))
    }

    #[test]
    fn passwords_with_reserved_characters_must_be_percent_encoded() {
        for url in [
            "rtsp://admin:hunter/2@cam/live",
            "rtsp://admin:7531/9@cam:554/live",
            "rtsp://admin:hunter?2@cam/live",
            "rtsp://admin:hunter#2@cam/live",
            "rtsp://admin:hunter@2@cam/live",
        ] {
            let errors = url_errors(url);
            assert_eq!(errors.len(), 1, "{url}: {errors:#?}");
            assert!(
                errors[0].starts_with("cameras[0].url: the user name or password contains '/', '?', '#' or '@'"),
                "{errors:#?}"
            );
            let leaked = errors[0].contains("hunter") || errors[0].contains("7531");
            assert!(errors[0].contains("%2F") && !leaked, "{errors:#?}");
        }
        // Encoded characters, IPv6 hosts, ports and queries are fine.
        for url in [
            "rtsp://admin:pa%2Fss%40@cam:554/live",
            "rtsp://[fd00::10]:554/live",
            "rtsp://cam/live?user=a@b",
            "rtsps://cam:8554/a/b",
        ] {
            assert_eq!(url_errors(url), Vec::<String>::new(), "{url}");
        }
        assert!(url_errors("rtsp://cam:port/live")[0].contains("the port must be a number 1..65535"));
    }
}
