//! What the merchant-facing processes need to know: the configured endpoint and its secrets,
//! the retry schedule, and when memberships are checked for their end.

use std::time::Duration;

use crate::variable::{positive_number, trimmed, InvalidVariable};
use gateways::Secret;

use super::signature::SECRET_BYTES_MIN;

/// Retries of an undelivered event start after this and double each time...
pub const RETRY_BASE_DEFAULT: Duration = Duration::from_secs(30);
/// ...up to this between two attempts...
pub const RETRY_MAX_DEFAULT: Duration = Duration::from_secs(60 * 60);
/// ...until this long after the event was enqueued; then the delivery is marked failed.
pub const GIVE_UP_AFTER_DEFAULT: Duration = Duration::from_secs(3 * 24 * 60 * 60);
/// A delivery counts only when the receiver answers 2xx within this.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often senders look for due deliveries without being woken (other processes' work,
/// retries falling due).
pub const SENDER_POLL_DEFAULT: Duration = Duration::from_secs(1);
/// How often memberships are checked for their end.
pub const EXPIRY_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
/// `membership.expiring` is sent this many days before a membership ends.
pub const EXPIRING_NOTICE_DAYS_DEFAULT: u32 = 3;
/// The most days ahead `PAYLEDGER_MEMBERSHIP_EXPIRING_DAYS` may name.
const EXPIRING_NOTICE_DAYS_MAX: u32 = 365;

/// The endpoint configured in the environment.
#[derive(Debug, Clone)]
pub struct ConfiguredEndpoint {
    pub url: String,
    pub secret: Secret,
    /// During a rotation, the secret receivers may still verify with; both are sent.
    pub previous_secret: Option<Secret>,
}

/// When an undelivered event is tried again, and when it is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub base: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            base: RETRY_BASE_DEFAULT,
            max: RETRY_MAX_DEFAULT,
            give_up_after: GIVE_UP_AFTER_DEFAULT,
        }
    }
}

impl RetrySchedule {
    /// The pause after the `attempts`-th failed attempt (1 for the first).
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        self.base
            .checked_mul(1_u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[derive(Debug, Clone)]
pub struct MerchantSettings {
    pub endpoint: Option<ConfiguredEndpoint>,
    pub retry: RetrySchedule,
    pub response_timeout: Duration,
    pub sender_poll: Duration,
    pub expiry_interval: Duration,
    pub expiring_notice: chrono::Duration,
}

impl Default for MerchantSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            retry: RetrySchedule::default(),
            response_timeout: RESPONSE_TIMEOUT,
            sender_poll: SENDER_POLL_DEFAULT,
            expiry_interval: EXPIRY_INTERVAL_DEFAULT,
            expiring_notice: chrono::Duration::days(i64::from(EXPIRING_NOTICE_DAYS_DEFAULT)),
        }
    }
}

impl MerchantSettings {
    /// `PAYLEDGER_MERCHANT_WEBHOOK_URL`, `_SECRET`, `_PREVIOUS_SECRET`, `_RETRY_BASE_MS`,
    /// `_RETRY_MAX_MS`, `_GIVE_UP_SECS`, `PAYLEDGER_MEMBERSHIP_EXPIRY_INTERVAL_MS` and
    /// `PAYLEDGER_MEMBERSHIP_EXPIRING_DAYS`; every problem is pushed to `problems`.
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<InvalidVariable>,
    ) -> Self {
        let text = |name: &str| trimmed(lookup, name);
        let mut secret = |variable: &'static str| match text(variable) {
            Some(secret) if secret.len() < SECRET_BYTES_MIN => {
                problems.push(InvalidVariable {
                    variable,
                    reason: format!(
                        "must be at least {SECRET_BYTES_MIN} bytes long, not counting \
                         surrounding whitespace"
                    ),
                });
                None
            }
            other => other.map(Secret::new),
        };
        let current = secret("PAYLEDGER_MERCHANT_WEBHOOK_SECRET");
        let previous = secret("PAYLEDGER_MERCHANT_WEBHOOK_PREVIOUS_SECRET");
        let url = text("PAYLEDGER_MERCHANT_WEBHOOK_URL");
        let secret_given = text("PAYLEDGER_MERCHANT_WEBHOOK_SECRET").is_some();
        let endpoint = match (url, current) {
            (Some(url), _) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_MERCHANT_WEBHOOK_URL",
                    reason: "expected an http:// or https:// URL".to_owned(),
                });
                None
            }
            (Some(url), Some(secret)) => Some(ConfiguredEndpoint {
                url,
                secret,
                previous_secret: previous,
            }),
            (Some(_), None) => {
                if !secret_given {
                    problems.push(InvalidVariable {
                        variable: "PAYLEDGER_MERCHANT_WEBHOOK_SECRET",
                        reason: "required with PAYLEDGER_MERCHANT_WEBHOOK_URL: every delivery \
                                 is signed"
                            .to_owned(),
                    });
                }
                None
            }
            (None, Some(_)) => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_MERCHANT_WEBHOOK_URL",
                    reason: "required with PAYLEDGER_MERCHANT_WEBHOOK_SECRET".to_owned(),
                });
                None
            }
            (None, None) => None,
        };
        // `default` is in `unit_ms` milliseconds, as the variable is.
        let mut millis = |variable: &'static str, default: Duration, unit_ms: u64| {
            let default_units = u64::try_from(default.as_millis()).unwrap_or(u64::MAX) / unit_ms;
            let units = positive_number(
                lookup,
                variable,
                default_units,
                "a positive whole number",
                problems,
            );
            Duration::from_millis(units.saturating_mul(unit_ms))
        };
        let retry = RetrySchedule {
            base: millis(
                "PAYLEDGER_MERCHANT_WEBHOOK_RETRY_BASE_MS",
                RETRY_BASE_DEFAULT,
                1,
            ),
            max: millis(
                "PAYLEDGER_MERCHANT_WEBHOOK_RETRY_MAX_MS",
                RETRY_MAX_DEFAULT,
                1,
            ),
            give_up_after: millis(
                "PAYLEDGER_MERCHANT_WEBHOOK_GIVE_UP_SECS",
                GIVE_UP_AFTER_DEFAULT,
                1_000,
            ),
        };
        let expiry_interval = millis(
            "PAYLEDGER_MEMBERSHIP_EXPIRY_INTERVAL_MS",
            EXPIRY_INTERVAL_DEFAULT,
            1,
        );
        let days =
            match text("PAYLEDGER_MEMBERSHIP_EXPIRING_DAYS").map(|value| value.parse::<u32>()) {
                None => EXPIRING_NOTICE_DAYS_DEFAULT,
                Some(Ok(days)) if days <= EXPIRING_NOTICE_DAYS_MAX => days,
                Some(_) => {
                    problems.push(InvalidVariable {
                        variable: "PAYLEDGER_MEMBERSHIP_EXPIRING_DAYS",
                        reason: format!(
                            "expected a whole number of days from 0 to {EXPIRING_NOTICE_DAYS_MAX}"
                        ),
                    });
                    EXPIRING_NOTICE_DAYS_DEFAULT
                }
            };
        Self {
            endpoint,
            retry,
            expiry_interval,
            expiring_notice: chrono::Duration::days(i64::from(days)),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> (MerchantSettings, Vec<InvalidVariable>) {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let mut problems = Vec::new();
        let settings = MerchantSettings::from_lookup(&|name| env.get(name).cloned(), &mut problems);
        (settings, problems)
    }

    fn named(problems: &[InvalidVariable]) -> Vec<&'static str> {
        problems.iter().map(|problem| problem.variable).collect()
    }

    #[test]
    fn no_endpoint_is_configured_by_default() {
        let (settings, problems) = parse(&[]);
        assert!(problems.is_empty());
        assert!(settings.endpoint.is_none());
        assert_eq!(settings.retry, RetrySchedule::default());
        assert_eq!(settings.expiring_notice, chrono::Duration::days(3));
    }

    #[test]
    fn a_short_or_missing_secret_is_refused_without_printing_it() {
        let (_, problems) = parse(&[
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_URL",
                "https://merchant.example/hooks",
            ),
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_SECRET",
                &format!("  {}  ", "s".repeat(31)),
            ),
        ]);
        assert_eq!(named(&problems), ["PAYLEDGER_MERCHANT_WEBHOOK_SECRET"]);
        assert!(!problems[0].to_string().contains("sss"));
        let (_, problems) = parse(&[("PAYLEDGER_MERCHANT_WEBHOOK_URL", "https://m.example")]);
        assert_eq!(named(&problems), ["PAYLEDGER_MERCHANT_WEBHOOK_SECRET"]);
        let (_, problems) = parse(&[("PAYLEDGER_MERCHANT_WEBHOOK_SECRET", &"s".repeat(32))]);
        assert_eq!(named(&problems), ["PAYLEDGER_MERCHANT_WEBHOOK_URL"]);
        let (_, problems) = parse(&[
            ("PAYLEDGER_MERCHANT_WEBHOOK_URL", "ftp://m.example"),
            ("PAYLEDGER_MERCHANT_WEBHOOK_SECRET", &"s".repeat(32)),
            ("PAYLEDGER_MERCHANT_WEBHOOK_PREVIOUS_SECRET", "short"),
        ]);
        assert_eq!(
            named(&problems),
            [
                "PAYLEDGER_MERCHANT_WEBHOOK_PREVIOUS_SECRET",
                "PAYLEDGER_MERCHANT_WEBHOOK_URL"
            ]
        );
    }

    #[test]
    fn a_rotation_keeps_both_secrets() {
        let (settings, problems) = parse(&[
            ("PAYLEDGER_MERCHANT_WEBHOOK_URL", "https://m.example"),
            ("PAYLEDGER_MERCHANT_WEBHOOK_SECRET", &"n".repeat(32)),
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_PREVIOUS_SECRET",
                &"o".repeat(40),
            ),
        ]);
        assert!(problems.is_empty());
        let endpoint = settings.endpoint.unwrap();
        assert_eq!(endpoint.secret.expose(), "n".repeat(32));
        assert_eq!(endpoint.previous_secret.unwrap().expose(), "o".repeat(40));
    }

    #[test]
    fn the_retry_schedule_doubles_up_to_its_cap() {
        let (settings, problems) = parse(&[
            ("PAYLEDGER_MERCHANT_WEBHOOK_RETRY_BASE_MS", "100"),
            ("PAYLEDGER_MERCHANT_WEBHOOK_RETRY_MAX_MS", "350"),
            ("PAYLEDGER_MERCHANT_WEBHOOK_GIVE_UP_SECS", "60"),
        ]);
        assert!(problems.is_empty());
        let retry = settings.retry;
        assert_eq!(retry.delay_after(1), Duration::from_millis(100));
        assert_eq!(retry.delay_after(2), Duration::from_millis(200));
        assert_eq!(retry.delay_after(3), Duration::from_millis(350));
        assert_eq!(retry.delay_after(u32::MAX), Duration::from_millis(350));
        assert_eq!(retry.give_up_after, Duration::from_secs(60));
        let (_, problems) = parse(&[
            ("PAYLEDGER_MERCHANT_WEBHOOK_RETRY_BASE_MS", "0"),
            ("PAYLEDGER_MEMBERSHIP_EXPIRING_DAYS", "soon"),
        ]);
        assert_eq!(
            named(&problems),
            [
                "PAYLEDGER_MERCHANT_WEBHOOK_RETRY_BASE_MS",
                "PAYLEDGER_MEMBERSHIP_EXPIRING_DAYS"
            ]
        );
    }
}
