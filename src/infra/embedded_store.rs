//! [`Store`] on an embedded redb file: the laptop default. One file in the
//! data dir, survives restarts (every write is committed durably before it
//! is acknowledged).
//!
//! Each namespace is one redb table `&str -> &[u8]`. A stored value is the
//! expiry (unix milliseconds, big-endian `u64`, `0` = never) followed by the
//! payload. Expired entries read as absent, are replaced by writes, and are
//! purged by a periodic sweeper task.
//!
//! Writes go to one writer thread that commits whatever is queued in one
//! transaction (group commit): concurrent requests share one fsync instead
//! of queueing for redb's single writer with one fsync each, and the file is
//! written by one thread instead of a growing blocking pool. Every write is
//! still durable (`Durability::Immediate`) before its caller hears back.
//! Reads run on tokio's blocking pool. The page cache is bounded
//! ([`CACHE_BYTES`]; redb's default is 1 GiB, which is where the issuer's
//! RSS went).

use crate::domain::clock::{Clock, SystemClock};
use crate::issue::store::{counter_from_be, Namespace, Op, OpResult, Store, StoreError};
use async_trait::async_trait;
use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction,
};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, UNIX_EPOCH};

/// redb's page cache. Its default is 1 GiB, which is where the issuer's
/// resident memory went with a file of a few tens of MB; 16 MiB holds the
/// hot records (clients, live families) of a busy issuer.
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// At most this many queued write jobs share one transaction.
const MAX_GROUP: usize = 256;

/// How often the sweeper purges expired entries by default.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

/// Every namespace, so tables can be created up front and swept.
const ALL: [Namespace; 13] = [
    Namespace::Clients,
    Namespace::Codes,
    Namespace::Refresh,
    Namespace::Families,
    Namespace::RotatedRefresh,
    Namespace::Pending,
    Namespace::Consents,
    Namespace::Sessions,
    Namespace::Keys,
    Namespace::AccessTokens,
    Namespace::ClientMetadataCache,
    Namespace::RateLimits,
    Namespace::Revocations,
];

/// The issuer's store in one redb file.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    clock: Arc<dyn Clock>,
}

/// The database and its writer thread; dropping it stops the thread and
/// waits for it, so the file is closed (and may be reopened) afterwards.
struct Inner {
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// A write op, owned so it can cross to the writer thread.
enum OwnedOp {
    Get(Namespace, String),
    Put(Namespace, String, Vec<u8>, Option<Duration>),
    PutIfAbsent(Namespace, String, Vec<u8>, Option<Duration>),
    Take(Namespace, String),
    Delete(Namespace, String),
    Incr(Namespace, String, Duration),
    Count(Namespace, String),
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, StoreError>>;

/// Work for the writer thread, with the time it was queued at.
enum Job {
    Ops(Vec<OwnedOp>, u64, Reply<Vec<OpResult>>),
    Sweep(u64, Reply<u64>),
}

/// The stable name of a namespace, used for table names and Redis keys.
pub fn namespace_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Clients => "clients",
        Namespace::Codes => "codes",
        Namespace::Refresh => "refresh",
        Namespace::Families => "families",
        Namespace::RotatedRefresh => "rotated_refresh",
        Namespace::Pending => "pending",
        Namespace::Consents => "consents",
        Namespace::Sessions => "sessions",
        Namespace::Keys => "keys",
        Namespace::AccessTokens => "access_tokens",
        Namespace::ClientMetadataCache => "client_metadata_cache",
        Namespace::RateLimits => "rate_limits",
        Namespace::Revocations => "revocations",
    }
}

fn table(ns: Namespace) -> Table {
    TableDefinition::new(namespace_name(ns))
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn expiry_ms(now_ms: u64, ttl: Option<Duration>) -> u64 {
    match ttl {
        // At least 1 ms in the future so a zero TTL still means "expiring".
        Some(ttl) => now_ms.saturating_add((ttl.as_millis() as u64).max(1)),
        None => 0,
    }
}

fn encode(expiry_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&expiry_ms.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Splits a stored value into `(expiry_ms, payload)`.
fn decode(raw: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    if raw.len() < 8 {
        return Err(StoreError::Corrupt(
            "embedded value shorter than header".into(),
        ));
    }
    let (head, payload) = raw.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(head);
    Ok((u64::from_be_bytes(b), payload))
}

fn live(expiry_ms: u64, now_ms: u64) -> bool {
    expiry_ms == 0 || expiry_ms > now_ms
}

/// Makes sure the store file is private before redb opens it: missing
/// directories are created 0700 and a new file 0600; an existing file that
/// group or others may read, or a directory others may write (they could
/// replace the file), is refused with the fix in the message. The file holds
/// the signing keys, so a readable copy lets anyone mint accepted tokens.
fn private_file(path: &Path) -> Result<(), StoreError> {
    let refuse = |what: String| StoreError::Unavailable(format!("embedded store: {what}"));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(db_err)?;
        }
        let dmode = std::fs::metadata(dir).map_err(db_err)?.permissions().mode();
        if dmode & 0o002 != 0 {
            return Err(refuse(format!(
                "directory {} is writable by others (mode {:o}); fix it with `chmod 700 {}`",
                dir.display(),
                dmode & 0o7777,
                dir.display()
            )));
        }
        match std::fs::metadata(path) {
            Ok(m) => {
                let mode = m.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(refuse(format!(
                        "{} holds signing keys but is readable by group or others (mode {:o}); \
                         fix it with `chmod 600 {}`",
                        path.display(),
                        mode & 0o7777,
                        path.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(db_err)?;
            }
            Err(e) => return Err(db_err(e)),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(db_err)?;
    Ok(())
}

/// The live payload of a raw stored value, if not expired.
fn live_payload(raw: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let (exp, payload) = decode(raw)?;
    Ok(live(exp, now_ms).then(|| payload.to_vec()))
}

// === impl EmbeddedStore ===

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating parent
    /// directories. Inside a tokio runtime, also starts the sweeper with
    /// [`DEFAULT_SWEEP_INTERVAL`]; it stops when the store is dropped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Arc::new(SystemClock), DEFAULT_SWEEP_INTERVAL)
    }

    /// [`EmbeddedStore::open`] with an injected clock and sweep interval.
    pub fn open_with(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        sweep_every: Duration,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        private_file(path)?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        for ns in ALL {
            txn.open_table(table(ns)).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let wdb = db.clone();
        let writer = std::thread::Builder::new()
            .name("mcpgate-redb-writer".into())
            .spawn(move || writer_loop(&wdb, &rx))
            .map_err(db_err)?;
        let store = Self {
            inner: Arc::new(Inner {
                db,
                jobs: Some(tx),
                writer: Some(writer),
            }),
            clock,
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            store.spawn_sweeper(sweep_every);
        }
        Ok(store)
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// Purges every expired entry; returns how many were removed.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let now = self.now_ms();
        self.submit(|reply| Job::Sweep(now, reply)).await
    }

    fn spawn_sweeper(&self, every: Duration) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let store = EmbeddedStore {
                    inner,
                    clock: clock.clone(),
                };
                match store.sweep().await {
                    Ok(n) if n > 0 => tracing::debug!(removed = n, "embedded store sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "embedded store sweep failed"),
                }
            }
        });
    }

    /// Runs `f` with the database and the current time on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, u64) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.inner.db.clone();
        let now = self.now_ms();
        tokio::task::spawn_blocking(move || f(&db, now))
            .await
            .map_err(db_err)?
    }

    /// Queues a job for the writer thread and waits for its answer.
    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gone = || db_err("the writer thread stopped");
        self.inner
            .jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job(tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Runs write ops on the writer thread (one durable commit, shared with
    /// whatever else is queued).
    async fn write(&self, ops: Vec<OwnedOp>) -> Result<Vec<OpResult>, StoreError> {
        let now = self.now_ms();
        self.submit(|reply| Job::Ops(ops, now, reply)).await
    }

    async fn write_one(&self, op: OwnedOp) -> Result<OpResult, StoreError> {
        self.write(vec![op])
            .await?
            .pop()
            .ok_or_else(|| db_err("no result from the writer"))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            if w.join().is_err() {
                tracing::error!("embedded store writer thread panicked");
            }
        }
    }
}

/// The writer thread: takes the first queued job and whatever else is
/// queued behind it, runs them in one transaction, commits once (fsync),
/// then answers each. Ends when every sender is gone.
fn writer_loop(db: &Database, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        commit_group(db, group);
    }
}

/// One job's outcome inside a group, answered after the commit.
enum Outcome {
    Ops(Reply<Vec<OpResult>>, Result<Vec<OpResult>, StoreError>),
    Sweep(Reply<u64>, Result<u64, StoreError>),
}

fn commit_group(db: &Database, group: Vec<Job>) {
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.to_string();
            for job in group {
                match job {
                    Job::Ops(_, _, r) => {
                        let _ = r.send(Err(db_err(&msg)));
                    }
                    Job::Sweep(_, r) => {
                        let _ = r.send(Err(db_err(&msg)));
                    }
                }
            }
            return;
        }
    };
    // A job that fails part way keeps what it did before the failure (a
    // batch is not atomic); the others are unaffected.
    let outcomes: Vec<Outcome> = group
        .into_iter()
        .map(|job| match job {
            Job::Ops(ops, now, r) => {
                let res = ops.into_iter().map(|op| apply(&txn, op, now)).collect();
                Outcome::Ops(r, res)
            }
            Job::Sweep(now, r) => Outcome::Sweep(r, sweep_txn(&txn, now)),
        })
        .collect();
    let committed = txn.commit().map_err(|e| e.to_string());
    for o in outcomes {
        match (o, &committed) {
            (Outcome::Ops(r, res), Ok(())) => {
                let _ = r.send(res);
            }
            (Outcome::Sweep(r, res), Ok(())) => {
                let _ = r.send(res);
            }
            (Outcome::Ops(r, _), Err(e)) => {
                let _ = r.send(Err(db_err(e)));
            }
            (Outcome::Sweep(r, _), Err(e)) => {
                let _ = r.send(Err(db_err(e)));
            }
        }
    }
}

/// Runs one op in the writer's transaction.
fn apply(txn: &WriteTransaction, op: OwnedOp, now: u64) -> Result<OpResult, StoreError> {
    let ns = match &op {
        OwnedOp::Get(ns, ..)
        | OwnedOp::Put(ns, ..)
        | OwnedOp::PutIfAbsent(ns, ..)
        | OwnedOp::Take(ns, ..)
        | OwnedOp::Delete(ns, ..)
        | OwnedOp::Incr(ns, ..)
        | OwnedOp::Count(ns, ..) => *ns,
    };
    let mut t = txn.open_table(table(ns)).map_err(db_err)?;
    Ok(match op {
        OwnedOp::Get(_, key) => OpResult::Value(match t.get(key.as_str()).map_err(db_err)? {
            Some(v) => live_payload(v.value(), now)?,
            None => None,
        }),
        OwnedOp::Put(_, key, value, ttl) => {
            let raw = encode(expiry_ms(now, ttl), &value);
            t.insert(key.as_str(), raw.as_slice()).map_err(db_err)?;
            OpResult::Written(true)
        }
        OwnedOp::PutIfAbsent(_, key, value, ttl) => {
            let present = match t.get(key.as_str()).map_err(db_err)? {
                Some(v) => live(decode(v.value())?.0, now),
                None => false,
            };
            if !present {
                let raw = encode(expiry_ms(now, ttl), &value);
                t.insert(key.as_str(), raw.as_slice()).map_err(db_err)?;
            }
            OpResult::Written(!present)
        }
        OwnedOp::Take(_, key) => {
            let removed = t.remove(key.as_str()).map_err(db_err)?;
            OpResult::Value(match removed {
                Some(v) => live_payload(v.value(), now)?,
                None => None,
            })
        }
        OwnedOp::Delete(_, key) => {
            let removed = t.remove(key.as_str()).map_err(db_err)?;
            OpResult::Written(match removed {
                Some(v) => live(decode(v.value())?.0, now),
                None => false,
            })
        }
        OwnedOp::Count(_, key) => match t.get(key.as_str()).map_err(db_err)? {
            Some(v) => match live_payload(v.value(), now)? {
                Some(p) => OpResult::Count(counter_from_be(&p)?),
                None => OpResult::Count(0),
            },
            None => OpResult::Count(0),
        },
        OwnedOp::Incr(_, key, window) => {
            let current = match t.get(key.as_str()).map_err(db_err)? {
                Some(v) => {
                    let (exp, payload) = decode(v.value())?;
                    if live(exp, now) {
                        let b: [u8; 8] = payload.try_into().map_err(|_| {
                            StoreError::Corrupt("embedded counter is not a u64".into())
                        })?;
                        Some((exp, u64::from_be_bytes(b)))
                    } else {
                        None
                    }
                }
                None => None,
            };
            let (exp, count) = match current {
                Some((exp, n)) => (exp, n.saturating_add(1)),
                None => (expiry_ms(now, Some(window)), 1),
            };
            let raw = encode(exp, &count.to_be_bytes());
            t.insert(key.as_str(), raw.as_slice()).map_err(db_err)?;
            OpResult::Count(count)
        }
    })
}

fn owned(op: &Op<'_>) -> OwnedOp {
    match *op {
        Op::Get { ns, key } => OwnedOp::Get(ns, key.to_owned()),
        Op::Put {
            ns,
            key,
            value,
            ttl,
        } => OwnedOp::Put(ns, key.to_owned(), value.to_vec(), ttl),
        Op::PutIfAbsent {
            ns,
            key,
            value,
            ttl,
        } => OwnedOp::PutIfAbsent(ns, key.to_owned(), value.to_vec(), ttl),
        Op::Take { ns, key } => OwnedOp::Take(ns, key.to_owned()),
        Op::Delete { ns, key } => OwnedOp::Delete(ns, key.to_owned()),
        Op::Incr { ns, key, window } => OwnedOp::Incr(ns, key.to_owned(), window),
        Op::Count { ns, key } => OwnedOp::Count(ns, key.to_owned()),
    }
}

fn sweep_txn(txn: &WriteTransaction, now: u64) -> Result<u64, StoreError> {
    let mut removed = 0u64;
    for ns in ALL {
        let mut t = txn.open_table(table(ns)).map_err(db_err)?;
        t.retain(|_, v| {
            let keep = decode(v).map(|(exp, _)| live(exp, now)).unwrap_or(false);
            if !keep {
                removed += 1;
            }
            keep
        })
        .map_err(db_err)?;
    }
    Ok(removed)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |db, now| {
            let txn = db.begin_read().map_err(db_err)?;
            let t = match txn.open_table(table(ns)) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_err(e)),
            };
            match t.get(key.as_str()).map_err(db_err)? {
                Some(v) => live_payload(v.value(), now),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.write_one(OwnedOp::Put(ns, key.to_owned(), value.to_vec(), ttl))
            .await
            .map(|_| ())
    }

    async fn put_if_absent(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let op = OwnedOp::PutIfAbsent(ns, key.to_owned(), value.to_vec(), ttl);
        Ok(self.write_one(op).await?.written())
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .write_one(OwnedOp::Take(ns, key.to_owned()))
            .await?
            .into_value())
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .write_one(OwnedOp::Delete(ns, key.to_owned()))
            .await?
            .written())
    }

    async fn list(&self, ns: Namespace) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.blocking(move |db, now| {
            let txn = db.begin_read().map_err(db_err)?;
            let t = match txn.open_table(table(ns)) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let mut out = Vec::new();
            for entry in t.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                if let Some(payload) = live_payload(v.value(), now)? {
                    out.push((k.value().to_owned(), payload));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn incr(&self, ns: Namespace, key: &str, window: Duration) -> Result<u64, StoreError> {
        Ok(self
            .write_one(OwnedOp::Incr(ns, key.to_owned(), window))
            .await?
            .count())
    }

    /// Reads only: one read transaction. Otherwise: one write job, so one
    /// commit for the whole batch.
    async fn batch(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        if ops.iter().all(Op::is_read) {
            // (namespace, key, whether it is a counter)
            let keys: Vec<(Namespace, String, bool)> = ops
                .iter()
                .filter_map(|op| match *op {
                    Op::Get { ns, key } => Some((ns, key.to_owned(), false)),
                    Op::Count { ns, key } => Some((ns, key.to_owned(), true)),
                    _ => None,
                })
                .collect();
            return self
                .blocking(move |db, now| {
                    let txn = db.begin_read().map_err(db_err)?;
                    let mut out = Vec::with_capacity(keys.len());
                    for (ns, key, counter) in keys {
                        let value = match txn.open_table(table(ns)) {
                            Ok(t) => match t.get(key.as_str()).map_err(db_err)? {
                                Some(v) => live_payload(v.value(), now)?,
                                None => None,
                            },
                            Err(TableError::TableDoesNotExist(_)) => None,
                            Err(e) => return Err(db_err(e)),
                        };
                        out.push(match (counter, value) {
                            (false, v) => OpResult::Value(v),
                            (true, Some(v)) => OpResult::Count(counter_from_be(&v)?),
                            (true, None) => OpResult::Count(0),
                        });
                    }
                    Ok(out)
                })
                .await;
        }
        self.write(ops.iter().map(owned).collect()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_encoding_round_trips() {
        let raw = encode(42, b"hello");
        assert_eq!(decode(&raw).unwrap(), (42, &b"hello"[..]));
        assert!(decode(b"short").is_err());
        assert!(live(0, 10));
        assert!(live(11, 10));
        assert!(!live(10, 10));
    }
}
