//! [`Store`] on Redis: standalone (a reconnecting `ConnectionManager`) or
//! Redis Cluster (`cluster_async`), chosen by how many URLs are configured or
//! by an explicit flag.
//!
//! Key layout: every namespace is one hash tag, so all its keys share a slot
//! and listing works in a cluster. A value lives at `{mcpgate:<ns>}:<key>`;
//! listable namespaces (clients, keys) also keep the set
//! `{mcpgate:<ns>}/index` of their keys, updated by the same Lua script as the
//! value so the two never disagree. Every write with a TTL uses `PX`.

use crate::infra::embedded_store::namespace_name;
use crate::infra::redis_conn::{RedisConn, SingleNode};
use crate::issue::store::{batch_one_by_one, Namespace, Op, OpResult, Store, StoreError};
use async_trait::async_trait;
use redis::aio::ConnectionManagerConfig;
use redis::{RedisResult, Script};
use std::time::Duration;

/// Writes the value and, for listable namespaces, adds it to the index.
/// KEYS[1] value key, KEYS[2] index ("" if none). ARGV: value, ttl ms (0 =
/// none), key, nx flag ("1" = only if absent). Returns 1 if written.
const PUT_LUA: &str = r#"
local ok
if ARGV[2] ~= '0' then
  if ARGV[4] == '1' then ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
  else ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
else
  if ARGV[4] == '1' then ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
  else ok = redis.call('SET', KEYS[1], ARGV[1]) end
end
if not ok then return 0 end
if #KEYS > 1 then redis.call('SADD', KEYS[2], ARGV[3]) end
return 1
"#;

/// Removes (and returns with GETDEL) the value and its index entry.
/// KEYS[1] value key, KEYS[2] index (optional). ARGV[1] key, ARGV[2] "get"/"del".
const REMOVE_LUA: &str = r#"
local v
if ARGV[2] == 'get' then v = redis.call('GETDEL', KEYS[1])
else v = redis.call('DEL', KEYS[1]) end
if #KEYS > 1 then redis.call('SREM', KEYS[2], ARGV[1]) end
return v
"#;

/// Lists a namespace through its index, dropping entries whose value expired.
/// KEYS[1] index; ARGV[1] value-key prefix. Returns a flat key, value array.
const LIST_LUA: &str = r#"
local out = {}
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. k)
  if v then
    out[#out + 1] = k
    out[#out + 1] = v
  else
    redis.call('SREM', KEYS[1], k)
  end
end
return out
"#;

/// A windowed counter: INCR, and set the window on the first increment (or
/// whenever the key somehow lacks a TTL). KEYS[1] counter; ARGV[1] window ms.
const INCR_LUA: &str = r#"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

/// Time limit for connecting and for each command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection settings for [`RedisStore`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://` URLs. One URL means standalone unless
    /// `cluster` is set; several mean cluster seed nodes.
    pub urls: Vec<String>,
    /// Force cluster mode even with a single seed URL. Defaults to false.
    pub cluster: bool,
}

/// The issuer's store on Redis or Redis Cluster.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    put: Script,
    remove: Script,
    list: Script,
    incr: Script,
}

fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn listable(ns: Namespace) -> bool {
    matches!(
        ns,
        Namespace::Clients | Namespace::Keys | Namespace::Revocations
    )
}

/// `{mcpgate:<ns>}`: the hash tag shared by a namespace's keys.
fn tag(ns: Namespace) -> String {
    format!("{{mcpgate:{}}}", namespace_name(ns))
}

fn value_key(ns: Namespace, key: &str) -> String {
    format!("{}:{key}", tag(ns))
}

fn index_key(ns: Namespace) -> String {
    format!("{}/index", tag(ns))
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map(|t| (t.as_millis() as u64).max(1)).unwrap_or(0)
}

// === impl RedisStore ===

impl RedisStore {
    /// Connects: one URL = standalone, several = cluster seed nodes.
    pub async fn connect(urls: &[String]) -> Result<Self, StoreError> {
        Self::connect_with(&RedisSettings {
            urls: urls.to_vec(),
            cluster: false,
        })
        .await
    }

    /// Connects as `settings` say (see [`RedisConn::connect`]). A command
    /// that sees a dropped connection is not sent again: `incr` is not
    /// idempotent.
    pub async fn connect_with(settings: &RedisSettings) -> Result<Self, StoreError> {
        let conn = RedisConn::connect(
            &settings.urls,
            settings.cluster,
            SingleNode::Managed {
                config: ConnectionManagerConfig::new(),
                retry_once: false,
            },
            CONNECT_TIMEOUT,
        )
        .await
        .map_err(redis_err)?;
        Ok(Self {
            conn,
            put: Script::new(PUT_LUA),
            remove: Script::new(REMOVE_LUA),
            list: Script::new(LIST_LUA),
            incr: Script::new(INCR_LUA),
        })
    }

    /// Whether this store talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        self.conn.query(cmd).await
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        self.conn.invoke(inv).await
    }

    async fn write(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        nx: bool,
    ) -> Result<bool, StoreError> {
        let mut inv = self.put.key(value_key(ns, key));
        if listable(ns) {
            inv.key(index_key(ns));
        }
        inv.arg(value)
            .arg(ttl_ms(ttl))
            .arg(key)
            .arg(if nx { "1" } else { "0" });
        let written: i64 = self.invoke(&inv).await.map_err(redis_err)?;
        Ok(written == 1)
    }

    /// One pipeline for a batch: one round trip, run in order by the server
    /// (a connection's commands are never reordered). Only for standalone
    /// Redis and non-listable namespaces (plain single-key commands).
    async fn pipelined(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        let mut pipe = redis::pipe();
        for op in ops {
            match *op {
                Op::Get { ns, key } => {
                    pipe.cmd("GET").arg(value_key(ns, key));
                }
                Op::Put {
                    ns,
                    key,
                    value,
                    ttl,
                }
                | Op::PutIfAbsent {
                    ns,
                    key,
                    value,
                    ttl,
                } => {
                    let c = pipe.cmd("SET").arg(value_key(ns, key)).arg(value);
                    if ttl.is_some() {
                        c.arg("PX").arg(ttl_ms(ttl));
                    }
                    if matches!(op, Op::PutIfAbsent { .. }) {
                        c.arg("NX");
                    }
                }
                Op::Take { ns, key } => {
                    pipe.cmd("GETDEL").arg(value_key(ns, key));
                }
                Op::Delete { ns, key } => {
                    pipe.cmd("DEL").arg(value_key(ns, key));
                }
                Op::Count { ns, key } => {
                    pipe.cmd("GET").arg(value_key(ns, key));
                }
                Op::Incr { ns, key, window } => {
                    // EVAL with the text: no NOSCRIPT to recover from in a
                    // pipeline, and the script is short.
                    pipe.cmd("EVAL")
                        .arg(INCR_LUA)
                        .arg(1)
                        .arg(value_key(ns, key))
                        .arg(ttl_ms(Some(window)));
                }
            }
        }
        let Some(replies) = self.conn.pipeline(&pipe).await else {
            return batch_one_by_one(self, ops).await;
        };
        let replies = replies.map_err(redis_err)?;
        if replies.len() != ops.len() {
            return Err(StoreError::Corrupt(format!(
                "redis pipeline: {} replies to {} commands",
                replies.len(),
                ops.len()
            )));
        }
        ops.iter()
            .zip(replies)
            .map(|(op, v)| op_result(op, v))
            .collect()
    }
}

/// A counter as `INCR` keeps it: decimal digits.
fn redis_counter(b: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|n| n.max(0) as u64)
        .ok_or_else(|| StoreError::Corrupt("redis: a counter is not an integer".into()))
}

/// Reads one pipeline reply as the result of its op.
fn op_result(op: &Op<'_>, v: redis::Value) -> Result<OpResult, StoreError> {
    use redis::Value as V;
    let odd = |v: &V| StoreError::Corrupt(format!("redis: unexpected reply {v:?}"));
    Ok(match (op, v) {
        (Op::Get { .. } | Op::Take { .. }, V::Nil) => OpResult::Value(None),
        (Op::Get { .. } | Op::Take { .. }, V::BulkString(b)) => OpResult::Value(Some(b)),
        (Op::Put { .. } | Op::PutIfAbsent { .. }, V::Okay) => OpResult::Written(true),
        (Op::Put { .. } | Op::PutIfAbsent { .. }, V::SimpleString(s)) if s == "OK" => {
            OpResult::Written(true)
        }
        (Op::PutIfAbsent { .. }, V::Nil) => OpResult::Written(false),
        (Op::Delete { .. }, V::Int(n)) => OpResult::Written(n > 0),
        (Op::Incr { .. }, V::Int(n)) => OpResult::Count(n.max(0) as u64),
        (Op::Count { .. }, V::Nil) => OpResult::Count(0),
        (Op::Count { .. }, V::BulkString(b)) => OpResult::Count(redis_counter(&b)?),
        (_, V::ServerError(e)) => {
            return Err(StoreError::Unavailable(format!("redis: {e:?}")));
        }
        (_, v) => return Err(odd(&v)),
    })
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(value_key(ns, key));
        self.query(&cmd).await.map_err(redis_err)
    }

    async fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.write(ns, key, value, ttl, false).await.map(|_| ())
    }

    async fn put_if_absent(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.write(ns, key, value, ttl, true).await
    }

    async fn take(&self, ns: Namespace, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !listable(ns) {
            let mut cmd = redis::cmd("GETDEL");
            cmd.arg(value_key(ns, key));
            return self.query(&cmd).await.map_err(redis_err);
        }
        let mut inv = self.remove.key(value_key(ns, key));
        inv.key(index_key(ns)).arg(key).arg("get");
        self.invoke(&inv).await.map_err(redis_err)
    }

    async fn delete(&self, ns: Namespace, key: &str) -> Result<bool, StoreError> {
        let mut inv = self.remove.key(value_key(ns, key));
        if listable(ns) {
            inv.key(index_key(ns));
        }
        inv.arg(key).arg("del");
        let n: i64 = self.invoke(&inv).await.map_err(redis_err)?;
        Ok(n > 0)
    }

    async fn list(&self, ns: Namespace) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if !listable(ns) {
            return Err(StoreError::Unavailable(format!(
                "namespace {} is not listable",
                namespace_name(ns)
            )));
        }
        let mut inv = self.list.key(index_key(ns));
        inv.arg(format!("{}:", tag(ns)));
        let flat: Vec<Vec<u8>> = self.invoke(&inv).await.map_err(redis_err)?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let k = String::from_utf8(k)
                .map_err(|_| StoreError::Corrupt("redis index key is not UTF-8".into()))?;
            out.push((k, v));
        }
        Ok(out)
    }

    async fn incr(&self, ns: Namespace, key: &str, window: Duration) -> Result<u64, StoreError> {
        let mut inv = self.incr.key(value_key(ns, key));
        inv.arg(ttl_ms(Some(window)));
        self.invoke(&inv).await.map_err(redis_err)
    }

    async fn count(&self, ns: Namespace, key: &str) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(value_key(ns, key));
        let v: Option<Vec<u8>> = self.query(&cmd).await.map_err(redis_err)?;
        v.map_or(Ok(0), |b| redis_counter(&b))
    }

    /// Standalone: one pipeline. A cluster routes each key to its own node,
    /// and the nodes of one pipeline answer in no set order, so there (and
    /// for the listable namespaces, whose index needs a script) the ops run
    /// one by one, each acknowledged before the next is sent.
    async fn batch(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() || ops.iter().any(|op| listable(op.namespace())) {
            return batch_one_by_one(self, ops).await;
        }
        self.pipelined(ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_hash_tag_per_namespace() {
        assert_eq!(
            value_key(Namespace::Clients, "abc"),
            "{mcpgate:clients}:abc"
        );
        assert_eq!(index_key(Namespace::Clients), "{mcpgate:clients}/index");
        assert_eq!(
            value_key(Namespace::RotatedRefresh, "h"),
            "{mcpgate:rotated_refresh}:h"
        );
        assert_eq!(ttl_ms(Some(Duration::from_micros(10))), 1);
        assert_eq!(ttl_ms(None), 0);
    }
}
