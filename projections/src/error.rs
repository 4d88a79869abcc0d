//! Errors of the read side.

use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("view database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An event refers to a row an earlier event should have created: the log and the view
    /// disagree, which a replay will show.
    #[error("event at position {position} refers to unknown {what} {id}")]
    MissingRow {
        position: i64,
        what: &'static str,
        id: String,
    },
    /// The live views kept moving while an audit tried to compare at one position.
    #[error("the live views kept moving; the audit gave up after {attempts} attempts")]
    MovingTarget { attempts: usize },
}
