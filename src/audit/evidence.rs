//! Gateway evidence, checked by `payledger verify`: every money event that comes from a
//! gateway must rest on evidence kept with it, the evidence must verify again with a
//! configured gateway key, and it must name the same order, charge (or refund) and amount.

use aggregates::{Money, OrderEvent};
use gateways::answer::AnswerFacts;
use gateways::wechatpay::notify::KeptCallback;
use gateways::wechatpay::platform::PlatformKeys;
use gateways::wechatpay::resource::ApiV3Key;
use gateways::{
    answer_protocols, ChargeState, GatewayEvent, RefundFacts, RefundState, WebhookHeaders,
};
use projections::chain::ChainedRow;
use projections::log::StoredEvent;
use projections::LedgerEvent;
use rsa::RsaPublicKey;
use sqlx::{AnyPool, Row};

use super::verify::{PageCheck, Problem, ProblemKind, VerifyError};
use crate::ledger::settle::{answered_refund_event_id_of, SUMMARY_PROTOCOL};

/// Event types that record money the gateway reported moving (or a refund it settled).
pub const GATEWAY_MONEY_EVENTS: [&str; 6] = [
    "PaymentConfirmed",
    "PaymentAmountMismatch",
    "LatePaymentReceived",
    "DuplicatePaymentReceived",
    "Refunded",
    "RefundFailed",
];

/// One kept piece of evidence.
struct Kept {
    event_id: String,
    protocol: String,
    body: Vec<u8>,
    signature_headers: String,
    key_fingerprint: Option<String>,
    first_position: i64,
    last_position: i64,
}

/// Checks the evidence of each page's gateway money events.
pub struct EvidenceCheck {
    keys: Vec<(String, RsaPublicKey)>,
    since: Option<i64>,
    /// Evidence verified again with a configured key.
    pub reverified: u64,
    /// Signed gateway answers (Alipay, WeChat Pay), to the reconciler's queries or to a refund
    /// request that finished the refund, verified again with a configured key, their facts
    /// compared.
    pub answers_reverified: u64,
    /// Evidence nobody signed (Ping++'s answers, and the summaries earlier versions wrote of
    /// a refund finished in the answer to its request): its facts were compared, no signature
    /// could be.
    pub unsigned: u64,
    /// Signed evidence of a protocol whose signature this build does not check again yet.
    pub not_reverified: u64,
    /// WeChat Pay callbacks verified again whose amount could not be compared: their facts are
    /// sealed with the APIv3 key, which was not given.
    pub amounts_not_compared: u64,
    /// Opens WeChat Pay callbacks (`WECHATPAY_APIV3_KEY`, the server's own setting).
    wechatpay_api_v3_key: Option<ApiV3Key>,
}

impl EvidenceCheck {
    /// Re-verifies with `keys` (the configured gateway public keys).
    pub fn new(keys: Vec<RsaPublicKey>) -> Self {
        let keys = keys
            .into_iter()
            .filter_map(|key| {
                gateways::keys::fingerprint(&key)
                    .ok()
                    .map(|fingerprint| (fingerprint, key))
            })
            .collect();
        Self {
            keys,
            since: None,
            reverified: 0,
            answers_reverified: 0,
            unsigned: 0,
            not_reverified: 0,
            amounts_not_compared: 0,
            wechatpay_api_v3_key: None,
        }
    }

    /// Opens WeChat Pay callbacks with `key`, so their facts are compared too.
    pub fn with_wechatpay_api_v3_key(mut self, key: ApiV3Key) -> Self {
        self.wechatpay_api_v3_key = Some(key);
        self
    }

    async fn since(&mut self, pool: &AnyPool) -> Result<i64, VerifyError> {
        if let Some(since) = self.since {
            return Ok(since);
        }
        let row = sqlx::query("SELECT after_position FROM gateway_evidence_since")
            .fetch_optional(pool)
            .await?;
        let since = match row {
            Some(row) => row.try_get("after_position")?,
            None => 0,
        };
        self.since = Some(since);
        Ok(since)
    }

    /// What is wrong with `kept` as the evidence of `event` (None: it vouches for it).
    fn judge(&mut self, kept: &Kept, aggregate_id: &str, event: &OrderEvent) -> Option<String> {
        // Written by earlier versions only; still read so their logs verify.
        if kept.protocol == SUMMARY_PROTOCOL {
            self.unsigned += 1;
            return summary_disagrees(&kept.body, aggregate_id, event);
        }
        if answer_protocols::ALL.contains(&kept.protocol.as_str()) {
            return self.judge_answer(kept, aggregate_id, event);
        }
        let Some(fingerprint) = &kept.key_fingerprint else {
            return Some(format!(
                "{} evidence without the fingerprint of the key that verified it",
                kept.protocol
            ));
        };
        let Some((_, key)) = self.keys.iter().find(|(known, _)| known == fingerprint) else {
            return Some(format!(
                "no configured gateway key has fingerprint {fingerprint}, so it cannot be verified again"
            ));
        };
        let headers = kept.headers();
        let said = match kept.protocol.as_str() {
            "pingpp" => gateways::pingpp::webhook::verify_and_parse(key, &headers, &kept.body),
            // The signature is inside the form; our app id was checked when it arrived, so
            // the notification is read with its own.
            "alipay" => gateways::alipay::notify::verify(key, &kept.body).and_then(|params| {
                let app_id = params.get("app_id").cloned().unwrap_or_default();
                gateways::alipay::notify::event_from_params(&params, &app_id)
                    .map_err(gateways::WebhookRejection::Malformed)
            }),
            "wechatpay" => match self.wechatpay_callback(key, &headers, &kept.body) {
                Ok(KeptCallback::Opened(said)) => Ok(said),
                Ok(KeptCallback::Sealed { event_id }) => {
                    self.reverified += 1;
                    self.amounts_not_compared += 1;
                    return (event_id.as_str() != kept.event_id).then(|| {
                        format!(
                            "the kept webhook is event {event_id}, the evidence row says {}",
                            kept.event_id
                        )
                    });
                }
                Err(rejection) => Err(rejection),
            },
            _ => {
                self.not_reverified += 1;
                return None;
            }
        };
        let said = match said {
            Ok(said) => said,
            Err(rejection) => {
                return Some(format!(
                    "the kept webhook does not verify again ({})",
                    rejection.code()
                ))
            }
        };
        self.reverified += 1;
        if said.event_id().as_str() != kept.event_id {
            return Some(format!(
                "the kept webhook is event {}, the evidence row says {}",
                said.event_id(),
                kept.event_id
            ));
        }
        webhook_disagrees(&said, aggregate_id, event)
    }
}

impl Kept {
    /// The signature headers as kept.
    fn headers(&self) -> WebhookHeaders {
        let pairs: Vec<(String, String)> =
            serde_json::from_str(&self.signature_headers).unwrap_or_default();
        pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes().to_vec()))
            .collect()
    }
}

impl EvidenceCheck {
    /// A gateway's answer to a query or a refund request: verified again with the key that
    /// verified it when the gateway signs its answers, then read, and compared with the event.
    fn judge_answer(
        &mut self,
        kept: &Kept,
        aggregate_id: &str,
        event: &OrderEvent,
    ) -> Option<String> {
        let signed = gateways::answer::is_signed(&kept.protocol);
        let key = match (&kept.key_fingerprint, signed) {
            (Some(fingerprint), true) => {
                match self.keys.iter().find(|(known, _)| known == fingerprint) {
                    Some((_, key)) => Some(key),
                    None => {
                        return Some(format!(
                            "no configured gateway key has fingerprint {fingerprint}, so the \
                             gateway's answer cannot be verified again"
                        ))
                    }
                }
            }
            (None, true) => {
                return Some(format!(
                    "a {} answer without the fingerprint of the key that verified it",
                    kept.protocol
                ))
            }
            (_, false) => None,
        };
        let facts = match gateways::answer::reread(&kept.protocol, key, &kept.headers(), &kept.body)
        {
            Ok(facts) => facts,
            Err(error) => {
                return Some(format!(
                    "the kept gateway answer does not verify or read again ({error})"
                ))
            }
        };
        if signed {
            self.answers_reverified += 1;
        } else {
            self.unsigned += 1;
        }
        answer_disagrees(&facts, &kept.event_id, aggregate_id, event)
    }

    /// A kept WeChat Pay callback checked again with the platform key that verified it, under
    /// the serial it names, and opened when the APIv3 key was given.
    fn wechatpay_callback(
        &self,
        key: &RsaPublicKey,
        headers: &WebhookHeaders,
        body: &[u8],
    ) -> Result<KeptCallback, gateways::WebhookRejection> {
        let serial = headers
            .get(gateways::wechatpay::sign::SERIAL_HEADER)
            .and_then(|serial| std::str::from_utf8(serial).ok())
            .unwrap_or_default();
        let platform = PlatformKeys::new().with(serial, key.clone());
        gateways::wechatpay::notify::verify_kept(
            &platform,
            self.wechatpay_api_v3_key.as_ref().map(ApiV3Key::as_bytes),
            headers,
            body,
        )
    }
}

impl PageCheck for EvidenceCheck {
    async fn check(
        &mut self,
        pool: &AnyPool,
        page: &[ChainedRow],
        report: &mut Vec<Problem>,
    ) -> Result<(), VerifyError> {
        let since = self.since(pool).await?;
        let money: Vec<&ChainedRow> = page
            .iter()
            .filter(|row| row.raw.position > since && needs_evidence(row))
            .collect();
        let (Some(first), Some(last)) = (money.first(), money.last()) else {
            return Ok(());
        };
        let kept = read_kept(pool, first.raw.position, last.raw.position).await?;
        for row in money {
            let position = row.raw.position;
            let Some(evidence) = kept
                .iter()
                .find(|kept| kept.first_position <= position && position <= kept.last_position)
            else {
                report.push(Problem {
                    position,
                    kind: ProblemKind::MissingEvidence {
                        event_type: row.raw.event_type.clone(),
                    },
                });
                continue;
            };
            let decoded = StoredEvent::decode(row.raw.clone())?;
            let LedgerEvent::Order(event) = &decoded.event else {
                continue;
            };
            if let Some(detail) = self.judge(evidence, &row.raw.aggregate_id, event) {
                report.push(Problem {
                    position,
                    kind: ProblemKind::BadEvidence { detail },
                });
            }
        }
        Ok(())
    }
}

/// Gateway money events need evidence; a `RefundFailed` without a gateway event id released a
/// refund the gateway refused at once (no money moved, nothing was received to keep).
fn needs_evidence(row: &ChainedRow) -> bool {
    let event_type = row.raw.event_type.as_str();
    if !GATEWAY_MONEY_EVENTS.contains(&event_type) || row.raw.aggregate_type != "order" {
        return false;
    }
    if event_type == "RefundFailed" {
        return row.raw.payload[event_type]["gateway_event_id"].is_string();
    }
    true
}

async fn read_kept(pool: &AnyPool, from: i64, to: i64) -> Result<Vec<Kept>, VerifyError> {
    let rows = sqlx::query(
        "SELECT event_id, protocol, body, signature_headers, key_fingerprint, first_position, \
         last_position FROM gateway_evidence WHERE first_position <= $2 AND last_position >= $1 \
         ORDER BY first_position",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        kept.push(Kept {
            event_id: row.try_get("event_id")?,
            protocol: row.try_get("protocol")?,
            body: row.try_get("body")?,
            signature_headers: row.try_get("signature_headers")?,
            key_fingerprint: row.try_get("key_fingerprint")?,
            first_position: row.try_get("first_position")?,
            last_position: row.try_get("last_position")?,
        });
    }
    Ok(kept)
}

/// The charge and amount an order money event records, or the refund and amount.
enum Claimed<'a> {
    Charge {
        charge_id: &'a str,
        amount: &'a Money,
    },
    Refund {
        refund_id: String,
        amount: Option<&'a Money>,
    },
}

fn claimed(event: &OrderEvent) -> Option<Claimed<'_>> {
    Some(match event {
        OrderEvent::PaymentConfirmed {
            charge_id, amount, ..
        }
        | OrderEvent::LatePaymentReceived {
            charge_id, amount, ..
        }
        | OrderEvent::DuplicatePaymentReceived {
            charge_id, amount, ..
        }
        | OrderEvent::PaymentAmountMismatch {
            charge_id,
            received: amount,
            ..
        } => Claimed::Charge {
            charge_id: charge_id.as_str(),
            amount,
        },
        OrderEvent::Refunded {
            refund_id, amount, ..
        } => Claimed::Refund {
            refund_id: refund_id.to_string(),
            amount: Some(amount),
        },
        OrderEvent::RefundFailed { refund_id, .. } => Claimed::Refund {
            refund_id: refund_id.to_string(),
            amount: None,
        },
        _ => return None,
    })
}

/// Where a verified webhook disagrees with the event it is the evidence of.
fn webhook_disagrees(said: &GatewayEvent, order_id: &str, event: &OrderEvent) -> Option<String> {
    match (said, claimed(event)?) {
        (GatewayEvent::ChargeSucceeded { charge, .. }, Claimed::Charge { charge_id, amount }) => {
            charge_disagrees(charge, order_id, charge_id, amount)
        }
        (
            GatewayEvent::RefundSucceeded { refund, .. }
            | GatewayEvent::RefundFailed { refund, .. },
            Claimed::Refund { refund_id, amount },
        ) => refund_disagrees(refund, &refund_id, amount),
        (said, _) => Some(format!(
            "the gateway event is a {}, which does not record this",
            said.event_type()
        )),
    }
}

/// Where a gateway's answer disagrees with the event it is the evidence of (kept under
/// `kept_event_id`).
fn answer_disagrees(
    said: &AnswerFacts,
    kept_event_id: &str,
    order_id: &str,
    event: &OrderEvent,
) -> Option<String> {
    match (said, claimed(event)?) {
        (AnswerFacts::Charge(charge), Claimed::Charge { charge_id, amount }) => {
            if !charge.paid {
                return Some(format!(
                    "the gateway's answer says charge {} is not paid",
                    charge.charge_id
                ));
            }
            charge_disagrees(charge, order_id, charge_id, amount)
        }
        (AnswerFacts::Refund { state, facts }, Claimed::Refund { refund_id, amount }) => {
            // A refund recorded done needs an answer saying so; one recorded failed, a failure.
            let expected = if amount.is_some() {
                RefundState::Succeeded
            } else {
                RefundState::Failed
            };
            if *state != expected {
                return Some(format!(
                    "the gateway's answer says refund {} is {state:?}, the event {expected:?}",
                    facts.gateway_refund_id
                ));
            }
            refund_disagrees(facts, &refund_id, amount)
        }
        (
            AnswerFacts::TradeRefunded {
                order_no,
                refunded_total,
                ..
            },
            Claimed::Refund { amount, .. },
        ) => trade_refund_disagrees(
            order_no,
            refunded_total,
            kept_event_id,
            order_id,
            event,
            amount,
        ),
        (AnswerFacts::Charge(_), Claimed::Refund { .. }) => {
            Some("the gateway's answer is about a charge, the event a refund".to_owned())
        }
        (
            AnswerFacts::Refund { .. } | AnswerFacts::TradeRefunded { .. },
            Claimed::Charge { .. },
        ) => Some("the gateway's answer is about a refund, the event a payment".to_owned()),
    }
}

/// Where Alipay's answer to a refund request disagrees with the refund an event records. The
/// answer names the trade but not the refund, so the refund is the one the evidence was kept
/// for (its event id is made from the refund id); and its `refund_fee` is the total refunded
/// on the trade so far, earlier refunds included, so the event's amount can only be checked
/// to be at most that total.
fn trade_refund_disagrees(
    order_no: &str,
    refunded_total: &Money,
    kept_event_id: &str,
    order_id: &str,
    event: &OrderEvent,
    amount: Option<&Money>,
) -> Option<String> {
    let order = gateways::order_id_from_order_no(order_no).map(|id| id.to_string());
    let refund_id = match event {
        OrderEvent::Refunded { refund_id, .. } | OrderEvent::RefundFailed { refund_id, .. } => {
            *refund_id
        }
        _ => return Some("the gateway's answer is about a refund, the event is not".to_owned()),
    };
    let kept_for = answered_refund_event_id_of(refund_id).map(|id| id.to_string());
    let Some(amount) = amount else {
        return Some(
            "the gateway's answer says the refund moved money, the event a failure".to_owned(),
        );
    };
    if order.as_deref() != Some(order_id) {
        Some(format!(
            "the gateway names order_no {order_no}, which is not order {order_id}"
        ))
    } else if kept_for.as_deref() != Some(kept_event_id) {
        Some(format!(
            "the answer was kept for {kept_event_id}, not for refund {refund_id}"
        ))
    } else if amount.currency() != refunded_total.currency()
        || amount.amount_minor() > refunded_total.amount_minor()
    {
        Some(format!(
            "the gateway says {} {} refunded on the trade in all, which does not cover the \
             event's {} {}",
            refunded_total.amount_minor(),
            refunded_total.currency().code(),
            amount.amount_minor(),
            amount.currency().code()
        ))
    } else {
        None
    }
}

/// Where the gateway's view of a charge disagrees with the payment an event records.
fn charge_disagrees(
    charge: &ChargeState,
    order_id: &str,
    charge_id: &str,
    amount: &Money,
) -> Option<String> {
    let order = gateways::order_id_from_order_no(&charge.order_no).map(|id| id.to_string());
    if order.as_deref() != Some(order_id) {
        Some(format!(
            "the gateway names order_no {}, which is not order {order_id}",
            charge.order_no
        ))
    } else if charge.charge_id.as_str() != charge_id {
        Some(format!(
            "the gateway names charge {}, the event {charge_id}",
            charge.charge_id
        ))
    } else if &charge.amount != amount {
        Some(format!(
            "the gateway says {} {}, the event {} {}",
            charge.amount.amount_minor(),
            charge.amount.currency().code(),
            amount.amount_minor(),
            amount.currency().code()
        ))
    } else {
        None
    }
}

/// Where the gateway's view of a refund disagrees with the refund an event records.
fn refund_disagrees(
    refund: &RefundFacts,
    refund_id: &str,
    amount: Option<&Money>,
) -> Option<String> {
    let said_refund = refund
        .refund_id
        .map(|id| id.to_string())
        .unwrap_or_default();
    if said_refund != refund_id {
        Some(format!(
            "the gateway names refund {said_refund}, the event {refund_id}"
        ))
    } else if amount.is_some_and(|amount| &refund.amount != amount) {
        Some(format!(
            "the gateway says {} refunded, the event another amount",
            refund.amount.amount_minor()
        ))
    } else {
        None
    }
}

/// Where the ledger's summary of a gateway's answer disagrees with the event.
fn summary_disagrees(body: &[u8], order_id: &str, event: &OrderEvent) -> Option<String> {
    let Ok(summary) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some("the kept summary is not JSON".to_owned());
    };
    let amount_minor = summary["amount"].as_i64();
    match claimed(event)? {
        Claimed::Charge { charge_id, amount } => {
            if summary["order_id"].as_str() != Some(order_id)
                || summary["id"].as_str() != Some(charge_id)
                || amount_minor != Some(amount.amount_minor())
            {
                Some("the kept summary names another order, charge or amount".to_owned())
            } else {
                None
            }
        }
        Claimed::Refund { refund_id, amount } => {
            if summary["refund_id"].as_str() != Some(refund_id.as_str())
                || amount.is_some_and(|amount| amount_minor != Some(amount.amount_minor()))
            {
                Some("the kept summary names another refund or amount".to_owned())
            } else {
                None
            }
        }
    }
}
