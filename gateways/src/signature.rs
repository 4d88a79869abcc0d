//! RSASSA-PKCS1-v1_5 with SHA-256 ("RSA2", "SHA256withRSA"), base64 (standard alphabet,
//! padded): how Ping++, Alipay and WeChat Pay sign what they send and how merchants sign
//! requests. Shared so the three providers cannot drift apart.

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
    /// The signed timestamp is too far from now: a replay, or a clock far off.
    #[error("the signed timestamp is outside the accepted window")]
    Stale,
    /// A nonce already seen inside the window: the same signed request played again.
    #[error("the signed request was already received")]
    Replayed,
    /// Signed with a key (certificate serial) we were not given.
    #[error("the signature names a key we do not know")]
    UnknownKey,
    /// The signature checked out but the encrypted part does not open with our key.
    #[error("the encrypted resource does not decrypt with our key")]
    Undecryptable,
    /// A signature or encryption scheme we do not accept (RSA with SHA-1, a charset other
    /// than UTF-8, an algorithm other than AEAD_AES_256_GCM).
    #[error("the signature or encryption scheme is not one we accept")]
    Unsupported,
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
            Self::Stale => "webhook.stale",
            Self::Replayed => "webhook.replayed",
            Self::UnknownKey => "webhook.unknown_key",
            Self::Undecryptable => "webhook.undecryptable",
            Self::Unsupported => "webhook.unsupported_scheme",
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
