//! The dials a test turns to make the sandbox misbehave the way real gateways do: slow or
//! failing refunds, late, repeated, lost, forged or out-of-order webhooks.

use serde::{Deserialize, Deserializer, Serialize};

use super::error::SandboxError;

/// How long a refund stays pending before it completes, unless told otherwise.
pub const DEFAULT_REFUND_DELAY_MS: u64 = 50;
/// The first retry waits this long; each later one twice as long as the one before.
pub const DEFAULT_RETRY_BASE_MS: u64 = 200;
/// Bounds on every knob, so a typo cannot park a delivery for a day.
pub const MAX_REFUND_DELAY_MS: u64 = 60_000;
pub const MAX_RETRY_BASE_MS: u64 = 5_000;
pub const MAX_PAY_DELAY_MS: u64 = 60_000;
pub const MAX_DUPLICATES: u32 = 10;

/// The sandbox-wide knobs (`GET`/`POST /knobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Knobs {
    /// The next refund created fails (`refund.failed`); cleared once a refund takes it.
    pub fail_next_refund: bool,
    pub refund_delay_ms: u64,
    pub retry_base_ms: u64,
    /// Refunds finish before the answer to the refund request, which says so, and no
    /// notification follows: the way Alipay finishes refunds, and any gateway may.
    pub refunds_finish_in_answer: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            fail_next_refund: false,
            refund_delay_ms: DEFAULT_REFUND_DELAY_MS,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            refunds_finish_in_answer: false,
        }
    }
}

/// A change to the knobs; absent fields stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobsUpdate {
    #[serde(default)]
    pub fail_next_refund: Option<bool>,
    #[serde(default)]
    pub refund_delay_ms: Option<u64>,
    #[serde(default)]
    pub retry_base_ms: Option<u64>,
    #[serde(default)]
    pub refunds_finish_in_answer: Option<bool>,
}

impl Knobs {
    /// Applies `update` whole or not at all.
    pub(super) fn apply(&mut self, update: KnobsUpdate) -> Result<(), SandboxError> {
        if update
            .refund_delay_ms
            .is_some_and(|delay| delay > MAX_REFUND_DELAY_MS)
        {
            return Err(SandboxError::invalid(
                Some("refund_delay_ms"),
                format!("refund_delay_ms must be at most {MAX_REFUND_DELAY_MS}"),
            ));
        }
        if update
            .retry_base_ms
            .is_some_and(|base| base > MAX_RETRY_BASE_MS)
        {
            return Err(SandboxError::invalid(
                Some("retry_base_ms"),
                format!("retry_base_ms must be at most {MAX_RETRY_BASE_MS}"),
            ));
        }
        if let Some(fail) = update.fail_next_refund {
            self.fail_next_refund = fail;
        }
        if let Some(delay) = update.refund_delay_ms {
            self.refund_delay_ms = delay;
        }
        if let Some(base) = update.retry_base_ms {
            self.retry_base_ms = base;
        }
        if let Some(in_answer) = update.refunds_finish_in_answer {
            self.refunds_finish_in_answer = in_answer;
        }
        Ok(())
    }
}

/// How the customer's payment is reported (`POST /charges/{id}/pay?...`). Flags accept `1`,
/// `true`, `yes`, `on` or no value at all (`?drop`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayOptions {
    /// The amount the `charge.succeeded` event claims, when it should differ from the charge's.
    pub amount: Option<i64>,
    /// Wait this long before the first delivery.
    pub delay_ms: u64,
    /// Deliver the same event (same id, bytes and signature) this many extra times.
    pub duplicate: u32,
    /// Mark the charge paid but never deliver the event.
    #[serde(deserialize_with = "flag")]
    pub drop: bool,
    /// Deliver with a signature that does not verify (retried until the attempt limit, as a
    /// receiver refusing it makes a real gateway do).
    #[serde(deserialize_with = "flag")]
    pub corrupt_signature: bool,
    /// Hold the event and deliver it after the next event the sandbox sends.
    #[serde(deserialize_with = "flag")]
    pub reorder: bool,
    /// Accept the payment even after the charge's `time_expire` or its close (late money:
    /// the channel took it before the gateway saw the close).
    #[serde(deserialize_with = "flag")]
    pub late: bool,
}

impl PayOptions {
    pub(super) fn check(&self) -> Result<(), SandboxError> {
        if self.delay_ms > MAX_PAY_DELAY_MS {
            return Err(SandboxError::invalid(
                Some("delay_ms"),
                format!("delay_ms must be at most {MAX_PAY_DELAY_MS}"),
            ));
        }
        if self.duplicate > MAX_DUPLICATES {
            return Err(SandboxError::invalid(
                Some("duplicate"),
                format!("duplicate must be at most {MAX_DUPLICATES}"),
            ));
        }
        Ok(())
    }
}

fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(deserializer)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(D::Error::custom(format!(
            "expected 1 or 0 for a flag, not {other:?}"
        ))),
    }
}
