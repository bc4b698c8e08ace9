//! The console's sign-in against a real `vigil run` with `[http]` (plain HTTP on 127.0.0.1; the cookie's
//! attributes are the ones a browser gets over TLS): users made with `vigil users add` (password on
//! standard input), sign-in with a right and a wrong password, the cookie's attributes, `/me` without a
//! session, a state-changing request without (or with the wrong) CSRF token or from another origin,
//! a viewer refused the audit log, five wrong passwords locking a name out even for the right one until
//! the (short, configured) lock-out has passed, a user removed (and one re-passworded) from the command
//! line while signed in, and the audit log holding a row for each of these.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::agent::{Agent, Platform, config_head};
use common::mqtt::{Mosquitto, Subscriber, free_port};
use serde_json::{Value, json};

/// A response: status, the headers asked for, the JSON body (Null when empty).
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

struct Console {
    base: String,
    agent: ureq::Agent,
}

impl Console {
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Answer {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(body.map(|b| b.to_string()).unwrap_or_default()).unwrap();
        let mut response = self.agent.run(request).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.body_mut().read_to_string().unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        Answer { status, headers, body }
    }

    fn login(&self, name: &str, password: &str) -> Answer {
        self.call("POST", "/console/api/login", &[], Some(json!({"name": name, "password": password})))
    }

    /// Signs in; the cookie header to send back and the CSRF token.
    fn session(&self, name: &str, password: &str) -> (String, String) {
        let answer = self.login(name, password);
        assert_eq!(answer.status, 200, "{name}: {:?}", answer.body);
        let set = answer.headers["set-cookie"].to_str().unwrap();
        let pair = set.split(';').next().unwrap().to_owned();
        (pair, answer.body["csrf_token"].as_str().unwrap().to_owned())
    }
}

fn users(config: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = common::vigil()
        .arg("users")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command refused before it reads the password (an unknown user) may be gone already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn add_user(config: &Path, name: &str, role: &str, password: &str) {
    let out = users(config, &["add", "--name", name, "--role", role], &format!("{password}\n"));
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sign_in_sessions_csrf_roles_lock_out_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let config = root.join("vigil.toml");
    let broker = Mosquitto::start(root);
    let platform = Platform::new(root);
    let events = Subscriber::start(broker.port, "vigil/v1/hosp/edge/events/console_audit");
    // A lock-out of 3 s, so the test sees it end.
    std::fs::write(
        &config,
        format!(
            "{}[rollcalls]\nrandom_per_day = 0\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\n\
             [console]\nlockout_failures = 5\nlockout_mins = 0.05\n",
            config_head(broker.port, &platform)
        ),
    )
    .unwrap();

    // Users from the command line; a short password and a bad role are refused with the reason.
    add_user(&config, "ana", "installer", "ana's long password");
    add_user(&config, "sun", "supervisor", "sun's long password");
    add_user(&config, "vic", "viewer", "vic's long password");
    let short = users(&config, &["add", "--name", "zed", "--role", "viewer"], "short\n");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"), "{short:?}");
    let listed = users(&config, &["list", "--json"], "");
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let roles: Vec<(&str, &str)> =
        listed.as_array().unwrap().iter().map(|u| (u["name"].as_str().unwrap(), u["role"].as_str().unwrap())).collect();
    assert_eq!(roles, [("ana", "installer"), ("sun", "supervisor"), ("vic", "viewer")]);
    let store = std::fs::read(root.join("state/console.sqlite")).unwrap_or_default();
    let wal = std::fs::read(root.join("state/console.sqlite-wal")).unwrap_or_default();
    for bytes in [&store, &wal] {
        assert!(!bytes.windows(8).any(|w| w == b"ana's lo"), "no password in the store's files");
    }

    let keys = common::vigil().args(["keys", "init", "--config"]).arg(&config).output().unwrap();
    assert!(keys.status.success(), "{}", String::from_utf8_lossy(&keys.stderr));
    let agent = Agent::start(&config, root.join("agent.log"));
    // A fresh connection per request: a request refused before its body is read closes its connection.
    let console = Console {
        base: format!("http://127.0.0.1:{port}"),
        agent: ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0).build().into(),
    };
    let started = Instant::now();
    while ureq::get(&format!("{}/healthz", console.base)).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the agent did not serve; log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }

    // No session: 401.
    let me = console.call("GET", "/console/api/me", &[], None);
    assert_eq!((me.status, me.code()), (401, "unauthorized"), "{:?}", me.body);

    // A wrong password and an unknown name get the same answer.
    let wrong = console.login("ana", "not ana's password");
    let unknown = console.login("nobody", "not anyone's password");
    assert_eq!((wrong.status, wrong.code()), (401, "bad_credentials"));
    assert_eq!((unknown.status, unknown.body.clone()), (401, wrong.body.clone()), "no user enumeration");
    assert!(wrong.headers.get("set-cookie").is_none());

    // The right one: the cookie and its attributes, then /me.
    let ok = console.login("ana", "ana's long password");
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.headers["cache-control"], "no-store");
    let set = ok.headers["set-cookie"].to_str().unwrap();
    let mut attributes = set.split("; ");
    let (name, id) = attributes.next().unwrap().split_once('=').unwrap();
    assert_eq!(name, "__Host-vigil_session");
    assert_eq!(id.len(), 43, "256 bits, base64url: {id}");
    let attributes: Vec<&str> = attributes.collect();
    for wanted in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(attributes.contains(&wanted), "{wanted} missing in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let cookie = format!("__Host-vigil_session={id}");
    let csrf = ok.body["csrf_token"].as_str().unwrap().to_owned();
    let me = console.call("GET", "/console/api/me", &[("cookie", &cookie)], None);
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!((me.body["name"].as_str(), me.body["role"].as_str()), (Some("ana"), Some("installer")));
    assert_eq!(me.body["csrf_token"].as_str(), Some(csrf.as_str()));

    // A state-changing request: without the token, with another, from another origin: 403, still signed in.
    let bare = console.call("POST", "/console/api/logout", &[("cookie", &cookie)], None);
    assert_eq!((bare.status, bare.code()), (403, "csrf"), "{:?}", bare.body);
    let other = console.call("POST", "/console/api/logout", &[("cookie", &cookie), ("x-csrf-token", "x")], None);
    assert_eq!((other.status, other.code()), (403, "csrf"));
    let evil = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), ("origin", "https://evil.example")];
    let cross = console.call("POST", "/console/api/logout", &evil, None);
    assert_eq!((cross.status, cross.code()), (403, "csrf"));
    assert!(cross.message().contains("evil.example"), "{:?}", cross.body);
    assert_eq!(console.call("GET", "/console/api/me", &[("cookie", &cookie)], None).status, 200);

    // Roles: a viewer may not read the audit log, a supervisor may.
    let (viewer, _) = console.session("vic", "vic's long password");
    let refused = console.call("GET", "/console/api/audit", &[("cookie", &viewer)], None);
    assert_eq!((refused.status, refused.code()), (403, "forbidden"), "{:?}", refused.body);
    assert!(refused.message().contains("viewer"), "{:?}", refused.body);
    let (supervisor, _) = console.session("sun", "sun's long password");
    assert_eq!(console.call("GET", "/console/api/audit", &[("cookie", &supervisor)], None).status, 200);

    // Removed from the command line while signed in: refused at the next request.
    let removed = users(&config, &["remove", "--name", "vic"], "");
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    assert_eq!(console.call("GET", "/console/api/me", &[("cookie", &viewer)], None).status, 401);

    // Five wrong passwords lock the name out, even for the right one, for the configured time.
    for attempt in 1..=5 {
        let answer = console.login("sun", "a wrong guess");
        assert_eq!((answer.status, answer.code()), (401, "bad_credentials"), "attempt {attempt}");
    }
    let locked = console.login("sun", "sun's long password");
    assert_eq!((locked.status, locked.code()), (423, "locked"), "{:?}", locked.body);
    assert!(locked.message().contains("locked for"), "{:?}", locked.body);
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    std::thread::sleep(Duration::from_secs(retry) + Duration::from_millis(300));
    console.session("sun", "sun's long password");

    // Sign out with the token: the cookie is cleared and the session is gone.
    let out = console.call("POST", "/console/api/logout", &[("cookie", &cookie), ("x-csrf-token", &csrf)], None);
    assert_eq!(out.status, 204);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(console.call("GET", "/console/api/me", &[("cookie", &cookie)], None).status, 401);

    // The audit log, as an installer sees it: a row for each of these, oldest first here.
    let (installer, _) = console.session("ana", "ana's long password");
    let log = console.call("GET", "/console/api/audit?limit=1000", &[("cookie", &installer)], None);
    assert_eq!(log.status, 200, "{:?}", log.body);
    let mut rows: Vec<String> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let detail = e["details"]["check"].as_str().map(|c| format!(" {c}")).unwrap_or_default();
            format!(
                "{} {} {} {}{detail}",
                e["who"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["address"].as_str().unwrap()
            )
        })
        .collect();
    rows.reverse();
    let mut expected: Vec<String> = [
        "cli user_add ok -",
        "cli user_add ok -",
        "cli user_add ok -",
        "ana login_failed refused 127.0.0.1",
        "nobody login_failed refused 127.0.0.1",
        "ana login ok 127.0.0.1",
        "ana request refused 127.0.0.1 csrf",
        "ana request refused 127.0.0.1 csrf",
        "ana request refused 127.0.0.1 origin",
        "vic login ok 127.0.0.1",
        "vic request refused 127.0.0.1 role",
        "sun login ok 127.0.0.1",
        "cli user_remove ok -",
    ]
    .map(str::to_owned)
    .to_vec();
    expected.extend(std::iter::repeat_n("sun login_failed refused 127.0.0.1".to_owned(), 4));
    expected.extend(
        [
            "sun login_failed locked 127.0.0.1",
            "sun login locked 127.0.0.1",
            "sun login ok 127.0.0.1",
            "ana logout ok 127.0.0.1",
            "ana login ok 127.0.0.1",
        ]
        .map(str::to_owned),
    );
    assert_eq!(rows, expected);
    let first = &log.body["entries"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(first, &json!({"name": "ana", "role": "installer"}));

    // A new password from the command line ends the user's sessions; the new one signs in.
    let passwd = users(&config, &["passwd", "--name", "sun"], "sun's new long password\n");
    assert!(passwd.status.success(), "{}", String::from_utf8_lossy(&passwd.stderr));
    assert_eq!(console.call("GET", "/console/api/me", &[("cookie", &supervisor)], None).status, 401);
    assert_eq!(console.login("sun", "sun's long password").status, 401);
    console.session("sun", "sun's new long password");
    let nobody = users(&config, &["passwd", "--name", "nobody"], "whatever long enough\n");
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no console user \"nobody\""), "{nobody:?}");

    // Every row of the log, the command line's too, reached the platform as a console_audit event, in
    // order, each valid against the contract.
    let log = console.call("GET", "/console/api/audit?limit=1000", &[("cookie", &installer)], None);
    let mut rows: Vec<Value> = log.body["entries"].as_array().unwrap().clone();
    rows.reverse();
    let all_sent = |messages: &[(String, Vec<u8>, bool)]| messages.len() >= rows.len();
    assert!(
        events.wait_for(Duration::from_secs(20), all_sent),
        "audit events: {}",
        events.messages.lock().unwrap().len()
    );
    let sent: Vec<Value> =
        events.messages.lock().unwrap().iter().map(|(_, p, _)| serde_json::from_slice(p).unwrap()).collect();
    // Compared as JSON values: an object's keys need not come in the same order.
    let facts = |who: &Value, action: &Value, outcome: &Value, details: &Value| json!([who, action, outcome, details]);
    let sent_facts: Vec<Value> = sent
        .iter()
        .take(rows.len())
        .map(|e| {
            let d = &e["details"];
            facts(&d["who"], &d["action"], &d["outcome"], &d["details"])
        })
        .collect();
    let row_facts: Vec<Value> =
        rows.iter().map(|r| facts(&r["who"], &r["action"], &r["outcome"], &r["details"])).collect();
    assert_eq!(sent_facts, row_facts);
    let ids: Vec<i64> = sent.iter().map(|e| e["details"]["audit_id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the log's order: {ids:?}");
    let cases: Vec<Value> = sent
        .iter()
        .map(|e| json!({"label": e["details"]["action"], "schema": "events/console_audit.schema.json", "instance": e}))
        .collect();
    let out = common::validate_against_contract(&cases);
    assert!(out.status.success(), "console_audit events fail the schema:\n{}", String::from_utf8_lossy(&out.stdout));

    let log = agent.stop();
    assert!(log.contains("console sign-in refused: locked out"), "the lock-out is logged");
    assert!(!log.contains("long password"), "no password in the log");

    // After a restart the relay goes on from where the outbox took it: no row is sent twice.
    let before = events.messages.lock().unwrap().len();
    let agent = Agent::start(&config, root.join("agent-2.log"));
    let started = Instant::now();
    while ureq::get(&format!("{}/healthz", console.base)).call().is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the agent did not serve again:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    console.session("ana", "ana's long password");
    assert!(events.wait_for(Duration::from_secs(20), |m| m.len() > before), "the new sign-in is sent");
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<Value> = events
        .messages
        .lock()
        .unwrap()
        .iter()
        .skip(before)
        .map(|(_, p, _)| serde_json::from_slice(p).unwrap())
        .collect();
    let actions: Vec<(&str, &str)> = after
        .iter()
        .map(|e| (e["details"]["who"].as_str().unwrap(), e["details"]["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("ana", "login")], "only the row written since");

    // A one-time password (what the demo prints): it signs in, but allows nothing until its holder has
    // chosen their own password.
    let added = users(&config, &["add", "--name", "root", "--role", "installer", "--one-time"], "");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let printed = String::from_utf8_lossy(&added.stdout).into_owned();
    let one_time = printed
        .lines()
        .find_map(|l| l.strip_prefix("one-time password for root: "))
        .unwrap_or_else(|| panic!("no password printed: {printed}"))
        .to_owned();
    assert_eq!(one_time.len(), 23, "four groups of five: {one_time}");
    let signed = console.login("root", &one_time);
    assert_eq!((signed.status, &signed.body["must_change_password"]), (200, &json!(true)), "{:?}", signed.body);
    let (root, root_csrf) = console.session("root", &one_time);
    let refused = console.call("GET", "/console/api/audit", &[("cookie", &root)], None);
    assert_eq!((refused.status, refused.code()), (403, "password_change_required"), "{:?}", refused.body);
    assert_eq!(console.call("GET", "/console/api/me", &[("cookie", &root)], None).status, 200);
    let change = |current: &str, new: &str| {
        let headers = [("cookie", root.as_str()), ("x-csrf-token", root_csrf.as_str())];
        console.call("POST", "/console/api/password", &headers, Some(json!({"current": current, "new": new})))
    };
    assert_eq!(change("not it at all", "root's own long password").code(), "wrong_password");
    let short = change(&one_time, "short");
    assert_eq!((short.status, short.code()), (400, "bad_request"), "{:?}", short.body);
    assert!(short.message().contains("at least 10 characters"), "{}", short.message());
    assert_eq!(change(&one_time, "root's own long password").status, 204);
    assert_eq!(console.call("GET", "/console/api/audit", &[("cookie", &root)], None).status, 200, "the same session");
    assert_eq!(console.login("root", &one_time).status, 401, "the one-time password is spent");
    let again = console.login("root", "root's own long password");
    assert_eq!(again.body["must_change_password"], json!(false));
    let log = console.call("GET", "/console/api/audit?limit=20", &[("cookie", &root)], None);
    let changes: Vec<&str> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "password_change")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["ok", "refused"], "newest first");
    let log = agent.stop();
    assert!(!log.contains(&one_time) && !log.contains("own long password"), "no password in the log");
}
