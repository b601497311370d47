//! Revocation through real Redis: propagation to two verifiers, and failing
//! closed while Redis is away.

use super::support::*;
use mcpgate::domain::clock::SystemClock;
use mcpgate::domain::revocation::{Revocation, RevocationSink};
use mcpgate::infra::revocation::RedisRevocationSink;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn status(v: &mcpgate::app::verifier::RunningVerifier, auth: &str) -> u16 {
    summarize(&grpc_check(v.grpc_addr, "/mcp", &[("authorization", auth)]).await).0
}

/// The issuer's revocation sink on `urls`, as the issuer configures it.
async fn sink(urls: &[String]) -> RedisRevocationSink {
    RedisRevocationSink::connect(
        urls,
        false,
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    )
    .await
    .unwrap()
}

async fn wait_until(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f().await {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn revocation_reaches_two_verifiers_within_a_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let cfg = config(&iss.url, &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())]);
    let a = start(cfg.clone()).await;
    let b = start(cfg).await;
    let c = claims(&iss.url, "mcp");
    let jti = c["jti"].as_str().unwrap().to_owned();
    let exp = c["exp"].as_u64().unwrap();
    let auth = format!("Bearer {}", key.sign(&c));
    for v in [&a, &b] {
        let ok = wait_until(Duration::from_secs(5), async || {
            status(v, &auth).await == 200
        })
        .await;
        assert!(ok.is_some(), "verifier never allowed the token");
    }
    let sink = sink(&[redis.url()]).await;
    let t0 = Instant::now();
    sink.publish(Revocation::Jti { id: jti, exp })
        .await
        .unwrap();
    for v in [&a, &b] {
        let took = wait_until(Duration::from_secs(2), async || {
            status(v, &auth).await == 401
        })
        .await;
        assert!(took.is_some(), "revocation never arrived");
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    // Each verifier measured the propagation of that one message.
    for v in [&a, &b] {
        let m = metrics_text(v).await;
        assert!(
            m.contains("mcpgate_verifier_revocation_propagation_seconds_count 1"),
            "{m}"
        );
    }
    // A verifier started later learns it from the resync.
    let c2 = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())],
    ))
    .await;
    let late = wait_until(Duration::from_secs(5), async || {
        status(&c2, &auth).await == 401
    })
    .await;
    assert!(late.is_some());
    for v in [a, b, c2] {
        v.shutdown().await;
    }
}

#[tokio::test]
async fn redis_outage_fails_closed_then_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port;
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config_toml(&format!(
        r#"
issuers = ["{}"]
redis_urls = ["{}"]
revocation_staleness_secs = 1.5
[[routes]]
resource = "http://mcp.test/mcp"
required_scopes = ["mcp"]
[[routes]]
resource = "http://mcp.test/lenient"
required_scopes = ["mcp"]
fail_open_on_stale_revocation = true
"#,
        iss.url,
        redis.url()
    )))
    .await;
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let ready = format!("http://{}/readyz", v.http_addr);
    let http = reqwest::Client::new();
    assert!(
        wait_until(Duration::from_secs(5), async || status(&v, &auth).await
            == 200)
        .await
        .is_some()
    );
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);

    redis.kill();
    let closed = wait_until(Duration::from_secs(6), async || {
        status(&v, &auth).await == 503
    })
    .await;
    assert!(closed.is_some(), "never failed closed");
    let r = http.get(&ready).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("revocation data stale"));
    let mut lenient = claims(&iss.url, "mcp");
    lenient["aud"] = serde_json::json!("http://mcp.test/lenient");
    let lenient = format!("Bearer {}", key.sign(&lenient));
    let r = grpc_check(v.grpc_addr, "/lenient", &[("authorization", &lenient)]).await;
    assert_eq!(summarize(&r).0, 200, "fail-open route must keep allowing");
    let m = http
        .get(format!("http://{}/metrics", v.metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("mcpgate_verifier_revocation_stale 1"), "{m}");

    let _redis2 = RedisServer::start_on(port).unwrap();
    let back = wait_until(Duration::from_secs(8), async || {
        status(&v, &auth).await == 200
    })
    .await;
    assert!(back.is_some(), "never recovered");
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);
    v.shutdown().await;
}

#[tokio::test]
async fn revocation_through_redis_cluster() {
    let Some(nodes) = start_cluster().await else {
        return;
    };
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &urls.join(","))],
    ))
    .await;
    let c = claims(&iss.url, "mcp");
    let auth = format!("Bearer {}", key.sign(&c));
    assert!(
        wait_until(Duration::from_secs(5), async || status(&v, &auth).await
            == 200)
        .await
        .is_some()
    );
    let sink = sink(&urls).await;
    let t0 = Instant::now();
    sink.publish(Revocation::Subject {
        id: "user-1".into(),
        before: c["iat"].as_u64().unwrap(),
    })
    .await
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(2), async || status(&v, &auth).await
            == 401)
        .await
        .is_some()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    v.shutdown().await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// How many entries the verifier's revocation mirror holds.
async fn set_size(v: &mcpgate::app::verifier::RunningVerifier) -> f64 {
    metric(
        &metrics_text(v).await,
        "mcpgate_verifier_revocation_set_size",
    )
}

#[tokio::test]
async fn redis_data_loss_keeps_the_mirror_and_writes_the_revocations_back() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port;
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let cfg = config(&iss.url, &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())]);
    let v = start(cfg.clone()).await;
    let c = claims(&iss.url, "mcp");
    let auth = format!("Bearer {}", key.sign(&c));
    let live = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    assert!(
        wait_until(Duration::from_secs(5), async || status(&v, &auth).await
            == 200)
        .await
        .is_some()
    );
    let sink = sink(&[redis.url()]).await;
    let jti = c["jti"].as_str().unwrap().to_owned();
    sink.publish(Revocation::Jti {
        id: jti.clone(),
        exp: c["exp"].as_u64().unwrap(),
    })
    .await
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(2), async || status(&v, &auth).await
            == 401)
        .await
        .is_some()
    );
    // SIGKILL, and back with nothing (no persistence configured).
    redis.kill();
    let _redis2 = RedisServer::start_on(port).unwrap();
    // Every decision meanwhile: the revoked token is never allowed, until
    // the mirror has resynced and written the entry back.
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut wrongful = 0;
    let t0 = Instant::now();
    let restored = loop {
        if status(&v, &auth).await == 200 {
            wrongful += 1;
        }
        assert_eq!(status(&v, &live).await, 200);
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(mcpgate::domain::revocation::JTI_KEY)
                .arg(&jti)
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            if score.is_some() {
                break Some(t0.elapsed());
            }
        }
        if t0.elapsed() > Duration::from_secs(8) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        wrongful, 0,
        "revoked token allowed after redis lost its data"
    );
    assert!(
        restored.is_some(),
        "the lost revocation was not written back"
    );
    assert_eq!(status(&v, &auth).await, 401);
    let m = metrics_text(&v).await;
    assert!(
        metric(&m, "mcpgate_verifier_revocation_store_lost_entries_total") >= 1.0,
        "{m}"
    );
    let late = start(cfg).await;
    assert!(
        wait_until(Duration::from_secs(5), async || status(&late, &live).await
            == 200)
        .await
        .is_some()
    );
    assert_eq!(status(&late, &auth).await, 401);
    for x in [v, late] {
        x.shutdown().await;
    }
}

#[tokio::test]
async fn a_verifier_started_while_redis_is_down_fails_closed_from_its_first_request() {
    let Some(probe) = RedisServer::start() else {
        return;
    };
    let port = probe.port;
    drop(probe);
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(
        &iss.url,
        &[(
            "MCPGW_VERIFIER_REDIS_URL",
            &format!("redis://127.0.0.1:{port}"),
        )],
    ))
    .await;
    let auth = format!("Bearer {}", key.sign(&claims(&iss.url, "mcp")));
    let ready = format!("http://{}/readyz", v.http_addr);
    // From the very first request, before any staleness bound elapsed.
    assert_eq!(status(&v, &auth).await, 503);
    let r = reqwest::get(&ready).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("never synced"));
    for _ in 0..20 {
        assert_ne!(status(&v, &auth).await, 200);
    }
    let _redis = RedisServer::start_on(port).unwrap();
    assert!(
        wait_until(Duration::from_secs(8), async || status(&v, &auth).await
            == 200)
        .await
        .is_some(),
        "never synced after redis came up"
    );
    assert_eq!(reqwest::get(&ready).await.unwrap().status(), 200);
    v.shutdown().await;
}

/// `(master port, replica port)` of the slot holding the revocation keys.
fn revocation_master(nodes: &[RedisServer]) -> (u16, Option<u16>) {
    let slot: u16 = nodes[0]
        .cli(&["CLUSTER", "KEYSLOT", mcpgate::domain::revocation::JTI_KEY])
        .trim()
        .parse()
        .unwrap();
    let text = nodes[0].cli(&["CLUSTER", "NODES"]);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let port = |r: &Vec<&str>| -> u16 {
        r[1].split('@')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let master = rows
        .iter()
        .find(|r| {
            r[2].contains("master")
                && !r[2].contains("fail")
                && r[8..].iter().any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
                })
        })
        .expect("a master owns the slot");
    let replica = rows
        .iter()
        .find(|r| r[3] == master[0] && r[2].contains("slave") && !r[2].contains("fail"))
        .map(port);
    (port(master), replica)
}

#[tokio::test]
async fn cluster_failover_and_master_kill_under_load_lose_no_acknowledged_revocation() {
    let Some(mut nodes) = start_cluster_of(6, 1).await else {
        return;
    };
    // One seed each, as an operator would configure: cluster mode is found.
    let seed = nodes[0].url();
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(&iss.url, &[("MCPGW_VERIFIER_REDIS_URL", &seed)])).await;
    let sink = sink(std::slice::from_ref(&seed)).await;
    assert!(sink.is_cluster());
    let t_start = Instant::now();
    let mut acknowledged: Vec<String> = Vec::new();
    let (mut failed_writes, mut wrongful) = (0, 0);
    let mut longest_outage = Duration::ZERO;
    // Revoke one fresh token per step; every acknowledged one must be denied.
    let step = async |phase: &str,
                      acknowledged: &mut Vec<String>,
                      failed: &mut i32,
                      outage: &mut Duration| {
        let c = claims(&iss.url, "mcp");
        let auth = format!("Bearer {}", key.sign(&c));
        let t0 = Instant::now();
        loop {
            let r = sink
                .publish(Revocation::Jti {
                    id: c["jti"].as_str().unwrap().to_owned(),
                    exp: c["exp"].as_u64().unwrap(),
                })
                .await;
            if r.is_ok() {
                break;
            }
            *failed += 1;
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{phase}: writes never recovered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        *outage = (*outage).max(t0.elapsed());
        acknowledged.push(auth);
    };
    for _ in 0..10 {
        step(
            "steady",
            &mut acknowledged,
            &mut failed_writes,
            &mut longest_outage,
        )
        .await;
    }
    // Graceful failover of the master holding {mcpgate}.
    let mut found = revocation_master(&nodes);
    for _ in 0..100 {
        if found.1.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = revocation_master(&nodes);
    }
    let (master, replica) = found;
    let replica = replica.expect("the slot has a replica");
    let rnode = nodes.iter().find(|n| n.port == replica).unwrap();
    assert!(rnode.cli(&["CLUSTER", "FAILOVER"]).contains("OK"));
    for _ in 0..20 {
        step(
            "failover",
            &mut acknowledged,
            &mut failed_writes,
            &mut longest_outage,
        )
        .await;
    }
    // CLUSTER FAILOVER is asynchronous: on a slow machine the replica may
    // still be taking over after the steps above.
    let mut now_master = revocation_master(&nodes).0;
    for i in 0..200 {
        if now_master != master {
            break;
        }
        // A failover the replica could not start (not yet in sync) is
        // asked for again.
        if i % 40 == 39 {
            rnode.cli(&["CLUSTER", "FAILOVER"]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        now_master = revocation_master(&nodes).0;
    }
    // Kill the new master outright.
    assert_ne!(now_master, master, "failover did not happen");
    let i = nodes.iter().position(|n| n.port == now_master).unwrap();
    nodes[i].kill();
    for _ in 0..20 {
        step(
            "master killed",
            &mut acknowledged,
            &mut failed_writes,
            &mut longest_outage,
        )
        .await;
    }
    // Every acknowledged revocation is enforced, by this verifier and by
    // one started now (from the surviving nodes).
    let late = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &nodes[(i + 1) % 6].url())],
    ))
    .await;
    for auth in &acknowledged {
        for x in [&v, &late] {
            let denied = wait_until(Duration::from_secs(10), async || {
                status(x, auth).await == 401
            })
            .await;
            if denied.is_none() {
                wrongful += 1;
            }
        }
    }
    eprintln!(
        "cluster: {} acknowledged revocations, {failed_writes} failed (unacknowledged) writes, longest write outage {longest_outage:?}, {wrongful} lost, total {:?}",
        acknowledged.len(),
        t_start.elapsed()
    );
    assert_eq!(wrongful, 0, "acknowledged revocations lost in the cluster");
    for x in [v, late] {
        x.shutdown().await;
    }
}

/// An `Authorization` value: a token of `issuer` for `mcp` with this `jti`.
fn bearer_with_jti(issuer: &str, key: &TestKey, jti: &str) -> String {
    let mut c = claims(issuer, "mcp");
    c["jti"] = jti.into();
    format!("Bearer {}", key.sign(&c))
}

/// A `jti` in the issuer's own format (16 random bytes, base64url).
fn issuer_jti() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

fn calls(redis: &RedisServer, command: &str) -> u64 {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(&format!("cmdstat_{command}:calls="))?;
            rest.split(',').next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_reconnect_catches_up_from_the_stream_and_reloads_only_when_it_was_trimmed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())],
    ))
    .await;
    let token = |jti: &str| {
        let mut c = claims(&iss.url, "mcp");
        c["jti"] = jti.into();
        (
            format!("Bearer {}", key.sign(&c)),
            c["exp"].as_u64().unwrap(),
        )
    };
    let sink = sink(&[redis.url()]).await;
    let (j1, j2, j3) = (issuer_jti(), issuer_jti(), issuer_jti());
    let ((t1, exp), (t2, _), (t3, _)) = (token(&j1), token(&j2), token(&j3));
    sink.publish(Revocation::Jti { id: j1, exp }).await.unwrap();
    let denied = async |t: &str| {
        wait_until(Duration::from_secs(5), async || status(&v, t).await == 401)
            .await
            .is_some()
    };
    assert!(denied(&t1).await, "first revocation never arrived");
    assert_eq!(status(&v, &t2).await, 200);

    // The subscription drops and a revocation is acknowledged at once,
    // likely before the mirror has subscribed again: the catch-up from the
    // stream brings it, with no reload of the sets.
    redis.cli(&["CONFIG", "RESETSTAT"]);
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    sink.publish(Revocation::Jti { id: j2, exp }).await.unwrap();
    assert!(denied(&t2).await, "revocation during the reconnect missed");
    assert!(
        wait_until(Duration::from_secs(5), async || calls(&redis, "xrange") > 0)
            .await
            .is_some(),
        "no catch-up read"
    );
    assert_eq!(
        calls(&redis, "zrange"),
        0,
        "the reconnect reloaded the sets"
    );

    // The stream trimmed past the mirror's position, and an entry that
    // only the sets hold: the next reconnect reloads the sets.
    redis.cli(&["XTRIM", mcpgate::domain::revocation::LOG_KEY, "MAXLEN", "0"]);
    redis.cli(&[
        "ZADD",
        mcpgate::domain::revocation::JTI_KEY,
        &exp.to_string(),
        &j3,
    ]);
    assert_eq!(status(&v, &t3).await, 200);
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(denied(&t3).await, "the reload after a trim missed an entry");
    assert!(calls(&redis, "zrange") > 0);
    assert_eq!(status(&v, &t1).await, 401);
    v.shutdown().await;
}

/// The full resync reads the sets a page (10,000) at a time: ties longer
/// than a page, ties that straddle a page's end, and distinct scores are
/// all read, whatever the member's format, and tokens of each kind are
/// denied.
#[tokio::test]
async fn a_full_resync_reads_every_member_across_pages_and_ties() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let exp = claims(&iss.url, "mcp")["exp"].as_u64().unwrap();
    let fill = "for i = 1, tonumber(ARGV[2]) do \
        redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + math.floor((i - 1) / tonumber(ARGV[4])), ARGV[1] .. i) end";
    let jtis = mcpgate::domain::revocation::JTI_KEY;
    // 25,000 of one score (two and a half pages), 12,000 in pairs (ties
    // cut by a page's end), 15,000 distinct.
    for (prefix, n, base, per) in [
        ("tie-", 25_000u64, exp, 25_000u64),
        ("pair-", 12_000, exp + 100, 2),
        ("spread-", 15_000, exp + 20_000, 1),
    ] {
        redis.cli(&[
            "EVAL",
            fill,
            "1",
            jtis,
            prefix,
            &n.to_string(),
            &base.to_string(),
            &per.to_string(),
        ]);
    }
    // Issuer-format jtis inside the long tie, at a page boundary of the
    // pairs, and among the distinct scores.
    let token = |jti: &str| bearer_with_jti(&iss.url, &key, jti);
    let mut revoked = Vec::new();
    for score in [exp, exp + 100 + 4_999, exp + 20_000 + 7_777] {
        let j = issuer_jti();
        redis.cli(&["ZADD", jtis, &score.to_string(), &j]);
        revoked.push(token(&j));
    }
    let live = token(&issuer_jti());
    let want = 25_000.0 + 12_000.0 + 15_000.0 + 3.0;
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())],
    ))
    .await;
    let size = async || set_size(&v).await;
    assert!(
        wait_until(Duration::from_secs(20), async || size().await >= want)
            .await
            .is_some(),
        "the resync did not read every member: {} of {want}, ZCARD {}",
        size().await,
        redis.cli(&["ZCARD", jtis])
    );
    assert_eq!(size().await, want);
    // The set is whole before the resync has finished (the stream
    // catch-up, the prune): until then every Check answers 503.
    assert!(
        wait_until(Duration::from_secs(10), async || status(&v, &live).await
            != 503)
        .await
        .is_some(),
        "the verifier never finished its first sync"
    );
    for t in &revoked {
        assert_eq!(status(&v, t).await, 401);
    }
    assert_eq!(status(&v, &live).await, 200);
    assert!(calls(&redis, "zrange") >= 6);
    assert_eq!(calls(&redis, "zscan"), 0);
    v.shutdown().await;
}

/// Ranks that move during a full resync (members added and removed ahead
/// of where the scan is, as the issuer's prune and new revocations do)
/// make the scan find its place again, never skip: every member present
/// for the whole scan is read.
#[tokio::test]
async fn a_full_resync_misses_nothing_while_the_ranks_shift_under_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let exp = claims(&iss.url, "mcp")["exp"].as_u64().unwrap();
    let jtis = mcpgate::domain::revocation::JTI_KEY;
    let n = 60_000u64;
    // Distinct scores, then one long tie: both are paged by rank.
    redis.cli(&[
        "EVAL",
        "for i = 1, tonumber(ARGV[1]) do \
         redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + math.min(i, 30000), 'stable-' .. i) end",
        "1",
        jtis,
        &n.to_string(),
        &exp.to_string(),
    ]);
    // Members that come and go (not UTF-8, so they cannot be a jti and the
    // mirror skips them: the set's size counts the stable members only),
    // all added in one round and removed in the next: 50 ahead of every
    // stable member, so the ranks of all go up and down by 50, and one
    // after each of the first 30,000, so about every other page ends on
    // one, which may be gone by the time the next page is read.
    let churned = |j: u32| [&[0xff][..], format!("churn-{j}").as_bytes()].concat();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut p = redis::pipe();
                for j in 0..30_050u32 {
                    let score = if j < 50 { 1 } else { exp + u64::from(j - 49) };
                    if round.is_multiple_of(2) {
                        p.cmd("ZADD").arg(jtis).arg(score).arg(churned(j));
                    } else {
                        p.cmd("ZREM").arg(jtis).arg(churned(j));
                    }
                    p.ignore();
                }
                p.query_async::<()>(&mut conn).await.unwrap();
                round += 1;
            }
            round
        }
    });
    // Each attempt is a fresh verifier, so a first sync (a set that only
    // grows, judged by its size) that must read every stable member. Until
    // one of them had to find its place again (the churn and the scan may
    // not overlap on a given try), try again, up to five verifiers.
    let want = n as f64;
    let mut attempts = 0;
    let mut missed = None;
    while attempts < 5 && missed.is_none() && calls(&redis, "zrank") == 0 {
        attempts += 1;
        let v = start(config(
            &iss.url,
            &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())],
        ))
        .await;
        let size = async || set_size(&v).await;
        let synced = wait_until(Duration::from_secs(30), async || size().await >= want).await;
        let got = size().await;
        if synced.is_none() || got != want {
            missed = Some(got);
        }
        v.shutdown().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = churn.await.unwrap();
    assert_eq!(
        missed, None,
        "the resync skipped members: {missed:?} of {want} (attempt {attempts})"
    );
    assert!(
        calls(&redis, "zrank") > 0,
        "the scan never had to find its place again ({rounds} rounds, {attempts} verifiers)"
    );
}

/// Drops the connection of every client whose last command was a `ZRANGE`
/// (the mirror's rank scan); how many it dropped.
async fn kill_scans(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    let mut killed = 0;
    for line in list.lines().filter(|l| l.contains(" cmd=zrange ")) {
        let Some(id) = line.split(' ').find_map(|f| f.strip_prefix("id=")) else {
            continue;
        };
        let n: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(conn)
            .await
            .unwrap_or(0);
        killed += n as usize;
    }
    killed
}

/// The connection drops in the middle of a rank scan, again and again:
/// the first sync starts over and ends whole, and a full resync that is
/// cut keeps what the mirror already holds. No Check with a revoked token
/// is allowed at any point.
#[tokio::test]
async fn a_rank_scan_cut_by_lost_connections_starts_over_and_lets_nothing_through() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = TestKey::es256("k1");
    let iss = Issuer::start(&[&key]).await;
    let exp = claims(&iss.url, "mcp")["exp"].as_u64().unwrap();
    let jtis = mcpgate::domain::revocation::JTI_KEY;
    let n = 200_000u64;
    redis.cli(&[
        "EVAL",
        "for i = 1, tonumber(ARGV[1]) do \
         redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + i % 1000, 'filler-' .. i) end",
        "1",
        jtis,
        &n.to_string(),
        &exp.to_string(),
    ]);
    let token = |jti: &str| bearer_with_jti(&iss.url, &key, jti);
    // The revoked token sits last in the set: read by the scan's last page.
    let j1 = issuer_jti();
    redis.cli(&["ZADD", jtis, &(exp + 5_000).to_string(), &j1]);
    let (t1, live) = (token(&j1), token(&issuer_jti()));
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let v = start(config(
        &iss.url,
        &[("MCPGW_VERIFIER_REDIS_URL", &redis.url())],
    ))
    .await;
    let want = (n + 1) as f64;
    // Cut the scan while it runs, three times, judging the revoked token
    // all along.
    let mut cuts = 0;
    let mut wrongful = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cuts < 3 && std::time::Instant::now() < deadline {
        if set_size(&v).await < want {
            cuts += kill_scans(&mut conn).await.min(1);
        }
        wrongful += usize::from(status(&v, &t1).await == 200);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(cuts >= 1, "no scan was cut");
    let synced = wait_until(Duration::from_secs(30), async || {
        wrongful += usize::from(status(&v, &t1).await == 200);
        status(&v, &live).await == 200
    })
    .await;
    assert!(synced.is_some(), "never synced after {cuts} cuts");
    assert_eq!(set_size(&v).await, want);
    assert_eq!(status(&v, &t1).await, 401);

    // A revocation the mirror gets from the stream, then the stream trimmed
    // past it and an entry only the set holds: the reconnect does a full
    // resync, cut the same way. What the mirror holds stays.
    let j2 = issuer_jti();
    let t2 = token(&j2);
    sink(&[redis.url()])
        .await
        .publish(Revocation::Jti { id: j2, exp })
        .await
        .unwrap();
    let got = wait_until(Duration::from_secs(5), async || {
        status(&v, &t2).await == 401
    })
    .await;
    assert!(got.is_some(), "the published revocation never arrived");
    let j3 = issuer_jti();
    let t3 = token(&j3);
    redis.cli(&["XTRIM", mcpgate::domain::revocation::LOG_KEY, "MAXLEN", "0"]);
    redis.cli(&["ZADD", jtis, &(exp + 5_001).to_string(), &j3]);
    redis.cli(&["CONFIG", "RESETSTAT"]);
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let mut resync_cuts = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while resync_cuts < 2 && std::time::Instant::now() < deadline {
        resync_cuts += kill_scans(&mut conn).await.min(1);
        for t in [&t1, &t2] {
            wrongful += usize::from(status(&v, t).await == 200);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(resync_cuts >= 1, "no resync was cut");
    let caught = wait_until(Duration::from_secs(30), async || {
        for t in [&t1, &t2] {
            wrongful += usize::from(status(&v, t).await == 200);
        }
        status(&v, &t3).await == 401
    })
    .await;
    assert!(caught.is_some(), "the resync never finished after its cuts");
    assert_eq!(wrongful, 0, "a revoked token was allowed during the cuts");
    assert_eq!(status(&v, &live).await, 200);
    assert_eq!(set_size(&v).await, want + 2.0);
    v.shutdown().await;
}
