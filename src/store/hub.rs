//! Commits of this process, handed to its followers as they happen, so nothing in the process
//! reads the log back to learn what it has just written.

use std::sync::Arc;

use projections::log::StoredEvent;
use projections::order_view::OrderView;
use tokio::sync::{broadcast, Notify};

/// Commits kept for a follower that falls behind; past that it reads the log instead.
const BACKLOG_MAX: usize = 4_096;

/// One commit of this process: its events in position order, and the views of the orders it
/// changed as its own transaction read them (so a poll right after needs no database read).
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub events: Vec<StoredEvent>,
    pub orders: Vec<OrderView>,
}

pub type CommitEvents = Arc<Commit>;

#[derive(Debug)]
pub struct CommitHub {
    sender: broadcast::Sender<CommitEvents>,
    views_behind: Notify,
}

impl Default for CommitHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG_MAX).0,
            views_behind: Notify::new(),
        }
    }
}

impl CommitHub {
    /// Tells every follower of this process about a commit. Nobody listening is fine: other
    /// processes learn of it from the log.
    pub fn publish(&self, commit: Commit) {
        if !commit.events.is_empty() {
            let _ = self.sender.send(Arc::new(commit));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CommitEvents> {
        self.sender.subscribe()
    }

    /// Says that a commit found the views behind the log and left its events to the catch-up.
    pub fn report_views_behind(&self) {
        self.views_behind.notify_one();
    }

    /// Completes when a commit reported the views behind.
    pub async fn views_behind(&self) {
        self.views_behind.notified().await;
    }
}
