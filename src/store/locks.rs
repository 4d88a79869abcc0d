//! In-process turns per aggregate: commands and settlements of one aggregate queue here
//! instead of failing on optimistic-concurrency conflicts with each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Above this many remembered aggregates, forget those no command is using.
const LOCKS_TIDY_THRESHOLD: usize = 10_000;

#[derive(Debug, Default)]
pub struct Locks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Locks {
    /// The lock of one aggregate, shared by every command currently using it.
    pub fn lock_for(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Arc<tokio::sync::Mutex<()>> {
        let key = format!("{aggregate_type}/{aggregate_id}");
        let mut locks = match self.locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() > LOCKS_TIDY_THRESHOLD {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key, Arc::downgrade(&lock));
        lock
    }
}
