//! Counters of what the service refused or settled, exported on `/metrics`. Everything about
//! business state is derived from the log; these count traffic the log never sees (refused
//! webhooks) and outcomes, for alerting.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::ledger::settle::Outcome;

#[derive(Debug, Default)]
pub struct Metrics {
    webhooks_rejected: AtomicU64,
    webhooks_applied: AtomicU64,
    webhooks_duplicate: AtomicU64,
    webhooks_unmatched: AtomicU64,
    webhooks_ignored: AtomicU64,
    webhooks_deferred: AtomicU64,
    /// Attempts to deliver a merchant event, by how they went.
    merchant_delivered: AtomicU64,
    merchant_refused: AtomicU64,
    /// Merchant deliveries given up after the retry window.
    merchant_failed: AtomicU64,
}

/// How one attempt to deliver a merchant event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerchantAttempt {
    Delivered,
    /// Not a 2xx in time; tried again later.
    Refused,
    /// Not a 2xx in time, and the retry window has closed.
    GaveUp,
}

/// Adds one, stopping at `u64::MAX` instead of wrapping to zero: a counter that goes back
/// to zero would read as a restart to the monitoring.
fn increment(counter: &AtomicU64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
        value.checked_add(1)
    });
}

impl Metrics {
    pub fn webhook_rejected(&self) {
        increment(&self.webhooks_rejected);
    }

    pub fn webhook_settled(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Applied => &self.webhooks_applied,
            Outcome::Duplicate => &self.webhooks_duplicate,
            Outcome::Unmatched => &self.webhooks_unmatched,
            Outcome::Ignored => &self.webhooks_ignored,
            Outcome::Deferred => &self.webhooks_deferred,
        };
        increment(counter);
    }

    pub fn merchant_attempt(&self, attempt: MerchantAttempt) {
        match attempt {
            MerchantAttempt::Delivered => increment(&self.merchant_delivered),
            MerchantAttempt::Refused => increment(&self.merchant_refused),
            MerchantAttempt::GaveUp => {
                increment(&self.merchant_refused);
                increment(&self.merchant_failed);
            }
        }
    }

    pub fn webhooks_rejected(&self) -> u64 {
        self.webhooks_rejected.load(Ordering::Relaxed)
    }

    /// Prometheus text lines for the counters.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# HELP payledger_webhooks_rejected_total Webhooks refused before settling (bad signature or body).\n\
             # TYPE payledger_webhooks_rejected_total counter\n",
        );
        text.push_str(&format!(
            "payledger_webhooks_rejected_total {}\n",
            self.webhooks_rejected()
        ));
        text.push_str(
            "# HELP payledger_webhooks_settled_total Verified webhooks by outcome.\n\
             # TYPE payledger_webhooks_settled_total counter\n",
        );
        for (outcome, counter) in [
            ("applied", &self.webhooks_applied),
            ("duplicate", &self.webhooks_duplicate),
            ("unmatched", &self.webhooks_unmatched),
            ("ignored", &self.webhooks_ignored),
            ("deferred", &self.webhooks_deferred),
        ] {
            text.push_str(&format!(
                "payledger_webhooks_settled_total{{outcome=\"{outcome}\"}} {}\n",
                counter.load(Ordering::Relaxed)
            ));
        }
        text.push_str(
            "# HELP payledger_merchant_webhook_attempts_total Attempts to deliver a merchant event, by outcome.\n\
             # TYPE payledger_merchant_webhook_attempts_total counter\n",
        );
        for (outcome, counter) in [
            ("delivered", &self.merchant_delivered),
            ("refused", &self.merchant_refused),
        ] {
            text.push_str(&format!(
                "payledger_merchant_webhook_attempts_total{{outcome=\"{outcome}\"}} {}\n",
                counter.load(Ordering::Relaxed)
            ));
        }
        text.push_str(&format!(
            "# HELP payledger_merchant_webhook_failed_total Merchant deliveries given up after the retry window.\n\
             # TYPE payledger_merchant_webhook_failed_total counter\n\
             payledger_merchant_webhook_failed_total {}\n",
            self.merchant_failed.load(Ordering::Relaxed)
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_stops_at_its_maximum_instead_of_wrapping() {
        let metrics = Metrics::default();
        metrics
            .webhooks_rejected
            .store(u64::MAX - 1, Ordering::Relaxed);
        metrics.webhook_rejected();
        metrics.webhook_rejected();
        metrics.webhook_rejected();
        assert_eq!(metrics.webhooks_rejected(), u64::MAX);
        assert!(metrics
            .render()
            .contains(&format!("payledger_webhooks_rejected_total {}", u64::MAX)));
    }
}
