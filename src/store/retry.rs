//! Retrying a decision that lost a race: another writer appended to the aggregate between our
//! load and our append. Commands and settlements share this, so both give up after the same
//! number of attempts and back off the same way.

use std::future::Future;
use std::time::Duration;

use super::commands::Attempt;

/// Attempts per decision when other processes keep appending to the same aggregate.
pub const COMMAND_RETRIES_MAX: usize = 10;
/// First pause after a conflict; doubled per attempt up to the cap, plus jitter.
const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(1);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// Runs `once(attempt)` (attempts counted from 1, so the attempt can take the log lock on a
/// retry, see `Store::begin_decision`) until it does not conflict, at most
/// [`COMMAND_RETRIES_MAX`] times. A conflict on the last attempt is handed back as such;
/// refusals and failures end the loop at once.
pub(crate) async fn retry_on_conflict<T, E, F, Fut>(
    aggregate_id: &str,
    mut once: F,
) -> Result<T, Attempt<E>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut backoff = RETRY_BACKOFF_INITIAL;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match once(attempt).await {
            Err(Attempt::Conflict) if attempt < COMMAND_RETRIES_MAX => {
                tracing::debug!(aggregate_id, attempt, "concurrent append; retrying");
                tokio::time::sleep(backoff + jitter(backoff)).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
            done => return done,
        }
    }
}

/// Up to `scale` of random extra wait, so processes that conflicted do not retry in step.
fn jitter(scale: Duration) -> Duration {
    let micros = u64::try_from(scale.as_micros()).unwrap_or(u64::MAX).max(1);
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    Duration::from_micros(random % micros)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn conflicts_are_retried_up_to_the_limit_then_handed_back() {
        let attempts = Cell::new(0);
        let result: Result<(), Attempt<()>> = retry_on_conflict("order", |attempt| {
            attempts.set(attempt);
            async { Err(Attempt::Conflict) }
        })
        .await;
        assert!(matches!(result, Err(Attempt::Conflict)));
        assert_eq!(attempts.get(), COMMAND_RETRIES_MAX);
    }

    #[tokio::test]
    async fn the_attempt_after_a_conflict_commits() {
        let result: Result<usize, Attempt<()>> = retry_on_conflict("order", |attempt| async move {
            if attempt < 3 {
                Err(Attempt::Conflict)
            } else {
                Ok(attempt)
            }
        })
        .await;
        assert!(matches!(result, Ok(3)));
    }

    #[tokio::test]
    async fn refusals_and_failures_are_not_retried() {
        let attempts = Cell::new(0);
        let refused: Result<(), Attempt<&str>> = retry_on_conflict("order", |attempt| {
            attempts.set(attempt);
            async { Err(Attempt::Refused("no")) }
        })
        .await;
        assert!(matches!(refused, Err(Attempt::Refused("no"))));
        assert_eq!(attempts.get(), 1);
        let failed: Result<(), Attempt<()>> = retry_on_conflict("order", |attempt| {
            attempts.set(attempt);
            async { Err(Attempt::Failed("down".to_owned())) }
        })
        .await;
        assert!(matches!(failed, Err(Attempt::Failed(detail)) if detail == "down"));
        assert_eq!(attempts.get(), 1);
    }
}
