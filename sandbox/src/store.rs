//! The sandbox's memory: the charges and refunds it issued and the rules that change them.
//! No clock and no network: the caller passes `now`, so every rule can be tested at fixed times.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::error::SandboxError;
use super::random;
use super::validation;
use gateways::pingpp::wire::{Charge, CreateChargeRequest, CreateRefundRequest, Refund};

/// Bounds on what the sandbox keeps in memory.
pub(super) const MAX_CHARGES: usize = 100_000;
pub(super) const MAX_REFUNDS: usize = 100_000;

pub(super) const REFUND_PENDING: &str = "pending";
pub(super) const REFUND_SUCCEEDED: &str = "succeeded";
pub(super) const REFUND_FAILED: &str = "failed";
pub(super) const REFUND_FAILURE_CODE: &str = "sandbox_refund_failed";

/// How a pending refund will end, decided when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefundOutcome {
    Succeed,
    Fail,
}

/// A refund that left `pending`, with the object its event carries.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CompletedRefund {
    pub outcome: RefundOutcome,
    pub refund: Value,
}

#[derive(Debug)]
struct ChargeRecord {
    charge: Charge,
    /// The request that created it: an identical request returns this charge again.
    request: CreateChargeRequest,
    refund_ids: Vec<String>,
}

#[derive(Debug)]
struct RefundRecord {
    refund: Refund,
    outcome: RefundOutcome,
}

/// Invariant: a charge's `amount_refunded` plus its pending refunds never exceeds its amount.
#[derive(Debug, Default)]
pub(super) struct Store {
    charges: HashMap<String, ChargeRecord>,
    charge_ids_by_order_no: HashMap<String, String>,
    refunds: HashMap<String, RefundRecord>,
}

fn charge_not_found(id: &str) -> SandboxError {
    SandboxError::NotFound {
        kind: "charge",
        id: id.to_owned(),
    }
}

fn render_refund(refund: &Refund) -> Result<Value, SandboxError> {
    let mut value = serde_json::to_value(refund).map_err(SandboxError::internal)?;
    if let Value::Object(map) = &mut value {
        map.insert("livemode".to_owned(), Value::Bool(false));
        map.insert(
            "succeed".to_owned(),
            Value::Bool(refund.status == REFUND_SUCCEEDED),
        );
    }
    Ok(value)
}

impl Store {
    /// Creates a charge, or returns the charge an identical earlier request created.
    /// `credential_base` is the URL the charge's page lives under (`.../sandbox/charges`).
    pub(super) fn create_charge(
        &mut self,
        request: CreateChargeRequest,
        now: i64,
        credential_base: &str,
    ) -> Result<Value, SandboxError> {
        validation::check_charge(&request, now)?;
        if let Some(existing) = self.charge_ids_by_order_no.get(&request.order_no) {
            let existing = existing.clone();
            let same = self
                .charges
                .get(&existing)
                .is_some_and(|record| record.request == request);
            if !same {
                return Err(SandboxError::invalid(
                    Some("order_no"),
                    format!(
                        "order_no {} was already used with different parameters",
                        request.order_no
                    ),
                ));
            }
            return self.charge(&existing);
        }
        if self.charges.len() >= MAX_CHARGES {
            return Err(SandboxError::Full {
                kind: "charges",
                limit: MAX_CHARGES,
            });
        }
        let id = random::charge_id();
        let mut credential = serde_json::Map::new();
        credential.insert("object".to_owned(), json!("credential"));
        credential.insert(
            request.channel.clone(),
            json!(format!("{credential_base}/{id}")),
        );
        let charge = Charge {
            id: id.clone(),
            object: "charge".to_owned(),
            created: now,
            livemode: false,
            paid: false,
            refunded: false,
            app: json!(request.app.id),
            channel: request.channel.clone(),
            order_no: request.order_no.clone(),
            amount: request.amount,
            currency: request.currency.clone(),
            subject: request.subject.clone(),
            body: request.body.clone(),
            time_paid: None,
            time_expire: request.time_expire,
            transaction_no: None,
            amount_refunded: 0,
            failure_code: None,
            failure_msg: None,
            metadata: Value::Object(request.metadata.clone()),
            credential: Value::Object(credential),
        };
        self.charge_ids_by_order_no
            .insert(request.order_no.clone(), id.clone());
        self.charges.insert(
            id.clone(),
            ChargeRecord {
                charge,
                request,
                refund_ids: Vec::new(),
            },
        );
        self.charge(&id)
    }

    /// The charge as Ping++ renders it, refunds included.
    pub(super) fn charge(&self, id: &str) -> Result<Value, SandboxError> {
        let record = self.charges.get(id).ok_or_else(|| charge_not_found(id))?;
        let mut value = serde_json::to_value(&record.charge).map_err(SandboxError::internal)?;
        let refunds = record
            .refund_ids
            .iter()
            .filter_map(|refund_id| self.refunds.get(refund_id))
            .map(|refund| render_refund(&refund.refund))
            .collect::<Result<Vec<_>, _>>()?;
        if let Value::Object(map) = &mut value {
            map.insert("amount_settle".to_owned(), json!(record.charge.amount));
            map.insert("client_ip".to_owned(), json!(record.request.client_ip));
            map.insert(
                "extra".to_owned(),
                Value::Object(record.request.extra.clone()),
            );
            map.insert(
                "refunds".to_owned(),
                json!({
                    "object": "list",
                    "url": format!("/v1/charges/{id}/refunds"),
                    "has_more": false,
                    "data": refunds,
                }),
            );
        }
        Ok(value)
    }

    /// The charge created for a merchant order number, if any.
    pub(super) fn charge_id_for_order_no(&self, order_no: &str) -> Option<String> {
        self.charge_ids_by_order_no.get(order_no).cloned()
    }

    /// The charge's typed fields (for the customer's page).
    pub(super) fn charge_fields(&self, id: &str) -> Result<Charge, SandboxError> {
        self.charges
            .get(id)
            .map(|record| record.charge.clone())
            .ok_or_else(|| charge_not_found(id))
    }

    /// The customer pays: the charge becomes paid now. Refused when already paid, and after
    /// `time_expire` unless `late`.
    pub(super) fn pay(&mut self, id: &str, now: i64, late: bool) -> Result<Value, SandboxError> {
        let record = self
            .charges
            .get_mut(id)
            .ok_or_else(|| charge_not_found(id))?;
        let charge = &mut record.charge;
        if charge.paid {
            return Err(SandboxError::AlreadyPaid {
                charge_id: id.to_owned(),
            });
        }
        if let Some(expired_at) = charge.time_expire.filter(|at| *at <= now) {
            if !late {
                return Err(SandboxError::Expired {
                    charge_id: id.to_owned(),
                    expired_at,
                });
            }
        }
        charge.paid = true;
        charge.time_paid = Some(now);
        charge.transaction_no = Some(random::transaction_no());
        self.charge(id)
    }

    /// Opens a pending refund on a paid charge; `amount` defaults to all that is left.
    pub(super) fn create_refund(
        &mut self,
        charge_id: &str,
        request: CreateRefundRequest,
        now: i64,
        outcome: RefundOutcome,
    ) -> Result<Value, SandboxError> {
        validation::check_refund(&request)?;
        let record = self
            .charges
            .get(charge_id)
            .ok_or_else(|| charge_not_found(charge_id))?;
        if !record.charge.paid {
            return Err(SandboxError::invalid(
                None,
                format!("charge {charge_id} is not paid: only paid charges can be refunded"),
            ));
        }
        if self.refunds.len() >= MAX_REFUNDS {
            return Err(SandboxError::Full {
                kind: "refunds",
                limit: MAX_REFUNDS,
            });
        }
        let pending: i64 = record
            .refund_ids
            .iter()
            .filter_map(|refund_id| self.refunds.get(refund_id))
            .filter(|refund| refund.refund.status == REFUND_PENDING)
            .map(|refund| refund.refund.amount)
            .sum();
        let refundable = record
            .charge
            .amount
            .saturating_sub(record.charge.amount_refunded)
            .saturating_sub(pending);
        if refundable <= 0 {
            return Err(SandboxError::invalid(
                Some("amount"),
                format!("charge {charge_id} has nothing left to refund"),
            ));
        }
        let amount = request.amount.unwrap_or(refundable);
        if amount > refundable {
            return Err(SandboxError::invalid(
                Some("amount"),
                format!("amount {amount} exceeds the {refundable} fen left to refund"),
            ));
        }
        let refund = Refund {
            id: random::refund_id(),
            object: "refund".to_owned(),
            amount,
            status: REFUND_PENDING.to_owned(),
            charge: charge_id.to_owned(),
            charge_order_no: Some(record.charge.order_no.clone()),
            description: request.description,
            time_succeed: None,
            failure_code: None,
            failure_msg: None,
            transaction_no: None,
            metadata: Value::Object(request.metadata),
            created: now,
        };
        let rendered = render_refund(&refund)?;
        let refund_id = refund.id.clone();
        self.refunds
            .insert(refund_id.clone(), RefundRecord { refund, outcome });
        if let Some(record) = self.charges.get_mut(charge_id) {
            record.refund_ids.push(refund_id);
        }
        Ok(rendered)
    }

    /// Ends a pending refund as decided at its creation; None when it already ended.
    pub(super) fn complete_refund(&mut self, refund_id: &str, now: i64) -> Option<CompletedRefund> {
        let record = self.refunds.get_mut(refund_id)?;
        let refund = &mut record.refund;
        if refund.status != REFUND_PENDING {
            return None;
        }
        match record.outcome {
            RefundOutcome::Succeed => {
                let charge = &mut self.charges.get_mut(&refund.charge)?.charge;
                charge.amount_refunded = charge.amount_refunded.saturating_add(refund.amount);
                charge.refunded = charge.amount_refunded >= charge.amount;
                debug_assert!(charge.amount_refunded <= charge.amount);
                refund.status = REFUND_SUCCEEDED.to_owned();
                refund.time_succeed = Some(now);
                refund.transaction_no = Some(random::transaction_no());
            }
            RefundOutcome::Fail => {
                refund.status = REFUND_FAILED.to_owned();
                refund.failure_code = Some(REFUND_FAILURE_CODE.to_owned());
                refund.failure_msg = Some("the sandbox was told to fail this refund".to_owned());
            }
        }
        let outcome = record.outcome;
        render_refund(&record.refund)
            .ok()
            .map(|refund| CompletedRefund { outcome, refund })
    }

    /// The charge a refund belongs to.
    pub(super) fn refunds_charge(&self, refund_id: &str) -> Option<String> {
        self.refunds
            .get(refund_id)
            .map(|record| record.refund.charge.clone())
    }

    /// A page of the charge's refunds as Ping++ lists them: newest first, at most `limit`,
    /// starting after the refund `starting_after`, with `has_more` when older ones follow.
    pub(super) fn refund_list(
        &self,
        charge_id: &str,
        limit: usize,
        starting_after: Option<&str>,
    ) -> Result<Value, SandboxError> {
        let record = self
            .charges
            .get(charge_id)
            .ok_or_else(|| charge_not_found(charge_id))?;
        let newest_first: Vec<&String> = record.refund_ids.iter().rev().collect();
        let start = match starting_after {
            None => 0,
            Some(after) => newest_first
                .iter()
                .position(|id| id.as_str() == after)
                .map(|index| index.saturating_add(1))
                .ok_or_else(|| SandboxError::NotFound {
                    kind: "refund",
                    id: after.to_owned(),
                })?,
        };
        let page = newest_first
            .iter()
            .skip(start)
            .take(limit)
            .filter_map(|refund_id| self.refunds.get(refund_id.as_str()))
            .map(|refund| render_refund(&refund.refund))
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = start.saturating_add(page.len()) < newest_first.len();
        Ok(json!({
            "object": "list",
            "url": format!("/v1/charges/{charge_id}/refunds"),
            "has_more": has_more,
            "data": page,
        }))
    }

    /// A refund of this charge.
    pub(super) fn refund(&self, charge_id: &str, refund_id: &str) -> Result<Value, SandboxError> {
        let record = self
            .refunds
            .get(refund_id)
            .filter(|record| record.refund.charge == charge_id)
            .ok_or_else(|| SandboxError::NotFound {
                kind: "refund",
                id: refund_id.to_owned(),
            })?;
        render_refund(&record.refund)
    }
}
