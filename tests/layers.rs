//! The layering rules of docs/architecture.md, checked on the source: reads every file of agent/src that
//! the library (`lib.rs`) and the binary (`main.rs`) declare, finds every import of another module
//! (`use crate::…` with its groups, `crate::x::…` paths in code, `super::` climbing out of a top-level
//! module, `vigil::…` in the binary), and fails naming the file, line and rule of each one the rules
//! forbid. Comments, strings and `#[cfg(test)]` items are not imports.
//!
//! Known breaks that other work removes are listed in [`ALLOWED`], each with its reason; an entry that no
//! longer matches an import fails the test as well, so the list can only shrink.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The layer of a top-level module (docs/architecture.md, "Modules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Foundation,
    /// A pipeline stage and its position in the pipeline.
    Stage(u8),
    Config,
    Runtime,
    Cli,
    Fuzzing,
}

/// Every top-level module of the library and its layer. Rule 9: a module missing here is an error.
const LAYERS: &[(&str, Layer)] = &[
    ("times", Layer::Foundation),
    ("fsio", Layer::Foundation),
    ("input", Layer::Foundation),
    ("redact", Layer::Foundation),
    ("hashing", Layer::Foundation),
    ("cache", Layer::Foundation),
    ("storage_lock", Layer::Foundation),
    ("clock", Layer::Foundation),
    ("clock_sync", Layer::Foundation),
    ("memory", Layer::Foundation),
    ("histogram", Layer::Foundation),
    ("source", Layer::Stage(1)),
    ("analyze", Layer::Stage(2)),
    ("gallery", Layer::Stage(3)),
    ("phones", Layer::Stage(4)),
    ("decide", Layer::Stage(5)),
    ("evidence", Layer::Stage(6)),
    ("outbox", Layer::Stage(7)),
    ("publish", Layer::Stage(8)),
    // The console's accounts, sessions and audit log: below HTTP, so `vigil users` uses it without it.
    ("console", Layer::Stage(9)),
    // The HTTP surface: the last stage (it serves what the others made; only the runtime starts it).
    ("http", Layer::Stage(10)),
    ("config", Layer::Config),
    // `app` is being renamed `runtime`; both names are the composition root.
    ("app", Layer::Runtime),
    ("runtime", Layer::Runtime),
    // The CLI moves out of the library into the binary; until then `commands` is its library part.
    ("commands", Layer::Cli),
    ("cli", Layer::Cli),
    ("fuzzing", Layer::Fuzzing),
];

/// Of `evidence`, what `publish` may use: the signing primitives, not the bundle files (rule 8).
const PUBLISH_MAY_USE_OF_EVIDENCE: &[&str] = &["keys", "canonical"];

/// Known breaks, removed by other work on issue 13: (file under agent/src, imported path prefix, reason).
const ALLOWED: &[(&str, &str, &str)] = &[];

/// One import of another module.
#[derive(Debug, Clone)]
struct Import {
    /// File, relative to agent/src.
    file: String,
    line: usize,
    /// The importing file's layer name (its top-level module, or `vigil (binary)`).
    from: String,
    /// The imported path from the library root, e.g. `["decide", "roster", "Roster"]`.
    path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    rule: u8,
    message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent/src/{}:{}: rule {}: {}", self.file, self.line, self.rule, self.message)
    }
}

fn layer_of(module: &str) -> Option<Layer> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

const RULES: [&str; 9] = [
    "foundations import nothing of the crate",
    "a stage imports only foundations and earlier stages",
    "no stage imports config",
    "config imports foundations and stages only",
    "nothing in the library imports the runtime",
    "nothing in the library imports the CLI",
    "nothing in the library imports fuzzing; fuzzing imports no runtime or CLI",
    "publish never touches evidence files (only evidence::keys and evidence::canonical)",
    "every top-level module has a layer in tests/layers.rs",
];

/// The rule an import of `path` from module `from` breaks, if any. `from` is `None` for the binary.
fn check(from: Option<&str>, path: &[String]) -> Option<(u8, String)> {
    let to = path.first()?.as_str();
    let to_layer = match layer_of(to) {
        Some(layer) => layer,
        None => return Some((9, format!("`{to}` has no layer (add it to LAYERS and docs/architecture.md)"))),
    };
    // The binary (the CLI) is the top: it may import every library module.
    let Some(from) = from else { return None };
    let from_layer = match layer_of(from) {
        Some(layer) => layer,
        None => return Some((9, format!("`{from}` has no layer (add it to LAYERS and docs/architecture.md)"))),
    };
    if from == to {
        return None;
    }
    let broken = |rule: u8| Some((rule, format!("{from} → {}: {}", path.join("::"), RULES[rule as usize - 1])));
    use Layer::*;
    match (from_layer, to_layer) {
        (Foundation, _) => broken(1),
        (_, Foundation) => None,
        (_, Runtime) if from_layer != Cli => broken(5),
        (_, Cli) if from_layer != Cli => broken(6),
        (_, Fuzzing) if from_layer != Cli => broken(7),
        (Fuzzing, _) => None,
        (Stage(_), Config) => broken(3),
        (Stage(a), Stage(b)) if b > a => broken(2),
        (Stage(8), Stage(6)) => {
            let part = path.get(1).map(String::as_str);
            if part.is_some_and(|p| PUBLISH_MAY_USE_OF_EVIDENCE.contains(&p)) { None } else { broken(8) }
        }
        (Stage(_), Stage(_)) => None,
        (Config, Stage(_)) => None,
        (Config, _) => broken(4),
        (Runtime | Cli, _) => None,
        (Stage(_), _) => broken(2),
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading the source: comments and literals blanked, then tokens, then paths.

/// `text` with comments, string and character literals replaced by spaces (newlines kept, so line
/// numbers stay right).
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if (c == 'r' || (c == 'b' && next == Some('r')))
            && !prev_is_ident(&chars, i)
            && raw_string_start(&chars, if c == 'b' { i + 1 } else { i }).is_some()
        {
            let start = if c == 'b' { i + 1 } else { i };
            let hashes = raw_string_start(&chars, start).unwrap();
            // r, hashes, quote
            let body = start + 1 + hashes + 1;
            let mut j = body;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &chars[i..j.min(chars.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{..}') or a lifetime ('a): only the first is blanked.
            let literal_end = if next == Some('\\') {
                (i + 2..chars.len()).find(|&j| chars[j] == '\'').map(|j| j + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match literal_end {
                Some(end) => {
                    for _ in i..end {
                        out.push(' ');
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// At `r` of `r"`, `r#"`, `r##"`: the number of hashes.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if chars.get(i) != Some(&'r') {
        return None;
    }
    let mut hashes = 0;
    while chars.get(i + 1 + hashes) == Some(&'#') {
        hashes += 1;
    }
    (chars.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    line: usize,
}

fn tokenize(clean: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for (index, line) in clean.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c.is_alphanumeric() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token { text: chars[start..i].iter().collect(), line: index + 1 });
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                tokens.push(Token { text: "::".into(), line: index + 1 });
                i += 2;
            } else {
                tokens.push(Token { text: c.to_string(), line: index + 1 });
                i += 1;
            }
        }
    }
    tokens
}

/// Parses a use tree or path starting at `tokens[i]` (after its first segment was read into `prefix`):
/// every full path it names. Returns the paths and the index after the tree.
fn read_tree(tokens: &[Token], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut path = prefix;
    while tokens.get(i).is_some_and(|t| t.text == "::") {
        match tokens.get(i + 1).map(|t| t.text.as_str()) {
            Some("{") => {
                let mut paths = Vec::new();
                i += 2;
                loop {
                    match tokens.get(i).map(|t| t.text.as_str()) {
                        None => return (paths, i),
                        Some("}") => return (paths, i + 1),
                        Some(",") => i += 1,
                        Some("self") => {
                            paths.push(path.clone());
                            i = skip_alias(tokens, i + 1);
                        }
                        Some(first) if is_ident(first) => {
                            let mut sub = path.clone();
                            sub.push(first.to_owned());
                            let (found, next) = read_tree(tokens, i + 1, sub);
                            paths.extend(found);
                            i = skip_alias(tokens, next);
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            Some("*") => {
                return (vec![path], i + 2);
            }
            Some(segment) if is_ident(segment) => {
                path.push(segment.to_owned());
                i += 2;
            }
            _ => break,
        }
    }
    (vec![path], i)
}

fn skip_alias(tokens: &[Token], i: usize) -> usize {
    if tokens.get(i).is_some_and(|t| t.text == "as") { i + 2 } else { i }
}

fn is_ident(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// What one file declares and imports.
#[derive(Debug, Default)]
struct FileScan {
    /// `mod x;` declarations (not `#[cfg(test)]`).
    children: Vec<String>,
    /// (line, path as written: starting with `crate`, `super`, `self` or `vigil`, module path at that point).
    paths: Vec<(usize, Vec<String>, Vec<String>)>,
}

/// Scans one file whose module path is `module` (empty for a crate root).
fn scan(text: &str, module: &[String], roots: &[&str]) -> FileScan {
    let tokens = tokenize(&blank_comments_and_literals(text));
    let mut scan = FileScan::default();
    // Inline modules: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].text.as_str();
        if t == "#" && is_cfg_test(&tokens, i) {
            i = skip_item(&tokens, i);
            continue;
        }
        match t {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" => {
                if let (Some(name), Some(after)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                    if after.text == ";" {
                        scan.children.push(name.text.clone());
                    } else if after.text == "{" {
                        inline.push((name.text.clone(), depth + 1));
                    }
                }
            }
            _ => {}
        }
        let starts_path = roots.contains(&t)
            && tokens.get(i + 1).is_some_and(|n| n.text == "::")
            && !(i > 0 && tokens[i - 1].text == "::");
        if starts_path {
            let (paths, next) = read_tree(&tokens, i + 1, vec![t.to_owned()]);
            let mut here = module.to_vec();
            here.extend(inline.iter().map(|(name, _)| name.clone()));
            for path in paths {
                scan.paths.push((tokens[i].line, path, here.clone()));
            }
            i = next;
            continue;
        }
        i += 1;
    }
    scan
}

/// `#[cfg(test)]` at `tokens[i]`.
fn is_cfg_test(tokens: &[Token], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    want.iter().enumerate().all(|(k, w)| tokens.get(i + k).is_some_and(|t| t.text == *w))
}

/// Skips the attributes at `tokens[i]` and the item they apply to: up to its `;` or its closing brace.
fn skip_item(tokens: &[Token], mut i: usize) -> usize {
    while tokens.get(i).is_some_and(|t| t.text == "#") {
        // `#[ … ]` with nested brackets.
        let mut brackets = 0;
        i += 1;
        while let Some(t) = tokens.get(i) {
            i += 1;
            match t.text.as_str() {
                "[" => brackets += 1,
                "]" => {
                    brackets -= 1;
                    if brackets == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let mut braces = 0;
    while let Some(t) = tokens.get(i) {
        i += 1;
        match t.text.as_str() {
            ";" if braces == 0 => return i,
            "{" => braces += 1,
            "}" => {
                braces -= 1;
                if braces == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    i
}

/// The library path `written` names, from a file of the library at module path `here`: `None` when it
/// stays inside the same module tree position it cannot leave (`self::`), or names nothing.
fn resolve_in_library(written: &[String], here: &[String]) -> Option<Vec<String>> {
    match written.first()?.as_str() {
        "crate" => Some(written[1..].to_vec()),
        "super" => {
            let mut at = here.to_vec();
            let mut rest = written;
            while rest.first().is_some_and(|s| s == "super") {
                at.pop()?;
                rest = &rest[1..];
            }
            at.extend(rest.iter().cloned());
            Some(at)
        }
        _ => None,
    }
}

/// The source file of module `name` declared in `parent_file` (a crate root, `mod.rs`, or `x.rs`).
fn child_file(parent_file: &Path, name: &str) -> Option<PathBuf> {
    let dir = parent_file.parent()?;
    let stem = parent_file.file_stem()?.to_str()?;
    let base = if matches!(stem, "lib" | "main" | "mod") { dir.to_owned() } else { dir.join(stem) };
    [base.join(format!("{name}.rs")), base.join(name).join("mod.rs")].into_iter().find(|p| p.is_file())
}

/// Every import in the crate rooted at `root` (lib.rs or main.rs under `src`).
fn imports_of_crate(src: &Path, root: &str) -> Vec<Import> {
    let binary = root == "main.rs";
    let roots: &[&str] = if binary { &["vigil"] } else { &["crate", "super"] };
    let mut imports = Vec::new();
    let mut queue: Vec<(PathBuf, Vec<String>)> = vec![(src.join(root), Vec::new())];
    let mut seen = BTreeSet::new();
    while let Some((file, module)) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let scanned = scan(&text, &module, roots);
        let rel = file.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        for child in scanned.children {
            let path = child_file(&file, &child)
                .unwrap_or_else(|| panic!("{rel}: no file for `mod {child};` (tests/layers.rs reads it)"));
            let mut sub = module.clone();
            sub.push(child);
            queue.push((path, sub));
        }
        for (line, written, here) in scanned.paths {
            let path = if binary { Some(written[1..].to_vec()) } else { resolve_in_library(&written, &here) };
            let Some(path) = path.filter(|p| !p.is_empty()) else { continue };
            let from = if binary { "vigil (binary)".to_owned() } else { module.first().cloned().unwrap_or_default() };
            imports.push(Import { file: rel.clone(), line, from, path });
        }
    }
    imports
}

/// Violations among `imports`, before the allow-list.
fn violations(imports: &[Import]) -> Vec<Violation> {
    let mut found = Vec::new();
    for import in imports {
        let from = (import.from != "vigil (binary)").then_some(import.from.as_str());
        // The crate root's own declarations are not imports.
        if from == Some("") {
            continue;
        }
        if let Some((rule, message)) = check(from, &import.path) {
            found.push(Violation { file: import.file.clone(), line: import.line, rule, message });
        }
    }
    found
}

fn allowed(violation: &Violation, imports: &[Import]) -> Option<usize> {
    ALLOWED.iter().position(|(file, prefix, _)| {
        violation.file == *file
            && imports
                .iter()
                .any(|i| i.file == violation.file && i.line == violation.line && i.path.join("::").starts_with(prefix))
    })
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn imports_follow_the_layering_rules() {
    let src = src_dir();
    let mut imports = imports_of_crate(&src, "lib.rs");
    imports.extend(imports_of_crate(&src, "main.rs"));
    assert!(imports.len() > 100, "too few imports found ({}): is the scanner reading agent/src?", imports.len());
    let mut used = vec![false; ALLOWED.len()];
    let mut forbidden = Vec::new();
    for violation in violations(&imports) {
        match allowed(&violation, &imports) {
            Some(k) => used[k] = true,
            None => forbidden.push(violation.to_string()),
        }
    }
    let stale: Vec<String> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((file, prefix, _), _)| format!("{file} → {prefix}"))
        .collect();
    assert!(
        forbidden.is_empty() && stale.is_empty(),
        "imports the layering rules (docs/architecture.md) forbid:\n  {}\nallow-list entries that match nothing \
         any more (delete them from ALLOWED in tests/layers.rs):\n  {}",
        forbidden.join("\n  "),
        stale.join("\n  ")
    );
}

/// Every top-level module declared in lib.rs has a layer, and the table names no module that is gone
/// (other than the names of a rename or move in progress).
#[test]
fn every_module_has_a_layer() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let declared = scan(&lib, &[], &["crate"]).children;
    let missing: Vec<&String> = declared.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(missing.is_empty(), "rule 9: modules without a layer in tests/layers.rs: {missing:?}");
}

// ---------------------------------------------------------------------------------------------------
// The checker itself: it must see what it is meant to see, and fail on a forbidden import.

fn violations_in(file: &str, module: &[&str], text: &str) -> Vec<String> {
    let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
    let scanned = scan(text, &module, &["crate", "super"]);
    let imports: Vec<Import> = scanned
        .paths
        .into_iter()
        .filter_map(|(line, written, here)| {
            let path = resolve_in_library(&written, &here).filter(|p| !p.is_empty())?;
            Some(Import { file: file.into(), line, from: module[0].clone(), path })
        })
        .collect();
    violations(&imports).iter().map(ToString::to_string).collect()
}

#[test]
fn a_stage_importing_config_or_a_later_stage_is_named_with_file_line_and_rule() {
    let text = "//! Doc: crate::config is mentioned here only.\n\
                use crate::analyze::boxes::BBox;\n\
                use crate::{times, config::Camera};\n\
                fn f() { let s = \"crate::publish::x\"; crate::evidence::store::write(); }\n";
    let found = violations_in("decide/roster.rs", &["decide", "roster"], text);
    assert_eq!(
        found,
        vec![
            "agent/src/decide/roster.rs:3: rule 3: decide → config::Camera: no stage imports config",
            "agent/src/decide/roster.rs:4: rule 2: decide → evidence::store::write: a stage imports only \
             foundations and earlier stages",
        ]
    );
}

#[test]
fn super_climbing_out_of_a_module_is_an_import() {
    let text = "use super::slot::FrameSlot;\nfn f() -> super::super::config::Camera { todo!() }\n";
    let found = violations_in("source/camera.rs", &["source", "camera"], text);
    assert_eq!(found, vec!["agent/src/source/camera.rs:2: rule 3: source → config::Camera: no stage imports config"]);
}

#[test]
fn test_code_comments_and_strings_are_not_imports() {
    let text = "/* crate::app::run() /* nested */ crate::app */\n\
                const S: &str = r#\"crate::app::run\"#;\n\
                const C: char = '\"'; fn g<'a>(x: &'a str) {}\n\
                #[cfg(test)]\nmod tests {\n    use crate::app::run;\n    #[test] fn t() { crate::commands::x(); }\n}\n\
                pub(crate) fn h() {}\n";
    assert_eq!(violations_in("gallery/mod.rs", &["gallery"], text), Vec::<String>::new());
    // The same import outside the test module is found, after the test module's braces closed.
    let found = violations_in("gallery/mod.rs", &["gallery"], &format!("{text}fn k() {{ crate::app::run(); }}\n"));
    assert_eq!(
        found,
        vec!["agent/src/gallery/mod.rs:10: rule 5: gallery → app::run: nothing in the library imports the runtime"]
    );
}

#[test]
fn publish_may_verify_signatures_but_not_touch_bundles() {
    let text = "use crate::evidence::keys::PublicKey;\nuse crate::evidence::{canonical, store};\n";
    let found = violations_in("publish/publisher.rs", &["publish", "publisher"], text);
    assert_eq!(
        found,
        vec![
            "agent/src/publish/publisher.rs:2: rule 8: publish → evidence::store: publish never touches evidence \
             files (only evidence::keys and evidence::canonical)"
        ]
    );
}

#[test]
fn foundations_import_nothing_and_unknown_modules_are_refused() {
    let found = violations_in("times.rs", &["times"], "use crate::fsio;\nuse crate::newthing::X;\n");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains(":1: rule 1: times → fsio"), "{found:#?}");
    assert!(found[1].contains(":2: rule 9: `newthing` has no layer"), "{found:#?}");
}
