//! `RedisStore` against the shared store suite on a real standalone
//! `redis-server` and on a real 3-master Redis Cluster.

use super::store_suite::{run_suite, Expiry};
use crate::redis::{start_cluster, RedisServer};
use mcpgate::infra::redis_store::{RedisSettings, RedisStore};
use mcpgate::issue::store::{Namespace, Store};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn redis_store_standalone_passes_suite() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&[server.url()]).await.unwrap();
    assert!(!store.is_cluster());
    run_suite(Arc::new(store.clone()), Expiry::Server).await;

    // Every transient key carries a TTL.
    store
        .put(Namespace::Codes, "t", b"x", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    store
        .incr(Namespace::RateLimits, "t", Duration::from_secs(30))
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for key in ["{mcpgate:codes}:t", "{mcpgate:rate_limits}:t"] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 30_000, "{key} has pttl {pttl}");
    }
}

#[tokio::test]
async fn redis_store_cluster_passes_suite() {
    let Some(nodes) = start_cluster().await else {
        return;
    };
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let store = RedisStore::connect(&urls).await.unwrap();
    assert!(store.is_cluster());
    run_suite(Arc::new(store), Expiry::Server).await;

    // One seed URL plus the explicit flag also selects cluster mode.
    let one = RedisStore::connect_with(&RedisSettings {
        urls: vec![urls[1].clone()],
        cluster: true,
    })
    .await
    .unwrap();
    assert!(one.is_cluster());
    one.put(Namespace::Clients, "x", b"y", None).await.unwrap();
    assert_eq!(
        one.get(Namespace::Clients, "x").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    // One seed without the flag: the node says it is a cluster member.
    let seed = RedisStore::connect(&[urls[2].clone()]).await.unwrap();
    assert!(seed.is_cluster());
    assert_eq!(
        seed.get(Namespace::Clients, "x").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    // The revocation records namespace is listable in a cluster too.
    seed.put(
        Namespace::Revocations,
        "jti:a",
        b"{}",
        Some(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(seed.list(Namespace::Revocations).await.unwrap().len(), 1);
    drop(nodes);
}

#[tokio::test]
async fn redis_store_reconnects_after_server_restart() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let store = RedisStore::connect(&[server.url()]).await.unwrap();
    store
        .put(Namespace::Sessions, "s", b"1", None)
        .await
        .unwrap();
    drop(server);
    // While the server is down, operations fail (fail closed), not hang.
    let down = tokio::time::timeout(Duration::from_secs(10), store.get(Namespace::Sessions, "s"))
        .await
        .expect("store call must not hang while redis is down");
    assert!(down.is_err(), "{down:?}");

    let _server = RedisServer::start_on(port).unwrap();
    let mut ok = false;
    for _ in 0..100 {
        if store
            .put(Namespace::Sessions, "s", b"2", None)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "store did not reconnect");
    assert_eq!(
        store
            .get(Namespace::Sessions, "s")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"2"[..])
    );
}
