//! The core never sees the wire: `domain`, `verify` and `issue` must not name
//! HTTP, gRPC, Redis, storage or cache crates. This stands in for the crate
//! boundaries a multi-crate workspace would enforce.

use std::path::Path;

const CORE_DIRS: &[&str] = &["src/domain", "src/verify", "src/issue"];
const BANNED: &[&str] = &[
    "axum",
    "tonic",
    "envoy_types",
    "redis",
    "reqwest",
    "moka",
    "hyper",
    "redb",
    "tower",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn core_modules_name_no_io_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in CORE_DIRS {
        rust_files(&root.join(d), &mut files);
    }
    assert!(!files.is_empty());
    let mut offences = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for krate in BANNED {
                let used = code.contains(&format!("{krate}::"))
                    || code.contains(&format!("use {krate}"))
                    || code.contains(&format!("extern crate {krate}"));
                if used {
                    offences.push(format!("{}:{}: names `{krate}`", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "layering violations:\n{}",
        offences.join("\n")
    );
}

/// The module path of a file under `src/` (`src/a/b.rs` and `src/a/b/mod.rs`
/// are both `a::b`); `None` for the binaries, which are crates of their own.
fn module_of(root: &Path, f: &Path) -> Option<Vec<String>> {
    let rel = f.strip_prefix(root.join("src")).ok()?;
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts)
}

/// The code of a file as the checks read it: comments dropped, and only
/// what comes before the first `#[cfg(test)]` (tests may use any part of the
/// crate, e.g. the in-memory store, to exercise the real code).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`,
/// `a::c::e` (aliases and globs kept as the last segment).
fn expand_use(tree: &str) -> Vec<String> {
    // Drop `as alias` (keeping the punctuation after it) and white space.
    let mut toks = tree.split_whitespace();
    let mut tree = String::new();
    while let Some(t) = toks.next() {
        if t == "as" {
            let alias = toks.next().unwrap_or("");
            tree.extend(alias.chars().filter(|c| matches!(c, ',' | '}')));
        } else {
            tree.push_str(t);
        }
    }
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let Some(close) = tree.rfind('}') else {
        return Vec::new();
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..close];
    let (mut items, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    items
        .iter()
        .filter(|i| !i.is_empty())
        .flat_map(|i| expand_use(i))
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every crate path a file's code names: the paths of its `use` items
/// (re-exports, `pub use`, are a module's facade and not counted), and
/// inline `crate::`, `super::` and `self::` paths.
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let is_word_start = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let reexport = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        if !is_word_start {
            rest = &rest[at + 4..];
            continue;
        }
        let Some(end) = rest[at..].find(';') else {
            break;
        };
        if !reexport {
            paths.extend(expand_use(&rest[at + 4..at + end]));
        }
        rest = &rest[at + end..];
    }
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let prev = code[..at].chars().last();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// The file a path in module `here` (a file at `here_file`) refers to: the
/// longest prefix of it that is a module file.
fn resolve(
    path: &str,
    here: &[String],
    modules: &std::collections::HashMap<Vec<String>, std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut abs, tail): (Vec<String>, &[&str]) = match segs.first()? {
        &"crate" => (Vec::new(), &segs[1..]),
        &"self" => (here.to_vec(), &segs[1..]),
        &"super" => {
            let mut base = here.to_vec();
            let mut i = 0;
            while segs.get(i) == Some(&"super") {
                base.pop();
                i += 1;
            }
            (base, &segs[i..])
        }
        // `use child::Item` from a module's own file names its child.
        first => {
            let mut child = here.to_vec();
            child.push((*first).to_owned());
            if !modules.contains_key(&child) {
                return None;
            }
            (here.to_vec(), &segs[..])
        }
    };
    abs.extend(tail.iter().map(|s| (*s).to_owned()));
    (1..=abs.len())
        .rev()
        .find_map(|n| modules.get(&abs[..n]).cloned())
}

/// Who imports whom, file by file (the library's files; tests excluded).
fn import_graph() -> std::collections::BTreeMap<std::path::PathBuf, Vec<std::path::PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut modules = std::collections::HashMap::new();
    for f in &files {
        if let Some(m) = module_of(root, f) {
            modules.insert(m, f.clone());
        }
    }
    let mut graph = std::collections::BTreeMap::new();
    for f in &files {
        let Some(here) = module_of(root, f) else {
            continue;
        };
        if is_test_file(f) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        let mut to: Vec<std::path::PathBuf> = named_paths(&code)
            .iter()
            .filter_map(|p| resolve(p, &here, &modules))
            .filter(|t| t != f)
            .collect();
        to.sort();
        to.dedup();
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
        graph.insert(rel(f), to.iter().map(|t| rel(t)).collect());
    }
    graph
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(
    graph: &std::collections::BTreeMap<std::path::PathBuf, Vec<std::path::PathBuf>>,
    start: &Path,
) -> Option<Vec<std::path::PathBuf>> {
    let mut stack = vec![(start.to_path_buf(), vec![start.to_path_buf()])];
    let mut seen = std::collections::HashSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                let mut c = path.clone();
                c.push(next.clone());
                return Some(c);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_import_cycles_between_files() {
    let graph = import_graph();
    assert!(graph.len() > 50, "too few files read: {}", graph.len());
    let mut cycles = Vec::new();
    let mut reported = std::collections::HashSet::new();
    for f in graph.keys() {
        if reported.contains(f) {
            continue;
        }
        if let Some(c) = cycle_from(&graph, f) {
            reported.extend(c.iter().cloned());
            let names: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
            cycles.push(names.join(" → "));
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other (move what both need into one of them, or a third):\n{}",
        cycles.join("\n")
    );
}

/// The checker itself sees the shapes of import that make cycles.
#[test]
fn import_checker_reads_use_trees_and_inline_paths() {
    let code = code_of(
        "use super::{a::{B, c}, d as e, base64};\npub use f::G;\nlet x = crate::h::i(); // crate::j\n#[cfg(test)]\nuse crate::k;",
    );
    let paths = named_paths(&code);
    for want in [
        "super::a::B",
        "super::a::c",
        "super::d",
        "super::base64",
        "crate::h::i",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
    }
    for not in ["f::G", "crate::j", "crate::k"] {
        assert!(
            !paths.iter().any(|p| p.starts_with(not)),
            "{not} in {paths:?}"
        );
    }
}

/// The core (`domain`, `verify`, `issue`) names no outer layer; adapters
/// reach storage and outbound I/O only through the core's traits.
#[test]
fn layers_point_inward() {
    let rules: &[(&str, &[&str])] = &[
        (
            "src/domain",
            &[
                "crate::infra",
                "crate::adapters",
                "crate::app",
                "crate::config",
                "crate::cli",
            ],
        ),
        (
            "src/verify",
            &[
                "crate::infra",
                "crate::adapters",
                "crate::app",
                "crate::config",
                "crate::cli",
            ],
        ),
        (
            "src/issue",
            &[
                "crate::infra",
                "crate::adapters",
                "crate::app",
                "crate::config",
                "crate::cli",
            ],
        ),
        ("src/adapters", &["crate::infra", "crate::app"]),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offences = Vec::new();
    for (dir, banned) in rules {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        assert!(!files.is_empty(), "{dir}");
        for f in &files {
            if is_test_file(f) {
                continue;
            }
            let code = code_of(&std::fs::read_to_string(f).unwrap());
            for p in named_paths(&code) {
                if let Some(b) = banned
                    .iter()
                    .find(|b| p == **b || p.starts_with(&format!("{b}::")))
                {
                    offences.push(format!(
                        "{}: names `{p}` ({b} is an outer layer)",
                        f.display()
                    ));
                }
            }
        }
    }
    offences.sort();
    offences.dedup();
    assert!(
        offences.is_empty(),
        "layering violations:\n{}",
        offences.join("\n")
    );
}

/// Test code (`tests.rs`, `*_tests.rs`, anything under a `tests/` module
/// directory) may use any layer.
fn is_test_file(f: &Path) -> bool {
    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || f.components().any(|c| c.as_os_str() == "tests")
            && f.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}
