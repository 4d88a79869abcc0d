//! How many orders one user may start. Every creation request is a gateway API call (and a
//! QR code someone could be tricked into paying), so each user gets a per-minute rate, and a
//! bounded number of orders open at once.
//!
//! The rate is kept per process, in memory: with several instances behind a balancer a user
//! may reach each instance's rate. The open-order cap is read from the views, so it holds
//! across instances.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::variable::{positive_number, InvalidVariable};

/// Default rate: creation requests one user may make per minute.
pub const ORDERS_PER_MINUTE_DEFAULT: u32 = 10;
/// Default cap on one user's orders awaiting payment at once.
pub const OPEN_ORDERS_MAX_DEFAULT: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Users tracked before the limiter forgets those who are back to a full allowance.
const TRACKED_USERS_BEFORE_SWEEP: usize = 10_000;

/// `PAYLEDGER_ORDER_RATE_PER_MINUTE` and `PAYLEDGER_ORDER_OPEN_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSettings {
    pub per_minute: u32,
    pub open_max: u32,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            per_minute: ORDERS_PER_MINUTE_DEFAULT,
            open_max: OPEN_ORDERS_MAX_DEFAULT,
        }
    }
}

impl QuotaSettings {
    /// No practical bound, for load tests and tests about other things.
    pub fn unbounded() -> Self {
        Self {
            per_minute: u32::MAX,
            open_max: u32::MAX,
        }
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let mut problems = Vec::new();
        let mut read = |variable: &'static str, default: u32| {
            positive_number(
                &lookup,
                variable,
                default,
                "a positive whole number",
                &mut problems,
            )
        };
        let settings = Self {
            per_minute: read("PAYLEDGER_ORDER_RATE_PER_MINUTE", ORDERS_PER_MINUTE_DEFAULT),
            open_max: read("PAYLEDGER_ORDER_OPEN_MAX", OPEN_ORDERS_MAX_DEFAULT),
        };
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }
}

/// The per-user rate, as a generic cell rate: each user has the instant at which their
/// allowance is whole again; a request is admitted while that instant is less than a window
/// ahead, and moves it one interval further. A burst of `per_minute` is allowed, then one
/// request per interval. One instant per user, whatever the traffic.
#[derive(Debug)]
pub struct CreationQuota {
    pub settings: QuotaSettings,
    refilled_at: Mutex<HashMap<String, Instant>>,
}

impl CreationQuota {
    pub fn new(settings: QuotaSettings) -> Self {
        Self {
            settings,
            refilled_at: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one creation request by `user`: `Err(wait)` when it exceeds the rate, with how
    /// long until one more would be admitted.
    pub fn admit(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let interval = WINDOW / self.settings.per_minute.max(1);
        let tolerance = WINDOW.saturating_sub(interval);
        let mut refilled_at = self
            .refilled_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if refilled_at.len() >= TRACKED_USERS_BEFORE_SWEEP {
            refilled_at.retain(|_, at| *at > now);
        }
        let full_at = refilled_at.get(user).copied().unwrap_or(now).max(now);
        let ahead = full_at - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        refilled_at.insert(user.to_owned(), full_at + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn quota(per_minute: u32) -> CreationQuota {
        CreationQuota::new(QuotaSettings {
            per_minute,
            open_max: 5,
        })
    }

    #[test]
    fn a_burst_of_the_rate_then_one_per_interval() {
        let quota = quota(10);
        let start = Instant::now();
        for _ in 0..10 {
            quota.admit("ann", start).unwrap();
        }
        let wait = quota.admit("ann", start).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(6),
            "one more after a sixth of a minute"
        );
        assert!(quota.admit("ann", start + Duration::from_secs(5)).is_err());
        quota.admit("ann", start + Duration::from_secs(6)).unwrap();
        assert!(quota.admit("ann", start + Duration::from_secs(6)).is_err());
        // Another user has an allowance of their own.
        quota.admit("bob", start).unwrap();
        // A quiet minute restores the whole burst.
        let later = start + Duration::from_secs(66);
        for _ in 0..10 {
            quota.admit("ann", later).unwrap();
        }
        assert!(quota.admit("ann", later).is_err());
    }

    #[test]
    fn refused_requests_do_not_extend_the_wait() {
        let quota = quota(1);
        let start = Instant::now();
        quota.admit("ann", start).unwrap();
        for _ in 0..100 {
            assert_eq!(
                quota.admit("ann", start).unwrap_err(),
                Duration::from_secs(60)
            );
        }
        quota.admit("ann", start + WINDOW).unwrap();
    }

    #[test]
    fn settings_default_parse_and_name_bad_values() {
        assert_eq!(
            QuotaSettings::from_lookup(|_| None).unwrap(),
            QuotaSettings {
                per_minute: 10,
                open_max: 5
            }
        );
        let parsed = QuotaSettings::from_lookup(|name| match name {
            "PAYLEDGER_ORDER_RATE_PER_MINUTE" => Some("120".to_owned()),
            "PAYLEDGER_ORDER_OPEN_MAX" => Some(" 2 ".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!((parsed.per_minute, parsed.open_max), (120, 2));
        let problems = QuotaSettings::from_lookup(|name| match name {
            "PAYLEDGER_ORDER_RATE_PER_MINUTE" => Some("0".to_owned()),
            "PAYLEDGER_ORDER_OPEN_MAX" => Some("lots".to_owned()),
            _ => None,
        })
        .unwrap_err();
        let named: Vec<_> = problems.iter().map(|problem| problem.variable).collect();
        assert_eq!(
            named,
            [
                "PAYLEDGER_ORDER_RATE_PER_MINUTE",
                "PAYLEDGER_ORDER_OPEN_MAX"
            ]
        );
    }
}
