//! Anchors: the log's head (position and hash) saved somewhere the database role cannot
//! rewrite, so that even a log rewritten wholesale with a recomputed chain is caught.

use std::path::Path;

use projections::chain;
use serde::Deserialize;

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
}

/// The fields of a saved head that the verifier needs.
#[derive(Debug, Deserialize)]
struct SavedHead {
    position: i64,
    hash: String,
}

/// Reads a saved head: the JSON `GET /v1/audit/head` answers (`position`, `hash` in hex).
pub fn read_file(path: &Path) -> Result<Anchor, AnchorError> {
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
    parse(&text).map_err(|reason| AnchorError::Malformed {
        path: shown,
        reason,
    })
}

/// Parses a saved head from its JSON.
pub fn parse(text: &[u8]) -> Result<Anchor, String> {
    let saved: SavedHead = serde_json::from_slice(text).map_err(|error| error.to_string())?;
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
