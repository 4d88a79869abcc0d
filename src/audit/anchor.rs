//! Anchors: the log's head (position and hash) saved somewhere the database role cannot
//! rewrite, so that even a log rewritten wholesale with a recomputed chain is caught.

use std::path::Path;

use projections::chain;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::verify::Anchor;

/// Largest anchor file read: a head is a few hundred bytes.
pub const ANCHOR_FILE_BYTES_MAX: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read the anchor file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the anchor file {path} is larger than {ANCHOR_FILE_BYTES_MAX} bytes")]
    TooLarge { path: String },
    #[error("the anchor file {path} is not a saved head ({reason})")]
    Malformed { path: String, reason: String },
    #[error("the anchor file {path} is not signed by the given audit key")]
    NotSigned { path: String },
}

/// How a published head is signed.
pub const HEAD_SIGNATURE_ALGORITHM: &str = "RSASSA-PKCS1-v1_5-SHA256";

/// A published head: the log's last position and its hash at an instant, signed with the
/// ledger's audit key when one is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedHead {
    pub position: i64,
    /// Lowercase hex.
    pub hash: String,
    /// When it was read (RFC 3339, UTC).
    #[serde(default)]
    #[schema(required = true)]
    pub at: String,
    #[schema(required = true)]
    pub algorithm: Option<String>,
    /// Hex SHA-256 of the signing key's public half (SubjectPublicKeyInfo DER).
    #[schema(required = true)]
    pub key_fingerprint: Option<String>,
    /// Base64 signature over [`signed_message`]; None without an audit key.
    #[schema(required = true)]
    pub signature: Option<String>,
}

/// The exact bytes a head's signature covers.
pub fn signed_message(position: i64, hash: &str, at: &str) -> Vec<u8> {
    format!("payledger.head.v1\n{position}\n{hash}\n{at}\n").into_bytes()
}

impl SignedHead {
    /// The head at `position` with `hash`, read at `at`, signed with `key` when given.
    pub fn new(
        position: i64,
        hash: &chain::Hash,
        at: chrono::DateTime<chrono::Utc>,
        key: Option<&RsaPrivateKey>,
    ) -> Self {
        let hash = chain::to_hex(hash);
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let signature =
            key.map(|key| gateways::signature::sign(key, &signed_message(position, &hash, &at)));
        Self {
            position,
            key_fingerprint: key
                .and_then(|key| gateways::keys::fingerprint(&key.to_public_key()).ok()),
            algorithm: key.map(|_| HEAD_SIGNATURE_ALGORITHM.to_owned()),
            signature,
            hash,
            at,
        }
    }

    /// True when the head is signed by `key`'s private half.
    pub fn is_signed_by(&self, key: &RsaPublicKey) -> bool {
        self.signature.as_deref().is_some_and(|signature| {
            gateways::signature::verify(
                key,
                &signed_message(self.position, &self.hash, &self.at),
                signature,
            )
            .is_ok()
        })
    }
}

/// Reads a saved head: the JSON `GET /v1/audit/head` answers (`position`, `hash` in hex). With
/// `signed_by`, the head must carry a valid signature by that key.
pub fn read_file(path: &Path, signed_by: Option<&RsaPublicKey>) -> Result<Anchor, AnchorError> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|source| AnchorError::Read {
            path: shown.clone(),
            source,
        })?
        .len();
    if size > ANCHOR_FILE_BYTES_MAX {
        return Err(AnchorError::TooLarge { path: shown });
    }
    let text = std::fs::read(path).map_err(|source| AnchorError::Read {
        path: shown.clone(),
        source,
    })?;
    let anchor = parse(&text).map_err(|reason| AnchorError::Malformed {
        path: shown.clone(),
        reason,
    })?;
    if let Some(key) = signed_by {
        let head: SignedHead =
            serde_json::from_slice(&text).map_err(|error| AnchorError::Malformed {
                path: shown.clone(),
                reason: error.to_string(),
            })?;
        if !head.is_signed_by(key) {
            return Err(AnchorError::NotSigned { path: shown });
        }
    }
    Ok(anchor)
}

/// Parses a saved head from its JSON.
pub fn parse(text: &[u8]) -> Result<Anchor, String> {
    let saved: SignedHead = serde_json::from_slice(text).map_err(|error| error.to_string())?;
    if saved.position < 1 {
        return Err(format!("position {} is not in a log", saved.position));
    }
    let hash = chain::from_hex(&saved.hash)
        .ok_or_else(|| "`hash` is not 64 hexadecimal digits".to_owned())?;
    Ok(Anchor {
        position: saved.position,
        hash,
    })
}

/// Logs the log's head every `interval`, so the log sink (outside the database) holds a
/// trail of heads an auditor can check the log against.
pub async fn log_heads(pool: sqlx::AnyPool, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let head = match pool.acquire().await {
            Ok(mut connection) => chain::head_in(&mut connection).await,
            Err(error) => Err(error.into()),
        };
        match head {
            Ok((position, hash)) => tracing::info!(
                position,
                hash = hash.as_deref().map(chain::to_hex).unwrap_or_default(),
                "ledger head"
            ),
            Err(error) => tracing::warn!(%error, "cannot read the ledger head"),
        }
    }
}
