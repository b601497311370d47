//! Client ID Metadata Documents through the `MetadataFetcher` trait, served
//! by a local axum server (the SSRF guard has its own tests).

use super::harness::*;
use async_trait::async_trait;
use axum::routing::get;
use axum::Json;
use mcpgate::issue::cimd::{FetchError, FetchedDocument, MetadataFetcher};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const GOOD: &str = "https://client.example/good.json";
const BAD: &str = "https://client.example/bad.json";

/// Maps `https://client.example/<p>` to the local server.
struct LocalFetcher {
    base: String,
    hits: AtomicUsize,
}

#[async_trait]
impl MetadataFetcher for LocalFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, FetchError> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let path = url
            .strip_prefix("https://client.example")
            .ok_or_else(|| FetchError::Forbidden(url.into()))?;
        let r = reqwest::get(format!("{}{path}", self.base))
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        Ok(FetchedDocument {
            body: r
                .bytes()
                .await
                .map_err(|e| FetchError::Failed(e.to_string()))?
                .to_vec(),
            max_age: Some(Duration::from_secs(600)),
        })
    }
}

async fn serve_documents() -> String {
    let app = axum::Router::new()
        .route(
            "/good.json",
            get(|| async { Json(json!({"client_id": GOOD, "client_name": "Doc Client", "redirect_uris": [REDIRECT]})) }),
        )
        .route(
            "/bad.json",
            get(|| async { Json(json!({"client_id": "https://evil.example/bad.json", "redirect_uris": [REDIRECT]})) }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn metadata_document_clients() {
    let fetcher = Arc::new(LocalFetcher {
        base: serve_documents().await,
        hits: AtomicUsize::new(0),
    });
    let h = start_toml(&base_toml(), Some(fetcher.clone())).await;

    // A good document: consent shows the name and the redirect host, then
    // the code is exchanged by the public client.
    let (v, ch) = pkce_pair();
    let mut b = Browser::new(&h);
    let r = b.get(&authorize_url(&h, GOOD, &ch, &[])).await;
    let login = location(&r);
    let req = query(&format!("http://x{login}"))["req"].clone();
    let csrf = b.csrf();
    let r = b
        .post(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    let consent = b.get(&location(&r)).await.text().await.unwrap();
    assert!(
        consent.contains("Doc Client") && consent.contains("127.0.0.1"),
        "{consent}"
    );
    let r = b
        .post(
            "/consent",
            &[("req", &req), ("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    let q = query(&location(&r));
    let (st, _, t) = token(
        &h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v),
            ("client_id", GOOD),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(fetcher.hits.load(Ordering::SeqCst), 1, "cached per max-age");

    // A document whose client_id is not its URL: refused with a page.
    let r = Browser::new(&h)
        .get(&authorize_url(&h, BAD, &ch, &[]))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("does not match"));
    // And at the token endpoint.
    let (st, _, e) = token(
        &h,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("code_verifier", &v),
            ("client_id", BAD),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    h.running.shutdown().await;
}
