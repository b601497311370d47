//! [`RedisRevocationMirror`]: the verifier's in-memory copy of the Redis
//! revocation sets, kept current by pub/sub and the revocation stream.
//!
//! The mirror runs on a thread of its own (with its own single-threaded
//! runtime), never on the threads that answer Checks; it writes into a
//! [`CompactRevocations`] whose 256 shards are each locked only for one
//! insert, so a sync of millions of entries never holds a Check up.
//!
//! On every (re)connect: SUBSCRIBE first, then reconcile, so no revocation
//! published in between is missed. Reconciling reads the revocation stream
//! from the last entry this mirror applied (an incremental catch-up: what
//! was revoked while the subscription was down costs one short read); a full
//! resync (the three sets, paged by rank with `ZRANGE`, several pages in
//! flight, a time limit per page and none on the whole) happens at the
//! first connect, when Redis's epoch changed (it lost its data or is another Redis), when the stream no longer holds
//! the last entry applied (trimmed past it, or a failover to a replica that
//! lagged), and every `full_resync_interval` as a safety net. A full resync
//! first notes the stream's last entry and catches up from there after the
//! scan, so what was written during the scan is applied too.
//!
//! While connected: apply each message, PING over the pub/sub connection
//! and reconcile periodically; every success is "contact", and
//! [`RevocationView::stale_for`] reports the time since the last contact.
//! Until the first full resync completes the view is stale without bound: a
//! verifier that never synced decides nothing that needs revocation data.
//!
//! A resync merges into the mirror: an entry leaves only when it expires.
//! A Redis that comes back holding less than the mirror (restarted without
//! persistence, failed over to a replica that lagged) is reported
//! (`revocation_store_lost_entries`, a warning) and the missing entries are
//! written back (`ZADD GT`, which only adds or raises), so verifiers started
//! later see them too. Write-back needs a Redis user allowed to `ZADD` the
//! revocation keys; when it is refused the mirror still keeps the entries.

use super::compact::{pack_jti, CompactRevocations};
use super::local::now_secs;
use super::sink::key_of;
use crate::domain::clock::Clock;
use crate::domain::revocation::{
    Published, Revocation, RevocationView, TokenRef, CHANNEL, CLIENT_KEY, EPOCH_KEY, JTI_KEY,
    LOG_KEY, SUBJECT_KEY,
};
use crate::infra::redis_conn::{timed_out, within, RedisConn, SingleNode};
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Entries the mirror holds and Redis lacks count as lost (and are written
/// back) only when the issuer cannot have pruned them: a `jti` expiring more
/// than [`SKEW_MARGIN`] from now, a watermark newer than this (the sink
/// keeps watermarks longer, `WATERMARK_RETENTION`).
pub(super) const LOSS_CHECK_HORIZON: Duration = Duration::from_secs(7 * 86_400);
/// Clock difference between issuer and verifier tolerated by the loss check.
const SKEW_MARGIN: u64 = 60;
/// Members asked for per `ZRANGE` page, and per write-back command.
const PAGE: usize = 10_000;
/// `ZRANGE` pages in flight during a full resync.
const DEPTH: usize = 4;
/// How many times in a row a resync looks for its place again (writes
/// moved the ranks) without reading anything new, before it gives up (and
/// starts over at the next reconcile).
const RELOCATE_TRIES: usize = 64;
/// Stream entries read per XRANGE page.
const LOG_PAGE: usize = 1_000;

/// Settings for [`RedisRevocationMirror`].
#[derive(Debug, Clone)]
pub(crate) struct MirrorSettings {
    /// Redis URLs: one = standalone, several = cluster seed nodes.
    pub urls: Vec<String>,
    /// How often to PING over the subscription. Defaults to 1 s.
    pub(crate) ping_interval: Duration,
    /// How often to reconcile with Redis (read the revocation stream from
    /// the last entry applied, a full resync only when that cannot tell
    /// what was missed). Defaults to 5 s.
    pub(crate) resync_interval: Duration,
    /// Longest time between two full resyncs, a safety net for a writer
    /// that does not append to the stream. Defaults to 1 h.
    pub(crate) full_resync_interval: Duration,
    /// Longest access-token lifetime, bounding subject/client entries.
    pub(crate) max_token_lifetime: Duration,
    /// Time limit for connecting and for each command (each page of a
    /// resync; a resync as a whole has none). Defaults to 2 s.
    pub(crate) io_timeout: Duration,
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
    set: CompactRevocations,
    /// Unix millis of the last confirmed contact with Redis (0 = never).
    last_contact_ms: AtomicU64,
    /// Unix millis when the mirror started.
    started_ms: AtomicU64,
    connected: AtomicBool,
    /// Whether one full resync has completed.
    synced: AtomicBool,
}

/// Where the mirror is in the revocation stream.
#[derive(Default)]
struct Position {
    /// Redis's epoch when the position was taken; `None` = unknown, so the
    /// next reconcile is a full resync.
    epoch: Option<String>,
    /// The last stream entry applied (`0-0` = the stream was empty).
    last: String,
    /// When the last full resync completed.
    full_at: Option<Instant>,
}

/// The verifier's revocation view, mirrored from Redis.
pub(crate) struct RedisRevocationMirror {
    shared: Arc<Shared>,
    ping_interval: Duration,
    /// Dropping it stops the mirror's thread.
    _stop: tokio::sync::oneshot::Sender<()>,
}

use crate::domain::clock::unix_millis as millis;

// === impl MirrorSettings ===

impl MirrorSettings {
    pub(crate) fn new(urls: Vec<String>, max_token_lifetime: Duration) -> Self {
        Self {
            urls,
            ping_interval: Duration::from_secs(1),
            resync_interval: Duration::from_secs(5),
            full_resync_interval: Duration::from_secs(3600),
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
    /// Starts the mirror on a thread of its own. The first connection is
    /// attempted at once; the view is stale until the first sync completes.
    pub(crate) fn spawn(settings: MirrorSettings, clock: Arc<dyn Clock>) -> Self {
        let shared = Arc::new(Shared {
            set: CompactRevocations::default(),
            last_contact_ms: AtomicU64::new(0),
            started_ms: AtomicU64::new(millis(clock.now())),
            connected: AtomicBool::new(false),
            synced: AtomicBool::new(false),
        });
        let ping_interval = settings.ping_interval;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = {
            let shared = shared.clone();
            async move {
                tokio::select! {
                    _ = run(settings, clock, shared) => {}
                    _ = stopped => {}
                }
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let spawned = rt.and_then(|rt| {
            std::thread::Builder::new()
                .name("revocation-mirror".into())
                .spawn(move || {
                    lower_priority();
                    rt.block_on(task)
                })
        });
        if let Err(e) = spawned {
            // Without its thread the mirror never syncs: the view stays
            // stale without bound and every route that needs it fails
            // closed.
            tracing::error!(error = %e, "cannot start the revocation mirror's thread");
        }
        Self {
            shared,
            ping_interval,
            _stop: stop,
        }
    }

    /// Number of entries mirrored.
    pub(crate) fn len(&self) -> usize {
        self.shared.set.len()
    }
}

impl RevocationView for RedisRevocationMirror {
    fn is_revoked(&self, t: TokenRef<'_>) -> bool {
        self.shared.set.is_revoked(t)
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

/// The mirror thread's niceness. A full resync of millions of entries
/// keeps the thread busy for seconds on the CPU that answers Checks; at
/// nice 10 the scheduler favours the serving thread (a 10M resync with
/// Checks at 2,000/s: p99 3.3 ms, BENCHMARKS.md "Revocations at scale").
/// It still gets about a tenth of a saturated CPU, so a busy verifier
/// syncs too, only slower.
#[cfg(target_os = "linux")]
const MIRROR_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`MIRROR_NICE`] (best effort).
#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux, setpriority(2) given a thread id changes that thread only.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), MIRROR_NICE) {
        tracing::debug!(error = %e, "cannot lower the revocation mirror's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

// === the background task ===

/// Longest wait between reconnection attempts.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(500);

async fn run(settings: MirrorSettings, clock: Arc<dyn Clock>, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut nodes = Vec::new();
    let mut pos = Position::default();
    loop {
        let r = session(
            &settings,
            clock.as_ref(),
            &shared,
            &mut backoff,
            &mut nodes,
            &mut pos,
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "revocation mirror lost redis");
        }
        shared.connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        // Capped low: a revocation acknowledged while this verifier is
        // reconnecting reaches it with the catch-up that follows the
        // reconnect, so the cap bounds how long such a revocation can be
        // missed (a refused connection costs Redis next to nothing).
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
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
    pos: &mut Position,
) -> redis::RedisResult<()> {
    let t = s.io_timeout;
    let conn = RedisConn::connect(&s.urls, s.cluster, SingleNode::Plain, t).await?;
    if conn.is_cluster() {
        if let Ok(found) = cluster_nodes(&conn, &s.urls[0], t).await {
            for n in found {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
    }
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
        return Err(last_err.unwrap_or_else(timed_out));
    };
    within(t, pubsub.subscribe(CHANNEL)).await?;
    reconcile(s, clock, shared, &conn, pos).await?;
    shared.connected.store(true, Ordering::Relaxed);
    *backoff = Duration::from_millis(100);
    tracing::info!(
        entries = shared.set.len(),
        "revocation mirror in sync with redis"
    );

    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(s.ping_interval);
    let mut tick = tokio::time::interval(s.resync_interval);
    ping.reset();
    tick.reset();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscription closed")));
                };
                match serde_json::from_slice::<Published>(msg.get_payload_bytes()) {
                    Ok(p) => {
                        shared.set.apply(&p.revocation);
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
            _ = tick.tick() => reconcile(s, clock, shared, &conn, pos).await?,
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
async fn cluster_nodes(
    conn: &RedisConn,
    seed: &str,
    t: Duration,
) -> redis::RedisResult<Vec<String>> {
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

/// Brings the mirror up to date: an incremental catch-up from the stream
/// when it can tell what was missed, a full resync otherwise; then prunes.
async fn reconcile(
    s: &MirrorSettings,
    clock: &dyn Clock,
    shared: &Shared,
    conn: &RedisConn,
    pos: &mut Position,
) -> redis::RedisResult<()> {
    let due = pos
        .full_at
        .is_none_or(|at| at.elapsed() >= s.full_resync_interval);
    if due
        || !shared.synced.load(Ordering::Relaxed)
        || !catch_up(s, clock, shared, conn, pos).await?
    {
        full_resync(s, clock, shared, conn, pos).await?;
    }
    shared
        .set
        .prune(now_secs(clock), s.max_token_lifetime.as_secs());
    touch(clock, shared);
    Ok(())
}

async fn get_epoch(s: &MirrorSettings, conn: &RedisConn) -> redis::RedisResult<Option<String>> {
    let mut get = redis::cmd("GET");
    get.arg(EPOCH_KEY);
    within(s.io_timeout, conn.query(&get)).await
}

/// Applies the stream's entries after `pos.last`. Returns false (and reads
/// nothing) when the stream cannot tell what was missed: Redis's epoch is
/// not the one of the position, or the stream no longer holds the last entry
/// applied.
async fn catch_up(
    s: &MirrorSettings,
    clock: &dyn Clock,
    shared: &Shared,
    conn: &RedisConn,
    pos: &mut Position,
) -> redis::RedisResult<bool> {
    let t = s.io_timeout;
    let epoch = get_epoch(s, conn).await?;
    if epoch.is_none() || epoch != pos.epoch {
        return Ok(false);
    }
    if pos.last != "0-0" {
        let mut at = redis::cmd("XRANGE");
        at.arg(LOG_KEY).arg(&pos.last).arg(&pos.last);
        let here: Vec<redis::Value> = within(t, conn.query(&at)).await?;
        if here.is_empty() {
            return Ok(false);
        }
    } else {
        // The stream was empty at the last full resync: it must not have
        // been trimmed since (Redis 7's XINFO counts every entry added).
        let mut exists = redis::cmd("EXISTS");
        exists.arg(LOG_KEY);
        if within(t, conn.query::<i64>(&exists)).await? == 1 {
            let mut info = redis::cmd("XINFO");
            info.arg("STREAM").arg(LOG_KEY);
            let info: HashMap<String, redis::Value> = within(t, conn.query(&info)).await?;
            let int = |k: &str| match info.get(k) {
                Some(redis::Value::Int(n)) => Some(*n),
                _ => None,
            };
            match (int("entries-added"), int("length")) {
                (Some(added), Some(len)) if added <= len => {}
                _ => return Ok(false),
            }
        }
    }
    loop {
        let mut range = redis::cmd("XRANGE");
        range
            .arg(LOG_KEY)
            .arg(format!("({}", pos.last))
            .arg("+")
            .arg("COUNT")
            .arg(LOG_PAGE);
        let rows: Vec<(String, Vec<String>)> = within(t, conn.query(&range)).await?;
        let n = rows.len();
        for (id, fields) in rows {
            if let Some(r) = log_entry(&fields) {
                shared.set.apply(&r);
            }
            pos.last = id;
        }
        touch(clock, shared);
        if n < LOG_PAGE {
            return Ok(true);
        }
    }
}

/// One stream entry's fields (`k`, `m`, `s`) as a revocation.
fn log_entry(fields: &[String]) -> Option<Revocation> {
    let (mut k, mut m, mut sc) = (None, None, None);
    for kv in fields.chunks(2) {
        if let [key, v] = kv {
            match key.as_str() {
                "k" => k = Some(v.as_str()),
                "m" => m = Some(v.clone()),
                "s" => sc = v.parse::<f64>().ok(),
                _ => {}
            }
        }
    }
    let (id, v) = (m?, score(sc?));
    Some(match k? {
        "1" => Revocation::Jti { id, exp: v },
        "2" => Revocation::Subject { id, before: v },
        "3" => Revocation::Client { id, before: v },
        _ => return None,
    })
}

fn score(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        s as u64
    } else {
        0
    }
}

/// One member of a sorted set with its score, exactly as Redis holds it.
type Row = (Vec<u8>, f64);

/// The rows of a `ZRANGE … WITHSCORES` reply.
fn rows_of(v: redis::Value) -> redis::RedisResult<Vec<Row>> {
    let bad = |what: &'static str| {
        redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, what))
    };
    let redis::Value::Array(items) = v else {
        return Err(bad("ZRANGE: not an array"));
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        let score = match s {
            redis::Value::BulkString(s) => score_of(&s),
            // RESP3 sends scores as doubles.
            redis::Value::Double(d) => Some(d),
            _ => None,
        };
        match (m, score) {
            (redis::Value::BulkString(m), Some(score)) => out.push((m, score)),
            _ => return Err(bad("ZRANGE: unexpected member or score")),
        }
    }
    Ok(out)
}

/// A score as Redis writes it.
fn score_of(raw: &[u8]) -> Option<f64> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// What [`scan_by_rank`] reads a sorted set with: Redis ([`RedisSet`]),
/// or in the tests a model whose members change between any two reads.
trait RankedSet {
    /// `ZRANGE key <from> <to> WITHSCORES`: members by rank, both ends
    /// included. The future owns what it needs, so several can be in
    /// flight.
    fn range(
        &self,
        from: usize,
        to: usize,
    ) -> impl std::future::Future<Output = redis::RedisResult<Vec<Row>>> + 'static;
    /// `ZSCORE key <member>`.
    fn score(
        &self,
        member: &[u8],
    ) -> impl std::future::Future<Output = redis::RedisResult<Option<f64>>>;
    /// `ZRANK key <member>`.
    fn rank(
        &self,
        member: &[u8],
    ) -> impl std::future::Future<Output = redis::RedisResult<Option<usize>>>;
    /// `ZCOUNT key -inf (<score>`: how many members score below `score`,
    /// the rank of the first that does not.
    fn count_below(
        &self,
        score: f64,
    ) -> impl std::future::Future<Output = redis::RedisResult<usize>>;
}

/// A sorted set in Redis, each command with a time limit.
struct RedisSet<'a> {
    t: Duration,
    conn: &'a RedisConn,
    key: &'static str,
}

impl RankedSet for RedisSet<'_> {
    fn range(
        &self,
        from: usize,
        to: usize,
    ) -> impl std::future::Future<Output = redis::RedisResult<Vec<Row>>> + 'static {
        let (t, conn) = (self.t, self.conn.clone());
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.key).arg(from).arg(to).arg("WITHSCORES");
        async move { rows_of(within(t, conn.query(&cmd)).await?) }
    }

    async fn score(&self, member: &[u8]) -> redis::RedisResult<Option<f64>> {
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(self.key).arg(member);
        within(self.t, self.conn.query(&cmd)).await
    }

    async fn rank(&self, member: &[u8]) -> redis::RedisResult<Option<usize>> {
        let mut cmd = redis::cmd("ZRANK");
        cmd.arg(self.key).arg(member);
        within(self.t, self.conn.query(&cmd)).await
    }

    async fn count_below(&self, score: f64) -> redis::RedisResult<usize> {
        // Rust writes the shortest decimal that reads back as the same
        // double, which Redis (strtod) reads back exactly.
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(self.key).arg("-inf").arg(format!("({score}"));
        within(self.t, self.conn.query(&cmd)).await
    }
}

/// What a page must show for the scan to know where it starts.
#[derive(Clone, Debug)]
enum Anchor {
    /// The last member read, with the score it was read with.
    Member(Row),
    /// The page starts with the first member scoring at least this (after
    /// any that score less, read already).
    From(f64),
}

/// Where a page starts, found in it: how many of its rows were read
/// already; `None` when the page does not show it.
fn find_start(page: &[Row], anchor: &Anchor, from_zero: bool) -> Option<usize> {
    match anchor {
        Anchor::Member((m, score)) => page
            .iter()
            .position(|r| r.0 == *m)
            // A member whose score changed has moved: not a place to go
            // on from.
            .filter(|&i| page[i].1 == *score)
            .map(|i| i + 1),
        Anchor::From(score) => {
            let i = page.iter().position(|r| r.1 >= *score)?;
            // What precedes the page may score at least as much too,
            // unless the page is the set's start or shows a lower score.
            (i > 0 || from_zero).then_some(i)
        }
    }
}

/// Where the scan goes on when a page does not show where it starts
/// (members were removed before the anchor, or it moved or is gone): the
/// rank to ask from, and what that page must show.
async fn relocate(set: &impl RankedSet, anchor: &Anchor) -> redis::RedisResult<(usize, Anchor)> {
    let score = match anchor {
        Anchor::Member((m, score)) => {
            if set.score(m).await? == Some(*score) {
                if let Some(r) = set.rank(m).await? {
                    // If the member moves before that page is read, the
                    // page will not show it: another relocation.
                    return Ok((r + 1, anchor.clone()));
                }
            }
            *score
        }
        Anchor::From(score) => *score,
    };
    // Gone or moved: from the first member scoring at least as much (what
    // shares its score is read again).
    Ok((set.count_below(score).await?, Anchor::From(score)))
}

/// Every member of a sorted set with its score, in order, `page_len` at a
/// time with [`DEPTH`] pages in flight, so Redis serves the next pages
/// while this one is applied; returns how many rows were read (a member may
/// be read twice).
///
/// By rank, not by score or `ZSCAN`: Redis finds a rank in O(log n) and
/// answers a `ZRANGE` page without building an object per element, whereas
/// an offset into a long tie of one score is walked member by member (a
/// 10M-member tie took 19 s). Why it misses nothing that is present, with
/// one score, for the whole scan: every page after the first also asks for
/// the rank before it, where the last member read (the anchor) should be.
/// The page's members after the anchor are then exactly those that follow
/// it at that moment, whatever was added or removed before it. Members
/// added before it (new revocations) move it up within the page, where it
/// is looked for. Members removed before it (a prune) move it out of the
/// page, and a member whose score is raised (`ZADD GT`) moves: then the
/// pages in flight are dropped and the scan goes on from where Redis now
/// has the anchor, or from the first member at its score ([`relocate`]).
/// Members added during the scan come from the stream catch-up that
/// follows.
async fn scan_by_rank(
    set: &impl RankedSet,
    page_len: usize,
    mut on_page: impl FnMut(Vec<Row>),
) -> redis::RedisResult<usize> {
    use futures_util::stream::{FuturesOrdered, StreamExt as _};
    let mut rows = 0usize;
    // The rank the pages start at, and what the first of them must show
    // (nothing at the set's start).
    let mut base = 0usize;
    let mut anchor: Option<Anchor> = None;
    let mut relocations = 0usize;
    'scan: loop {
        // Each page but one at rank 0 also asks for the rank before it.
        let ask = |i: usize| {
            let start = base + i * page_len;
            let (a, b) = (start.saturating_sub(1), start + page_len - 1);
            let page = set.range(a, b);
            async move { (a, b, page.await) }
        };
        // From the set's start, one page until it shows the set is longer
        // than a page: a small or empty set costs one command.
        let mut in_flight = FuturesOrdered::new();
        let mut asked = 0usize;
        let first = if anchor.is_none() { 1 } else { DEPTH };
        while asked < first {
            in_flight.push_back(ask(asked));
            asked += 1;
        }
        while let Some((a, b, page)) = in_flight.next().await {
            let mut page = page?;
            let asked_for = b - a + 1;
            let done_before = match &anchor {
                None => Some(0),
                Some(an) => find_start(&page, an, a == 0),
            };
            let Some(done_before) = done_before else {
                // Not where it should be. The set ends in this page if
                // nothing scores enough in it and it shows a lower score
                // (or starts the set).
                let below = |s: f64| page.iter().all(|r| r.1 < s) && (a == 0 || !page.is_empty());
                if page.len() < asked_for && matches!(&anchor, Some(Anchor::From(s)) if below(*s)) {
                    break 'scan;
                }
                drop(in_flight);
                relocations += 1;
                if relocations > RELOCATE_TRIES {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "revocation scan: the set kept changing under the scan",
                    )));
                }
                let Some(an) = &anchor else { break 'scan };
                let (at, next) = relocate(set, an).await?;
                base = at;
                anchor = Some(next);
                continue 'scan;
            };
            let read = page.len() - done_before;
            if read > 0 {
                relocations = 0;
            }
            // Short of what was asked for: the end of the set.
            let full = page.len() == asked_for;
            if let Some(last) = page.last() {
                anchor = Some(Anchor::Member(last.clone()));
            }
            page.drain(..done_before);
            rows += read;
            on_page(page);
            if !full {
                break 'scan;
            }
            while in_flight.len() < DEPTH {
                in_flight.push_back(ask(asked));
                asked += 1;
            }
        }
    }
    Ok(rows)
}

/// Merges the three sorted sets into the mirror page by page (in order,
/// see [`scan_by_rank`]), then catches up from the stream entry
/// noted before the scan. What the mirror holds and Redis lacks is reported and written
/// back.
async fn full_resync(
    s: &MirrorSettings,
    clock: &dyn Clock,
    shared: &Shared,
    conn: &RedisConn,
    pos: &mut Position,
) -> redis::RedisResult<()> {
    let t = s.io_timeout;
    let started = Instant::now();
    let mut epoch = get_epoch(s, conn).await?;
    if epoch.is_none() {
        // Redis lost its data (or no writer set one yet): set one, so
        // the next reconcile can be a catch-up (refused = full resyncs).
        let mut fresh = [0u8; 12];
        if aws_lc_rs::rand::fill(&mut fresh).is_ok() {
            let v: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
            let mut set = redis::cmd("SET");
            set.arg(EPOCH_KEY).arg(v).arg("NX");
            let _ = within(t, conn.query::<redis::Value>(&set)).await;
            epoch = get_epoch(s, conn).await?;
        }
    }
    let mut last = redis::cmd("XREVRANGE");
    last.arg(LOG_KEY).arg("+").arg("-").arg("COUNT").arg(1);
    let last: Vec<(String, redis::Value)> = within(t, conn.query(&last)).await?;
    let last = last
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_string(), |(id, _)| id);

    shared.set.begin_generation();
    let mut scanned = 0usize;
    for key in [JTI_KEY, SUBJECT_KEY, CLIENT_KEY] {
        if key == JTI_KEY {
            let mut card = redis::cmd("ZCARD");
            card.arg(key);
            let n: usize = within(t, conn.query(&card)).await?;
            shared.set.reserve(n);
        }
        let set = RedisSet { t, conn, key };
        scanned += scan_by_rank(&set, PAGE, |page| {
            match key {
                JTI_KEY => apply_jti_page(&shared.set, page),
                _ => {
                    for (id, v) in page {
                        let (id, v) = (String::from_utf8_lossy(&id).into_owned(), score(v));
                        shared.set.apply(&if key == SUBJECT_KEY {
                            Revocation::Subject { id, before: v }
                        } else {
                            Revocation::Client { id, before: v }
                        });
                    }
                }
            }
            // Each page is contact: a long resync never looks stale.
            touch(clock, shared);
        })
        .await?;
    }
    let scan_ms = started.elapsed().as_millis() as u64;
    *pos = Position {
        epoch,
        last,
        full_at: pos.full_at,
    };
    // What was written during the scan. A failure here leaves the
    // position unknown, so the next reconcile starts over.
    if !catch_up(s, clock, shared, conn, pos).await? {
        pos.epoch = None;
    }
    pos.full_at = Some(Instant::now());

    let now = now_secs(clock);
    shared.set.prune(now, s.max_token_lifetime.as_secs());
    let horizon = now.saturating_sub(LOSS_CHECK_HORIZON.as_secs());
    let missing = shared.set.unmarked(|r| match r {
        Revocation::Jti { exp, .. } => *exp > now + SKEW_MARGIN,
        Revocation::Subject { before, .. } | Revocation::Client { before, .. } => *before > horizon,
    });
    tracing::info!(
        scanned,
        entries = shared.set.len(),
        scan_ms,
        ms = started.elapsed().as_millis() as u64,
        "revocation mirror: full resync"
    );
    if !missing.is_empty() {
        tracing::warn!(
            missing = missing.len(),
            "redis lacks revocations this verifier enforces (data lost?); keeping them and writing them back"
        );
        if let Some(c) = &s.lost {
            c.inc_by(missing.len() as u64);
        }
        // Marked as seen: counted once per loss, not at every resync.
        for r in &missing {
            shared.set.apply(r);
        }
        if let Err(e) = write_back(s, conn, &missing).await {
            tracing::warn!(error = %e, "writing revocations back to redis failed");
        }
    }
    shared.synced.store(true, Ordering::Relaxed);
    Ok(())
}

/// Applies a full resync's `jti` page: packed (an issuer-format `jti` is
/// 16 bytes) and inserted a shard at a time, see
/// [`CompactRevocations::apply_packed`].
fn apply_jti_page(set: &CompactRevocations, page: Vec<Row>) {
    let mut packed = Vec::with_capacity(page.len());
    for (id, exp) in page {
        let exp = score(exp);
        match pack_jti(&id) {
            Some(key) => packed.push((key, exp)),
            // A foreign format: few, kept apart.
            None => set.apply_jti(&id, exp),
        }
    }
    set.apply_packed(&packed);
}

/// `ZADD <set> GT score member ...`, a page of members per command: adds
/// what is missing, raises what is lower, never lowers or removes.
async fn write_back(
    s: &MirrorSettings,
    conn: &RedisConn,
    rs: &[Revocation],
) -> redis::RedisResult<()> {
    for key in [JTI_KEY, SUBJECT_KEY, CLIENT_KEY] {
        let mine: Vec<_> = rs
            .iter()
            .map(key_of)
            .filter(|(k, _, _)| *k == key)
            .collect();
        for page in mine.chunks(PAGE) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(key).arg("GT");
            for (_, member, score) in page {
                cmd.arg(*score).arg(*member);
            }
            within(s.io_timeout, conn.query::<i64>(&cmd)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// Scores run from 0 to this, so some are shared and most are not.
    const SCORES: u64 = 40;

    /// A sorted set as Redis orders it (score, then member bytes), whose
    /// volatile members come and go, or move to a higher score, before
    /// every read: what a scan sees while the issuer revokes and prunes.
    struct Model {
        set: RefCell<BTreeSet<(u64, Vec<u8>)>>,
        volatile: Vec<Vec<u8>>,
        rng: RefCell<u64>,
        /// Chance in 256 that a read is preceded by a change.
        churn: u64,
    }

    impl Model {
        fn random(&self) -> u64 {
            // xorshift64: deterministic per case, no dependency.
            let mut x = self.rng.borrow_mut();
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x
        }

        /// Up to three changes.
        fn change(&self) {
            for _ in 0..3 {
                self.change_one();
            }
        }

        fn change_one(&self) {
            if self.random() % 256 >= self.churn {
                return;
            }
            let m = &self.volatile[(self.random() % self.volatile.len() as u64) as usize];
            let mut set = self.set.borrow_mut();
            let held = set.iter().find(|(_, x)| x == m).cloned();
            match (held, self.random() % 3) {
                (Some(e), 0) => {
                    // ZADD GT: a higher score, often moving it by a few
                    // ranks only.
                    set.remove(&e);
                    set.insert((e.0 + 1 + self.random() % 2, m.clone()));
                }
                (Some(e), _) => {
                    set.remove(&e);
                }
                (None, _) => {
                    set.insert((self.random() % SCORES, m.clone()));
                }
            }
        }
    }

    impl RankedSet for Model {
        fn range(
            &self,
            from: usize,
            to: usize,
        ) -> impl std::future::Future<Output = redis::RedisResult<Vec<Row>>> + 'static {
            self.change();
            let rows: Vec<Row> = self
                .set
                .borrow()
                .iter()
                .skip(from)
                .take((to + 1).saturating_sub(from))
                .map(|(s, m)| (m.clone(), *s as f64))
                .collect();
            std::future::ready(Ok(rows))
        }

        async fn score(&self, member: &[u8]) -> redis::RedisResult<Option<f64>> {
            self.change();
            let set = self.set.borrow();
            Ok(set
                .iter()
                .find(|(_, m)| m == member)
                .map(|(s, _)| *s as f64))
        }

        async fn rank(&self, member: &[u8]) -> redis::RedisResult<Option<usize>> {
            self.change();
            Ok(self.set.borrow().iter().position(|(_, m)| m == member))
        }

        async fn count_below(&self, score: f64) -> redis::RedisResult<usize> {
            self.change();
            let set = self.set.borrow();
            Ok(set.iter().filter(|(s, _)| (*s as f64) < score).count())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever is added, removed or raised between any two reads,
        /// every member present for the whole scan is read.
        #[test]
        fn a_scan_by_rank_reads_every_member_present_throughout(
            stable in 0usize..100,
            volatile in 1usize..80,
            page in 1usize..9,
            churn in 0u64..128,
            seed in 1u64..,
        ) {
            let model = Model {
                set: RefCell::new(
                    (0..stable)
                        .map(|i| ((i as u64 * 7) % SCORES, format!("s{i:03}").into_bytes()))
                        .collect(),
                ),
                volatile: (0..volatile).map(|i| format!("v{i:03}").into_bytes()).collect(),
                rng: RefCell::new(seed),
                churn,
            };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut read = BTreeSet::new();
            let rows = rt
                .block_on(scan_by_rank(&model, page, |rows| {
                    read.extend(rows.into_iter().map(|(m, _)| m));
                }))
                .unwrap();
            for i in 0..stable {
                let m = format!("s{i:03}").into_bytes();
                prop_assert!(read.contains(&m), "s{i:03} missed ({rows} rows read)");
            }
        }
    }
}
