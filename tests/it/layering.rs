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
