//! What a gateway fact rests on: the body as received, its protocol and signature, kept
//! append-only in `gateway_evidence` with the positions of the events it led to.

use chrono::Utc;
use gateways::QueryAnswer;
use sqlx::AnyConnection;

use super::inbox::InboxRow;

/// What a gateway fact rests on, kept (append-only) with the events it leads to.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The exact bytes received.
    pub body: &'a [u8],
    /// `pingpp`, `alipay`, `wechatpay` for a verified webhook; one of
    /// [`gateways::answer_protocols`] for a gateway's answer to a query or a refund request.
    pub protocol: &'a str,
    /// The headers that carried the signature, as received.
    pub signature_headers: &'a [(String, String)],
    /// The verifying key's fingerprint; None: unsigned.
    pub key_fingerprint: Option<&'a str>,
}

/// The protocol of evidence that earlier versions wrote for a refund finished in the answer
/// to its request: a summary the ledger wrote itself, which nobody signed. Nothing writes it
/// now (the gateway's answer is kept instead); it stays so that `payledger verify` still
/// recognises the rows already kept.
pub const SUMMARY_PROTOCOL: &str = "summary";

impl<'a> Evidence<'a> {
    /// The gateway's own answer to a query or a refund request, as received: signed (with the
    /// fingerprint of the key that verified it) where the gateway signs its answers, unsigned
    /// otherwise.
    pub fn answer(answer: &'a QueryAnswer) -> Self {
        Self {
            body: &answer.body,
            protocol: answer.protocol,
            signature_headers: &answer.signature_headers,
            key_fingerprint: answer.key_fingerprint.as_deref(),
        }
    }
}

/// Keeps what the events at `first..=last` rest on.
pub(super) async fn keep_evidence(
    connection: &mut AnyConnection,
    inbox: &InboxRow<'_>,
    evidence: &Evidence<'_>,
    first: i64,
    last: i64,
) -> Result<(), sqlx::Error> {
    let headers = serde_json::to_string(evidence.signature_headers).unwrap_or_default();
    sqlx::query(
        "INSERT INTO gateway_evidence (provider, event_id, protocol, body, signature_headers, \
         key_fingerprint, first_position, last_position, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(inbox.provider)
    .bind(inbox.event.event_id().to_string())
    .bind(evidence.protocol)
    .bind(evidence.body.to_vec())
    .bind(headers)
    .bind(evidence.key_fingerprint.map(ToOwned::to_owned))
    .bind(first)
    .bind(last)
    .bind(projections::schema::timestamp(&Utc::now()))
    .execute(connection)
    .await?;
    Ok(())
}
