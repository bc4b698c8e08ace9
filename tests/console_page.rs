//! The console page (agent/assets/console/) in Debian's headless Chromium, driven over the DevTools
//! protocol with real mouse and touch input, against a real `vigil run` (plain HTTP on 127.0.0.1, as
//! tests/console_auth.rs), mosquitto and the platform's signed commands. The scenario, as an
//! installer, a supervisor and a viewer would go through it:
//!
//! - sign in (after a wrong password); the cameras with their live frames and health;
//! - ward-1 plays a generated ward clip (tests/common/scenes.rs: a patient lying in the bed throughout)
//!   with its bed region guessed on the wall: the roll-call finds the patient absent; a change the box
//!   refuses shows every problem it names; the bed drawn with the mouse where it is on the picture
//!   (a corner and the whole shape dragged on the way) and saved → the bed is seen occupied and the
//!   roll-call finds the patient present, without a restart; a corner moved with a finger on a tablet;
//!   the empty reference taken from the running camera;
//! - the events: a bed_absent bundle arriving live, the filter; hall-1's lens is covered: its
//!   camera_tamper event opens, its clip plays, "Signature valid"; a legal hold placed (its reason
//!   required) and seen in the audit log; a file of the bundle altered on disk → "Signature INVALID";
//!   hall-1's uniform view refused as the empty reference, then taken as uniform;
//! - people: the roster the platform sent, an enrolment from two photos with each one's verdict, a
//!   removal (asked twice);
//! - every view in Chinese (remembered), at desk, tablet and phone sizes: the screenshots
//!   docs/screenshots/console-*.png;
//! - a viewer sees no editing controls and no audit log; a one-time password asks for one's own first;
//!   five wrong passwords lock the name out, the right one too.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use common::agent::{Agent, Platform};
use common::cdp::{Browser, Options, Tab};
use common::console::{
    WAIT, draw_region, fill, frame_point, screenshot, screenshot_of, set_language, show_frame, sign_in, view_is,
    wait_for_element, wait_text,
};
use common::mqtt::{Mosquitto, Subscriber, free_port};
use common::scenes::{Action, Event, Scene};

const INSTALLER: (&str, &str) = ("ana", "ana's long password");
const VIEWER: (&str, &str) = ("vic", "vic's long password");

fn browser(dir: &Path) -> Browser {
    let video = dir.join("camera.y4m");
    common::cdp::write_y4m(&image::RgbImage::new(64, 48), &video);
    Browser::start(&Options { fake_video: video, extra_args: vec![] })
}

/// No uncaught exception, console error or CSP violation (answers with an error status are logged by
/// the browser too: the test asks for those on purpose).
fn no_page_errors(browser: &Browser) {
    let errors: Vec<_> =
        browser.page_errors().into_iter().filter(|e| !e.text.starts_with("log: Failed to load resource")).collect();
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

/// Chooses `files` in a file input, as a person picking photos would.
fn set_files(tab: &Tab, selector: &str, files: &[&Path]) {
    let root = tab.call("DOM.getDocument", json!({}))["root"]["nodeId"].clone();
    let node = tab.call("DOM.querySelector", json!({ "nodeId": root, "selector": selector }))["nodeId"].clone();
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    tab.call("DOM.setFileInputFiles", json!({ "nodeId": node, "files": files }));
}

// --- against the real agent -------------------------------------------------------------------

/// The bed region on the wall, above the bed, where nobody ever is (the installer's first guess).
const ON_THE_WALL: [[f64; 2]; 4] = [[0.02, 0.02], [0.30, 0.02], [0.30, 0.20], [0.02, 0.20]];
/// Where the scene's bed is (tests/common/scenes.rs).
const ON_THE_BED: [(f64, f64); 4] = [(0.12, 0.30), (0.63, 0.30), (0.63, 0.66), (0.12, 0.66)];

/// The roll-call summaries among `messages`: (present, absent) of each.
fn rollcalls(messages: &[(String, Vec<u8>, bool)]) -> Vec<(u64, u64)> {
    messages
        .iter()
        .filter(|(topic, _, _)| topic.contains("/events/"))
        .filter_map(|(_, payload, _)| serde_json::from_slice::<serde_json::Value>(payload).ok())
        .filter(|e| e["kind"] == "rollcall_summary")
        .map(|e| {
            let s = &e["details"]["summary"];
            (s["present"].as_u64().unwrap_or(0), s["absent"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// The roster's and roll-calls' signed commands, and the state directory's evidence.
struct Platformed<'a> {
    sub: &'a Subscriber,
    platform: &'a Platform,
    agent: &'a Agent,
}

impl Platformed<'_> {
    /// Asks for a roll-call and waits for summary number `n`: (present, absent).
    fn rollcall(&self, n: usize) -> (u64, u64) {
        self.sub.publish("vigil/v1/hosp/edge/cmd/rollcall", self.platform.sign("rollcall", &json!({})));
        // (wait_for holds the messages' lock while it asks: the closure reads what it is given)
        let got = self.sub.wait_for(Duration::from_secs(30), |m| rollcalls(m).len() >= n);
        let summaries = rollcalls(&self.sub.messages.lock().unwrap());
        assert!(got, "no roll-call summary {n}: {summaries:?}\n{}", self.agent.log_text());
        summaries[n - 1]
    }
}

/// A file of the bundle of `event_id` in the evidence store (not its manifest; the hold record names
/// the event too, but holds no file).
fn bundle_file(evidence: &Path, event_id: &str) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(evidence).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    entries
        .iter()
        .filter(|dir| std::fs::read_to_string(dir.join("manifest.json")).is_ok_and(|m| m.contains(event_id)))
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()))
        .find(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            !name.starts_with("manifest") && name != "timestamp.tsr"
        })
        .unwrap_or_else(|| panic!("no file of {event_id}'s bundle in {}", evidence.display()))
}

/// What a JS expression evaluates to in `tab`, as a string (empty when not one).
fn text_of(tab: &Tab, expression: &str) -> String {
    tab.eval(expression).as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_console_against_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let broker = Mosquitto::start(root);
    let sub = Subscriber::start(broker.port, "vigil/v1/hosp/edge/#");
    let platform = Platform::new(root);

    // A patient lies in the bed throughout; the empty room is the regions' empty reference, as
    // `vigil reference --empty` took it at the installation.
    let (w, h) = (640, 360);
    let scene = Scene::new(w, h, 8.0, vec![Event { action: Action::LieInBed, from: 0.0, to: 9.0 }]);
    let ward_clip = root.join("ward.mp4");
    scene.encode(&ward_clip, 5);
    std::fs::create_dir_all(root.join("state/references")).unwrap();
    scene.empty_reference().save(root.join("state/references/ward-1-empty.png")).unwrap();
    // A lens covered by a hand: one colour with the sensor's noise.
    let covered_clip = root.join("covered.mp4");
    common::media::still_clip(&covered_clip, &image::RgbImage::from_pixel(w, h, image::Rgb([40, 36, 34])), 40, 2);
    // A photo without a face, for the enrolment's refusal.
    let no_face = root.join("room.png");
    scene.empty_reference().save(&no_face).unwrap();

    let wall = json!(ON_THE_WALL).to_string();
    let config = root.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}[http]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\n\
             [presence]\nenter_secs = 2\nleave_secs = 2\n\
             [rollcalls]\nrandom_per_day = 0\n\
             [tamper]\ncovered_secs = 2\n\
             [evidence]\npre_roll_secs = 2\npost_roll_secs = 2\n\n\
             [[cameras]]\nid = \"ward-1\"\nname = \"Ward 3, room 12\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
             keyframes_only = false\nanalysis_fps = 2\n\
             [cameras.regions]\nbed-1 = {wall}\n\n\
             [[cameras]]\nid = \"hall-1\"\nrole = \"ward\"\nurl = \"file://{}\"\nloop = true\n\
             keyframes_only = false\nanalysis_fps = 2\n\
             [cameras.regions]\nbed-9 = {wall}\n",
            common::agent::config_head(broker.port, &platform),
            ward_clip.display(),
            covered_clip.display(),
        ),
    )
    .unwrap();
    common::agent::add_console_user(&config, INSTALLER.0, "installer", INSTALLER.1);
    common::agent::add_console_user(&config, VIEWER.0, "viewer", VIEWER.1);
    common::agent::add_console_user(&config, "sun", "supervisor", "sun's long password");
    let added = common::run_ok(
        common::vigil()
            .args(["users", "add", "--name", "li", "--role", "supervisor", "--one-time", "--config"])
            .arg(&config),
    );
    let one_time = added.lines().find_map(|l| l.strip_prefix("one-time password for li: ")).unwrap().trim().to_owned();
    common::run_ok(common::vigil().args(["keys", "init", "--config"]).arg(&config));
    let agent = Agent::start(&config, root.join("agent.log"));
    let online = |m: &[(String, Vec<u8>, bool)]| m.iter().any(|(t, p, _)| t.ends_with("/status") && p == b"online");
    assert!(sub.wait_for(Duration::from_secs(30), online), "the agent is not online:\n{}", agent.log_text());
    let shift_start = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let shift_end =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(8 * 3600)).to_string();
    let roster = json!({
        "inpatients": [{ "patient": "p-ward-a", "camera": "ward-1", "bed": "bed-1" }],
        "shifts": [{ "physician": "dr-li", "start": shift_start, "end": shift_end }],
    });
    sub.publish("vigil/v1/hosp/edge/cmd/roster", platform.sign("roster", &roster));
    let started = std::time::Instant::now();
    while ureq::get(&format!("http://127.0.0.1:{port}/healthz")).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the agent does not serve:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let box_ = Platformed { sub: &sub, platform: &platform, agent: &agent };

    let browser = browser(root);
    let tab = browser.desk_tab("en-US", 1280, 800);
    let url = format!("http://127.0.0.1:{port}/console/");
    tab.navigate(&url);
    view_is(&tab, "signin");
    screenshot(&tab, "console-signin-en");
    sign_in(&tab, INSTALLER.0, "not the password");
    wait_text(&tab, "#signin-error", "Wrong name or password");
    sign_in(&tab, INSTALLER.0, INSTALLER.1);
    view_is(&tab, "cameras");
    wait_text(&tab, "#who", "ana · installer");

    // The cameras: ward-1's live frame, hall-1 covered.
    tab.wait_for(
        "document.querySelector(\".camera-card[data-camera='ward-1'] img.frame\")?.naturalWidth === 640",
        "ward-1's frame",
        Duration::from_secs(30),
    );
    wait_text(&tab, ".camera-card[data-camera='hall-1']", "covered");
    screenshot(&tab, "console-cameras-en");

    // Events: the roll-call with the bed on the wall finds the patient absent; its bundle arrives live.
    tab.click("#nav a[data-nav='events']");
    view_is(&tab, "events");
    tab.wait_for("document.getElementById('events-live').classList.contains('ok')", "the live stream", WAIT);
    assert_eq!(box_.rollcall(1), (0, 1), "the patient is absent while the bed is on the wall");
    tab.wait_for(
        "!!document.querySelector(\".event-row.fresh[data-kind='bed_absent']\")",
        "the bed_absent bundle, live",
        WAIT,
    );
    tab.wait_for(
        "!!document.querySelector(\".event-row[data-kind='camera_tamper']\")",
        "hall-1's tamper bundle",
        Duration::from_secs(40),
    );
    fill(&tab, "#filter-kind", "camera_tamper");
    tab.wait_for(
        "(() => { const rows = [...document.querySelectorAll('.event-row')]; return rows.length > 0 && rows.every(r => r.dataset.kind === 'camera_tamper'); })()",
        "the tamper events only",
        WAIT,
    );
    fill(&tab, "#filter-kind", "");
    tab.wait_for("!!document.querySelector(\".event-row[data-kind='bed_absent']\")", "every kind again", WAIT);
    screenshot(&tab, "console-events-en");

    // The tamper event's evidence: the clip plays, the signature is valid; a legal hold.
    tab.click(".event-row[data-kind='camera_tamper']");
    view_is(&tab, "evidence");
    wait_text(&tab, "#signature", "Signature valid");
    let tamper_id = text_of(&tab, "decodeURIComponent(location.hash.split('/')[2])");
    tab.eval("document.getElementById('evidence-video').play().then(() => true)");
    tab.wait_for(
        "(() => { const v = document.getElementById('evidence-video'); return !v.paused && v.currentTime > 0.2; })()",
        "the clip to play",
        WAIT,
    );
    tab.eval("document.getElementById('evidence-video').pause(); true");
    wait_text(&tab, ".facts-table", "camera_tamper");
    tab.click("#hold-toggle");
    wait_text(&tab, "#hold-message", "Write the reason first");
    fill(&tab, "#hold-reason", "incident 2026-0412");
    tab.click("#hold-toggle");
    wait_text(&tab, "#hold-message", "Legal hold placed");
    wait_text(&tab, "#hold", "held by ana — incident 2026-0412");
    screenshot(&tab, "console-evidence-en");
    tab.click("#nav a[data-nav='audit']");
    view_is(&tab, "audit");
    wait_text(&tab, ".audit-table", "legal hold placed");
    wait_text(&tab, ".audit-table", "incident 2026-0412");
    wait_text(&tab, ".audit-table", "failed sign-in");
    screenshot(&tab, "console-audit-en");

    // The region editor: a change the box refuses lists every problem, nothing changed.
    tab.click("#nav a[data-nav='cameras']");
    view_is(&tab, "cameras");
    tab.click(".camera-card[data-camera='ward-1']");
    view_is(&tab, "editor");
    tab.wait_for(
        "document.querySelector(\"[data-occupancy='bed-1']\")?.textContent === 'empty'",
        "bed-1 on the wall seen empty",
        WAIT,
    );
    let before = std::fs::read_to_string(&config).unwrap();
    tab.click("button[data-delete='bed-1']");
    fill(&tab, "#camera-url", "ftp://camera/1");
    tab.click("#save");
    wait_for_element(&tab, "#editor-problems");
    let problems = tab.text("#editor-problems");
    assert!(problems.contains("cameras[ward-1].url") && problems.contains("bed-1"), "{problems}");
    assert!(tab.text("#editor-message").contains("Nothing was changed"), "{}", tab.text("#editor-message"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before, "the file is as it was");
    screenshot(&tab, "console-editor-problems-en");
    tab.click("#discard");
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-1']");

    // The bed drawn where it is (a corner and the whole shape dragged out and back on the way) and
    // saved: occupied, present at the roll-call, the camera not restarted.
    let stream_started = || {
        tab.eval("fetch('/console/api/cameras').then(r => r.json()).then(a => a.cameras.find(c => c.id === 'ward-1').stream_started_at ?? null)")
    };
    let started = stream_started();
    tab.click("button[data-delete='bed-1']");
    draw_region(&tab, "#add-bed", &ON_THE_BED);
    wait_for_element(&tab, "#editor-svg g.shape[data-region='bed-1']");
    show_frame(&tab);
    let (corner, out) = (frame_point(&tab, 0.63, 0.66), frame_point(&tab, 0.70, 0.75));
    tab.mouse_drag(corner, out, 5);
    tab.mouse_drag(out, corner, 5);
    let (inside, right) = (frame_point(&tab, 0.3, 0.5), frame_point(&tab, 0.4, 0.5));
    tab.mouse_drag(inside, right, 6);
    tab.mouse_drag(right, inside, 6);
    screenshot(&tab, "console-editor-en");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "Saved and applied");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("0.63") && root.join("vigil.toml.previous").exists(), "{saved}");
    tab.wait_for(
        "document.querySelector(\"[data-occupancy='bed-1']\")?.textContent === 'occupied'",
        "bed-1 seen occupied",
        Duration::from_secs(30),
    );
    assert_eq!(box_.rollcall(2), (1, 0), "the patient is present in the bed drawn");
    assert_eq!(stream_started(), started, "the camera was not restarted");

    // On a tablet, a finger moves a corner; saved.
    tab.set_size(1024, 768, true);
    std::thread::sleep(Duration::from_millis(300));
    show_frame(&tab);
    tab.touch_drag(frame_point(&tab, 0.12, 0.30), frame_point(&tab, 0.105, 0.285), 6);
    wait_text(&tab, "#status", "Changes not saved");
    screenshot(&tab, "console-editor-tablet-en");
    tab.click("#save");
    wait_text(&tab, "#editor-message", "Saved and applied");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("0.105") || saved.contains("0.104") || saved.contains("0.106"), "{saved}");

    // The empty reference, from the running camera.
    tab.click("#ref-empty");
    wait_text(&tab, "#editor-message", "Empty reference taken");
    wait_text(&tab, "#editor-refs", "Empty reference taken");
    tab.set_size(768, 1024, true);
    screenshot(&tab, "console-editor-tablet-portrait-en");
    tab.set_size(390, 844, true);
    screenshot(&tab, "console-editor-phone-en");
    tab.set_size(1280, 800, false);

    // A bundle altered on the box is called INVALID.
    let altered = bundle_file(&root.join("state/evidence"), &tamper_id);
    let mut bytes = std::fs::read(&altered).unwrap();
    bytes.push(0);
    std::fs::write(&altered, bytes).unwrap();
    tab.navigate(&format!("{url}#/events/{tamper_id}"));
    view_is(&tab, "evidence");
    wait_text(&tab, "#signature", "Signature INVALID");

    // hall-1's uniform view: refused as the empty reference, then taken as uniform.
    tab.navigate(&format!("{url}#/cameras/hall-1"));
    view_is(&tab, "editor");
    wait_for_element(&tab, "#ref-empty");
    tab.click("#ref-empty");
    wait_text(&tab, "#editor-message", "The picture is uniform");
    tab.click("#ref-uniform");
    wait_text(&tab, "#editor-message", "accepted as uniform");

    // People: the platform's roster; an enrolment with each photo's verdict; a removal asked twice.
    tab.click("#nav a[data-nav='people']");
    view_is(&tab, "people");
    wait_text(&tab, "#view-people", "p-ward-a");
    wait_text(&tab, "#view-people", "dr-li");
    wait_text(&tab, "#roster-source", "hospital platform");
    fill(&tab, "#enrol-id", "p-ward-a");
    set_files(&tab, "#enrol-photos", &[&common::face_images().join("obama.jpg"), &no_face]);
    tab.wait_for("document.querySelectorAll('#enrol-box .photo img').length === 2", "two previews", WAIT);
    tab.click("#enrol-submit");
    wait_text(&tab, "#enrol-message", "p-ward-a is enrolled");
    wait_text(&tab, ".photo[data-photo='obama.jpg']", "accepted");
    wait_text(&tab, ".photo[data-photo='room.png']", "refused");
    screenshot_of(&tab, "#enrol-box", "console-people-en");
    tab.click("button[data-remove='p-ward-a']");
    wait_text(&tab, "button[data-remove='p-ward-a']", "Press again");
    tab.click("button[data-remove='p-ward-a']");
    wait_text(&tab, "#remove-message", "p-ward-a removed");

    // Chinese, remembered; every view at its sizes.
    tab.navigate(&format!("{url}#/cameras"));
    view_is(&tab, "cameras");
    set_language(&tab, "zh-CN");
    wait_text(&tab, "#view-cameras", "在线");
    screenshot(&tab, "console-cameras-zh");
    tab.click(".camera-card[data-camera='ward-1']");
    view_is(&tab, "editor");
    wait_text(&tab, "#editor-panel", "现在画面为空");
    screenshot(&tab, "console-editor-zh");
    tab.set_size(768, 1024, true);
    screenshot(&tab, "console-editor-tablet-portrait-zh");
    tab.set_size(1280, 800, false);
    tab.click("#nav a[data-nav='events']");
    view_is(&tab, "events");
    tab.wait_for("document.querySelectorAll('.event-row').length > 1", "the events", WAIT);
    screenshot(&tab, "console-events-zh");
    tab.set_size(390, 844, true);
    screenshot(&tab, "console-events-phone-zh");
    tab.set_size(1280, 800, false);
    tab.click(".event-row[data-kind='bed_absent']");
    view_is(&tab, "evidence");
    assert_eq!(tab.eval("document.documentElement.lang"), json!("zh-CN"), "the language is remembered");
    wait_text(&tab, "#signature", "签名有效");
    screenshot(&tab, "console-evidence-zh");
    tab.set_size(1024, 768, true);
    tab.click("#nav a[data-nav='people']");
    view_is(&tab, "people");
    wait_text(&tab, "#view-people", "住院患者");
    screenshot(&tab, "console-people-tablet-zh");
    tab.set_size(1280, 800, false);
    tab.click("#nav a[data-nav='audit']");
    view_is(&tab, "audit");
    wait_text(&tab, ".audit-table", "设置法律保全");
    screenshot(&tab, "console-audit-zh");
    set_language(&tab, "en");

    // A viewer: no editing, no audit log.
    tab.click("#signout");
    sign_in(&tab, VIEWER.0, VIEWER.1);
    view_is(&tab, "cameras");
    wait_text(&tab, "#who", "vic · viewer");
    assert_eq!(tab.eval("document.querySelector(\"#nav a[data-nav='audit']\").hidden"), json!(true));
    tab.navigate(&format!("{url}#/cameras/ward-1"));
    view_is(&tab, "editor");
    wait_for_element(&tab, "#editor-refs");
    assert_eq!(
        tab.eval("!!document.querySelector('#add-bed, #save, #ref-empty, .hit, input[data-rename]')"),
        json!(false)
    );
    tab.navigate(&format!("{url}#/audit"));
    view_is(&tab, "cameras");
    tab.click("#signout");

    // A one-time password: nothing but choosing one's own, then the console.
    sign_in(&tab, "li", &one_time);
    view_is(&tab, "password");
    assert_eq!(tab.eval("document.getElementById('nav').hidden"), json!(true));
    fill(&tab, "#password-current", &one_time);
    fill(&tab, "#password-new", "li's own long password");
    fill(&tab, "#password-again", "li's own password, mistyped");
    tab.click("#password-submit");
    wait_text(&tab, "#password-error", "not the same");
    fill(&tab, "#password-again", "li's own long password");
    screenshot(&tab, "console-password-en");
    tab.click("#password-submit");
    view_is(&tab, "cameras");
    wait_text(&tab, "#who", "li · supervisor");
    tab.click("#signout");

    // Five wrong passwords: locked out, the right one too, with the minutes left.
    for _ in 0..5 {
        sign_in(&tab, "sun", "a wrong password");
        tab.wait_for(
            "!document.getElementById('signin-submit').disabled && !document.getElementById('signin-error').hidden",
            "the answer",
            WAIT,
        );
    }
    sign_in(&tab, "sun", "sun's long password");
    wait_text(&tab, "#signin-error", "locked out. Try again in");
    screenshot(&tab, "console-locked-en");
    no_page_errors(&browser);
    drop(tab);
    drop(browser);
    agent.stop();
}
