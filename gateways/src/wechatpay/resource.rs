//! Opening a callback's `resource`: AEAD_AES_256_GCM with the APIv3 key, the resource's
//! 12-byte nonce and its associated data; the ciphertext is base64 with the 16-byte tag at
//! its end. A resource that does not open was not sealed with our key: it is refused, never
//! read.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::signature::SignatureError;

/// The only algorithm WeChat Pay uses for resources.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";
/// An APIv3 key is 32 bytes of text, set by the merchant on the merchant platform.
pub const API_V3_KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// An encrypted resource as it appears in a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
    #[serde(default)]
    pub original_type: String,
}

/// The APIv3 key. Its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiV3Key(Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an APIv3 key is exactly 32 bytes, got {0}")]
pub struct ApiV3KeyLength(pub usize);

impl ApiV3Key {
    pub fn parse(text: &str) -> Result<Self, ApiV3KeyLength> {
        match text.len() {
            API_V3_KEY_BYTES => Ok(Self(text.as_bytes().to_vec())),
            other => Err(ApiV3KeyLength(other)),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiV3Key(***)")
    }
}

/// Opens a resource. `key` is the APIv3 key; like the official Go SDK this picks the AES
/// variant from the key's length, so its published 16-byte test vectors open here too,
/// while configuration only ever admits 32-byte keys.
pub fn open(key: &[u8], resource: &EncryptedResource) -> Result<Vec<u8>, SignatureError> {
    if resource.algorithm != ALGORITHM {
        return Err(SignatureError::Unsupported);
    }
    let nonce = resource.nonce.as_bytes();
    if nonce.len() != NONCE_BYTES {
        return Err(SignatureError::Undecryptable);
    }
    let ciphertext = STANDARD
        .decode(resource.ciphertext.trim())
        .map_err(|_| SignatureError::Undecryptable)?;
    let payload = Payload {
        msg: &ciphertext,
        aad: resource.associated_data.as_bytes(),
    };
    let nonce = Nonce::from_slice(nonce);
    let opened = match key.len() {
        32 => Aes256Gcm::new_from_slice(key)
            .map_err(|_| SignatureError::Undecryptable)?
            .decrypt(nonce, payload),
        16 => Aes128Gcm::new_from_slice(key)
            .map_err(|_| SignatureError::Undecryptable)?
            .decrypt(nonce, payload),
        _ => return Err(SignatureError::Undecryptable),
    };
    opened.map_err(|_| SignatureError::Undecryptable)
}

/// Seals a plaintext the way WeChat Pay does (the sandbox's callbacks, tests).
pub fn seal(
    key: &ApiV3Key,
    nonce: &str,
    associated_data: &str,
    original_type: &str,
    plaintext: &[u8],
) -> Result<EncryptedResource, SignatureError> {
    if nonce.len() != NONCE_BYTES {
        return Err(SignatureError::Undecryptable);
    }
    let cipher =
        Aes256Gcm::new_from_slice(key.as_bytes()).map_err(|_| SignatureError::Undecryptable)?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| SignatureError::Undecryptable)?;
    Ok(EncryptedResource {
        algorithm: ALGORITHM.to_owned(),
        ciphertext: STANDARD.encode(sealed),
        associated_data: associated_data.to_owned(),
        nonce: nonce.to_owned(),
        original_type: original_type.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const BODY: &str = include_str!("../../tests/fixtures/wechatpay/body.json");
    const KEY: &str = include_str!("../../tests/fixtures/wechatpay/apiv3_key.txt");
    const PLAINTEXT: &str = include_str!("../../tests/fixtures/wechatpay/plaintext.json");

    fn published() -> EncryptedResource {
        let body: serde_json::Value = serde_json::from_str(BODY).unwrap();
        serde_json::from_value(body["resource"].clone()).unwrap()
    }

    #[test]
    fn the_published_resource_opens_to_the_published_plaintext() {
        assert_eq!(
            open(KEY.as_bytes(), &published()).unwrap(),
            PLAINTEXT.as_bytes()
        );
    }

    #[test]
    fn a_tampered_resource_or_wrong_key_does_not_open() {
        let mut tampered = published();
        tampered.associated_data = "payscorf".to_owned();
        assert_eq!(
            open(KEY.as_bytes(), &tampered),
            Err(SignatureError::Undecryptable)
        );
        assert_eq!(
            open(b"testMchAPIv3Key1", &published()),
            Err(SignatureError::Undecryptable)
        );
        let mut other = published();
        other.algorithm = "AEAD_SM4_GCM".to_owned();
        assert_eq!(
            open(KEY.as_bytes(), &other),
            Err(SignatureError::Unsupported)
        );
    }

    /// Generated, not published: a 32-byte key as the merchant platform issues them.
    #[test]
    fn a_generated_aes_256_resource_round_trips() {
        let key = ApiV3Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let sealed = seal(&key, "Kj7QIyUiYx1q", "transaction", "transaction", b"{}").unwrap();
        assert_eq!(open(key.as_bytes(), &sealed).unwrap(), b"{}");
        assert_eq!(ApiV3Key::parse(KEY), Err(ApiV3KeyLength(16)));
        assert_eq!(format!("{key:?}"), "ApiV3Key(***)");
    }
}
