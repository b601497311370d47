//! Running the `mcpgate` binary, and a small cookie-keeping browser that
//! drives the issuer's static-login and consent forms.
#![allow(dead_code)]

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use std::collections::HashMap;
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

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A browser that keeps cookies and never follows redirects.
pub struct Browser {
    jar: HashMap<String, String>,
    http: reqwest::Client,
    origin: String,
}

impl Browser {
    pub fn new(issuer: &str) -> Self {
        let origin = url::Url::parse(issuer)
            .unwrap()
            .origin()
            .ascii_serialization();
        Self {
            jar: HashMap::new(),
            http: http(),
            origin,
        }
    }

    fn abs(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.origin)
        }
    }

    fn cookie(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, r: &Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            let kv = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.jar.insert(k.to_owned(), v.to_owned());
        }
    }

    pub async fn get(&mut self, url: &str) -> Response {
        let r = self
            .http
            .get(self.abs(url))
            .header(COOKIE, self.cookie())
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let r = self
            .http
            .post(self.abs(url))
            .header(COOKIE, self.cookie())
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    /// From the authorization URL through the static login form and the
    /// consent form; returns the final redirect (to the CLI's listener).
    pub async fn authorize(
        &mut self,
        url: &str,
        user: &str,
        password: &str,
        decision: &str,
    ) -> String {
        let r = self.get(url).await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
        let mut next = location(&r);
        if next.contains("/login?") {
            let page = self.get(&next).await;
            assert_eq!(page.status(), StatusCode::OK);
            let html = page.text().await.unwrap();
            assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
            let req = query(&self.abs(&next))["req"].clone();
            let csrf = self.jar["mcpgate_csrf"].clone();
            let r = self
                .post(
                    "/login",
                    &[
                        ("req", &req),
                        ("csrf", &csrf),
                        ("username", user),
                        ("password", password),
                    ],
                )
                .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            next = location(&r);
        }
        if next.contains("/consent?") {
            let page = self.get(&next).await;
            assert_eq!(page.status(), StatusCode::OK);
            let html = page.text().await.unwrap();
            assert!(html.contains("name=\"decision\""));
            let req = query(&self.abs(&next))["req"].clone();
            let csrf = self.jar["mcpgate_csrf"].clone();
            let r = self
                .post(
                    "/consent",
                    &[("req", &req), ("csrf", &csrf), ("decision", decision)],
                )
                .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            next = location(&r);
        }
        next
    }
}

/// The token file as JSON.
pub fn token_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
