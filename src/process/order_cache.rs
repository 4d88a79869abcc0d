//! Orders as the polling endpoint shows them, kept in memory.
//!
//! A payment page polls every few seconds and almost every answer is "unchanged", so serving
//! polls from memory spares the database. The cache is exact, also with several server
//! processes on one database: it follows the log itself (not just this process's projector)
//! and is advanced to a position before that position is published to readers, dropping every
//! order an event up to there touched. A reader fills a miss from the views only if the cache
//! did not move while it read, so a stale row can never be put back after its invalidation.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use projections::log::{self, LedgerEvent, READ_BATCH_MAX};
use projections::LogError;
use sqlx::AnyPool;

/// Orders kept at most; beyond this the cache starts over (a poll then costs one read).
pub const ORDERS_MAX: usize = 100_000;

/// One order with the membership it bought (if it bought one that is not revoked).
pub use projections::order_view::OrderView as CachedOrder;

#[derive(Debug, Default)]
struct Inner {
    /// Every event up to here has been accounted for.
    position: i64,
    orders: HashMap<String, CachedOrder>,
    /// A user's cached orders, dropped when the user's membership changes.
    by_user: HashMap<String, HashSet<String>>,
}

impl Inner {
    fn keep(&mut self, entry: CachedOrder) {
        if self.orders.len() >= ORDERS_MAX {
            self.orders.clear();
            self.by_user.clear();
        }
        self.by_user
            .entry(entry.row.user_id.clone())
            .or_default()
            .insert(entry.row.order_id.clone());
        self.orders.insert(entry.row.order_id.clone(), entry);
    }

    /// Drops what `event` changes: its order, or every cached order of its member.
    fn forget(&mut self, event: &projections::StoredEvent) {
        match &event.event {
            LedgerEvent::Order(_) => {
                if let Some(entry) = self.orders.remove(&event.aggregate_id) {
                    if let Some(orders) = self.by_user.get_mut(&entry.row.user_id) {
                        orders.remove(&event.aggregate_id);
                    }
                }
            }
            LedgerEvent::Subscription(_) => {
                if let Some(orders) = self.by_user.remove(&event.aggregate_id) {
                    for order_id in orders {
                        self.orders.remove(&order_id);
                    }
                }
            }
            LedgerEvent::Other => {}
        }
    }
}

#[derive(Debug, Default)]
pub struct OrderCache {
    inner: Mutex<Inner>,
}

impl OrderCache {
    pub fn new(position: i64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                position,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn get(&self, order_id: &str) -> Option<CachedOrder> {
        self.lock().orders.get(order_id).cloned()
    }

    /// The position the cache stands at; pass it back to [`Self::insert_if_current`].
    pub fn generation(&self) -> i64 {
        self.lock().position
    }

    /// Keeps an entry read from the views, unless the cache moved on since `generation`.
    pub fn insert_if_current(&self, generation: i64, entry: CachedOrder) {
        let mut inner = self.lock();
        if inner.position != generation {
            return;
        }
        inner.keep(entry);
    }

    /// Accounts for events that continue exactly where the cache stands (this process's own
    /// commits, handed over): drops the orders they touch. False, changing nothing, when they
    /// do not continue it (someone else's commit came between: read the log).
    ///
    /// `fresh` are the changed orders as the commit's own transaction read them: they are
    /// exact at the commit's last position, so they are kept at once.
    pub fn account(&self, events: &[projections::StoredEvent], fresh: &[CachedOrder]) -> bool {
        let mut inner = self.lock();
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return true;
        };
        if first.position != inner.position + 1 {
            return false;
        }
        for event in events {
            inner.forget(event);
        }
        debug_assert!(last.position > inner.position, "the cache went backwards");
        inner.position = last.position;
        for entry in fresh {
            inner.keep(entry.clone());
        }
        true
    }

    /// Accounts for every event up to `to`: drops the orders they touch.
    pub async fn advance(&self, pool: &AnyPool, to: i64) -> Result<(), LogError> {
        loop {
            let from = self.generation();
            if from >= to {
                return Ok(());
            }
            let events = log::read_after(pool, from, READ_BATCH_MAX).await?;
            let mut inner = self.lock();
            if inner.position != from {
                // Someone else advanced meanwhile; start again from where they left it.
                continue;
            }
            for event in events.iter().take_while(|event| event.position <= to) {
                inner.forget(event);
            }
            let full_batch = i64::try_from(events.len()).unwrap_or(i64::MAX) >= READ_BATCH_MAX;
            match events.last() {
                // A full batch that stops below `to`: more to read.
                Some(last) if full_batch && last.position < to => inner.position = last.position,
                // Everything up to `to` that exists has been seen (positions may have gaps).
                _ => {
                    inner.position = to;
                    return Ok(());
                }
            }
        }
    }
}
