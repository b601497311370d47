//! `EmbeddedStore` (redb) against the shared store suite, plus durability.

use super::store_suite::run_suite;
use mcpgate::infra::embedded_store::EmbeddedStore;
use mcpgate::issue::store::{Namespace, Store};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn embedded_store_passes_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("data/issuer.redb")).unwrap();
    run_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn embedded_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.redb");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store
            .put(Namespace::Clients, "c1", b"client", None)
            .await
            .unwrap();
        store
            .put(
                Namespace::Refresh,
                "r1",
                b"rt",
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        store
            .put(
                Namespace::Codes,
                "gone",
                b"x",
                Some(Duration::from_millis(1)),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .incr(Namespace::RateLimits, "n", Duration::from_secs(60))
                .await
                .unwrap(),
            1
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        store.list(Namespace::Clients).await.unwrap(),
        vec![("c1".to_string(), b"client".to_vec())]
    );
    assert_eq!(
        store
            .get(Namespace::Refresh, "r1")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"rt"[..])
    );
    assert_eq!(store.get(Namespace::Codes, "gone").await.unwrap(), None);
    assert_eq!(
        store
            .incr(Namespace::RateLimits, "n", Duration::from_secs(60))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn embedded_store_sweeper_purges_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
    store
        .put(
            Namespace::Sessions,
            "a",
            b"x",
            Some(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    store
        .put(Namespace::Sessions, "b", b"y", None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.sweep().await.unwrap(), 1);
    assert_eq!(store.sweep().await.unwrap(), 0);
    assert!(store.get(Namespace::Sessions, "b").await.unwrap().is_some());
}

#[tokio::test]
async fn embedded_store_periodic_sweeper_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with(
        dir.path().join("p.redb"),
        Arc::new(mcpgate::domain::clock::SystemClock),
        Duration::from_millis(50),
    )
    .unwrap();
    store
        .put(
            Namespace::Pending,
            "a",
            b"x",
            Some(Duration::from_millis(20)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The background sweeper already removed it.
    assert_eq!(store.sweep().await.unwrap(), 0);
}

/// The store holds the signing keys: created private, and refused when
/// others can read it (or replace it).
#[cfg(unix)]
#[tokio::test]
async fn embedded_store_is_private_and_refuses_readable_files() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/dir/issuer.redb");
    drop(EmbeddedStore::open(&path).unwrap());
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("new")), 0o700);

    for bad in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = EmbeddedStore::open(&path)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{bad:o}: {err}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let parent = path.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = EmbeddedStore::open(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("chmod 700"), "{err}");
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(EmbeddedStore::open(&path).unwrap());
}
