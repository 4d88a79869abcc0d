//! The secret a checkout link carries. 256 random bits from the operating system, written
//! in URL-safe base64; only its SHA-256 digest is stored, so a copy of the database opens no
//! checkout.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// The length of a secret as text (43 base64 characters for 32 bytes).
pub const SECRET_TEXT_LENGTH: usize = 43;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomSourceFailed(String);

/// A fresh secret.
pub fn generate() -> Result<String, RandomSourceFailed> {
    let mut bytes = [0_u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|error| RandomSourceFailed(error.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `text` has the shape of a secret; anything else is refused before hashing.
pub fn well_formed(text: &str) -> bool {
    text.len() == SECRET_TEXT_LENGTH
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// What is stored and looked up: the hex SHA-256 of the secret.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn secrets_are_fresh_well_formed_and_stored_only_as_digests() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first, second);
        assert!(well_formed(&first), "{first}");
        assert_eq!(digest(&first).len(), 64);
        assert_ne!(digest(&first), first);
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}/", &first[..42])));
    }
}
