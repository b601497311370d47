//! `EmbeddedStore` (redb) and `MemoryStore` against the shared store suite,
//! plus durability. TTLs run on an injected clock.

use super::store_suite::{run_suite, Expiry};
use mcpgate::domain::clock::FixedClock;
use mcpgate::infra::embedded_store::{EmbeddedStore, DEFAULT_SWEEP_INTERVAL};
use mcpgate::infra::memory_store::MemoryStore;
use mcpgate::issue::store::{Namespace, Store};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::at_unix(1_700_000_000))
}

fn open(path: &std::path::Path, clock: &Arc<FixedClock>) -> EmbeddedStore {
    EmbeddedStore::open_with(path, clock.clone(), DEFAULT_SWEEP_INTERVAL).unwrap()
}

#[tokio::test]
async fn embedded_store_passes_suite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(&dir.path().join("data/issuer.redb"), &clock);
    run_suite(Arc::new(store), Expiry::Clock(clock)).await;
}

#[tokio::test]
async fn memory_store_passes_suite() {
    let clock = clock();
    let store = MemoryStore::with_clock(clock.clone());
    run_suite(Arc::new(store), Expiry::Clock(clock)).await;
}

#[tokio::test]
async fn embedded_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.redb");
    let clock = clock();
    {
        let store = open(&path, &clock);
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
    // Expiry is stored as a time: it passes while the store is closed.
    clock.advance(Duration::from_secs(1));
    let store = open(&path, &clock);
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
    let clock = clock();
    let store = open(&dir.path().join("s.redb"), &clock);
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
    assert_eq!(store.sweep().await.unwrap(), 0);
    clock.advance(Duration::from_millis(50));
    assert_eq!(store.sweep().await.unwrap(), 1);
    assert_eq!(store.sweep().await.unwrap(), 0);
    assert!(store.get(Namespace::Sessions, "b").await.unwrap().is_some());
}

/// What the store logs, captured (the sweeper's only outward sign).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn embedded_store_periodic_sweeper_runs() {
    // The sweeper is a task on this (current-thread) runtime, so a
    // thread-local subscriber sees its events.
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = EmbeddedStore::open_with(
        dir.path().join("p.redb"),
        clock.clone(),
        Duration::from_millis(20),
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
    clock.advance(Duration::from_secs(1));
    let start = Instant::now();
    let swept =
        || String::from_utf8_lossy(&logs.0.lock().unwrap()).contains("embedded store sweep");
    while !swept() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the sweeper never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
