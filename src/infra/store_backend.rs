//! The one storage choice: the issuer's config validates into a
//! [`StoreBackend`], and [`open_store`] turns it into one `Arc<dyn Store>`.

use crate::domain::clock::Clock;
use crate::infra::embedded_store::EmbeddedStore;
use crate::infra::memory_store::MemoryStore;
use crate::infra::redis_store::{RedisSettings, RedisStore};
use crate::issue::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Which storage backend the issuer uses (`[storage]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// In memory: lost on restart (tests, throwaway dev).
    Memory,
    /// One redb file (the default for a laptop), e.g. `<data_dir>/issuer.redb`.
    Embedded { path: PathBuf },
    /// Redis or Redis Cluster.
    Redis(RedisSettings),
}

/// Opens the backend; the memory store keeps time by `clock`. The embedded
/// store's file is opened on the blocking pool (with its sweeper started on
/// the current runtime).
pub(crate) async fn open_store(
    backend: &StoreBackend,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, StoreError> {
    match backend {
        StoreBackend::Memory => Ok(Arc::new(MemoryStore::with_clock(clock))),
        StoreBackend::Embedded { path } => {
            let path = path.clone();
            let handle = tokio::runtime::Handle::current();
            let store = tokio::task::spawn_blocking(move || {
                let _guard = handle.enter();
                EmbeddedStore::open(path)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreBackend::Redis(settings) => Ok(Arc::new(RedisStore::connect_with(settings).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::SystemClock;
    use crate::issue::store::Namespace;

    #[tokio::test]
    async fn opens_the_embedded_backend() {
        let dir = tempfile::tempdir().unwrap();
        let backend = StoreBackend::Embedded {
            path: dir.path().join("nested/issuer.redb"),
        };
        let store = open_store(&backend, Arc::new(SystemClock)).await.unwrap();
        store
            .put(Namespace::Clients, "c", b"v", None)
            .await
            .unwrap();
        assert_eq!(store.list(Namespace::Clients).await.unwrap().len(), 1);
        let err = open_store(
            &StoreBackend::Redis(RedisSettings::default()),
            Arc::new(SystemClock),
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)));
    }
}
