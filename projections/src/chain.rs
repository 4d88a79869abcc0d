//! The hash chain over the log: every event's hash covers the hash before it and the event's
//! canonical bytes, so changing, removing or reordering any stored event breaks every link
//! from there on, and one head hash vouches for the whole log below it.
//!
//! The canonical form is defined here once, for the writer (which links events as it appends
//! them) and for the verifier (which recomputes every link from what the database returns);
//! `docs/LEDGER_CHAIN.md` specifies it byte for byte.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::log::{LogError, RawEvent};

/// Length of a link: a SHA-256 digest.
pub const HASH_LEN: usize = 32;

/// The link before the first event.
pub const GENESIS: Hash = [0; HASH_LEN];

/// Tags the canonical form, so a future change of it cannot collide with this one.
pub const CANONICAL_TAG: &[u8] = b"payledger.event.v1";

/// Most rows linked or read in one query while building or walking the chain.
pub const CHAIN_PAGE_MAX: i64 = 10_000;

pub type Hash = [u8; HASH_LEN];

/// `SHA-256(previous || canonical_bytes(event))`.
pub fn link(previous: &Hash, event: &RawEvent) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes(event));
    hasher.finalize().into()
}

/// The event's canonical bytes: the tag, then position, aggregate type, aggregate id,
/// sequence, event type, event version, payload and metadata, each as a field. Integers are
/// 8 bytes big-endian; text is its UTF-8 bytes after a 4-byte big-endian length; the payload
/// and metadata are canonical JSON (see [`canonical_json`]) written the same way. The
/// database's `recorded_at` stamp is not covered: it is set after the writer links the row.
pub fn canonical_bytes(event: &RawEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    text_field(&mut out, CANONICAL_TAG);
    out.extend_from_slice(&event.position.to_be_bytes());
    text_field(&mut out, event.aggregate_type.as_bytes());
    text_field(&mut out, event.aggregate_id.as_bytes());
    out.extend_from_slice(&event.sequence.to_be_bytes());
    text_field(&mut out, event.event_type.as_bytes());
    text_field(&mut out, event.event_version.as_bytes());
    let mut json = Vec::with_capacity(256);
    canonical_json(&mut json, &event.payload);
    text_field(&mut out, &json);
    json.clear();
    canonical_json(&mut json, &event.metadata);
    text_field(&mut out, &json);
    out
}

fn text_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Writes `value` as canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes,
/// strings escaped as serde_json escapes them, integers in decimal, and a finite float that
/// holds an integer written as that integer (PostgreSQL's `jsonb` keeps `100` for `1e2`, and
/// the ledger writes integers only), any other number as serde_json prints it.
///
/// Both stores give back JSON that parses to the value the writer inserted (PostgreSQL
/// reorders keys and spacing in `jsonb`, SQLite keeps the text), so hashing the parsed value
/// in this form gives the same bytes on both.
pub fn canonical_json(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            let integral = number
                .as_f64()
                .filter(|_| number.is_f64())
                .filter(|float| float.is_finite() && float.fract() == 0.0)
                .and_then(|float| format!("{float:.0}").parse::<i64>().ok());
            match integral {
                Some(integer) => out.extend_from_slice(integer.to_string().as_bytes()),
                None => out.extend_from_slice(number.to_string().as_bytes()),
            }
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                canonical_json(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Usually sorted already (serde_json's map is ordered unless `preserve_order` is
            // on somewhere in the build); checking is cheaper than sorting.
            if !entries
                .windows(2)
                .all(|pair| pair[0].0.as_bytes() <= pair[1].0.as_bytes())
            {
                entries.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            }
            out.push(b'{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                canonical_json(out, item);
            }
            out.push(b'}');
        }
    }
}

/// A JSON string with serde_json's escaping, written without an intermediate copy.
fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail; a failure would only leave the string out, which the
    // pinned test and every verify would catch.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Lowercase hexadecimal, as hashes are printed.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Parses 64 hexadecimal digits.
pub fn from_hex(text: &str) -> Option<Hash> {
    let text = text.trim();
    if text.len() != HASH_LEN * 2 || !text.is_ascii() {
        return None;
    }
    let mut hash = GENESIS;
    for (index, slot) in hash.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// A stored hash as a link, when it is one (32 bytes).
pub fn as_hash(bytes: &[u8]) -> Option<Hash> {
    Hash::try_from(bytes).ok()
}

/// One row of the log as stored, with its stored link.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedRow {
    pub raw: RawEvent,
    /// The stored hash as the database holds it (None: never linked).
    pub hash: Option<Vec<u8>>,
}

const CHAINED_COLUMNS: &str =
    "SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version, \
     CAST(payload AS TEXT) AS payload, CAST(metadata AS TEXT) AS metadata, \
     CAST(recorded_at AS TEXT) AS recorded_at, hash FROM events";

/// Rows with a position above `after` (and at most `up_to`), oldest first, at most `limit`
/// (capped at [`CHAIN_PAGE_MAX`]): the payload exactly as stored, not upcast.
pub async fn read_chained(
    pool: &AnyPool,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
) -> Result<Vec<ChainedRow>, LogError> {
    let mut connection = pool.acquire().await?;
    read_chained_in(&mut connection, after, up_to, limit).await
}

/// [`read_chained`] through `connection` (e.g. inside a transaction).
pub async fn read_chained_in(
    connection: &mut AnyConnection,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
) -> Result<Vec<ChainedRow>, LogError> {
    let sql = format!(
        "{CHAINED_COLUMNS} WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(up_to.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, CHAIN_PAGE_MAX))
        .fetch_all(connection)
        .await?;
    rows.iter().map(decode_chained).collect()
}

fn decode_chained(row: &sqlx::any::AnyRow) -> Result<ChainedRow, LogError> {
    let position: i64 = row.try_get("position")?;
    let event_type: String = row.try_get("event_type")?;
    let event_version: String = row.try_get("event_version")?;
    let undecodable = |reason: String| LogError::Undecodable {
        position,
        event_type: event_type.clone(),
        event_version: event_version.clone(),
        reason,
    };
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    let payload: Value =
        serde_json::from_str(&payload).map_err(|error| undecodable(error.to_string()))?;
    let metadata: Value =
        serde_json::from_str(&metadata).map_err(|error| undecodable(error.to_string()))?;
    Ok(ChainedRow {
        raw: RawEvent {
            position,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type,
            event_version,
            payload,
            metadata,
            recorded_at: row.try_get("recorded_at")?,
        },
        hash: row.try_get("hash")?,
    })
}

/// The log's head: its last position and that row's stored hash (position 0 and
/// [`GENESIS`] when the log is empty; `None` for a row never linked).
pub async fn head_in(connection: &mut AnyConnection) -> Result<(i64, Option<Vec<u8>>), LogError> {
    let row = sqlx::query("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        .fetch_optional(connection)
        .await?;
    match row {
        None => Ok((0, Some(GENESIS.to_vec()))),
        Some(row) => Ok((row.try_get("position")?, row.try_get("hash")?)),
    }
}

/// Links the rows at the top of the log that were stored without a hash (a log written before
/// the chain existed, or rows inserted by hand), continuing from the last linked row below
/// them. Returns how many rows it linked and the head's hash. Must run inside a write
/// transaction holding the log lock (the caller's), so no writer appends meanwhile.
///
/// Only a trailing run of unlinked rows is linked: a row whose hash was removed below a
/// linked one stays unlinked, for the verifier to report.
pub async fn link_unlinked_tail(connection: &mut AnyConnection) -> Result<(u64, Hash), LogError> {
    let (head, head_hash) = head_in(&mut *connection).await?;
    if let Some(hash) = head_hash.as_deref().and_then(as_hash) {
        return Ok((0, hash));
    }
    let last_linked = sqlx::query(
        "SELECT position, hash FROM events WHERE hash IS NOT NULL ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *connection)
    .await?;
    let (mut after, mut previous) = match last_linked {
        Some(row) => {
            let position: i64 = row.try_get("position")?;
            let hash: Vec<u8> = row.try_get("hash")?;
            (position, as_hash(&hash).unwrap_or(GENESIS))
        }
        None => (0, GENESIS),
    };
    let postgres = connection.backend_name() == "PostgreSQL";
    if postgres && head - after > CHAIN_PAGE_MAX {
        // A long tail is usually a log just loaded or just migrated, whose statistics are
        // stale: without them the page reads below sort the whole range each time. (Only the
        // table's owner may analyze; for anyone else PostgreSQL skips it with a warning.)
        sqlx::query("ANALYZE events")
            .execute(&mut *connection)
            .await?;
    }
    let mut linked = 0_u64;
    while after < head {
        let page = read_chained_in(&mut *connection, after, Some(head), CHAIN_PAGE_MAX).await?;
        let Some(last) = page.last() else {
            break;
        };
        let last_position = last.raw.position;
        let mut links = Vec::with_capacity(page.len());
        for row in &page {
            previous = link(&previous, &row.raw);
            links.push((row.raw.position, previous));
        }
        for chunk in links.chunks(LINK_UPDATE_ROWS_MAX) {
            store_links(&mut *connection, postgres, chunk).await?;
        }
        linked += u64::try_from(page.len()).unwrap_or(u64::MAX);
        after = last_position;
    }
    Ok((linked, previous))
}

/// Rows whose links one UPDATE fills in (two parameters each, well under both backends'
/// parameter limits).
pub const LINK_UPDATE_ROWS_MAX: usize = 1_000;

async fn store_links(
    connection: &mut AnyConnection,
    postgres: bool,
    links: &[(i64, Hash)],
) -> Result<(), LogError> {
    let values: Vec<String> = (0..links.len())
        .map(|index| {
            let (position, hash) = (index * 2 + 1, index * 2 + 2);
            if postgres {
                format!("(CAST(${position} AS BIGINT), CAST(${hash} AS BYTEA))")
            } else {
                format!("(${position}, ${hash})")
            }
        })
        .collect();
    let sql = format!(
        "UPDATE events SET hash = v.hash FROM (SELECT column1 AS position, column2 AS hash \
         FROM (VALUES {}) AS raw) AS v WHERE events.position = v.position AND events.hash IS NULL",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (position, hash) in links {
        query = query.bind(*position).bind(hash.to_vec());
    }
    query.execute(&mut *connection).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn event(payload: Value) -> RawEvent {
        RawEvent {
            position: 7,
            aggregate_type: "order".to_owned(),
            aggregate_id: "o-1".to_owned(),
            sequence: 2,
            event_type: "PaymentConfirmed".to_owned(),
            event_version: "1.1".to_owned(),
            payload,
            metadata: json!({"source": "webhook", "actor": "gateway"}),
            recorded_at: String::new(),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let mut out = Vec::new();
        let value: Value =
            serde_json::from_str(r#"{ "b": [1, 2.0, "x\"y"], "a": {"d": null, "c": true} }"#)
                .unwrap();
        canonical_json(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"c":true,"d":null},"b":[1,2,"x\"y"]}"#
        );
    }

    #[test]
    fn key_order_and_spacing_do_not_change_the_link_but_content_does() {
        let one: Value = serde_json::from_str(r#"{"amount": 4990, "currency": "CNY"}"#).unwrap();
        let two: Value = serde_json::from_str(r#"{"currency":"CNY","amount":4990}"#).unwrap();
        let three: Value = serde_json::from_str(r#"{"currency":"CNY","amount":4991}"#).unwrap();
        assert_eq!(
            link(&GENESIS, &event(one.clone())),
            link(&GENESIS, &event(two))
        );
        assert_ne!(
            link(&GENESIS, &event(one.clone())),
            link(&GENESIS, &event(three))
        );
        let mut moved = event(one.clone());
        moved.position = 8;
        assert_ne!(link(&GENESIS, &event(one.clone())), link(&GENESIS, &moved));
        assert_ne!(
            link(&GENESIS, &event(one.clone())),
            link(&[1; HASH_LEN], &event(one))
        );
    }

    #[test]
    fn fields_are_length_prefixed_so_boundaries_cannot_shift() {
        let mut left = event(json!({}));
        left.aggregate_type = "ab".to_owned();
        left.aggregate_id = "c".to_owned();
        let mut right = event(json!({}));
        right.aggregate_type = "a".to_owned();
        right.aggregate_id = "bc".to_owned();
        assert_ne!(canonical_bytes(&left), canonical_bytes(&right));
    }

    // Computed independently from docs/LEDGER_CHAIN.md (e.g. with Python's hashlib).
    const PINNED: &str = "158800feae91baeff3264fd368b200a773e7133e5831a8c6641e96164eaa3c74";

    #[test]
    fn the_canonical_form_is_pinned() {
        // A change to the canonical form breaks every stored chain: this pins it.
        let hash = link(
            &GENESIS,
            &event(json!({"PaymentConfirmed": {"amount": 4990}})),
        );
        assert_eq!(to_hex(&hash), PINNED);
        assert_eq!(
            to_hex(&link(
                &GENESIS,
                &event(serde_json::from_str(r#"{"PaymentConfirmed":{"amount":4990.0}}"#).unwrap())
            )),
            PINNED
        );
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(from_hex("zz"), None);
    }
}
