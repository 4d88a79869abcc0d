//! `payledger verify`: walks the whole log in position order, a page at a time, and checks
//! what the database alone cannot prove: the hash chain links every event to the one before,
//! positions have no gaps, every stream's sequence is contiguous and follows the log's order,
//! and every gateway event the inbox marks applied has its event in the log. Each problem is
//! reported with the position where it shows.

use std::fmt;

use projections::chain::{self, ChainedRow, Hash, GENESIS};
use projections::Progress;
use sqlx::{AnyPool, Row};

use crate::store::Dialect;

/// Events read per page of the walk: memory stays bounded however long the log is.
pub const VERIFY_PAGE_EVENTS: i64 = chain::CHAIN_PAGE_MAX;
/// Problems kept in the report; the rest are only counted, so a log broken everywhere still
/// verifies in bounded memory.
pub const PROBLEMS_LISTED_MAX: usize = 1_000;

/// What is wrong at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Positions missing from the log (deleted events): `missing` of them from this one on.
    Gap { missing: i64 },
    /// The stored hash is not SHA-256(previous hash || this event): the event (or the one
    /// before it) was changed, moved or removed.
    BrokenLink,
    /// The event has no hash, or one that is not 32 bytes.
    Unlinked,
    /// A stream's sequence skips or repeats, or runs against the log's order.
    Sequence { stream: String, detail: String },
    /// A gateway money event with no evidence from the gateway.
    MissingEvidence { event_type: String },
    /// Evidence that does not re-verify, or says something else than the event.
    BadEvidence { detail: String },
    /// The inbox says a gateway event was applied, but its event is not in the log there.
    AppliedWithoutEvent { provider: String, event_id: String },
    /// The log does not match a head saved earlier.
    Anchor { detail: String },
}

/// One problem, at the position where it shows (0: not tied to a position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub position: i64,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "position {}: ", self.position)?;
        match &self.kind {
            ProblemKind::Gap { missing } => {
                write!(f, "gap: {missing} position(s) missing from here on")
            }
            ProblemKind::BrokenLink => write!(
                f,
                "broken link: the stored hash does not follow from the event and the hash before it"
            ),
            ProblemKind::Unlinked => write!(f, "unlinked: the event has no valid hash"),
            ProblemKind::Sequence { stream, detail } => {
                write!(f, "stream {stream}: {detail}")
            }
            ProblemKind::MissingEvidence { event_type } => write!(
                f,
                "{event_type} has no gateway evidence (a money event nobody can vouch for)"
            ),
            ProblemKind::BadEvidence { detail } => write!(f, "evidence: {detail}"),
            ProblemKind::AppliedWithoutEvent { provider, event_id } => write!(
                f,
                "gateway event {provider}/{event_id} is marked applied but its event is not in the log"
            ),
            ProblemKind::Anchor { detail } => write!(f, "anchor: {detail}"),
        }
    }
}

/// What a walk of the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The last position walked (the head when the walk began) and its stored hash.
    pub head_position: i64,
    pub head_hash: Option<Hash>,
    pub events: u64,
    /// The first problems, in the order found (at most [`PROBLEMS_LISTED_MAX`]).
    pub problems: Vec<Problem>,
    /// Every problem, listed or not.
    pub problems_total: u64,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems_total == 0
    }

    fn push(&mut self, position: i64, kind: ProblemKind) {
        self.problems_total += 1;
        if self.problems.len() < PROBLEMS_LISTED_MAX {
            self.problems.push(Problem { position, kind });
        }
    }
}

/// A head saved earlier (`GET /v1/audit/head`): the log must still hold this hash there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub position: i64,
    pub hash: Hash,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("reading the log failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] projections::LogError),
}

/// Checks applied to each page of events, beyond the chain (e.g. gateway evidence).
#[allow(async_fn_in_trait)]
pub trait PageCheck {
    /// Looks at one page of rows (in position order) and reports what is wrong.
    async fn check(
        &mut self,
        pool: &AnyPool,
        page: &[ChainedRow],
        report: &mut Vec<Problem>,
    ) -> Result<(), VerifyError>;
}

/// No checks beyond the chain.
pub struct ChainOnly;

impl PageCheck for ChainOnly {
    async fn check(
        &mut self,
        _pool: &AnyPool,
        _page: &[ChainedRow],
        _report: &mut Vec<Problem>,
    ) -> Result<(), VerifyError> {
        Ok(())
    }
}

/// Walks the log up to its head as it stands now, telling `progress` after every page.
pub async fn verify(
    pool: &AnyPool,
    dialect: Dialect,
    anchor: Option<Anchor>,
    checks: &mut impl PageCheck,
    mut progress: impl FnMut(Progress),
) -> Result<VerifyReport, VerifyError> {
    let head = projections::log::head(pool).await?;
    let mut report = VerifyReport {
        head_position: 0,
        head_hash: None,
        events: 0,
        problems: Vec::new(),
        problems_total: 0,
    };
    let mut previous: Hash = GENESIS;
    let mut expected = 1_i64;
    let mut after = 0_i64;
    let mut anchor_seen = false;
    // The next page is read while this one is checked.
    let mut next = Some(tokio::spawn(read_page(pool.clone(), after, head)));
    while let Some(reading) = next.take() {
        let page = reading
            .await
            .map_err(|error| VerifyError::Database(sqlx::Error::Protocol(error.to_string())))??;
        let Some(last) = page.last() else {
            break;
        };
        after = last.raw.position;
        if after < head {
            next = Some(tokio::spawn(read_page(pool.clone(), after, head)));
        }
        for row in &page {
            let position = row.raw.position;
            if position != expected {
                report.push(
                    expected,
                    ProblemKind::Gap {
                        missing: position - expected,
                    },
                );
            }
            let computed = chain::link(&previous, &row.raw);
            let stored = row.hash.as_deref().and_then(chain::as_hash);
            match stored {
                None => report.push(position, ProblemKind::Unlinked),
                Some(hash) if hash != computed => report.push(position, ProblemKind::BrokenLink),
                Some(_) => {}
            }
            // Each link is judged against the stored hash before it, so one changed event
            // shows once, where it is, not at every event after it.
            previous = stored.unwrap_or(computed);
            if let Some(anchor) = anchor.filter(|anchor| anchor.position == position) {
                anchor_seen = true;
                if stored != Some(anchor.hash) {
                    report.push(
                        position,
                        ProblemKind::Anchor {
                            detail: format!(
                                "the saved head has hash {}, the log has {}",
                                chain::to_hex(&anchor.hash),
                                stored
                                    .map_or_else(|| "none".to_owned(), |hash| chain::to_hex(&hash))
                            ),
                        },
                    );
                }
            }
            expected = position + 1;
            report.events += 1;
            report.head_position = position;
            report.head_hash = stored;
        }
        let mut found = Vec::new();
        checks.check(pool, &page, &mut found).await?;
        for problem in found {
            report.push(problem.position, problem.kind);
        }
        // Reported as a rebuild reports its own, so one progress line serves both.
        progress(Progress {
            events: report.events,
            checkpoint: after,
            up_to: Some(head),
        });
    }
    if let Some(anchor) = anchor.filter(|_| !anchor_seen) {
        report.push(
            anchor.position,
            ProblemKind::Anchor {
                detail: format!(
                    "the saved head is at position {}, but the log ends at {}",
                    anchor.position, report.head_position
                ),
            },
        );
    }
    for problem in stream_problems(pool).await? {
        report.push(problem.position, problem.kind);
    }
    for problem in inbox_problems(pool, dialect).await? {
        report.push(problem.position, problem.kind);
    }
    report.problems.sort_by_key(|problem| problem.position);
    Ok(report)
}

async fn read_page(
    pool: AnyPool,
    after: i64,
    head: i64,
) -> Result<Vec<ChainedRow>, projections::LogError> {
    chain::read_chained(&pool, after, Some(head), VERIFY_PAGE_EVENTS).await
}

/// Streams whose sequence does not run 1, 2, 3, ... in the log's order. The database walks
/// the stream index; only the problems come back.
async fn stream_problems(pool: &AnyPool) -> Result<Vec<Problem>, VerifyError> {
    let listed = i64::try_from(PROBLEMS_LISTED_MAX).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT position, aggregate_type, aggregate_id, sequence, previous_sequence, \
                previous_position FROM ( \
            SELECT position, aggregate_type, aggregate_id, sequence, \
                   lag(sequence) OVER stream AS previous_sequence, \
                   lag(position) OVER stream AS previous_position \
            FROM events \
            WINDOW stream AS (PARTITION BY aggregate_type, aggregate_id ORDER BY sequence) \
         ) AS s \
         WHERE (previous_sequence IS NULL AND sequence <> 1) \
            OR (previous_sequence IS NOT NULL AND sequence <> previous_sequence + 1) \
            OR previous_position > position \
         ORDER BY position LIMIT $1",
    )
    .bind(listed)
    .fetch_all(pool)
    .await?;
    let mut problems = Vec::with_capacity(rows.len());
    for row in rows {
        let sequence: i64 = row.try_get("sequence")?;
        let previous: Option<i64> = row.try_get("previous_sequence")?;
        let previous_position: Option<i64> = row.try_get("previous_position")?;
        let position: i64 = row.try_get("position")?;
        let detail = match (previous, previous_position) {
            (None, _) => format!("starts at sequence {sequence}, not 1"),
            (Some(before), Some(at)) if at > position => format!(
                "sequence {sequence} is at position {position}, before sequence {before} at {at}"
            ),
            (Some(before), _) => format!("sequence {sequence} follows {before}"),
        };
        let aggregate_type: String = row.try_get("aggregate_type")?;
        let aggregate_id: String = row.try_get("aggregate_id")?;
        problems.push(Problem {
            position,
            kind: ProblemKind::Sequence {
                stream: format!("{aggregate_type}/{aggregate_id}"),
                detail,
            },
        });
    }
    Ok(problems)
}

/// Inbox rows marked applied whose event is not in the log where the row says it landed.
async fn inbox_problems(pool: &AnyPool, dialect: Dialect) -> Result<Vec<Problem>, VerifyError> {
    let gateway_event_id = match dialect {
        Dialect::Postgres => "e.metadata->>'gateway_event_id'",
        Dialect::Sqlite => "json_extract(e.metadata, '$.gateway_event_id')",
    };
    let sql = format!(
        "SELECT g.provider, g.event_id, g.position FROM gateway_events g \
         WHERE g.outcome = 'applied' AND NOT EXISTS ( \
             SELECT 1 FROM events e WHERE e.position = g.position \
             AND {gateway_event_id} = g.event_id) \
         ORDER BY g.position LIMIT $1"
    );
    let rows = sqlx::query(&sql)
        .bind(i64::try_from(PROBLEMS_LISTED_MAX).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    let mut problems = Vec::with_capacity(rows.len());
    for row in rows {
        let position: Option<i64> = row.try_get("position")?;
        problems.push(Problem {
            position: position.unwrap_or(0),
            kind: ProblemKind::AppliedWithoutEvent {
                provider: row.try_get("provider")?,
                event_id: row.try_get("event_id")?,
            },
        });
    }
    Ok(problems)
}
