//! A budget of log lines per second for events an attacker can produce at will (refused
//! requests, refused webhooks). Past the budget, lines are counted instead of written, and the
//! next written line says how many were left out; metrics still count every event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines one budget writes per second at most.
pub const LINES_PER_SECOND: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);

pub struct LogBudget {
    window: Mutex<Option<Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    lines: u32,
    /// Lines left out since the last one written.
    suppressed: u64,
}

/// Refused requests and refused webhooks share one budget: together they are what a flood
/// looks like.
pub static REFUSALS: LogBudget = LogBudget::new();

impl LogBudget {
    pub const fn new() -> Self {
        Self {
            window: Mutex::new(None),
        }
    }

    /// `Some(left_out)` when a line may be written now (with how many were left out before
    /// it), `None` when this one should only be counted.
    pub fn take(&self) -> Option<u64> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Option<u64> {
        let mut guard = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = guard.get_or_insert(Window {
            started: now,
            lines: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(window.started) >= WINDOW {
            window.started = now;
            window.lines = 0;
        }
        if window.lines < LINES_PER_SECOND {
            window.lines += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed = window.suppressed.saturating_add(1);
            None
        }
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_lines_are_counted_and_reported_with_the_next_one() {
        let budget = LogBudget::new();
        let start = Instant::now();
        let written = (0..1000)
            .filter(|_| budget.take_at(start).is_some())
            .count();
        assert_eq!(written, 20);
        let later = start + Duration::from_millis(1500);
        assert_eq!(budget.take_at(later), Some(980));
        assert_eq!(budget.take_at(later), Some(0));
    }
}
