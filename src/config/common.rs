//! What both configurations share: TOML errors that name the key path, line
//! and column; "did you mean" suggestions for misspelt names; refusing
//! environment variables with our prefix that nothing reads (a typo such as
//! `MCPGW_VERIFIER_REQUIRED_SCOPE` would otherwise be ignored in silence);
//! where the strings come from ([`Strings`]), the one [`ConfigError`].

use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Where configuration strings come from (the process env, or a map in
/// tests).
pub trait Strings {
    fn get(&self, key: &str) -> Option<String>;
    /// Every variable name present (to refuse unknown `MCPGW_*` names).
    /// Defaults to none.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Strings for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    fn names(&self) -> Vec<String> {
        process_env_names()
    }
}

impl Strings for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A bad configuration value; names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid config `{key}`: {msg}")]
pub struct ConfigError {
    pub key: String,
    pub msg: String,
}

/// The error for `key`.
pub(crate) fn bad(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        msg: msg.to_string(),
    }
}

/// A comma-separated list from an environment variable (blanks dropped).
pub(crate) fn list(s: &str) -> Vec<String> {
    split(s, &[','])
}

/// A list separated by commas or spaces (the verifier's list variables).
pub(crate) fn words(s: &str) -> Vec<String> {
    split(s, &[',', ' '])
}

fn split(s: &str, seps: &[char]) -> Vec<String> {
    s.split(seps)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why a TOML document did not fit the configuration type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TomlError {
    /// Dotted key path of the offending value (`routes[0].required_scopes`),
    /// or `<file>` when the document itself does not parse.
    pub path: String,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// What was wrong, with a suggestion for a misspelt key.
    pub msg: String,
}

impl std::fmt::Display for TomlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "line {line}, column {col}: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

/// Deserialises `text`, reporting where it went wrong. The key path comes
/// from `serde_path_to_error` (toml's own error keeps it private), the
/// position from toml's span.
pub(crate) fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let de = toml::Deserializer::parse(text).map_err(|e| TomlError {
        path: "<file>".into(),
        position: e.span().map(|s| line_col(text, s.start)),
        msg: e.message().trim_end().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut msg = inner.message().trim_end().to_owned();
        if let Some(s) = unknown_field_suggestion(&msg) {
            msg.push_str(&format!(" (did you mean `{s}`?)"));
        }
        TomlError {
            path: if path == "." { "<file>".into() } else { path },
            position: inner.span().map(|s| line_col(text, s.start)),
            msg,
        }
    })
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// serde's "unknown field `pth`, expected one of `kind`, `path`": the
/// closest expected name.
fn unknown_field_suggestion(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    let mut names = rest.split('`').step_by(2);
    let unknown = names.next()?;
    did_you_mean(unknown, names)
}

/// The candidate closest to `name`, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The first variable in `present` that starts with `prefix` but is neither
/// in `known` nor accepted by `also`, with a suggestion.
pub(crate) fn unknown_env<'a>(
    prefix: &str,
    present: &[String],
    known: &[&'a str],
    also: impl Fn(&str) -> bool,
) -> Option<(String, Option<&'a str>)> {
    let mut names: Vec<&String> = present
        .iter()
        .filter(|n| n.starts_with(prefix) && !known.contains(&n.as_str()) && !also(n))
        .collect();
    names.sort();
    names
        .first()
        .map(|n| ((*n).clone(), did_you_mean(n, known.iter().copied())))
}

/// Refuses a Redis URL the client cannot parse, at start rather than at
/// the first connection (which would only log a warning and retry). The
/// message never repeats the URL: it may hold a password.
pub(crate) fn check_redis_urls(urls: &[String]) -> Result<(), String> {
    for (i, u) in urls.iter().enumerate() {
        if u.trim_start().to_ascii_lowercase().starts_with("rediss:") {
            return Err(format!(
                "URL {} uses rediss:// (TLS), which this build does not support yet; use redis:// on a private network (see the README)",
                i + 1
            ));
        }
        if let Err(e) = redis::Client::open(u.as_str()) {
            return Err(format!(
                "URL {} is not a Redis URL (redis://[user:password@]host[:port][/db] or unix:///path): {}",
                i + 1,
                e.detail().unwrap_or("it does not parse")
            ));
        }
    }
    Ok(())
}

/// The names of the process's environment variables (non-UTF-8 names
/// skipped: none of ours is).
pub(crate) fn process_env_names() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect()
}

/// The address of a service's internal listener (admin API, metrics): the
/// configured one, else `default`, else, when the public listener `public`
/// picks a free port (port 0: tests, several instances on one host), a free
/// loopback port too. It may not be the public listener's address.
pub(crate) fn admin_addr(
    key: &str,
    configured: Option<&str>,
    public: std::net::SocketAddr,
    default: &str,
) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = match configured {
        Some(v) => v.parse().map_err(|e| format!("{v}: {e}"))?,
        None if public.port() == 0 => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        None => default.parse().map_err(|e| format!("{default}: {e}"))?,
    };
    let same_port = addr.port() != 0 && addr.port() == public.port();
    let overlaps =
        addr.ip() == public.ip() || addr.ip().is_unspecified() || public.ip().is_unspecified();
    if same_port && overlaps {
        return Err(format!(
            "{addr} is the public listener's address: {key} must be a separate port"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        scopes: Option<Vec<String>>,
        path: Option<String>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: Option<String>,
        routes: Option<Vec<Inner>>,
    }

    #[test]
    fn type_errors_name_the_key_path_line_and_column() {
        let e = from_toml::<Doc>("name = \"x\"\n[[routes]]\nscopes = \"mcp:tools\"\n").unwrap_err();
        assert_eq!(e.path, "routes[0].scopes");
        assert_eq!(e.position, Some((3, 10)));
        assert!(e.msg.contains("expected a sequence"), "{e}");
        assert!(e.to_string().starts_with("line 3, column 10: "), "{e}");
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let e = from_toml::<Doc>("[[routes]]\npth = \"/\"\n").unwrap_err();
        assert_eq!(e.path, "routes[0].pth");
        assert_eq!(e.position.map(|p| p.0), Some(2));
        assert!(e.msg.contains("did you mean `path`?"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = from_toml::<Doc>("name = \"x\"\nroutes = [\n").unwrap_err();
        assert_eq!(e.path, "<file>");
        assert!(e.position.is_some_and(|(l, _)| l >= 2), "{e:?}");
    }

    #[test]
    fn redis_urls_are_parsed_at_start_and_never_echoed() {
        let ok = [
            "redis://127.0.0.1:6379".to_owned(),
            "redis://u:p@h:1/0".to_owned(),
        ];
        assert_eq!(check_redis_urls(&ok), Ok(()));
        let e = check_redis_urls(&["rediss://u:secretpw@h/0".to_owned()]).unwrap_err();
        assert!(e.contains("TLS") && !e.contains("secretpw"), "{e}");
        for bad in ["127.0.0.1:6379", "http://h", "redis://:secretpw@"] {
            let e = check_redis_urls(&[bad.to_owned()]).unwrap_err();
            assert!(e.contains("URL 1 is not a Redis URL"), "{bad}: {e}");
            assert!(!e.contains("secretpw"), "{e}");
        }
    }

    #[test]
    fn unknown_environment_variables_are_found_with_a_suggestion() {
        let present = vec![
            "PATH".to_owned(),
            "MCPGW_VERIFIER_REQUIRED_SCOPE".to_owned(),
            "MCPGW_VERIFIER_ISSUERS".to_owned(),
        ];
        let known = ["MCPGW_VERIFIER_ISSUERS", "MCPGW_VERIFIER_REQUIRED_SCOPES"];
        let (name, hint) = unknown_env("MCPGW_VERIFIER_", &present, &known, |_| false).unwrap();
        assert_eq!(name, "MCPGW_VERIFIER_REQUIRED_SCOPE");
        assert_eq!(hint, Some("MCPGW_VERIFIER_REQUIRED_SCOPES"));
        assert!(unknown_env("MCPGW_VERIFIER_", &present[2..], &known, |_| false).is_none());
        assert!(unknown_env("MCPGW_VERIFIER_", &present, &known, |n| n
            .ends_with("SCOPE"))
        .is_none());
        assert_eq!(did_you_mean("zzzz", known.iter().copied()), None);
    }
}
