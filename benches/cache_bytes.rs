//! Bytes per cached token, counted by the allocator: inserts N verified
//! tokens (the benchmark's token shape: one subject and client, distinct
//! `jti`s; and, as the worst case, a distinct subject per token) into the
//! verifier's cache at capacity N and prints the heap growth per token as
//! JSON. `cargo run --release --example cache_bytes -- [N]`.

use mcpgate::domain::claims::{AccessClaims, Audience};
use mcpgate::infra::token_cache::CompactTokenCache;
use mcpgate::verify::authorizer::{hash, TokenCache};
use mcpgate::verify::decision::VerifiedToken;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// What glibc's malloc takes for a request: the size plus an 8-byte
/// header, rounded up to 16, at least 32 (counted instead of the request,
/// so the figure includes the allocator's own overhead).
fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(l.size()), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(chunk(l.size()), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(chunk(new) - chunk(l.size()), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn claims(i: usize, distinct_subjects: bool) -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:43210".into(),
        sub: if distinct_subjects {
            format!("local:user-{i:08}")
        } else {
            "local:bench".into()
        },
        aud: Audience::One("https://mcp.bench.example/mcp".into()),
        exp: 2_000_000_000,
        iat: 1_999_996_400,
        nbf: None,
        // token_urlsafe(12) in the benchmark: 16 characters.
        jti: format!("jti-{i:012}"),
        client_id: Some("bench-client".into()),
        scope: Some("mcp:tools mcp:resources".into()),
        username: None,
        email: None,
        name: None,
    }
}

fn per_token(n: usize, distinct_subjects: bool) -> f64 {
    let cache = CompactTokenCache::new(n as u64, Duration::from_secs(300));
    // The keys are made before counting; the claims are made inside the
    // count, as the verifier parses them: what is dropped is given back,
    // what the cache keeps stays counted.
    let keys: Vec<_> = (0..n).map(|i| hash(&format!("token-{i}"))).collect();
    let before = LIVE.load(Ordering::Relaxed);
    for (i, h) in keys.iter().enumerate() {
        let vt = Arc::new(VerifiedToken::interned(
            claims(i, distinct_subjects),
            |id| cache.intern(id),
        ));
        cache.insert(*h, vt);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let held = cache.len();
    drop(keys);
    (after - before) as f64 / held.max(1) as f64
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let shared = per_token(n, false);
    let distinct = per_token(n, true);
    println!(
        "{{\"tokens\": {n}, \"bytes_per_token_one_identity\": {shared:.1}, \"bytes_per_token_distinct_subjects\": {distinct:.1}}}"
    );
}
