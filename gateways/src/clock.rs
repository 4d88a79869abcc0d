//! The time, as a parameter: WeChat Pay's callbacks are only valid within minutes of their
//! timestamp, and tests must be able to pin "now" to a published vector's moment.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told, in whole seconds (tests, replays of captured callbacks).
#[derive(Debug)]
pub struct FixedClock {
    unix_seconds: AtomicI64,
}

impl FixedClock {
    pub fn at(unix_seconds: i64) -> Self {
        Self {
            unix_seconds: AtomicI64::new(unix_seconds),
        }
    }

    pub fn set(&self, unix_seconds: i64) {
        self.unix_seconds.store(unix_seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.unix_seconds.load(Ordering::SeqCst), 0)
            .unwrap_or(DateTime::UNIX_EPOCH)
    }
}
