//! [`RedisRevocationMirror`]: the verifier's in-memory copy of the Redis
//! revocation sets, kept current by pub/sub.
//!
//! On every (re)connect: SUBSCRIBE first, then a full resync (ZRANGE
//! WITHSCORES of the three sets), so no revocation published in between is
//! missed. While connected: apply each message, PING over the pub/sub
//! connection and resync periodically; every success is "contact", and
//! [`RevocationView::stale_for`] reports the time since the last contact.

use super::local::now_secs;
use super::Conn;
use crate::domain::clock::Clock;
use crate::domain::revocation::{
    Published, Revocation, RevocationSet, RevocationView, TokenRef, CHANNEL, CLIENT_KEY, JTI_KEY,
    SUBJECT_KEY,
};
use futures_util::StreamExt;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

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
}

struct Shared {
    set: RwLock<RevocationSet>,
    /// Unix millis of the last confirmed contact with Redis (0 = never).
    last_contact_ms: AtomicU64,
    /// Unix millis when the mirror started.
    started_ms: AtomicU64,
    connected: AtomicBool,
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

async fn run(settings: MirrorSettings, clock: Arc<dyn Clock>, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match session(&settings, clock.as_ref(), &shared, &mut backoff).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "revocation mirror lost redis"),
        }
        shared.connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
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

/// One connected session; returns when the connection is lost.
async fn session(
    s: &MirrorSettings,
    clock: &dyn Clock,
    shared: &Shared,
    backoff: &mut Duration,
) -> redis::RedisResult<()> {
    let t = s.io_timeout;
    // Classic pub/sub is cluster-wide, so any reachable node will do.
    let mut pubsub = None;
    let mut last_err = None;
    for url in &s.urls {
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
    let conn = if s.urls.len() == 1 {
        let client = redis::Client::open(s.urls[0].as_str())?;
        Conn::Plain(within(t, client.get_multiplexed_async_connection()).await?)
    } else {
        let client = redis::cluster::ClusterClient::new(s.urls.iter().map(String::as_str))?;
        Conn::Cluster(within(t, client.get_async_connection()).await?)
    };
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

/// Replaces the mirror with the three sorted sets, pruned.
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
    fresh.prune(now_secs(clock), s.max_token_lifetime.as_secs());
    if let Ok(mut set) = shared.set.write() {
        shared.len.store(fresh.len(), Ordering::Relaxed);
        *set = fresh;
    }
    touch(clock, shared);
    Ok(())
}
