//! Time as the interpreter sees it. Wait states and Retry backoff sleep through a [`Clock`], so
//! tests can run a day of waiting in microseconds with [`ManualClock`] and check each delay.

use std::sync::Mutex;
use std::time::Duration;

use crate::cancel::CancelToken;

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Sleeps for `d`; returns false if `cancel` fired first.
    fn sleep(&self, d: Duration, cancel: &CancelToken) -> bool;
}

/// The wall clock.
pub struct SystemClock;

/// Milliseconds since the Unix epoch by the wall clock (negative before 1970). Read straight from
/// `SystemTime`: the engine reads the clock at every state, and going through a calendar type
/// cost more than the rest of a Pass state.
pub fn unix_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        unix_ms()
    }

    fn sleep(&self, d: Duration, cancel: &CancelToken) -> bool {
        let end = std::time::Instant::now() + d;
        loop {
            if cancel.is_cancelled() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

/// A clock that only moves when slept on, and remembers every sleep.
pub struct ManualClock {
    inner: Mutex<(i64, Vec<Duration>)>,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock { inner: Mutex::new((start_ms, Vec::new())) }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn sleep(&self, d: Duration, cancel: &CancelToken) -> bool {
        if cancel.is_cancelled() {
            return false;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0 += d.as_millis() as i64;
        inner.1.push(d);
        true
    }
}

#[cfg(test)]
mod unix_ms_tests {
    #[test]
    fn agrees_with_the_calendar_clock() {
        let before = chrono::Utc::now().timestamp_millis();
        let ours = super::unix_ms();
        let after = chrono::Utc::now().timestamp_millis();
        assert!(before <= ours && ours <= after, "{before} <= {ours} <= {after}");
    }
}
