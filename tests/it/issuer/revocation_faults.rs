//! A revocation is acknowledged only once published: the issuer with a
//! revocation sink that fails on demand (in front of the real in-process
//! set), RFC 7009 and refresh-reuse revocations retried after failures.

use super::harness::*;
use mcpgate::domain::clock::SystemClock;
use mcpgate::domain::revocation::{Revocation, RevocationError, RevocationSink, RevocationView};
use mcpgate::infra::revocation::LocalRevocations;
use reqwest::StatusCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Passes publications to `inner`, except that while `fail_after` is
/// `n >= 0` it lets `n` more through and then fails every one.
struct FlakySink {
    inner: LocalRevocations,
    fail_after: AtomicI64,
}

#[async_trait::async_trait]
impl RevocationSink for FlakySink {
    async fn publish(&self, r: Revocation) -> Result<(), RevocationError> {
        let n = self.fail_after.load(Ordering::SeqCst);
        if n == 0 {
            return Err(RevocationError("injected failure".into()));
        }
        if n > 0 {
            self.fail_after.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.publish(r).await
    }

    async fn check(&self) -> Result<(), RevocationError> {
        match self.fail_after.load(Ordering::SeqCst) {
            0 => Err(RevocationError("injected failure".into())),
            _ => Ok(()),
        }
    }
}

async fn start_flaky() -> (Harness, Arc<FlakySink>) {
    // Reuse detection at once: no refresh grace window.
    let toml = format!("refresh_grace_secs = 0\n{}", base_toml());
    let revocations = LocalRevocations::new(Arc::new(SystemClock), Duration::from_secs(7200));
    let sink = Arc::new(FlakySink {
        inner: revocations.clone(),
        fail_after: AtomicI64::new(-1),
    });
    let deps = Deps {
        revocations: Some(revocations),
        sink: Sink::Custom(sink.clone()),
        ..Default::default()
    };
    (start_with(&toml, deps).await, sink)
}

/// A client with a family holding two access tokens: `(id, secret,
/// [old access, new access], old refresh, live refresh)`.
async fn family(h: &Harness) -> (String, String, Vec<String>, String, String) {
    let (id, secret, code, v) = confidential_code(h).await;
    let (st, first) = exchange(h, &id, &secret, &code, &v).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (st, _, second) = token(
        h,
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{second}");
    let ats = [&first, &second]
        .iter()
        .map(|b| b["access_token"].as_str().unwrap().to_owned())
        .collect();
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    (id, secret, ats, rt1, rt2)
}

#[tokio::test]
async fn rfc7009_revoke_is_acknowledged_only_once_every_token_is_published() {
    let (h, sink) = start_flaky().await;
    for fail_after in [0, 1] {
        let (id, secret, ats, _, rt) = family(&h).await;
        // 0: the first publication fails; 1: the second (a partial failure).
        sink.fail_after.store(fail_after, Ordering::SeqCst);
        let form = [("token", rt.as_str()), ("token_type_hint", "refresh_token")];
        let (st, body) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(!ats.iter().all(|a| revoked(&h, a)));
        // While the sink fails the issuer is not ready.
        if fail_after == 0 {
            let r = h
                .http
                .get(format!("{}/readyz", h.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        sink.fail_after.store(-1, Ordering::SeqCst);
        let (st, body) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        for a in &ats {
            assert!(
                revoked(&h, a),
                "retry after fail_after={fail_after} left a token live"
            );
            assert_eq!(introspect(&h, a).await["active"], false);
        }
        // The refresh token is gone only now.
        let (st, _, _) = token(
            &h,
            Some((&id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
    }
    let r = h
        .http
        .get(format!("{}/readyz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    h.running.shutdown().await;
}

#[tokio::test]
async fn an_access_token_revocation_that_failed_is_published_by_the_retry() {
    let (h, sink) = start_flaky().await;
    let (id, secret, ats, _, _) = family(&h).await;
    sink.fail_after.store(0, Ordering::SeqCst);
    let form = [
        ("token", ats[1].as_str()),
        ("token_type_hint", "access_token"),
    ];
    let (st, _) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    // Not acknowledged, but recorded before the publish failed (the
    // republisher will publish it even without a retry), so introspection,
    // which reads the record, no longer vouches for it: fail closed.
    assert_eq!(introspect(&h, &ats[1]).await["active"], false);
    assert!(!revoked(&h, &ats[1]), "published although the sink failed");
    sink.fail_after.store(-1, Ordering::SeqCst);
    let (st, _) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::OK);
    assert!(revoked(&h, &ats[1]));
    assert_eq!(introspect(&h, &ats[1]).await["active"], false);
    h.running.shutdown().await;
}

#[tokio::test]
async fn refresh_reuse_that_failed_to_revoke_answers_503_and_the_retry_revokes() {
    let (h, sink) = start_flaky().await;
    for fail_after in [0, 1] {
        let (id, secret, ats, old_rt, live_rt) = family(&h).await;
        sink.fail_after.store(fail_after, Ordering::SeqCst);
        let reuse = [
            ("grant_type", "refresh_token"),
            ("refresh_token", old_rt.as_str()),
        ];
        let (st, _, body) = token(&h, Some((&id, &secret)), &reuse).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        sink.fail_after.store(-1, Ordering::SeqCst);
        let (st, _, body) = token(&h, Some((&id, &secret)), &reuse).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        for a in &ats {
            assert!(
                revoked(&h, a),
                "fail_after={fail_after}: a family token stayed live"
            );
        }
        let (st, _, _) = token(
            &h,
            Some((&id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &live_rt)],
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
    }
    h.running.shutdown().await;
}

#[tokio::test]
async fn admin_revocation_fails_while_the_sink_fails_and_the_retry_publishes() {
    let (h, sink) = start_flaky().await;
    let (_, _, ats, _, _) = family(&h).await;
    sink.fail_after.store(0, Ordering::SeqCst);
    let send = || async {
        h.http
            .post(format!("{}/admin/revoke", h.admin))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"sub": claims(&ats[0])["sub"]}))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(send().await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!revoked(&h, &ats[0]));
    sink.fail_after.store(-1, Ordering::SeqCst);
    assert!(send().await.is_success());
    assert!(ats.iter().all(|a| revoked(&h, a)));
    h.running.shutdown().await;
}

async fn zscore(port: u16, jti: &str) -> Option<f64> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("ZSCORE")
        .arg(mcpgate::domain::revocation::JTI_KEY)
        .arg(jti)
        .query_async(&mut c)
        .await
        .unwrap_or(None)
}

#[tokio::test]
async fn redis_killed_mid_revocation_then_the_retry_and_the_republisher_restore_everything() {
    use crate::verifier::support::RedisServer;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port;
    let toml = format!(
        "{}\n[revocation]\nkind = \"redis\"\nredis_urls = [\"{}\"]\n",
        base_toml(),
        redis.url()
    );
    let deps = Deps {
        sink: Sink::Configured,
        ..Default::default()
    };
    let h = start_with(&toml, deps).await;
    let (id, secret, ats, _, rt) = family(&h).await;
    let jtis: Vec<String> = ats
        .iter()
        .map(|a| claims(a)["jti"].as_str().unwrap().to_owned())
        .collect();
    redis.kill();
    let form = [("token", rt.as_str()), ("token_type_hint", "refresh_token")];
    let (st, _) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    let r = h
        .http
        .get(format!("{}/readyz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Back, empty: the first command after a restart must not be lost.
    let mut redis = RedisServer::start_on(port).unwrap();
    let (st, body) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    for j in &jtis {
        assert!(
            zscore(port, j).await.is_some(),
            "acknowledged revocation missing"
        );
    }
    // Lost again: the issuer's own record puts it back.
    redis.kill();
    let _redis = RedisServer::start_on(port).unwrap();
    assert!(zscore(port, &jtis[0]).await.is_none());
    let mut restored = None;
    for _ in 0..50 {
        if let Ok(n) = h.running.core.republish_revocations().await {
            restored = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restored, Some(jtis.len()));
    for j in &jtis {
        assert!(zscore(port, j).await.is_some(), "republish missed {j}");
    }
    assert_eq!(h.running.core.republish_revocations().await.unwrap(), 0);
    h.running.shutdown().await;
}

#[tokio::test]
async fn key_rotation_under_load_keeps_every_decision_right() {
    use crate::verifier::support::{grpc_check_host, summarize};
    use mcpgate::app::verifier::VerifierDeps;
    let h = start().await;
    let view: Arc<dyn RevocationView> = Arc::new(h.revocations.clone());
    let mut env: std::collections::HashMap<String, String> = [
        ("MCPGW_VERIFIER_HTTP_ADDR", "127.0.0.1:0"),
        ("MCPGW_VERIFIER_GRPC_ADDR", "127.0.0.1:0"),
        ("MCPGW_VERIFIER_ISSUERS", h.base.as_str()),
        ("MCPGW_VERIFIER_RESOURCE", RESOURCE),
        ("MCPGW_VERIFIER_JWKS_MIN_REFETCH_SECS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("MCPGW_VERIFIER_REQUIRED_SCOPES".into(), "mcp:read".into());
    let cfg = mcpgate::config::verifier::VerifierConfig::load(&env).unwrap();
    let v = mcpgate::app::verifier::spawn(
        cfg,
        VerifierDeps {
            revocations: Some(view),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let decide = async |at: &str| {
        let auth = format!("Bearer {at}");
        summarize(
            &grpc_check_host(
                v.grpc_addr,
                "127.0.0.1:9",
                "/mcp",
                &[("authorization", &auth)],
            )
            .await,
        )
        .0
    };
    let (id, secret, ats, _, rt) = family(&h).await;
    // The first access token is revoked; the second stays good.
    let form = [
        ("token", ats[0].as_str()),
        ("token_type_hint", "access_token"),
    ];
    assert_eq!(
        post_form(&h, "/revoke", Some((&id, &secret)), &form)
            .await
            .0,
        StatusCode::OK
    );
    let (revoked_at, mut good) = (ats[0].clone(), vec![ats[1].clone()]);
    let mut rt = rt;
    let (mut decisions, mut wrong) = (0, 0);
    for round in 0..5 {
        for at in &good {
            decisions += 1;
            if decide(at).await != 200 {
                wrong += 1;
            }
        }
        decisions += 1;
        if decide(&revoked_at).await != 401 {
            wrong += 1;
        }
        let r = h
            .http
            .post(format!("{}/admin/keys/rotate", h.admin))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "round {round}");
        // A token signed by the new key works at once (kid-miss refetch).
        let (st, _, body) = token(
            &h,
            Some((&id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        rt = body["refresh_token"].as_str().unwrap().to_owned();
        good.push(body["access_token"].as_str().unwrap().to_owned());
    }
    for at in &good {
        decisions += 1;
        if decide(at).await != 200 {
            wrong += 1;
        }
    }
    eprintln!("rotation under load: {decisions} decisions, {wrong} wrong");
    assert_eq!(wrong, 0);
    v.shutdown().await;
    h.running.shutdown().await;
}

#[tokio::test]
async fn an_issuer_on_one_cluster_seed_revokes_through_a_failover() {
    use crate::verifier::support::start_cluster_of;
    let Some(nodes) = start_cluster_of(6, 1).await else {
        return;
    };
    let seed = nodes[0].url();
    let toml = base_toml().replace(
        "[storage]\nkind = \"memory\"",
        &format!("[storage]\nkind = \"redis\"\nredis_urls = [\"{seed}\"]"),
    );
    assert!(toml.contains(&seed));
    let deps = Deps {
        sink: Sink::Configured,
        ..Default::default()
    };
    let h = start_with(&toml, deps).await;
    let (id, secret, ats, _, rt) = family(&h).await;
    // Wait for replicas to attach, then fail every master over at once.
    let t0 = std::time::Instant::now();
    loop {
        let replicas: Vec<_> = nodes
            .iter()
            .filter(|n| n.cli(&["ROLE"]).starts_with("slave"))
            .collect();
        if replicas.len() == 3 {
            for r in replicas {
                r.cli(&["CLUSTER", "FAILOVER"]);
            }
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replicas never attached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let form = [("token", rt.as_str()), ("token_type_hint", "refresh_token")];
    let t0 = std::time::Instant::now();
    loop {
        let (st, _) = post_form(&h, "/revoke", Some((&id, &secret)), &form).await;
        if st == StatusCode::OK {
            break;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "revocation never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = redis::cluster::ClusterClient::new(vec![seed.as_str()]).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    for a in &ats {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(mcpgate::domain::revocation::JTI_KEY)
            .arg(claims(a)["jti"].as_str().unwrap())
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(
            score.is_some(),
            "acknowledged revocation missing from the cluster"
        );
    }
    assert_eq!(introspect(&h, &ats[1]).await["active"], false);
    h.running.shutdown().await;
}
