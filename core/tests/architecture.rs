//! The module map of docs/architecture.md, kept true: which of core's top-level modules
//! may import which. The table is a layering (each module only imports modules listed
//! before it), so an import that breaks it is also the first step of an import cycle.
//! Imports are read from the source (`crate::` paths outside comments and inline
//! `#[cfg(test)]` modules, root re-exports resolved to their module; `super::` stays
//! within a module): cheap, dependency-free, and exact enough for paths written the way
//! this crate writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and the modules it may import, lowest layer first.
const LAYERS: &[(&str, &[&str])] = &[
    ("allocator", &[]),
    ("urls", &[]),
    ("error", &["urls"]),
    ("limits", &["error"]),
    ("deadline", &["error", "limits"]),
    ("runtime", &["error"]),
    ("config", &["error", "limits"]),
    ("tls", &["error"]),
    ("trace", &["error", "runtime", "tls", "urls"]),
    ("telemetry", &["error", "limits", "trace"]),
    ("resilience", &["error", "limits", "telemetry"]),
    ("balance", &["error", "runtime", "telemetry", "urls"]),
    (
        "http",
        &[
            "balance",
            "config",
            "deadline",
            "error",
            "limits",
            "resilience",
            "runtime",
            "telemetry",
            "tls",
            "trace",
            "urls",
        ],
    ),
    (
        "messaging",
        &[
            "config",
            "deadline",
            "error",
            "limits",
            "resilience",
            "runtime",
            "telemetry",
            "tls",
            "trace",
            "urls",
        ],
    ),
    ("schema", &["http", "messaging"]),
];

/// The same inside `messaging`, whose submodules import each other through `super::`
/// and `crate::messaging::`: the transport-neutral shapes first, then the transport
/// boundary and the two transports below it, then what the bus builds on them.
const MESSAGING_LAYERS: &[(&str, &[&str])] = &[
    ("message", &[]),
    ("queue", &[]),
    ("config", &[]),
    ("stats", &[]),
    ("transport", &["message", "queue"]),
    (
        "amqp",
        &["config", "message", "queue", "stats", "transport"],
    ),
    ("memory", &["message", "queue", "transport"]),
    ("dedup", &["config"]),
    ("rpc", &["message", "transport"]),
    (
        "session",
        &["dedup", "message", "rpc", "stats", "transport"],
    ),
    ("delay", &["message", "session", "transport"]),
    ("publish", &["delay", "message", "queue", "session"]),
    (
        "delivery",
        &["dedup", "delay", "message", "publish", "session", "stats"],
    ),
    ("batch", &["delivery"]),
    (
        "consumer",
        &[
            "batch",
            "dedup",
            "delay",
            "delivery",
            "message",
            "session",
            "transport",
        ],
    ),
    (
        "bus",
        &[
            "amqp",
            "config",
            "consumer",
            "dedup",
            "delay",
            "delivery",
            "memory",
            "message",
            "publish",
            "queue",
            "session",
            "stats",
            "transport",
        ],
    ),
];

/// Modules outside the map: the crate root, and test-only entry points.
const UNMAPPED: &[&str] = &["lib", "fuzzing"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without the `#[cfg(test)] mod tests` block at the
/// end of a file (tests may reach anywhere).
fn code(source: &str) -> String {
    let body = source
        .find("#[cfg(test)]\nmod tests {")
        .map_or(source, |at| &source[..at]);
    body.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate root's re-exports, item → the top-level module it comes from, so that
/// `crate::ClientConfig` counts as an import of `http`.
fn reexports(src: &Path) -> BTreeMap<String, String> {
    let lib = code(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut map = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_matches(|c| c == '{' || c == '}' || char::is_whitespace(c));
        for item in items.split(',') {
            let item = item.trim();
            if !item.is_empty() {
                map.insert(item.to_owned(), module.to_owned());
            }
        }
    }
    map
}

/// The top-level modules one file refers to through `crate::` paths (a re-exported item
/// counts as its module).
fn imports(src: &Path, file: &Path, reexported: &BTreeMap<String, String>) -> BTreeSet<String> {
    let rel = file.strip_prefix(src).unwrap();
    let top = rel
        .iter()
        .next()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned();
    let text = code(&std::fs::read_to_string(file).unwrap());
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        match reexported.get(&name) {
            Some(module) => found.insert(module.clone()),
            None => found.insert(name),
        };
    }
    found.remove(&top);
    found
}

#[test]
fn core_modules_import_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    for (i, (module, deps)) in LAYERS.iter().enumerate() {
        let below: BTreeSet<&str> = LAYERS[..i].iter().map(|(m, _)| *m).collect();
        for dep in *deps {
            assert!(
                below.contains(dep),
                "the table itself: {module} may only import modules listed before it, not {dep}"
            );
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reexported = reexports(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if UNMAPPED.contains(&top.as_str()) || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(deps) = allowed.get(top.as_str()) else {
            broken.push(format!("{}: module {top} is not in LAYERS", rel.display()));
            continue;
        };
        for import in imports(&src, file, &reexported) {
            if !deps.contains(&import.as_str()) {
                broken.push(format!("{} imports {import}", rel.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports outside the module map (docs/architecture.md):\n{}",
        broken.join("\n")
    );
}

/// The first path segment after each occurrence of `prefix` (`super::a::b` gives `a`;
/// `super::{a, b::c}` gives `a` and `b`).
fn segments_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                found.extend(group.split(',').map(ident));
            }
            None => {
                found.insert(ident(rest));
            }
        }
    }
    found.retain(|s| !s.is_empty() && s != "self");
    found
}

#[test]
fn messaging_submodules_import_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = MESSAGING_LAYERS.iter().copied().collect();
    for (i, (module, deps)) in MESSAGING_LAYERS.iter().enumerate() {
        let below: BTreeSet<&str> = MESSAGING_LAYERS[..i].iter().map(|(m, _)| *m).collect();
        for dep in *deps {
            assert!(
                below.contains(dep),
                "the table itself: messaging::{module} may only import modules listed before it, not {dep}"
            );
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/messaging");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&dir).unwrap();
        if rel == Path::new("mod.rs") || rel.ends_with("tests.rs") {
            continue;
        }
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let own = parts[0].trim_end_matches(".rs").to_owned();
        let Some(deps) = allowed.get(own.as_str()) else {
            broken.push(format!(
                "messaging/{}: not in MESSAGING_LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = code(&std::fs::read_to_string(file).unwrap());
        let mut imported = segments_after(&text, "crate::messaging::");
        // `super::` is messaging itself from `x.rs` and `x/mod.rs`, else `x` (its own).
        if parts.len() == 1 || parts[1] == "mod.rs" {
            imported.extend(segments_after(&text, "super::"));
        }
        imported.remove(&own);
        for import in imported {
            if !deps.contains(&import.as_str()) {
                broken.push(format!(
                    "messaging/{} imports messaging::{import}",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports outside messaging's module map (docs/architecture.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn only_the_amqp_transport_uses_lapin() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("messaging/amqp")))
        .filter(|f| code(&std::fs::read_to_string(f).unwrap()).contains("lapin::"))
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "lapin outside messaging/amqp: {outside:?}"
    );
}
