//! Log capture for tests: one global JSON subscriber, installed once, that
//! writes into the buffer of the thread that asked for it (a
//! `#[tokio::test]` runs the server under test on that thread too).
//!
//! Global rather than a `set_default` per test: with only thread-scoped
//! subscribers, tracing may cache a callsite's interest as "never" when the
//! callsite is first hit on a thread without one, and a test running at the
//! same time then misses those events. The per-event filter here (a
//! dynamic one: a plain `filter_fn` caches its first answer per callsite)
//! keeps every callsite's interest at "sometimes".

use serde_json::Value;
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use tracing_subscriber::prelude::*;

/// What one test captured.
#[derive(Clone, Default)]
pub struct Buf(Arc<Mutex<Vec<u8>>>);

impl Buf {
    /// Everything captured, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The JSON lines written on `target`.
    pub fn on_target(&self, target: &str) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["target"] == target)
            .collect()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<(Buf, tracing::Level)>> = const { RefCell::new(None) };
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some((buf, _)) = c.borrow().as_ref() {
                buf.0.lock().unwrap().extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops this thread's capture when dropped.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Captures this thread's events at `level` and below as JSON lines.
pub fn capture(level: tracing::Level) -> (Buf, Guard) {
    install();
    let buf = Buf::default();
    CURRENT.with(|c| *c.borrow_mut() = Some((buf.clone(), level)));
    // A callsite first hit before the subscriber existed, or while another
    // thread registered one, may hold a stale "never": recompute them all.
    tracing::callsite::rebuild_interest_cache();
    (buf, Guard)
}

/// Installs the global capturing subscriber (once). The test harnesses
/// call it before they start a server, so no callsite of the code under
/// test is first hit while no subscriber exists (its "never" interest
/// could then stick).
pub fn install() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
            CURRENT.with(|c| {
                c.borrow()
                    .as_ref()
                    .is_some_and(|(_, level)| meta.level() <= level)
            })
        });
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(|| ThreadWriter)
            .with_filter(filter);
        tracing_subscriber::registry().with(layer).init();
    });
}
