//! The token path at scale: `Store::batch` on every backend, a family
//! record that stays the same size however long the chain, family
//! revocation that still reaches every unexpired access token (across
//! generation buckets), and refresh tokens and family records written by an
//! older issuer (an upgrade in place).

use super::harness::*;
use crate::redis::{available as redis_available, start_cluster, RedisServer};
use mcpgate::domain::revocation::{RevocationView, TokenRef};
use mcpgate::infra::embedded_store::EmbeddedStore;
use mcpgate::infra::memory_store::MemoryStore;
use mcpgate::infra::redis_store::RedisStore;
use mcpgate::issue::records::{hash_secret, RefreshRecord};
use mcpgate::issue::store::{Namespace, Op, OpResult, Store};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

async fn refresh(h: &Harness, id: &str, secret: &str, rt: &str) -> Value {
    let (st, _, t) = token(
        h,
        Some((id, secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    t
}

async fn family_of(h: &Harness, rt: &str) -> String {
    let rec = h
        .running
        .core
        .store()
        .get(Namespace::Refresh, &hash_secret(rt))
        .await
        .unwrap()
        .unwrap();
    let rec: RefreshRecord = serde_json::from_slice(&rec).unwrap();
    rec.family_id
}

/// The ops of one batch, in order, with what each must return.
async fn batch_semantics(s: &dyn Store) {
    let w = Duration::from_secs(60);
    let ops = [
        Op::Put {
            ns: Namespace::Refresh,
            key: "a",
            value: b"one",
            ttl: Some(w),
        },
        Op::PutIfAbsent {
            ns: Namespace::Refresh,
            key: "a",
            value: b"two",
            ttl: None,
        },
        Op::Get {
            ns: Namespace::Refresh,
            key: "a",
        },
        Op::Incr {
            ns: Namespace::Families,
            key: "gen:x",
            window: w,
        },
        Op::Incr {
            ns: Namespace::Families,
            key: "gen:x",
            window: w,
        },
        Op::Count {
            ns: Namespace::Families,
            key: "gen:x",
        },
        Op::Count {
            ns: Namespace::Families,
            key: "gen:none",
        },
        Op::Take {
            ns: Namespace::Refresh,
            key: "a",
        },
        Op::Get {
            ns: Namespace::Refresh,
            key: "a",
        },
        Op::Delete {
            ns: Namespace::Refresh,
            key: "a",
        },
        Op::PutIfAbsent {
            ns: Namespace::RotatedRefresh,
            key: "b",
            value: b"three",
            ttl: Some(w),
        },
        Op::Get {
            ns: Namespace::RotatedRefresh,
            key: "b",
        },
        Op::Get {
            ns: Namespace::Codes,
            key: "missing",
        },
    ];
    let r = s.batch(&ops).await.unwrap();
    assert_eq!(
        r,
        vec![
            OpResult::Written(true),
            OpResult::Written(false),
            OpResult::Value(Some(b"one".to_vec())),
            OpResult::Count(1),
            OpResult::Count(2),
            OpResult::Count(2),
            OpResult::Count(0),
            OpResult::Value(Some(b"one".to_vec())),
            OpResult::Value(None),
            OpResult::Written(false),
            OpResult::Written(true),
            OpResult::Value(Some(b"three".to_vec())),
            OpResult::Value(None),
        ]
    );
    // The batch's writes are seen by single calls, and the reverse.
    assert_eq!(
        s.incr(Namespace::Families, "gen:x", w).await.unwrap(),
        3,
        "the counter is the same under batch and incr"
    );
    // Reading a counter leaves it as it is, alone, in a read-only batch or
    // in one that writes.
    assert_eq!(s.count(Namespace::Families, "gen:x").await.unwrap(), 3);
    assert_eq!(s.count(Namespace::Families, "gen:none").await.unwrap(), 0);
    let counted = [Op::Count {
        ns: Namespace::Families,
        key: "gen:x",
    }];
    assert_eq!(s.batch(&counted).await.unwrap(), vec![OpResult::Count(3)]);
    let reads = [
        Op::Get {
            ns: Namespace::RotatedRefresh,
            key: "b",
        },
        Op::Get {
            ns: Namespace::Refresh,
            key: "a",
        },
    ];
    assert_eq!(
        s.batch(&reads).await.unwrap(),
        vec![
            OpResult::Value(Some(b"three".to_vec())),
            OpResult::Value(None)
        ]
    );
    assert_eq!(s.batch(&[]).await.unwrap(), vec![]);
}

/// Concurrent batches that take the same key: exactly one gets it.
async fn concurrent_batches_take_once(s: Arc<dyn Store>) {
    s.put(Namespace::Refresh, "race", b"rt", None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let tomb = format!("t{i}");
            let r = s
                .batch(&[
                    Op::PutIfAbsent {
                        ns: Namespace::RotatedRefresh,
                        key: "race",
                        value: tomb.as_bytes(),
                        ttl: None,
                    },
                    Op::Take {
                        ns: Namespace::Refresh,
                        key: "race",
                    },
                ])
                .await
                .unwrap();
            (r[0].written(), r[1].clone().into_value().is_some())
        }));
    }
    let mut tombs = 0;
    let mut takes = 0;
    for t in tasks {
        let (w, t) = t.await.unwrap();
        tombs += w as u32;
        takes += t as u32;
    }
    assert_eq!((tombs, takes), (1, 1));
}

#[tokio::test]
async fn batch_on_memory_and_embedded_stores() {
    let m: Arc<dyn Store> = Arc::new(MemoryStore::new());
    batch_semantics(&*m).await;
    concurrent_batches_take_once(m).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.redb");
    {
        let e: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path).unwrap());
        batch_semantics(&*e).await;
        concurrent_batches_take_once(e).await;
    }
    // Dropped: the writer thread stopped and the file reopens, with the
    // batches' writes in it.
    let e = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        e.get(Namespace::RotatedRefresh, "b").await.unwrap(),
        Some(b"three".to_vec())
    );
}

#[tokio::test]
async fn batch_on_redis_standalone_and_cluster() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start().unwrap();
    let one = RedisStore::connect(&[format!("redis://127.0.0.1:{}/", server.port)])
        .await
        .unwrap();
    batch_semantics(&one).await;
    concurrent_batches_take_once(Arc::new(one.clone())).await;
    // A batch's TTLs are set like single writes' (PX).
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for key in ["{mcpgate:rotated_refresh}:b", "{mcpgate:families}:gen:x"] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 60_000, "{key} has pttl {pttl}");
    }
    let Some(nodes) = start_cluster().await else {
        return;
    };
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}/", n.port))
        .collect();
    let cluster = RedisStore::connect(&urls).await.unwrap();
    assert!(cluster.is_cluster());
    batch_semantics(&cluster).await;
    concurrent_batches_take_once(Arc::new(cluster)).await;
}

/// However long the chain, the family record keeps its size, and revoking
/// the family revokes every access token the chain produced.
#[tokio::test]
async fn long_chain_keeps_a_bounded_family_and_revokes_every_token() {
    let h = start().await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (st, first) = exchange(&h, &id, &secret, &code, &verifier).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let fid = family_of(&h, first["refresh_token"].as_str().unwrap()).await;
    let store = h.running.core.store();
    let size = || async {
        store
            .get(Namespace::Families, &fid)
            .await
            .unwrap()
            .unwrap()
            .len()
    };
    let before = size().await;
    let mut ats = vec![first["access_token"].as_str().unwrap().to_owned()];
    let mut rt = first["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..40 {
        let t = refresh(&h, &id, &secret, &rt).await;
        ats.push(t["access_token"].as_str().unwrap().to_owned());
        rt = t["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        size().await,
        before,
        "the family record grew with the chain"
    );
    let jtis: std::collections::HashSet<_> = ats.iter().map(|a| claims(a)["jti"].clone()).collect();
    assert_eq!(jtis.len(), ats.len(), "jtis repeat");
    assert!(!ats.iter().any(|a| revoked(&h, a)));
    let form = [("token", rt.as_str()), ("token_type_hint", "refresh_token")];
    let (st, body) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    for a in &ats {
        assert!(revoked(&h, a), "an access token of the chain stayed live");
        assert_eq!(introspect(&h, a).await["active"], false);
    }
    let (st, _, _) = token(
        &h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// Tokens minted in earlier generation buckets (the clock moved on by more
/// than an access token's lifetime between refreshes) are revoked with the
/// family as long as they have not expired.
#[tokio::test]
async fn family_revocation_reaches_tokens_of_earlier_buckets() {
    let clock = TestClock::at_unix(1_900_000_400);
    let toml = format!("access_token_ttl_secs = 600\n{}", base_toml());
    let h = start_with(
        &toml,
        Deps {
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await;
    let (id, secret, code, verifier) = confidential_code(&h).await;
    let (st, first) = exchange(&h, &id, &secret, &code, &verifier).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let mut ats = vec![first["access_token"].as_str().unwrap().to_owned()];
    let mut rt = first["refresh_token"].as_str().unwrap().to_owned();
    // Bucket width = 600 s + 300 s skew = 900 s, boundaries 400 s, 1,300 s
    // and 2,200 s after the start: the live tokens (issued at 2,000 s and
    // 2,400 s) straddle the last one.
    for _ in 0..6 {
        clock.advance(Duration::from_secs(400));
        for _ in 0..2 {
            let t = refresh(&h, &id, &secret, &rt).await;
            ats.push(t["access_token"].as_str().unwrap().to_owned());
            rt = t["refresh_token"].as_str().unwrap().to_owned();
        }
    }
    let now = h.running.core.now();
    let live: Vec<&String> = ats
        .iter()
        .filter(|a| claims(a)["exp"].as_u64().unwrap() > now)
        .collect();
    let buckets: std::collections::HashSet<u64> = live
        .iter()
        .map(|a| claims(a)["iat"].as_u64().unwrap() / 900)
        .collect();
    assert!(buckets.len() >= 2, "the live tokens span one bucket only");
    let form = [("token", rt.as_str())];
    let (st, body) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    for a in live {
        assert!(revoked(&h, a), "a live token of an earlier bucket escaped");
    }
}

/// An issuer upgraded in place: the family record an older issuer wrote
/// (every access token listed, the live refresh token named) keeps working
/// for the refresh token it names, and revoking the family revokes both the
/// listed (old) and the new access tokens. A chain whose old record has
/// expired (older issuers kept it alive by rewriting it) is not revoked by
/// that alone.
#[tokio::test]
async fn records_of_an_older_issuer_keep_working() {
    let h = start().await;
    let store = h.running.core.store();
    let now = h.running.core.now();
    for expired_record in [false, true] {
        let (id, secret, code, verifier) = confidential_code(&h).await;
        let (st, first) = exchange(&h, &id, &secret, &code, &verifier).await;
        assert_eq!(st, StatusCode::OK, "{first}");
        let at = first["access_token"].as_str().unwrap().to_owned();
        let rt = first["refresh_token"].as_str().unwrap().to_owned();
        let fid = family_of(&h, &rt).await;
        let rkey = hash_secret(&rt);
        // The refresh record's format is unchanged; check it reads.
        let r: RefreshRecord =
            serde_json::from_slice(&store.get(Namespace::Refresh, &rkey).await.unwrap().unwrap())
                .unwrap();
        assert_eq!(r.family_id, fid);
        // What an older issuer wrote: its own serializer's output.
        let legacy_jti = "legacy-random-jti-0123";
        let old = format!(
            r#"{{"client_id":"{id}","sub":"{USER}","created_at":{now},"revoked":false,"current_refresh":"{rkey}","access":[["{legacy_jti}",{}],["long-gone",{}]]}}"#,
            now + 3600,
            now.saturating_sub(10)
        );
        if expired_record {
            store.delete(Namespace::Families, &fid).await.unwrap();
        } else {
            store
                .put(
                    Namespace::Families,
                    &fid,
                    old.as_bytes(),
                    Some(Duration::from_secs(3600)),
                )
                .await
                .unwrap();
        }
        let t = refresh(&h, &id, &secret, &rt).await;
        let at2 = t["access_token"].as_str().unwrap().to_owned();
        let rt2 = t["refresh_token"].as_str().unwrap().to_owned();
        let t = refresh(&h, &id, &secret, &rt2).await;
        let rt3 = t["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(introspect(&h, &rt3).await["active"], true);
        let form = [("token", rt3.as_str())];
        let (st, body) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(revoked(&h, &at) && revoked(&h, &at2));
        assert_eq!(introspect(&h, &rt3).await["active"], false);
        if !expired_record {
            assert!(h.revocations.is_revoked(TokenRef {
                jti: legacy_jti,
                sub: USER,
                client_id: Some(&id),
                iat: now,
            }));
        }
    }
}
