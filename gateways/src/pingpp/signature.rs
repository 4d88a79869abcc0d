//! RSASSA-PKCS1-v1_5 with SHA-256, base64 (standard alphabet, padded): how Ping++ signs
//! webhooks and how merchants sign requests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// Why a signature was refused. Deliberately coarse: a forger learns nothing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature is not valid base64")]
    NotBase64,
    #[error("the signature does not match the body")]
    Mismatch,
    /// More than one signature header: which one the gateway meant is a guess we do not make.
    #[error("the request carries more than one signature header")]
    Ambiguous,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "webhook.signature_missing",
            Self::NotBase64 => "webhook.signature_malformed",
            Self::Mismatch => "webhook.signature_invalid",
            Self::Ambiguous => "webhook.signature_ambiguous",
        }
    }
}

/// Signs `message` and returns the base64 signature.
pub fn sign(key: &RsaPrivateKey, message: &[u8]) -> String {
    let signing_key = SigningKey::<Sha256>::new(key.clone());
    STANDARD.encode(signing_key.sign(message).to_bytes())
}

/// Checks a base64 signature over the exact bytes of `message`.
pub fn verify(
    key: &RsaPublicKey,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), SignatureError> {
    let signature_b64 = signature_b64.trim();
    if signature_b64.is_empty() {
        return Err(SignatureError::Missing);
    }
    let bytes = STANDARD
        .decode(signature_b64)
        .map_err(|_| SignatureError::NotBase64)?;
    let signature = Signature::try_from(bytes.as_slice()).map_err(|_| SignatureError::Mismatch)?;
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(message, &signature)
        .map_err(|_| SignatureError::Mismatch)
}
