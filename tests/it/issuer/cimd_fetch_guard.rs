//! The SSRF-guarded metadata fetcher against a real local HTTP server.

use axum::routing::get;
use axum::Router;
use mcpgate::infra::cimd_fetch::{FetchSettings, GuardedFetcher};
use mcpgate::issue::cimd::{FetchError, MetadataFetcher};
use std::net::SocketAddr;
use std::time::Duration;

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route(
            "/client.json",
            get(|| async {
                (
                    [("cache-control", "public, max-age=300")],
                    r#"{"client_id":"x"}"#,
                )
            }),
        )
        .route(
            "/nostore.json",
            get(|| async { ([("cache-control", "no-store")], "{}") }),
        )
        .route("/big.json", get(|| async { "x".repeat(10 * 1024) }))
        .route(
            "/chunked.json",
            get(|| async {
                // No Content-Length: the cap must hold while streaming.
                let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024]));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/redirect",
            get(|| async { (http::StatusCode::FOUND, [("location", "/client.json")]) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "{}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn dev_settings(allow_private: bool) -> FetchSettings {
    FetchSettings {
        allow_insecure_http: true,
        allow_private_addresses: allow_private,
        ..FetchSettings::default()
    }
}

#[tokio::test]
async fn loopback_is_refused_by_default() {
    let addr = serve().await;
    let f = GuardedFetcher::new(dev_settings(false));
    for url in [
        format!("http://{addr}/client.json"),
        format!("http://localhost:{}/client.json", addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/client.json", addr.port()),
        // IPv4-compatible, NAT64 and 6to4 spellings of loopback/private.
        format!("http://[::127.0.0.1]:{}/client.json", addr.port()),
        format!("http://[64:ff9b::127.0.0.1]:{}/client.json", addr.port()),
        format!("http://[64:ff9b::10.0.0.1]:{}/client.json", addr.port()),
        format!("http://[::ffff:10.0.0.1]:{}/client.json", addr.port()),
        format!(
            "http://[::ffff:169.254.169.254]:{}/client.json",
            addr.port()
        ),
        format!("http://[2002:7f00:1::]:{}/client.json", addr.port()),
        format!("http://[0:0:0:0:0:ffff:7f00:1]:{}/client.json", addr.port()),
    ] {
        let err = f.fetch(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err:?}");
    }
    // Plain http is refused unless explicitly allowed, whatever the address.
    let strict = GuardedFetcher::new(FetchSettings::default());
    let err = strict
        .fetch(&format!("http://{addr}/client.json"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err:?}");
    let err = strict.fetch("ftp://example.com/x").await.unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err:?}");
    let err = strict
        .fetch("https://user:pw@example.com/x")
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn loopback_is_fetched_when_allowed() {
    let addr = serve().await;
    let f = GuardedFetcher::new(dev_settings(true));
    let doc = f
        .fetch(&format!("http://{addr}/client.json"))
        .await
        .unwrap();
    assert_eq!(doc.body, br#"{"client_id":"x"}"#);
    assert_eq!(doc.max_age, Some(Duration::from_secs(300)));

    let doc = f
        .fetch(&format!("http://localhost:{}/nostore.json", addr.port()))
        .await
        .unwrap();
    assert_eq!(doc.max_age, None);
}

#[tokio::test]
async fn limits_size_redirects_and_time() {
    let addr = serve().await;
    let f = GuardedFetcher::new(FetchSettings {
        timeout: Duration::from_millis(500),
        ..dev_settings(true)
    });
    let err = f
        .fetch(&format!("http://{addr}/big.json"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge), "{err:?}");
    let err = f
        .fetch(&format!("http://{addr}/redirect"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Failed(_)), "{err:?}");
    let err = f.fetch(&format!("http://{addr}/slow")).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout), "{err:?}");
}

#[tokio::test]
async fn failed_fetches_are_cached_briefly() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/down.json",
        get(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                http::StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/down.json");

    let f = GuardedFetcher::new(dev_settings(true));
    for _ in 0..5 {
        assert!(f.fetch(&url).await.is_err());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch, then the cache");
    let err = f.fetch(&url).await.unwrap_err();
    assert!(err.to_string().contains("failed recently"), "{err}");

    let uncached = GuardedFetcher::new(FetchSettings {
        failure_cache: Duration::ZERO,
        ..dev_settings(true)
    });
    assert!(uncached.fetch(&url).await.is_err());
    assert!(uncached.fetch(&url).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
