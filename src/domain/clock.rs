//! Time is a parameter: core code takes a `now` or a `&dyn Clock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    /// Seconds since the Unix epoch (0 for times before it).
    fn unix(&self) -> u64 {
        unix_secs(self.now())
    }
}

/// The real clock. The one place allowed to call `SystemTime::now`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// A clock for tests: fixed until moved with [`FixedClock::advance`].
#[derive(Debug, Default)]
pub struct FixedClock {
    unix_millis: AtomicU64,
}

/// Seconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

// === impl SystemClock ===

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

// === impl FixedClock ===

impl FixedClock {
    pub fn at_unix(secs: u64) -> Self {
        Self {
            unix_millis: AtomicU64::new(secs * 1000),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.unix_millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.unix_millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_advances() {
        let c = FixedClock::at_unix(100);
        assert_eq!(c.unix(), 100);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.unix(), 105);
    }
}
