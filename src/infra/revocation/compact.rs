//! [`CompactRevocations`]: the verifier's revocation set, sized for
//! millions of entries and read on every Check.
//!
//! A revoked `jti` in the issuer's format (22 base64url characters, 16
//! random bytes) is held as those 16 bytes and a 32-bit expiry: 20 bytes
//! plus one control byte in an open-addressing table (hashbrown's
//! `HashTable`, keyed SipHash with a per-process random key), about 24–48
//! bytes per entry depending on where the table is in its doubling. The
//! bytes are the `jti` itself, not a hash of it, so lookups are exact and
//! the mirror can write a lost entry back to Redis. Any other `jti` (a
//! foreign format) is kept as a string in a side map.
//!
//! The table is split in 256 shards, each behind its own lock: a writer
//! (the mirror's own thread) holds one shard for one insert, or for one
//! shard's rehash when it grows (1/256 of the set), so no Check waits long
//! on a sync. Subject and client watermarks are few and kept as strings.
//!
//! Loss detection without a second copy of the set: each entry carries one
//! "generation" bit. A full resync flips the current generation; every
//! entry Redis returns with a score at least the mirror's is marked with
//! it; what is left unmarked afterwards is what Redis lacks. For `jti`
//! entries the bit is the expiry's lowest bit: expiries are rounded up to
//! an even second, so an entry is kept at most one second longer than its
//! token lives (never shorter).

use crate::domain::revocation::{Revocation, TokenRef};
use base64::Engine;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::RwLock;

const SHARDS: usize = 256;

/// The shard of a key's hash: bits 32..40, as hashbrown indexes buckets by
/// the low bits and tags them with the top 7.
fn shard_of(h: u64) -> usize {
    ((h >> 32) as usize) & (SHARDS - 1)
}

/// A packed `jti` and its expiry (even unix seconds) | generation bit.
#[derive(Clone, Copy)]
struct Slot {
    key: [u8; 16],
    exp: u32,
}

/// A watermark and its generation bit.
type Marks = HashMap<Box<str>, (u64, u32)>;

/// The verifier's in-memory revocation set (see the module docs).
pub(crate) struct CompactRevocations {
    hasher: RandomState,
    shards: Box<[RwLock<HashTable<Slot>>]>,
    /// `jti`s not in the issuer's format: expiry as in [`Slot::exp`].
    other: RwLock<HashMap<Box<str>, u32>>,
    subjects: RwLock<Marks>,
    clients: RwLock<Marks>,
    len: AtomicUsize,
    generation: AtomicU32,
}

/// The issuer's `jti` format (16 random bytes, base64url without padding)
/// as bytes; `None` for anything else (including non-canonical encodings).
fn pack(jti: &str) -> Option<[u8; 16]> {
    if jti.len() != 22 {
        return None;
    }
    let mut buf = [0u8; 18];
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(jti, &mut buf) {
        Ok(16) => {
            let mut key = [0u8; 16];
            key.copy_from_slice(&buf[..16]);
            Some(key)
        }
        _ => None,
    }
}

/// [`pack`] for a member as Redis holds it (bytes).
pub(super) fn pack_jti(id: &[u8]) -> Option<[u8; 16]> {
    std::str::from_utf8(id).ok().and_then(pack)
}

fn unpack(key: &[u8; 16]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// `exp` rounded up to an even second (capped), with generation bit `g`.
fn stored(exp: u64, g: u32) -> u32 {
    let e = exp.min(u64::from(u32::MAX - 1)) as u32;
    (e.saturating_add(1) & !1) | g
}

fn effective(v: u32) -> u64 {
    u64::from(v & !1)
}

/// Merges `new` into `old` (scores only grow); the generation bit becomes
/// `g` when `new` covers what was held.
fn merge(old: u32, new: u32, g: u32) -> u32 {
    if effective(new) >= effective(old) {
        (new & !1) | g
    } else {
        old
    }
}

// === impl CompactRevocations ===

impl Default for CompactRevocations {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            other: RwLock::default(),
            subjects: RwLock::default(),
            clients: RwLock::default(),
            len: AtomicUsize::new(0),
            generation: AtomicU32::new(0),
        }
    }
}

impl CompactRevocations {
    fn shard(&self, key: &[u8; 16]) -> (u64, &RwLock<HashTable<Slot>>) {
        let h = self.hasher.hash_one(key);
        (h, &self.shards[shard_of(h)])
    }

    /// Room for `n` issuer-format `jti`s in all (those held count), so a
    /// full resync of a set the mirror already holds reserves nothing.
    pub(super) fn reserve(&self, n: usize) {
        let per = n / SHARDS + 1;
        for shard in self.shards.iter() {
            if let Ok(mut t) = shard.write() {
                let more = per.saturating_sub(t.len());
                t.reserve(more, |s| self.hasher.hash_one(s.key));
            }
        }
    }

    /// Adds a `jti` revocation as Redis holds it (bytes), or raises what
    /// is held: [`Self::apply`] without building a [`Revocation`]. A member
    /// that is not UTF-8 cannot be a token's `jti` and is skipped.
    pub(super) fn apply_jti(&self, id: &[u8], exp: u64) {
        if let Ok(id) = std::str::from_utf8(id) {
            self.jti(id, exp, self.generation.load(Ordering::Relaxed));
        }
    }

    /// Adds `r`, or raises what is held (scores only grow).
    pub(crate) fn apply(&self, r: &Revocation) {
        let g = self.generation.load(Ordering::Relaxed);
        match r {
            Revocation::Jti { id, exp } => self.jti(id, *exp, g),
            Revocation::Subject { id, before } => self.mark(&self.subjects, id, *before, g),
            Revocation::Client { id, before } => self.mark(&self.clients, id, *before, g),
        }
    }

    /// Adds the issuer-format `jti`s of a page read from Redis, packed
    /// already (by [`pack_jti`]), a shard at a time: one lock and one count
    /// update per shard, not per entry. A locked instruction waits for the
    /// stores before it, so per entry they made every insert wait for the
    /// last one's cache miss; without them the misses overlap (a 10M sync
    /// inserted at about 550 ns per entry).
    pub(super) fn apply_packed(&self, page: &[([u8; 16], u64)]) {
        let g = self.generation.load(Ordering::Relaxed);
        let mut order: Vec<(u64, &([u8; 16], u64))> = page
            .iter()
            .map(|e| (self.hasher.hash_one(e.0), e))
            .collect();
        order.sort_unstable_by_key(|(h, _)| shard_of(*h));
        let mut added = 0;
        for run in order.chunk_by(|a, b| shard_of(a.0) == shard_of(b.0)) {
            let Some((h0, _)) = run.first() else { continue };
            let Ok(mut t) = self.shards[shard_of(*h0)].write() else {
                continue;
            };
            for &(h, &(key, exp)) in run {
                added += usize::from(self.put(&mut t, h, key, stored(exp, g), g));
            }
        }
        self.len.fetch_add(added, Ordering::Relaxed);
    }

    /// Adds or raises one entry in its shard's table; true if added.
    fn put(&self, t: &mut HashTable<Slot>, h: u64, key: [u8; 16], new: u32, g: u32) -> bool {
        match t.entry(h, |s| s.key == key, |s| self.hasher.hash_one(s.key)) {
            Entry::Occupied(mut e) => {
                let s = e.get_mut();
                s.exp = merge(s.exp, new, g);
                false
            }
            Entry::Vacant(v) => {
                v.insert(Slot { key, exp: new });
                true
            }
        }
    }

    fn packed(&self, key: [u8; 16], exp: u64, g: u32) {
        let (h, shard) = self.shard(&key);
        let Ok(mut t) = shard.write() else { return };
        if self.put(&mut t, h, key, stored(exp, g), g) {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn jti(&self, id: &str, exp: u64, g: u32) {
        if let Some(key) = pack(id) {
            self.packed(key, exp, g);
        } else if let Ok(mut m) = self.other.write() {
            let new = stored(exp, g);
            match m.get_mut(id) {
                Some(old) => *old = merge(*old, new, g),
                None => {
                    m.insert(id.into(), new);
                    self.len.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn mark(&self, map: &RwLock<Marks>, id: &str, before: u64, g: u32) {
        let Ok(mut m) = map.write() else { return };
        match m.get_mut(id) {
            Some((b, mark)) => {
                if before >= *b {
                    *b = before;
                    *mark = g;
                }
            }
            None => {
                m.insert(id.into(), (before, g));
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether `t` is revoked. A poisoned lock (a writer panicked) answers
    /// yes: fail closed.
    pub(super) fn is_revoked(&self, t: TokenRef<'_>) -> bool {
        let jti = match pack(t.jti) {
            Some(key) => {
                let (h, shard) = self.shard(&key);
                match shard.read() {
                    Ok(s) => s.find(h, |s| s.key == key).is_some(),
                    Err(_) => true,
                }
            }
            None => self.other.read().map_or(true, |m| m.contains_key(t.jti)),
        };
        if jti {
            return true;
        }
        let watermark = |map: &RwLock<Marks>, id: &str| {
            map.read()
                .map_or(true, |m| m.get(id).is_some_and(|(b, _)| t.iat <= *b))
        };
        watermark(&self.subjects, t.sub) || t.client_id.is_some_and(|c| watermark(&self.clients, c))
    }

    /// Drops entries that can no longer match a live token, one shard at a
    /// time.
    pub(crate) fn prune(&self, now: u64, max_token_lifetime_secs: u64) {
        let mut removed = 0;
        for shard in self.shards.iter() {
            if let Ok(mut t) = shard.write() {
                let before = t.len();
                t.retain(|s| effective(s.exp) >= now);
                removed += before - t.len();
            }
        }
        if let Ok(mut m) = self.other.write() {
            let before = m.len();
            m.retain(|_, v| effective(*v) >= now);
            removed += before - m.len();
        }
        let horizon = now.saturating_sub(max_token_lifetime_secs);
        for map in [&self.subjects, &self.clients] {
            if let Ok(mut m) = map.write() {
                let before = m.len();
                m.retain(|_, (b, _)| *b >= horizon);
                removed += before - m.len();
            }
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }

    /// Number of entries held.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Starts a full resync: entries applied from now on carry the new
    /// generation; see [`Self::unmarked`].
    pub(crate) fn begin_generation(&self) {
        self.generation.fetch_xor(1, Ordering::Relaxed);
    }

    /// Entries not applied (with a score at least the one held) since the
    /// last [`Self::begin_generation`] and for which `keep` holds: after a
    /// full resync, what Redis lacks.
    pub(crate) fn unmarked(&self, keep: impl Fn(&Revocation) -> bool) -> Vec<Revocation> {
        let g = self.generation.load(Ordering::Relaxed);
        let mut out = Vec::new();
        let mut push = |r: Revocation| {
            if keep(&r) {
                out.push(r);
            }
        };
        for shard in self.shards.iter() {
            let Ok(t) = shard.read() else { continue };
            for s in t.iter().filter(|s| s.exp & 1 != g) {
                push(Revocation::Jti {
                    id: unpack(&s.key),
                    exp: effective(s.exp),
                });
            }
        }
        if let Ok(m) = self.other.read() {
            for (id, v) in m.iter().filter(|(_, v)| *v & 1 != g) {
                push(Revocation::Jti {
                    id: id.to_string(),
                    exp: effective(*v),
                });
            }
        }
        for (map, subject) in [(&self.subjects, true), (&self.clients, false)] {
            let Ok(m) = map.read() else { continue };
            for (id, (b, _)) in m.iter().filter(|(_, (_, mark))| *mark != g) {
                let (id, before) = (id.to_string(), *b);
                push(if subject {
                    Revocation::Subject { id, before }
                } else {
                    Revocation::Client { id, before }
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok<'a>(jti: &'a str, sub: &'a str, iat: u64) -> TokenRef<'a> {
        TokenRef {
            jti,
            sub,
            client_id: Some("c1"),
            iat,
        }
    }

    const J1: &str = "AAECAwQFBgcICQoLDA0ODw"; // 16 bytes 0..15

    #[test]
    fn packs_the_issuer_format_only() {
        assert_eq!(pack(J1).map(|k| unpack(&k)), Some(J1.to_string()));
        // Non-canonical trailing bits, wrong length, padding, other alphabet.
        for other in [
            "AAECAwQFBgcICQoLDA0ODx",
            "AAECAwQFBgcICQoLDA0OD",
            "AAECAwQFBgcICQoLDA0ODw==",
            "AAECAwQFBgcICQoLDA0OD+",
            "j1",
        ] {
            assert_eq!(pack(other), None, "{other}");
        }
    }

    #[test]
    fn jti_subject_client_and_foreign_jtis() {
        let s = CompactRevocations::default();
        s.apply(&Revocation::Jti {
            id: J1.into(),
            exp: 199,
        });
        s.apply(&Revocation::Jti {
            id: "not-our-format".into(),
            exp: 200,
        });
        assert!(s.is_revoked(tok(J1, "u", 100)));
        assert!(s.is_revoked(tok("not-our-format", "u", 100)));
        // A jti that differs only in case is another jti.
        assert!(!s.is_revoked(tok("aaECAwQFBgcICQoLDA0ODw", "u", 100)));
        assert!(!s.is_revoked(tok("j2", "u", 100)));
        s.apply(&Revocation::Subject {
            id: "u".into(),
            before: 150,
        });
        assert!(s.is_revoked(tok("j2", "u", 150)));
        assert!(!s.is_revoked(tok("j2", "u", 151)));
        s.apply(&Revocation::Client {
            id: "c1".into(),
            before: 160,
        });
        assert!(s.is_revoked(tok("j3", "v", 155)));
        assert_eq!(s.len(), 4);
        // Kept until its expiry rounded up to an even second: one second
        // longer at most, never shorter.
        s.prune(200, 3600);
        assert!(s.is_revoked(tok(J1, "w", 400)));
        assert!(s.is_revoked(tok("not-our-format", "w", 400)));
        s.prune(201, 3600);
        assert!(!s.is_revoked(tok(J1, "w", 400)));
        assert!(!s.is_revoked(tok("not-our-format", "w", 400)));
        assert_eq!(s.len(), 2);
        s.prune(10_000, 60);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn scores_only_grow() {
        let s = CompactRevocations::default();
        for exp in [300, 100] {
            s.apply(&Revocation::Jti { id: J1.into(), exp });
        }
        s.prune(250, 60);
        assert!(s.is_revoked(tok(J1, "u", 1)));
    }

    #[test]
    fn unmarked_lists_what_a_resync_did_not_see_or_saw_lower() {
        let s = CompactRevocations::default();
        let j2 = unpack(&[7u8; 16]);
        for r in [
            Revocation::Jti {
                id: J1.into(),
                exp: 500,
            },
            Revocation::Jti {
                id: j2.clone(),
                exp: 500,
            },
            Revocation::Jti {
                id: "foreign".into(),
                exp: 500,
            },
            Revocation::Subject {
                id: "u".into(),
                before: 90,
            },
        ] {
            s.apply(&r);
        }
        s.begin_generation();
        // The resync sees J1 as held, j2 lower, the subject, not "foreign".
        s.apply(&Revocation::Jti {
            id: J1.into(),
            exp: 500,
        });
        s.apply(&Revocation::Jti {
            id: j2.clone(),
            exp: 300,
        });
        s.apply(&Revocation::Subject {
            id: "u".into(),
            before: 90,
        });
        let mut m = s.unmarked(|_| true);
        m.sort_by_key(|r| r.record_key());
        assert_eq!(
            m,
            vec![
                Revocation::Jti { id: j2, exp: 500 },
                Revocation::Jti {
                    id: "foreign".into(),
                    exp: 500
                },
            ]
        );
        assert!(s
            .unmarked(|r| matches!(r, Revocation::Subject { .. }))
            .is_empty());
        // The mirror marks what it reported (and wrote back); the next
        // generation then starts with nothing marked.
        for r in &m {
            s.apply(r);
        }
        assert!(s.unmarked(|_| true).is_empty());
        s.begin_generation();
        assert_eq!(s.unmarked(|_| true).len(), 4);
    }
}
