//! The one credential scrubber: every URL the agent logs, prints or publishes (camera URLs, and text a
//! library produced that may echo one) goes through here, so camera credentials never reach a log.
//!
//! What is a credential:
//! - the userinfo of a URL (`rtsp://user:password@host/…`), whatever characters the password holds. Users
//!   write passwords unencoded, so `/`, `@`, `:`, `?` and `#` may all appear in it: the userinfo ends at
//!   the last `@` that is followed by something shaped like a host (`name`, `1.2.3.4`, `[::1]`, with an
//!   optional port). The user name stays visible when it is plain (it helps an operator); the password
//!   becomes `***`. Userinfo without a `:` (a bare token) is hidden whole.
//! - the value of a query parameter whose name looks like a credential (user, username, pass, password,
//!   pwd, token, key, secret, auth, signature, access_token, …, case-insensitive, also as part of a
//!   longer name such as `X-Amz-Signature` or `auth_token`).
//!
//! When the shape is ambiguous (an `@` in a path), more is hidden rather than less.

/// Parameter names are credentials when they contain one of these (lowercased, `-` read as `_`).
const SECRET_NAME_PARTS: [&str; 9] = ["user", "pass", "pwd", "token", "secret", "auth", "key", "sign", "credential"];
/// …or are exactly one of these.
const SECRET_NAMES: [&str; 3] = ["sig", "pw", "session"];

const MASK: &str = "***";

/// A URL as it may appear in logs and errors: credentials replaced by `***`. Also takes text that is
/// not a URL (a URL typed without its scheme is scrubbed the same way).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let parts = split(rest);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) if plain_user(user) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            _ => out.push_str(MASK),
        }
        out.push('@');
    }
    out.push_str(parts.host);
    out.push_str(parts.path);
    if let Some(query) = parts.query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if secret_name(name) => format!("{name}={MASK}"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The credentials in `url`: the userinfo's password (or the whole userinfo when it has no `:`) and the
/// values of credential-named query parameters, each as written and percent-decoded.
pub fn secrets(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let parts = split(rest);
    let mut found = Vec::new();
    if let Some(userinfo) = parts.userinfo {
        found.push(userinfo.split_once(':').map_or(userinfo, |(_, password)| password).to_owned());
    }
    for param in parts.query.into_iter().flat_map(|q| q.split('&')) {
        if let Some((_, value)) = param.split_once('=').filter(|(name, _)| secret_name(name)) {
            found.push(value.to_owned());
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    // Longest first, so a secret containing another is replaced whole.
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// Text a library produced (a GStreamer error, a debug string) with every credential of `url` removed,
/// and every URL in it redacted, in case it echoed the URL or another one.
pub fn scrub_text(text: &str, url: &str) -> String {
    let mut text = text.to_owned();
    for secret in secrets(url) {
        text = text.replace(&secret, MASK);
    }
    redact_urls_in(&text)
}

/// Every `scheme://…` token in `text` redacted (a token ends at whitespace or a quote).
fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
        let start =
            rest[..at].char_indices().rev().find(|&(_, c)| !scheme_char(c)).map_or(0, |(i, c)| i + c.len_utf8());
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

struct Parts<'a> {
    userinfo: Option<&'a str>,
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

/// Splits what follows `scheme://`. The userinfo is found first (it may hold any character); the rest
/// is `host[:port]`, then the path, `?query`, `#fragment`.
fn split(rest: &str) -> Parts<'_> {
    let (userinfo, after) = match userinfo_end(rest) {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, after) = after.split_at(host_end);
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (after, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    Parts { userinfo, host, path, query, fragment }
}

/// Index of the `@` that ends the userinfo: the last one followed by a host (possibly empty). One after
/// the first `?` counts only while no `=` or `&` comes between (a password holding `?`), not in a query
/// (`?email=a@b`). Failing that, the last `@` before the query: hiding too much beats leaking.
fn userinfo_end(rest: &str) -> Option<usize> {
    let query = rest.find('?').unwrap_or(rest.len());
    let ats = || rest.match_indices('@').map(|(i, _)| i).rev();
    ats()
        .find(|&i| host_shaped(&rest[i + 1..]) && (i < query || !rest[query..i].contains(['=', '&'])))
        .or_else(|| ats().find(|&i| i < query))
}

/// Whether `text` starts with `host[:port]` (or nothing) followed by the end, `/`, `?` or `#`.
fn host_shaped(text: &str) -> bool {
    let host = &text[..text.find(['/', '?', '#']).unwrap_or(text.len())];
    host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '%'))
}

/// A user name shown as is: nothing that could be part of a path, query or password.
fn plain_user(user: &str) -> bool {
    !user.is_empty() && !user.contains(['/', '?', '#', '&', '=', ';', '@'])
}

fn secret_name(name: &str) -> bool {
    let name = percent_decode(name).to_ascii_lowercase().replace('-', "_");
    SECRET_NAMES.contains(&name.as_str()) || SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (URL, the secrets in it): every secret must vanish from the redacted URL and from text echoing it.
    const HOSTILE: &[(&str, &[&str])] = &[
        ("rtsp://u:pw9@cam:554/s", &["pw9"]),
        ("rtsp://admin:hunter2@/stream", &["hunter2"]),
        ("rtsp://admin:hunter2@cam name/stream", &["hunter2"]),
        ("rtsp://admin:pa/ss@cam:554/Streaming/Channels/101", &["pa/ss"]),
        ("rtsp://admin:p@ss@cam/live", &["p@ss"]),
        ("rtsp://admin:p:a:ss@cam/live", &["p:a:ss"]),
        ("rtsp://admin:a/b@c:d?e#f@cam.local:8554/live", &["a/b@c:d?e#f"]),
        ("rtsp://admin:pa?ss@10.0.0.4/live", &["pa?ss"]),
        ("rtsp://admin:s3cr%2Ft@cam/live", &["s3cr%2Ft", "s3cr/t"]),
        ("rtsp://tok3n-only@cam/live", &["tok3n-only"]),
        ("rtsp://cam/live?user=admin&password=hunter22", &["admin", "hunter22"]),
        ("rtsp://cam/live?USER=admin&PassWord=hunter22&channel=1", &["admin", "hunter22"]),
        (
            "rtsps://cam/live?pwd=x1y2&token=abc.def&key=k3y&secret=s3c&auth=au7h",
            &["x1y2", "abc.def", "k3y", "s3c", "au7h"],
        ),
        ("rtsp://cam/live?X-Amz-Signature=deadbeef&access_token=at0k&api-key=ak3y", &["deadbeef", "at0k", "ak3y"]),
        ("rtsp://cam/live?username=a@hospital.org&passwd=p/w@x", &["a@hospital.org", "p/w@x"]),
        ("rtsp://[fe80::1]:554/live?signature=5ig", &["5ig"]),
        ("admin:nosch3me@cam/live", &["nosch3me"]),
        ("rtsp://u:pw@cam/live?password=second", &["pw", "second"]),
    ];

    #[test]
    fn hostile_urls_lose_every_credential() {
        for (url, secrets_in) in HOSTILE {
            let shown = redact_url(url);
            for secret in *secrets_in {
                assert!(!shown.contains(secret), "{url:?} → {shown:?} still shows {secret:?}");
            }
            assert!(shown.contains(MASK), "{url:?} → {shown:?}");
            let echoed = format!("Could not open resource for reading: {url} (\"{url}\") and {}", percent_decode(url));
            let scrubbed = scrub_text(&echoed, url);
            for secret in *secrets_in {
                assert!(!scrubbed.contains(secret), "{echoed:?} → {scrubbed:?} still shows {secret:?}");
            }
        }
    }

    #[test]
    fn what_is_not_a_credential_stays_readable() {
        assert_eq!(redact_url("rtsp://cam/s"), "rtsp://cam/s");
        assert_eq!(redact_url("rtsp://u:p@cam:554/s"), "rtsp://u:***@cam:554/s");
        assert_eq!(redact_url("rtsp://u:p@ss@cam/s"), "rtsp://u:***@cam/s");
        assert_eq!(redact_url("rtsp://admin:pa/ss@cam:554/live"), "rtsp://admin:***@cam:554/live");
        assert_eq!(redact_url("rtsp://tok@cam/live"), "rtsp://***@cam/live");
        assert_eq!(redact_url("rtsp://admin:a/b@c:d?e#f@cam.local:8554/live"), "rtsp://admin:***@cam.local:8554/live");
        assert_eq!(redact_url("rtsp://admin:pa?ss@10.0.0.4/live"), "rtsp://admin:***@10.0.0.4/live");
        assert_eq!(
            redact_url("rtsp://cam/live?username=a@hospital.org&passwd=p/w@x"),
            "rtsp://cam/live?username=***&passwd=***"
        );
        assert_eq!(redact_url("rtsp://cam/live?email=a@corp"), "rtsp://cam/live?email=a@corp");
        assert_eq!(
            redact_url("rtsp://cam:554/live?channel=1&user=admin&password=x#frag"),
            "rtsp://cam:554/live?channel=1&user=***&password=***#frag"
        );
        assert_eq!(redact_url("file:///var/clips/a.mp4"), "file:///var/clips/a.mp4");
        assert_eq!(redact_url("test://smpte"), "test://smpte");
        assert_eq!(redact_url("rtsp://[::1]:8554/live"), "rtsp://[::1]:8554/live");
        assert_eq!(scrub_text("no url here", "rtsp://cam/live"), "no url here");
        assert_eq!(
            scrub_text("cannot reach rtsp://u:pw@cam/live: refused", "rtsp://u:pw@cam/live"),
            "cannot reach rtsp://u:***@cam/live: refused"
        );
    }

    #[test]
    fn credential_names_are_matched_case_insensitively_and_as_parts() {
        for name in [
            "user",
            "Username",
            "PASS",
            "password",
            "pwd",
            "token",
            "key",
            "secret",
            "Auth",
            "signature",
            "access_token",
            "X-Amz-Signature",
            "sig",
            "api_key",
        ] {
            assert!(secret_name(name), "{name}");
        }
        for name in ["channel", "subtype", "stream", "profile", "transport", "unicast"] {
            assert!(!secret_name(name), "{name}");
        }
    }
}
