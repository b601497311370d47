//! README.md must agree with the code: the configuration reference is the
//! generated one, and every verifier deny reason is in the metrics table.
//! `MCPGATE_BLESS=1 cargo test readme` rewrites the generated sections.

use std::path::Path;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// Replaces the text between `<!-- BEGIN name ... -->` and
/// `<!-- END name -->` with `body`.
fn splice(doc: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- BEGIN {name}");
    let end = format!("<!-- END {name} -->");
    let b = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("README lacks {begin}"));
    let b = b + doc[b..].find("-->\n").expect("unterminated marker") + 4;
    let e = doc
        .find(&end)
        .unwrap_or_else(|| panic!("README lacks {end}"));
    format!("{}{}{}", &doc[..b], body, &doc[e..])
}

fn expected(doc: &str) -> String {
    let mut out = doc.to_owned();
    #[cfg(feature = "verifier")]
    {
        out = splice(
            &out,
            "verifier-config",
            &mcpgate::config::verifier::keys::markdown_reference(),
        );
    }
    #[cfg(feature = "issuer")]
    {
        out = splice(
            &out,
            "issuer-config",
            &mcpgate::config::issuer::markdown_reference(),
        );
    }
    out
}

#[test]
fn readme_configuration_reference_is_generated() {
    let doc = std::fs::read_to_string(README).unwrap();
    let want = expected(&doc);
    if want == doc {
        return;
    }
    if std::env::var_os("MCPGATE_BLESS").is_some() {
        std::fs::write(Path::new(README), want).unwrap();
        return;
    }
    panic!("README.md's configuration reference is out of date: run `MCPGATE_BLESS=1 cargo test readme`");
}

#[cfg(feature = "verifier")]
#[test]
fn readme_lists_every_deny_reason() {
    let doc = std::fs::read_to_string(README).unwrap();
    let src = include_str!("../../src/verify/decision.rs");
    let mut n = 0;
    for line in src.lines() {
        if let Some((_, r)) = line.trim().split_once("DenyReason::") {
            if let Some((_, name)) = r.split_once("=> \"") {
                let name = name.trim_end_matches([',', '"']);
                n += 1;
                assert!(
                    doc.contains(&format!("`{name}`")),
                    "README lacks reason `{name}`"
                );
            }
        }
    }
    assert!(n >= 10, "found only {n} reasons");
}
