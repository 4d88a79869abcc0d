//! Ping++'s list paging (`limit`, `starting_after`), as the sandbox checks it.

use serde::Deserialize;

use super::error::SandboxError;

/// Refunds listed per page when `limit` is not given, and the most one page may hold.
const REFUND_PAGE_DEFAULT: usize = 10;
const REFUND_PAGE_MAX: usize = 100;

/// `GET /v1/charges/{id}/refunds` query: Ping++'s paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefundListQuery {
    pub limit: Option<usize>,
    pub starting_after: Option<String>,
}

impl RefundListQuery {
    pub(super) fn limit(&self) -> Result<usize, SandboxError> {
        match self.limit {
            None => Ok(REFUND_PAGE_DEFAULT),
            Some(limit) if (1..=REFUND_PAGE_MAX).contains(&limit) => Ok(limit),
            Some(_) => Err(SandboxError::invalid(
                Some("limit"),
                format!("limit must be between 1 and {REFUND_PAGE_MAX}"),
            )),
        }
    }
}
