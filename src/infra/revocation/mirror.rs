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
//! flight, a time limit per page and none on the whole) happens at the first connect, when Redis's epoch changed
//! (it lost its data or is another Redis), when the stream no longer holds
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
/// How many times a resync looks for where to go on after the member it
/// last read was removed, before it gives up (and starts over later).
const RELOCATE_TRIES: usize = 16;
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
    /// Shared with the thread that applies a full resync's pages.
    set: Arc<CompactRevocations>,
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
            set: Arc::default(),
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
                .spawn(move || rt.block_on(task))
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

/// One member of a sorted set with its score in whole seconds.
type Row = (Vec<u8>, u64);

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
        match (m, s) {
            (redis::Value::BulkString(m), redis::Value::BulkString(s)) => {
                out.push((m, score_of(&s)))
            }
            // RESP3 sends scores as doubles.
            (redis::Value::BulkString(m), redis::Value::Double(d)) => out.push((m, score(d))),
            _ => return Err(bad("ZRANGE: unexpected member or score")),
        }
    }
    Ok(out)
}

/// A score as Redis writes it, as whole seconds (0 if unreadable).
fn score_of(raw: &[u8]) -> u64 {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, score)
}

/// `ZRANGE key <from> <to> WITHSCORES`: members by rank, both ends
/// included.
async fn rank_page(
    t: Duration,
    conn: RedisConn,
    key: &'static str,
    from: usize,
    to: usize,
) -> redis::RedisResult<Vec<Row>> {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(key).arg(from).arg(to).arg("WITHSCORES");
    rows_of(within(t, conn.query(&cmd)).await?)
}

/// Where a scan goes on after `anchor` (the last member it read): the
/// rank just past it, with `anchor` still the member expected right before
/// that rank. When `anchor` is gone (a prune removed it, a write-back
/// raised its score), the scan goes on from the first member whose score
/// is at least `anchor`'s, which then becomes the anchor (its row is
/// returned, to be applied). `None`: no member is left past that point.
async fn relocate(
    t: Duration,
    conn: &RedisConn,
    key: &str,
    anchor: &Row,
) -> redis::RedisResult<Option<(usize, Option<Row>)>> {
    let rank_of = async |m: &[u8]| {
        let mut cmd = redis::cmd("ZRANK");
        cmd.arg(key).arg(m);
        within(t, conn.query::<Option<usize>>(&cmd)).await
    };
    if let Some(r) = rank_of(&anchor.0).await? {
        return Ok(Some((r + 1, None)));
    }
    // Bounded: each round needs another concurrent removal to fail.
    for _ in 0..RELOCATE_TRIES {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(key)
            .arg(anchor.1)
            .arg("+inf")
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .arg("WITHSCORES");
        let Some(first) = rows_of(within(t, conn.query(&cmd)).await?)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        if let Some(r) = rank_of(&first.0).await? {
            return Ok(Some((r + 1, Some(first))));
        }
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Io,
        "revocation scan: the set kept changing under the scan",
    )))
}

/// Every member of sorted set `key` with its score, in order, a page at a
/// time with [`DEPTH`] pages in flight, so Redis serves the next pages
/// while this one is applied; returns how many rows were read (a member may
/// be read twice).
///
/// By rank, not by score or `ZSCAN`: Redis finds a rank in O(log n) and
/// answers a `ZRANGE` page without building an object per element, whereas
/// an offset into a long tie of one score is walked member by member (a
/// 10M-member tie took 19 s). Why it misses nothing that is present for the
/// whole scan: every page after the first also asks for the rank before
/// it, which must hold the last member read (the anchor). Then the page's
/// other members are exactly those that follow the anchor at that moment,
/// whatever was added or removed before it. When it does not (a concurrent
/// removal or insertion before the anchor shifted the ranks), the pages in
/// flight are dropped and the scan goes on from the anchor's rank as Redis
/// reports it ([`relocate`]). Members added during the scan come from the
/// stream catch-up that follows.
async fn scan_by_rank(
    t: Duration,
    conn: &RedisConn,
    key: &'static str,
    mut on_page: impl FnMut(Vec<Row>),
) -> redis::RedisResult<usize> {
    use futures_util::stream::{FuturesOrdered, StreamExt as _};
    let mut rows = 0usize;
    // The rank of the first member not read yet, and the member expected
    // right before it (none at the start).
    let mut next = 0usize;
    let mut anchor: Option<Row> = None;
    'scan: loop {
        // Pages from `next` on; each but an unanchored first asks for one
        // more rank before it, the previous page's last.
        let base = next;
        let ask = |i: usize, anchored: bool| {
            let start = base + i * PAGE;
            let from = if anchored || i > 0 { start - 1 } else { start };
            rank_page(t, conn.clone(), key, from, start + PAGE - 1)
        };
        let mut in_flight = FuturesOrdered::new();
        let mut asked = 0usize;
        while asked < DEPTH {
            in_flight.push_back(ask(asked, anchor.is_some()));
            asked += 1;
        }
        let mut checked = anchor.is_some();
        while let Some(page) = in_flight.next().await {
            let mut page = page?;
            let overlap = if checked {
                let Some(a) = &anchor else { break 'scan };
                if page.first().map(|r| &r.0) != Some(&a.0) {
                    // The ranks moved under the scan.
                    drop(in_flight);
                    match relocate(t, conn, key, a).await? {
                        None => break 'scan,
                        Some((at, row)) => {
                            if let Some(row) = row {
                                rows += 1;
                                anchor = Some(row.clone());
                                on_page(vec![row]);
                            }
                            next = at;
                            continue 'scan;
                        }
                    }
                }
                1
            } else {
                0
            };
            checked = true;
            let read = page.len() - overlap;
            let full = read == PAGE;
            if full {
                anchor = page.last().cloned();
            }
            if overlap == 1 {
                // The anchor, read with the page before (the order of a
                // page's rows does not matter to the mirror).
                page.swap_remove(0);
            }
            rows += read;
            next += read;
            on_page(page);
            if !full {
                // A short page: the end of the set.
                break 'scan;
            }
            in_flight.push_back(ask(asked, true));
            asked += 1;
        }
    }
    Ok(rows)
}

/// Merges the three sorted sets into the mirror page by page (in score
/// order, see [`scan_by_rank`]), then catches up from the stream entry
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
    let applier = Applier::start(&shared.set);
    for key in [JTI_KEY, SUBJECT_KEY, CLIENT_KEY] {
        if key == JTI_KEY {
            let mut card = redis::cmd("ZCARD");
            card.arg(key);
            let n: usize = within(t, conn.query(&card)).await?;
            shared.set.reserve(n);
        }
        scanned += scan_by_rank(t, conn, key, |page| {
            match key {
                JTI_KEY => applier.push(page),
                _ => {
                    for (id, v) in page {
                        let id = String::from_utf8_lossy(&id).into_owned();
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
    applier.finish();
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

/// A page of issuer-format `jti`s, packed.
type Packed = Vec<([u8; 16], u64)>;

/// Applies a full resync's `jti` pages on a thread of its own, so that
/// reading and parsing the next pages (the mirror's thread) and inserting
/// this one overlap: at millions of entries each is about half the work,
/// an insert being a cache miss or two in a table of hundreds of MB. The
/// pages cross packed: what the mirror's thread allocated it frees (glibc
/// frees another thread's allocation under that thread's arena lock).
struct Applier {
    set: Arc<CompactRevocations>,
    /// `None` when the thread could not start: pages are applied inline.
    tx: Option<std::sync::mpsc::SyncSender<Packed>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Applier {
    fn start(set: &Arc<CompactRevocations>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Packed>(2);
        let theirs = set.clone();
        let thread = std::thread::Builder::new()
            .name("revocation-apply".into())
            .spawn(move || {
                for page in rx {
                    theirs.apply_packed(&page);
                }
            })
            .ok();
        Self {
            set: set.clone(),
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// Hands a page over; waits while two are queued (the mirror's thread
    /// serves nothing else during a resync).
    fn push(&self, page: Vec<Row>) {
        let mut packed = Packed::with_capacity(page.len());
        for (id, exp) in page {
            match pack_jti(&id) {
                Some(key) => packed.push((key, exp)),
                // A foreign format: few, kept apart.
                None => self.set.apply_jti(&id, exp),
            }
        }
        let packed = match &self.tx {
            Some(tx) => match tx.send(packed) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(packed)) => packed,
            },
            None => packed,
        };
        self.set.apply_packed(&packed);
    }

    /// Returns once every page handed over is applied.
    fn finish(mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            // The thread only applies; it has nothing to report.
            let _ = t.join();
        }
    }
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
