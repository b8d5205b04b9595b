//! The layers of README "Layers", kept: every file under `src/` belongs to
//! one layer and may use only its own and the layers before it. A failure
//! names the file, the line and the layer it reached.

use std::path::{Path, PathBuf};

use super::helpers::repo;

/// The layers, first to last.
const LAYERS: [&str; 7] = [
    "domain", "config", "db", "stores", "services", "http", "startup",
];

/// The layer of a top-level module of the library (or of the binary).
/// Every module not named here is a service.
fn layer_of_module(module: &str) -> usize {
    match module {
        "domain" | "crypto" => 0,
        "config" => 1,
        "db" => 2,
        "store" => 3,
        "http" => 5,
        "startup" | "cli" | "telemetry" | "main" | "lib" => 6,
        _ => 4,
    }
}

/// Macros exported at the crate root, and the module each belongs to.
fn module_of_root_macro(name: &str) -> Option<&'static str> {
    match name {
        "text_enum" => Some("domain"),
        "on_backend" => Some("db"),
        _ => None,
    }
}

/// A file's module path: `src/store/items.rs` is `[store, items]`,
/// `src/db/mod.rs` is `[db]`; `src/main.rs` and `src/lib.rs` are the roots.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.first().map(String::as_str) == Some("bin") {
        return vec!["main".into()];
    }
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line without its `//` comment (string contents are kept:
/// a path inside a string is rare and would be a false alarm, not a miss).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// The first segment of every `crate::…` path in `code`, including each
/// branch of a `use crate::{a::…, b};` group. `super::` is resolved against
/// `module`.
fn referenced_modules(code: &str, module: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(pos) = code[at..].find("crate::") {
        let start = at + pos;
        at = start + "crate::".len();
        // `$crate::` (inside macros) and `verdict_crate::` are not paths of ours.
        if start > 0 {
            let before = bytes[start - 1];
            if before == b'$' || before.is_ascii_alphanumeric() || before == b'_' {
                continue;
            }
        }
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b}`: the group may span lines; the caller joins
            // `use` statements into one line first.
            let end = matching_brace(group).unwrap_or(group.len());
            for branch in split_top_level(&group[..end]) {
                let first = first_segment(branch.trim());
                if !first.is_empty() && first != "self" {
                    found.push(first);
                }
            }
        } else {
            let first = first_segment(rest);
            if !first.is_empty() {
                found.push(first);
            }
        }
    }
    // `super::` goes to the parent module (from `a/b.rs`, that is `a`);
    // `super::super::x` further up. Only a path that climbs to the crate
    // root names another top-level module.
    let mut at = 0;
    while let Some(pos) = code[at..].find("super::") {
        let start = at + pos;
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':') {
            at = start + 1;
            continue;
        }
        let mut depth = 0;
        let mut rest = &code[start..];
        while let Some(r) = rest.strip_prefix("super::") {
            depth += 1;
            rest = r;
        }
        at = start + depth * "super::".len();
        // In `a/b.rs` (module [a, b]), `super` is [a]; at the root after
        // `module.len()` steps.
        if depth >= module.len() {
            let first = first_segment(rest);
            if !first.is_empty() {
                found.push(first);
            }
        }
    }
    found
}

fn first_segment(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut from = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

/// Statements joined so that a `use` spanning lines is read whole; each
/// keeps the number of the line it starts on.
fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line);
        if let Some((start, mut joined)) = open.take() {
            joined.push_str(code.trim());
            if code.contains(';') {
                out.push((start, joined));
            } else {
                open = Some((start, joined));
            }
            continue;
        }
        let trimmed = code.trim_start();
        let is_use = trimmed.starts_with("use ") || trimmed.starts_with("pub use ");
        if is_use && !code.contains(';') {
            open = Some((n + 1, code.to_string()));
        } else {
            out.push((n + 1, code.to_string()));
        }
    }
    if let Some(last) = open {
        out.push(last);
    }
    out
}

/// One file under `src`, with what the checks need of it.
struct SourceFile {
    /// The path as reported: `src/store/items.rs`.
    shown: String,
    module: Vec<String>,
    /// The top-level module, `lib` for the roots.
    own: String,
    layer: usize,
    text: String,
}

/// Every `.rs` file under `src`, sorted by path.
fn source_files(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    files
        .iter()
        .map(|file| {
            let module = module_path(src, file);
            let own = module.first().cloned().unwrap_or_else(|| "lib".into());
            SourceFile {
                shown: file
                    .strip_prefix(src.parent().unwrap())
                    .unwrap()
                    .display()
                    .to_string(),
                layer: layer_of_module(&own),
                own,
                module,
                text: std::fs::read_to_string(file).expect("readable file"),
            }
        })
        .collect()
}

/// Every use of a later layer in the tree under `src`, as
/// `file:line: layer uses layer (module)`.
fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for f in source_files(src) {
        for (line, code) in statements(&f.text) {
            for target in referenced_modules(&code, &f.module) {
                let target_module = module_of_root_macro(&target).unwrap_or(target.as_str());
                let layer = layer_of_module(target_module);
                if layer > f.layer {
                    found.push(format!(
                        "{}:{line}: {} ({}) uses {} ({target_module})",
                        f.shown, LAYERS[f.layer], f.own, LAYERS[layer],
                    ));
                }
            }
        }
    }
    found
}

/// Files outside `http`, `startup` and the CLI that name a crate only the
/// HTTP layer may use, or the HTTP layer's error types.
fn http_leaks(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for f in source_files(src).into_iter().filter(|f| f.layer < 5) {
        for (n, line) in f.text.lines().enumerate() {
            let code = code_of(line);
            let leak = ["actix_web", "actix_", "askama_web", "AppError", "WebError"]
                .into_iter()
                .find(|name| code.contains(name));
            if let Some(name) = leak {
                found.push(format!(
                    "{}:{}: {} ({}) names {name}",
                    f.shown,
                    n + 1,
                    LAYERS[f.layer],
                    f.own
                ));
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_before_it() {
    let found = violations(&repo().join("src"));
    assert!(
        found.is_empty(),
        "{} uses of a later layer (README, Layers):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn only_the_http_layer_knows_http() {
    let found = http_leaks(&repo().join("src"));
    assert!(
        found.is_empty(),
        "HTTP outside the http layer:\n{}",
        found.join("\n")
    );
}

/// The checker itself: a store that reaches for the application state is
/// caught, with its file and line; grouped and multi-line `use`s are read.
#[test]
fn the_layer_check_catches_a_store_using_startup() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod store;\n");
    write(
        "store/items.rs",
        "use crate::db::DbConnection;\n// use crate::http::Nothing;\nuse crate::startup::AppState;\n",
    );
    write(
        "store/queue.rs",
        "use crate::{\n    domain::ItemStatus,\n    scoring::Outcome,\n};\n",
    );
    write("store/mod.rs", "use super::http::State;\n");
    write(
        "db/mod.rs",
        "pub fn f() -> crate::domain::ItemId { todo!() }\n",
    );
    write(
        "store/tasks.rs",
        "use super::items::Row;\nuse super::super::config::X;\n",
    );
    let mut found = violations(&src);
    found.sort();
    assert_eq!(
        found,
        [
            "src/store/items.rs:3: stores (store) uses startup (startup)",
            "src/store/mod.rs:1: stores (store) uses http (http)",
            "src/store/queue.rs:1: stores (store) uses services (scoring)",
        ]
    );
    write(
        "store/items.rs",
        "use crate::db::DbConnection;\nfn f(e: AppError) {}\n",
    );
    let leaks = http_leaks(&src);
    assert_eq!(
        leaks,
        ["src/store/items.rs:2: stores (store) names AppError"]
    );
}
