//! The follower: the one reader of the log in this process. Views are applied by every writer
//! in its own transaction; what remains to follow is what lives outside the database (the
//! in-memory order cache, and the position that long polls and read-your-writes wait on) and
//! the views' catch-up after they were rebuilt.
//!
//! Commits of this process arrive through the store's commit hub and are accounted for without
//! reading the log, as long as they continue the positions already seen. Commits of other
//! processes are read from the log: on PostgreSQL when a commit's notification arrives, on
//! SQLite by a short poll; a slow poll on PostgreSQL covers a notification connection that
//! dropped. An idle process reads nothing else.

use std::sync::Arc;
use std::time::Duration;

use projections::projector::PROJECTOR_NAME;
use projections::{BatchOutcome, Projector, Tables};
use sqlx::Row;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use super::order_cache::OrderCache;
use crate::store::append::LOG_CHANNEL;
use crate::store::{Backend, Commit, CommitEvents, Store};

/// How often an idle follower looks for other processes' commits without being told.
pub const POLL_INTERVAL_POSTGRES: Duration = Duration::from_secs(5);
/// The same while notifications arrive on PostgreSQL: they tell of every commit, and a
/// dropped notification connection is noticed at once (the follower then reads the log and
/// polls at the rate above until it listens again), so this only bounds how long a lost
/// notification could go unnoticed.
pub const POLL_INTERVAL_LISTENING: Duration = Duration::from_secs(60);
pub const POLL_INTERVAL_SQLITE: Duration = Duration::from_millis(250);
/// How long a notification waits for this process's own hand-over of the same commit.
const NOTIFICATION_GRACE: Duration = Duration::from_millis(2);
/// Pause after a database error before trying again.
pub const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A handle on the running follower.
#[derive(Clone, Debug)]
pub struct Views {
    wake: Arc<Notify>,
    position: watch::Receiver<i64>,
    cache: Arc<OrderCache>,
}

impl Views {
    /// Orders as the views show them at [`Self::position`], in memory.
    pub fn cache(&self) -> &OrderCache {
        &self.cache
    }

    /// Asks the follower to look at the log now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The position up to which the views (and the cache) are exact.
    pub fn position(&self) -> i64 {
        *self.position.borrow()
    }

    /// Waits until the views include `position`, at most `timeout`. True when they do.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let mut receiver = self.position.clone();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|seen| *seen >= position))
            .await
            .is_ok_and(|result| result.is_ok());
        reached
    }

    /// Waits until the views move past `position` (or `timeout`); returns the new position.
    pub async fn wait_past(&self, position: i64, timeout: Duration) -> i64 {
        let mut receiver = self.position.clone();
        let _ = tokio::time::timeout(timeout, receiver.wait_for(|seen| *seen > position)).await;
        let current = *receiver.borrow();
        current
    }
}

/// Prepares the view tables and starts following the log from where the views stand.
pub async fn start(store: &Store) -> Result<(Views, JoinHandle<()>), projections::ProjectionError> {
    let projector = Projector::new(store.read.clone(), Tables::live());
    projector.prepare().await?;
    let start = projector.checkpoint().await?;
    let (sender, receiver) = watch::channel(start);
    let wake = Arc::new(Notify::new());
    let cache = Arc::new(OrderCache::new(start));
    let views = Views {
        wake: wake.clone(),
        position: receiver,
        cache: cache.clone(),
    };
    let follower = Follower {
        store: store.clone(),
        projector,
        position: sender,
        cache,
        commits: store.commits.subscribe(),
    };
    let task = tokio::spawn(follower.run(wake));
    // Views left behind (just rebuilt, or written by an older version) catch up at once.
    views.wake();
    Ok((views, task))
}

struct Follower {
    store: Store,
    projector: Projector,
    position: watch::Sender<i64>,
    cache: Arc<OrderCache>,
    commits: broadcast::Receiver<CommitEvents>,
}

impl Follower {
    async fn run(mut self, wake: Arc<Notify>) {
        let mut listener = self.listen().await;
        let unheard = match self.store.backend {
            Backend::Postgres(_) => POLL_INTERVAL_POSTGRES,
            Backend::Sqlite(_) => POLL_INTERVAL_SQLITE,
        };
        loop {
            let poll = if listener.is_some() {
                POLL_INTERVAL_LISTENING
            } else {
                unheard
            };
            let read_log = tokio::select! {
                commit = self.commits.recv() => match commit {
                    Ok(events) => !self.account_local(&events),
                    // Missed some of this process's commits: the log has them.
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                notified = notification(&mut listener) => match notified {
                    Some(position) => self.is_remote(position).await,
                    None => {
                        listener = None;
                        true
                    }
                },
                () = wake.notified() => true,
                () = self.store.commits.views_behind() => true,
                () = tokio::time::sleep(poll) => true,
            };
            if read_log {
                if let Err(error) = self.catch_up().await {
                    tracing::error!(%error, "following the log failed; retrying");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
            if listener.is_none() {
                listener = self.listen().await;
            }
        }
    }

    /// Accounts for one of this process's commits without reading the log when it continues
    /// what the cache has seen and its views were applied. False when the log must be read.
    fn account_local(&self, commit: &Commit) -> bool {
        let Some(last) = commit.events.last().map(|event| event.position) else {
            return true;
        };
        if last <= self.cache.generation() {
            return true;
        }
        if !self.cache.account(&commit.events, &commit.orders) {
            return false;
        }
        self.position.send_replace(last);
        true
    }

    /// Whether a notified position is another process's commit. This process's own commits
    /// notify too, and the notification may overtake the commit's own hand-over, so the
    /// follower takes what was handed over (after a moment's grace) before it reads the log.
    async fn is_remote(&mut self, position: i64) -> bool {
        for _ in 0..2 {
            while let Ok(events) = self.commits.try_recv() {
                if !self.account_local(&events) {
                    return true;
                }
            }
            if position <= self.cache.generation() {
                return false;
            }
            tokio::time::sleep(NOTIFICATION_GRACE).await;
        }
        true
    }

    /// Brings the views (when behind) and the cache to the head of the log, then publishes.
    async fn catch_up(&self) -> Result<(), projections::ProjectionError> {
        // One cheap question first: an idle process asks it and nothing else.
        let sql = format!(
            "SELECT CAST(coalesce((SELECT max(position) FROM events), 0) AS BIGINT) AS head, \
             CAST(coalesce((SELECT position FROM {c} WHERE projector = $1), 0) AS BIGINT) AS views",
            c = Tables::live().checkpoints
        );
        let row = sqlx::query(&sql)
            .bind(PROJECTOR_NAME)
            .fetch_one(&self.store.read)
            .await?;
        let (head, mut views_at): (i64, i64) = (row.try_get("head")?, row.try_get("views")?);
        if views_at < head {
            loop {
                match self.projector.run_batch(None, None).await? {
                    BatchOutcome::CaughtUp { checkpoint } => {
                        views_at = checkpoint;
                        break;
                    }
                    BatchOutcome::Applied { .. } | BatchOutcome::LostRace => {}
                }
            }
        }
        if views_at > self.cache.generation() {
            self.cache.advance(&self.store.read, views_at).await?;
        }
        let exact = self.cache.generation().min(views_at);
        if exact > *self.position.borrow() {
            self.position.send_replace(exact);
        }
        Ok(())
    }

    /// Subscribes to other processes' commits (PostgreSQL only).
    async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let Backend::Postgres(pool) = &self.store.backend else {
            return None;
        };
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for commits; polling meanwhile");
                return None;
            }
        };
        match listener.listen(LOG_CHANNEL).await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for commits; polling meanwhile");
                None
            }
        }
    }
}

/// The next commit notification's position; `None` when the connection failed. Without a
/// listener this never completes.
async fn notification(listener: &mut Option<sqlx::postgres::PgListener>) -> Option<i64> {
    let Some(active) = listener else {
        return std::future::pending().await;
    };
    match active.try_recv().await {
        Ok(Some(notification)) => Some(notification.payload().parse().unwrap_or(i64::MAX)),
        Ok(None) | Err(_) => None,
    }
}
