//! A small Chrome DevTools Protocol client for the page tests: starts Debian's headless `chromium` on
//! 127.0.0.1 with a fake camera fed from a file, and drives tabs over one WebSocket (tungstenite,
//! blocking) with flattened sessions. Each [`Tab`] lives in its own browser context (its own
//! IndexedDB, service workers and permissions), so one browser serves several phones.
//! The browser is killed when the [`Browser`] is dropped.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A page error the browser reported (an uncaught exception, a `console.error`, a CSP violation).
#[derive(Debug, Clone)]
pub struct PageError {
    pub session: String,
    pub text: String,
}

struct Connection {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    errors: Vec<PageError>,
}

impl Connection {
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(request.to_string())).map_err(|e| format!("{method}: send: {e}"))?;
        loop {
            let message = match self.ws.read() {
                Ok(message) => message,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                {
                    return Err(format!("{method}: no answer from the browser in time"));
                }
                Err(e) => return Err(format!("{method}: read: {e}")),
            };
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(text.as_str()).map_err(|e| format!("{method}: {e}"))?;
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(value["result"].clone());
            }
            self.event(&value);
        }
    }

    fn event(&mut self, event: &Value) {
        let session = event["sessionId"].as_str().unwrap_or_default().to_owned();
        let params = &event["params"];
        let text = match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                format!(
                    "uncaught: {} {}",
                    details["text"].as_str().unwrap_or_default(),
                    details["exception"]["description"].as_str().unwrap_or_default()
                )
            }
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                format!("console.error: {}", params["args"])
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                format!("log: {}", params["entry"]["text"].as_str().unwrap_or_default())
            }
            _ => return,
        };
        self.errors.push(PageError { session, text });
    }
}

/// Headless Chromium, killed on drop.
pub struct Browser {
    child: Child,
    connection: Rc<RefCell<Connection>>,
    _profile: tempfile::TempDir,
}

/// How the browser's fake camera and its other options are set.
pub struct Options {
    /// A `.y4m` or `.mjpeg` file the fake camera loops (see [`write_y4m`]).
    pub fake_video: PathBuf,
    /// More command-line switches (`--host-resolver-rules=…` to reach 127.0.0.1 by a name, …).
    pub extra_args: Vec<String>,
}

impl Browser {
    pub fn start(options: &Options) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-gpu",
                "--mute-audio",
                "--password-store=basic",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                // the box's self-signed certificate when the test points at a real agent over HTTPS
                "--ignore-certificate-errors",
                "--lang=en-US",
            ])
            .arg(format!("--use-file-for-fake-video-capture={}", options.fake_video.display()))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(&options.extra_args)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMIUM} does not start ({e}): scripts/setup installs Debian's chromium"));
        // Chromium writes the port it chose and the browser's WebSocket path once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let start = Instant::now();
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.trim().to_owned(), path.trim().to_owned());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chromium exited at start: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(30), "chromium wrote no DevToolsActivePort in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .unwrap_or_else(|e| panic!("DevTools WebSocket handshake: {e}"));
        Browser {
            child,
            connection: Rc::new(RefCell::new(Connection { ws, next_id: 0, errors: Vec::new() })),
            _profile: profile,
        }
    }

    /// A browser-level command.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.connection.borrow_mut().call(None, method, params).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A new tab in a new browser context, at phone size (412×915 CSS pixels, mobile, touch), with
    /// `locale` as the browser's language (`navigator.language`).
    pub fn phone_tab(&self, locale: &str) -> Tab {
        let context = self.call("Target.createBrowserContext", json!({ "disposeOnDetach": true }))["browserContextId"]
            .as_str()
            .unwrap()
            .to_owned();
        let target =
            self.call("Target.createTarget", json!({ "url": "about:blank", "browserContextId": context }))["targetId"]
                .as_str()
                .unwrap()
                .to_owned();
        let session = self.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }))["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let tab = Tab { connection: self.connection.clone(), session, context, target };
        tab.call("Page.enable", json!({}));
        tab.call("Runtime.enable", json!({}));
        tab.call("Log.enable", json!({}));
        tab.call("Network.enable", json!({}));
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": true }),
        );
        tab.call("Emulation.setTouchEmulationEnabled", json!({ "enabled": true, "maxTouchPoints": 5 }));
        tab.call(
            "Network.setUserAgentOverride",
            json!({
                "userAgent": "Mozilla/5.0 (Linux; Android 12; Vigil test phone) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36",
                "acceptLanguage": locale,
            }),
        );
        tab.call("Emulation.setLocaleOverride", json!({ "locale": locale }));
        tab
    }

    /// A new tab in a new browser context at desk size (`width`×`height` CSS pixels, mouse, no touch),
    /// with `locale` as the browser's language. [`Tab::set_size`] turns it into a tablet or a phone.
    pub fn desk_tab(&self, locale: &str, width: u32, height: u32) -> Tab {
        let context = self.call("Target.createBrowserContext", json!({ "disposeOnDetach": true }))["browserContextId"]
            .as_str()
            .unwrap()
            .to_owned();
        let target =
            self.call("Target.createTarget", json!({ "url": "about:blank", "browserContextId": context }))["targetId"]
                .as_str()
                .unwrap()
                .to_owned();
        let session = self.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }))["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let tab = Tab { connection: self.connection.clone(), session, context, target };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            tab.call(domain, json!({}));
        }
        tab.call(
            "Network.setUserAgentOverride",
            json!({ "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Vigil test", "acceptLanguage": locale }),
        );
        tab.call("Emulation.setLocaleOverride", json!({ "locale": locale }));
        tab.set_size(width, height, false);
        tab
    }

    /// Errors the pages reported so far (uncaught exceptions, console errors, CSP violations).
    pub fn page_errors(&self) -> Vec<PageError> {
        self.connection.borrow().errors.clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Asked to close, Chromium stops its renderer and helper processes itself; killed, it would
        // leave them to exit on their own. The answer may not come (the socket closes first).
        let _ = self.connection.borrow_mut().call(None, "Browser.close", json!({}));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, attached with its own session.
pub struct Tab {
    connection: Rc<RefCell<Connection>>,
    pub session: String,
    pub context: String,
    pub target: String,
}

impl Tab {
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.connection.borrow_mut().call(Some(&self.session), method, params)
    }

    /// Navigates and waits for the load event's document (`readyState` complete).
    pub fn navigate(&self, url: &str) {
        let answer = self.call("Page.navigate", json!({ "url": url }));
        if let Some(error) = answer.get("errorText") {
            panic!("navigate to {url}: {error}");
        }
        self.wait_for("document.readyState === 'complete'", "the page to load", Duration::from_secs(20));
    }

    pub fn reload(&self) {
        self.call("Page.reload", json!({ "ignoreCache": false }));
        std::thread::sleep(Duration::from_millis(200));
        self.wait_for("document.readyState === 'complete'", "the page to reload", Duration::from_secs(20));
    }

    /// Evaluates `expression` (awaiting a promise) and returns its value as JSON.
    pub fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let answer = self.try_call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true }),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            return Err(format!(
                "{expression}: {}",
                details["exception"]["description"].as_str().unwrap_or(&details.to_string())
            ));
        }
        Ok(answer["result"]["value"].clone())
    }

    pub fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls `condition` (a JS expression) until it is true; panics after `limit` naming `what` and
    /// the page's status line.
    pub fn wait_for(&self, condition: &str, what: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            if self.try_eval(condition).ok() == Some(Value::Bool(true)) {
                return;
            }
            if start.elapsed() > limit {
                let status = self.try_eval("document.getElementById('status')?.textContent").unwrap_or_default();
                panic!("waited {limit:?} for {what} ({condition}); the page says: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, selector: &str) {
        let clicked = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e || e.disabled) return false; e.click(); return true; }})()"
        ));
        assert_eq!(clicked, Value::Bool(true), "no enabled element {selector} to click");
    }

    pub fn text(&self, selector: &str) -> String {
        self.eval(&format!("document.querySelector({selector:?})?.innerText ?? ''"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Lets this tab's origin use `permissions` (`geolocation`, `videoCapture`, …) without asking.
    pub fn grant(&self, origin: &str, permissions: &[&str]) {
        self.connection
            .borrow_mut()
            .call(
                None,
                "Browser.grantPermissions",
                json!({ "origin": origin, "permissions": permissions, "browserContextId": self.context }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn set_geolocation(&self, lat: f64, lon: f64, accuracy_m: f64) {
        self.call(
            "Emulation.setGeolocationOverride",
            json!({ "latitude": lat, "longitude": lon, "accuracy": accuracy_m }),
        );
    }

    /// Cuts the tab off the network (fetches fail, `navigator.onLine` turns false) or restores it.
    pub fn set_offline(&self, offline: bool) {
        self.call(
            "Network.emulateNetworkConditions",
            json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        );
    }

    /// The viewport's size in CSS pixels; `touch`: a mobile device with a touch screen (a tablet, a phone).
    pub fn set_size(&self, width: u32, height: u32, touch: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": touch }),
        );
        self.call("Emulation.setTouchEmulationEnabled", json!({ "enabled": touch, "maxTouchPoints": 5 }));
    }

    /// The centre of `selector`'s element in viewport CSS pixels, scrolled into view first.
    pub fn centre(&self, selector: &str) -> (f64, f64) {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; e.scrollIntoView({{block: 'center'}});
               const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        let at = at.as_array().unwrap_or_else(|| panic!("no element {selector}"));
        (at[0].as_f64().unwrap(), at[1].as_f64().unwrap())
    }

    /// A mouse press, moves in `steps` and release from `from` to `to` (a click when they are equal), as
    /// real input events: the page sees pointerdown / pointermove / pointerup.
    pub fn mouse_drag(&self, from: (f64, f64), to: (f64, f64), steps: u32) {
        let event = |kind: &str, (x, y): (f64, f64), buttons: u32| {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1 }),
            );
        };
        event("mouseMoved", from, 0);
        event("mousePressed", from, 1);
        for i in 1..=steps {
            let f = f64::from(i) / f64::from(steps.max(1));
            event("mouseMoved", (from.0 + (to.0 - from.0) * f, from.1 + (to.1 - from.1) * f), 1);
        }
        event("mouseReleased", to, 0);
    }

    /// A finger put down at `from`, moved to `to` in `steps` and lifted (a tap when they are equal);
    /// needs a touch tab ([`Tab::set_size`] with `touch`).
    pub fn touch_drag(&self, from: (f64, f64), to: (f64, f64), steps: u32) {
        let touch = |kind: &str, points: Value| {
            self.call("Input.dispatchTouchEvent", json!({ "type": kind, "touchPoints": points }));
        };
        touch("touchStart", json!([{ "x": from.0, "y": from.1, "id": 1 }]));
        for i in 1..=steps {
            let f = f64::from(i) / f64::from(steps.max(1));
            touch(
                "touchMove",
                json!([{ "x": from.0 + (to.0 - from.0) * f, "y": from.1 + (to.1 - from.1) * f, "id": 1 }]),
            );
        }
        touch("touchEnd", json!([]));
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let answer = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD.decode(answer["data"].as_str().unwrap()).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

/// Writes `image` as a one-frame Y4M (4:2:0, BT.601 full range) that Chromium's fake camera loops.
pub fn write_y4m(image: &image::RgbImage, path: &Path) {
    let (width, height) = image.dimensions();
    assert!(width % 2 == 0 && height % 2 == 0, "Y4M 4:2:0 needs even dimensions");
    let mut y = Vec::with_capacity((width * height) as usize);
    let mut u = Vec::with_capacity((width * height / 4) as usize);
    let mut v = Vec::with_capacity((width * height / 4) as usize);
    let yuv = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0.map(f32::from);
        (
            0.299 * r + 0.587 * g + 0.114 * b,
            128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b,
            128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b,
        )
    };
    for row in 0..height {
        for col in 0..width {
            y.push(yuv(image.get_pixel(col, row)).0.round().clamp(0.0, 255.0) as u8);
        }
    }
    for row in (0..height).step_by(2) {
        for col in (0..width).step_by(2) {
            let (mut su, mut sv) = (0.0, 0.0);
            for (dc, dr) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (_, pu, pv) = yuv(image.get_pixel(col + dc, row + dr));
                su += pu;
                sv += pv;
            }
            u.push((su / 4.0).round().clamp(0.0, 255.0) as u8);
            v.push((sv / 4.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    let mut file = format!("YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\nFRAME\n").into_bytes();
    file.extend(y);
    file.extend(u);
    file.extend(v);
    std::fs::write(path, file).unwrap();
}
