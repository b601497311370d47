//! [`RedisRevocationMirror`]: the verifier's in-memory copy of the Redis
//! revocation sets, kept current by pub/sub.
//!
//! On every (re)connect: SUBSCRIBE first, then a full resync (ZRANGE
//! WITHSCORES of the three sets), so no revocation published in between is
//! missed. While connected: apply each message, PING over the pub/sub
//! connection and resync periodically; every success is "contact", and
//! [`RevocationView::stale_for`] reports the time since the last contact.
//! Until the first resync completes the view is stale without bound: a
//! verifier that never synced decides nothing that needs revocation data.
//!
//! A resync merges into the mirror: an entry leaves only when it expires.
//! A Redis that comes back holding less than the mirror (restarted without
//! persistence, failed over to a replica that lagged) is reported
//! (`revocation_store_lost_entries`, a warning) and the missing entries are
//! written back (`ZADD GT`, which only adds or raises), so verifiers started
//! later see them too. Write-back needs a Redis user allowed to `ZADD` the
//! revocation keys; when it is refused the mirror still keeps the entries.

use super::local::now_secs;
use super::{cluster_client, is_cluster_node, Conn};
use crate::domain::clock::Clock;
use crate::domain::revocation::{
    Published, Revocation, RevocationSet, RevocationView, TokenRef, CHANNEL, CLIENT_KEY, JTI_KEY,
    SUBJECT_KEY,
};
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

/// Entries the mirror holds and Redis lacks count as lost (and are written
/// back) only when the issuer cannot have pruned them: a `jti` expiring more
/// than [`SKEW_MARGIN`] from now, a watermark newer than this (the sink
/// keeps watermarks longer, `WATERMARK_RETENTION`).
pub const LOSS_CHECK_HORIZON: Duration = Duration::from_secs(7 * 86_400);
/// Clock difference between issuer and verifier tolerated by the loss check.
const SKEW_MARGIN: u64 = 60;

/// Settings for [`RedisRevocationMirror`].
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// Redis URLs: one = standalone, several = cluster seed nodes.
    pub urls: Vec<String>,
    /// How often to PING over the subscription. Defaults to 1 s.
    pub ping_interval: Duration,
    /// How often to reload the full sets. Defaults to 60 s.
    pub resync_interval: Duration,
    /// Longest access-token lifetime, bounding subject/client entries.
    pub max_token_lifetime: Duration,
    /// Time limit for connecting and for each command. Defaults to 2 s.
    pub io_timeout: Duration,
    /// Observes, per message, seconds from publication to application.
    /// Defaults to none.
    pub propagation: Option<Histogram>,
    /// Force cluster mode with one seed URL (a seed that reports
    /// `cluster_enabled:1` selects it anyway). Defaults to false.
    pub cluster: bool,
    /// Counts entries Redis had lost and the mirror wrote back. Defaults
    /// to none.
    pub lost: Option<Counter>,
}

struct Shared {
    set: RwLock<RevocationSet>,
    /// Unix millis of the last confirmed contact with Redis (0 = never).
    last_contact_ms: AtomicU64,
    /// Unix millis when the mirror started.
    started_ms: AtomicU64,
    connected: AtomicBool,
    /// Whether one resync has completed.
    synced: AtomicBool,
    len: AtomicUsize,
}

/// The verifier's revocation view, mirrored from Redis.
pub struct RedisRevocationMirror {
    shared: Arc<Shared>,
    ping_interval: Duration,
    task: JoinHandle<()>,
}

use crate::domain::clock::unix_millis as millis;

// === impl MirrorSettings ===

impl MirrorSettings {
    pub fn new(urls: Vec<String>, max_token_lifetime: Duration) -> Self {
        Self {
            urls,
            ping_interval: Duration::from_secs(1),
            resync_interval: Duration::from_secs(60),
            max_token_lifetime,
            io_timeout: Duration::from_secs(2),
            propagation: None,
            cluster: false,
            lost: None,
        }
    }
}

// === impl RedisRevocationMirror ===

impl RedisRevocationMirror {
    /// Starts the background task (needs a Tokio runtime). The first
    /// connection is attempted at once; the view is stale until it succeeds.
    pub fn spawn(settings: MirrorSettings, clock: Arc<dyn Clock>) -> Self {
        let shared = Arc::new(Shared {
            set: RwLock::new(RevocationSet::default()),
            last_contact_ms: AtomicU64::new(0),
            started_ms: AtomicU64::new(millis(clock.now())),
            connected: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            len: AtomicUsize::new(0),
        });
        let ping_interval = settings.ping_interval;
        let task = tokio::spawn(run(settings, clock, shared.clone()));
        Self {
            shared,
            ping_interval,
            task,
        }
    }

    /// Number of entries mirrored.
    pub fn len(&self) -> usize {
        self.shared.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the subscription is currently up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
}

impl Drop for RedisRevocationMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RevocationView for RedisRevocationMirror {
    fn is_revoked(&self, t: TokenRef<'_>) -> bool {
        self.shared
            .set
            .read()
            .map(|s| s.is_revoked(t))
            .unwrap_or(true)
    }

    fn stale_for(&self, now: SystemTime) -> Option<Duration> {
        if !self.shared.synced.load(Ordering::Relaxed) {
            // Never synced: stale without bound, from the first request.
            return Some(Duration::MAX);
        }
        let last = self.shared.last_contact_ms.load(Ordering::Relaxed);
        let since = if last == 0 {
            self.shared.started_ms.load(Ordering::Relaxed)
        } else {
            last
        };
        let age = Duration::from_millis(millis(now).saturating_sub(since));
        let in_sync = last != 0
            && self.shared.connected.load(Ordering::Relaxed)
            && age <= self.ping_interval * 2;
        if in_sync {
            None
        } else {
            Some(age)
        }
    }
}

// === the background task ===

/// Longest wait between reconnection attempts.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(500);

async fn run(settings: MirrorSettings, clock: Arc<dyn Clock>, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut nodes = Vec::new();
    loop {
        match session(&settings, clock.as_ref(), &shared, &mut backoff, &mut nodes).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "revocation mirror lost redis"),
        }
        shared.connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        // Capped low: a revocation acknowledged while this verifier is
        // reconnecting reaches it only with the resync that follows, so the
        // cap bounds how long such a revocation can be missed (a refused
        // connection costs Redis next to nothing).
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

fn timeout_err() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis timed out"))
}

async fn within<T>(
    d: Duration,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(d, f)
        .await
        .unwrap_or_else(|_| Err(timeout_err()))
}

/// One connected session; returns when the connection is lost. `nodes`
/// collects the cluster's nodes across sessions, so the subscription can
/// move to another node when the seeds are gone.
async fn session(
    s: &MirrorSettings,
    clock: &dyn Clock,
    shared: &Shared,
    backoff: &mut Duration,
    nodes: &mut Vec<String>,
) -> redis::RedisResult<()> {
    let t = s.io_timeout;
    let cluster = match s.urls.as_slice() {
        [] => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no redis URL",
            )))
        }
        [one] => s.cluster || is_cluster_node(one, t).await?,
        _ => true,
    };
    let conn = if cluster {
        let client = cluster_client(&s.urls, t)?;
        let conn = Conn::Cluster(within(t, client.get_async_connection()).await?);
        if let Ok(found) = cluster_nodes(&conn, &s.urls[0], t).await {
            for n in found {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        conn
    } else {
        let client = redis::Client::open(s.urls[0].as_str())?;
        Conn::Plain(within(t, client.get_multiplexed_async_connection()).await?)
    };
    // Classic pub/sub is cluster-wide, so any reachable node will do.
    let mut pubsub = None;
    let mut last_err = None;
    for url in s.urls.iter().chain(nodes.iter()) {
        let client = redis::Client::open(url.as_str())?;
        match within(t, client.get_async_pubsub()).await {
            Ok(p) => {
                pubsub = Some(p);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some(mut pubsub) = pubsub else {
        return Err(last_err.unwrap_or_else(timeout_err));
    };
    within(t, pubsub.subscribe(CHANNEL)).await?;
    resync(s, clock, shared, &conn).await?;
    shared.connected.store(true, Ordering::Relaxed);
    *backoff = Duration::from_millis(100);
    tracing::info!("revocation mirror in sync with redis");

    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(s.ping_interval);
    let mut full = tokio::time::interval(s.resync_interval);
    ping.reset();
    full.reset();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscription closed")));
                };
                match serde_json::from_slice::<Published>(msg.get_payload_bytes()) {
                    Ok(p) => {
                        if let Ok(mut set) = shared.set.write() {
                            set.apply(&p.revocation);
                            shared.len.store(set.len(), Ordering::Relaxed);
                        }
                        touch(clock, shared);
                        if let (Some(h), Some(at)) = (&s.propagation, p.published_ms) {
                            let lag_ms = millis(clock.now()).saturating_sub(at);
                            h.observe(lag_ms as f64 / 1000.0);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring malformed revocation message"),
                }
            }
            _ = ping.tick() => {
                within(t, sink.ping::<redis::Value>()).await?;
                touch(clock, shared);
            }
            _ = full.tick() => resync(s, clock, shared, &conn).await?,
        }
    }
}

fn touch(clock: &dyn Clock, shared: &Shared) {
    shared
        .last_contact_ms
        .store(millis(clock.now()), Ordering::Relaxed);
}

/// The `redis://host:port/` of every node `CLUSTER NODES` lists, in the
/// scheme (and credentials) of `seed`.
async fn cluster_nodes(conn: &Conn, seed: &str, t: Duration) -> redis::RedisResult<Vec<String>> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("NODES");
    let text: String = within(t, conn.query(&cmd)).await?;
    let Ok(base) = url::Url::parse(seed) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(addr) = line.split_whitespace().nth(1) else {
            continue;
        };
        // host:port@cport[,hostname]
        let hp = addr.split('@').next().unwrap_or_default();
        let Some((host, port)) = hp.rsplit_once(':') else {
            continue;
        };
        let (Ok(port), false) = (port.parse::<u16>(), host.is_empty()) else {
            continue;
        };
        let mut u = base.clone();
        if u.set_host(Some(host)).is_ok() && u.set_port(Some(port)).is_ok() {
            out.push(u.to_string());
        }
    }
    Ok(out)
}

/// Merges the three sorted sets into the mirror and prunes it. What the
/// mirror holds and Redis lacks is reported and written back.
async fn resync(
    s: &MirrorSettings,
    clock: &dyn Clock,
    shared: &Shared,
    conn: &Conn,
) -> redis::RedisResult<()> {
    let mut fresh = RevocationSet::default();
    for key in [JTI_KEY, SUBJECT_KEY, CLIENT_KEY] {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(key).arg(0).arg(-1).arg("WITHSCORES");
        let rows: Vec<(String, f64)> = within(s.io_timeout, conn.query(&cmd)).await?;
        for (id, score) in rows {
            let v = if score.is_finite() && score > 0.0 {
                score as u64
            } else {
                0
            };
            fresh.apply(&match key {
                JTI_KEY => Revocation::Jti { id, exp: v },
                SUBJECT_KEY => Revocation::Subject { id, before: v },
                _ => Revocation::Client { id, before: v },
            });
        }
    }
    let now = now_secs(clock);
    let max = s.max_token_lifetime.as_secs();
    fresh.prune(now, max);
    let missing = match shared.set.write() {
        Ok(mut set) => {
            set.prune(now, max);
            let horizon = now.saturating_sub(LOSS_CHECK_HORIZON.as_secs());
            let missing: Vec<Revocation> = set
                .missing_from(&fresh)
                .into_iter()
                .filter(|r| match r {
                    Revocation::Jti { exp, .. } => *exp > now + SKEW_MARGIN,
                    Revocation::Subject { before, .. } | Revocation::Client { before, .. } => {
                        *before > horizon
                    }
                })
                .collect();
            for r in fresh.entries() {
                set.apply(&r);
            }
            shared.len.store(set.len(), Ordering::Relaxed);
            missing
        }
        Err(_) => Vec::new(),
    };
    touch(clock, shared);
    if !missing.is_empty() {
        tracing::warn!(
            missing = missing.len(),
            "redis lacks revocations this verifier enforces (data lost?); keeping them and writing them back"
        );
        if let Some(c) = &s.lost {
            c.inc_by(missing.len() as u64);
        }
        if let Err(e) = write_back(s, conn, &missing).await {
            tracing::warn!(error = %e, "writing revocations back to redis failed");
        }
    }
    shared.synced.store(true, Ordering::Relaxed);
    Ok(())
}

/// `ZADD <set> GT score member ...`, one command per set: adds what is
/// missing, raises what is lower, never lowers or removes.
async fn write_back(s: &MirrorSettings, conn: &Conn, rs: &[Revocation]) -> redis::RedisResult<()> {
    for key in [JTI_KEY, SUBJECT_KEY, CLIENT_KEY] {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key).arg("GT");
        let mut n = 0;
        for r in rs {
            let (k, member, score) = super::sink::key_of(r);
            if k == key {
                cmd.arg(score).arg(member);
                n += 1;
            }
        }
        if n > 0 {
            within(s.io_timeout, conn.query::<i64>(&cmd)).await?;
        }
    }
    Ok(())
}
