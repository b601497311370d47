//! Running the `mcpgate` binary, and a small cookie-keeping browser that
//! drives the issuer's static-login and consent forms.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcpgate");
pub const URL_PREFIX: &str = "Open this URL to log in: ";

/// A command for `mcpgate` with a private token file and a clean
/// environment for the variables it reads.
pub fn mcpgate(issuer: &str, store: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--issuer")
        .arg(issuer)
        .arg("--store")
        .arg(store)
        .env_remove("MCPGATE_ISSUER")
        .env_remove("MCPGATE_TOKEN_FILE")
        .env_remove("MCPGATE_ADMIN_TOKEN")
        .env_remove("MCPGATE_INITIAL_ACCESS_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Output of a finished run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(mut c: impl std::borrow::BorrowMut<Command>) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(60), c.borrow_mut().output())
        .await
        .expect("mcpgate timed out")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Reads stderr lines until one starts with `prefix`; returns the rest of
/// that line and every line read.
pub async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<ChildStderr>>,
    prefix: &str,
) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(rest) = l.strip_prefix(prefix) {
                return Some(rest.to_owned());
            }
            seen.push(l);
        }
        None
    })
    .await
    .expect("timed out reading stderr");
    match found {
        Some(v) => (v, seen),
        None => panic!("no line starting with {prefix:?}; stderr was: {seen:#?}"),
    }
}

/// Starts `mcpgate login` (stderr piped) and returns the child, its
/// stderr lines and the printed authorization URL.
pub async fn start_login(
    mut c: Command,
) -> (Child, tokio::io::Lines<BufReader<ChildStderr>>, String) {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (url, _) = read_until(&mut lines, URL_PREFIX).await;
    (child, lines, url)
}

#[allow(unused_imports)]
pub use crate::browser::{client as http, location, query, Browser};

/// The token file as JSON.
pub fn token_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
