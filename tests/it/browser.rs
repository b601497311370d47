//! A scripted browser for the issuer's pages: keeps cookies, never follows
//! redirects, and walks the static login and consent forms. Shared by the
//! issuer and CLI tests.
#![allow(dead_code)]

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use std::collections::HashMap;
use std::time::Duration;

/// An HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
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

/// Anything that names the issuer the browser talks to.
pub trait Origin {
    fn issuer_url(&self) -> String;
}

impl<T: AsRef<str>> Origin for T {
    fn issuer_url(&self) -> String {
        self.as_ref().to_owned()
    }
}

pub struct Browser {
    pub jar: HashMap<String, String>,
    http: reqwest::Client,
    origin: String,
    /// The last consent page shown by [`Browser::authorize`].
    pub last_consent: Option<String>,
}

impl Browser {
    pub fn new(issuer: impl Origin) -> Self {
        let origin = url::Url::parse(&issuer.issuer_url())
            .unwrap()
            .origin()
            .ascii_serialization();
        Self {
            jar: HashMap::new(),
            http: client(),
            origin,
            last_consent: None,
        }
    }

    fn abs(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.origin)
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let c: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !c.is_empty() {
            h.insert(COOKIE, c.join("; ").parse().unwrap());
        }
        h
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
            .headers(self.headers())
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
            .headers(self.headers())
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    pub fn csrf(&self) -> String {
        self.jar.get("mcpgate_csrf").cloned().unwrap_or_default()
    }

    /// From an authorization URL through the static login form (when the
    /// browser has no session) and the consent form (when asked); returns
    /// the final redirect.
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
            let csrf = self.csrf();
            let form = [
                ("req", req.as_str()),
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
            ];
            let r = self.post("/login", &form).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            next = location(&r);
        }
        if next.contains("/consent?") {
            let page = self.get(&next).await;
            assert_eq!(page.status(), StatusCode::OK);
            assert_eq!(page.headers()["x-frame-options"], "DENY");
            let html = page.text().await.unwrap();
            assert!(html.contains("name=\"decision\""));
            self.last_consent = Some(html.clone());
            let req = query(&self.abs(&next))["req"].clone();
            let csrf = self.csrf();
            let form = [
                ("req", req.as_str()),
                ("csrf", &csrf),
                ("decision", decision),
            ];
            let r = self.post("/consent", &form).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            next = location(&r);
        }
        next
    }
}
