//! Loading RSA keys the way gateways hand them out: PEM, PKCS#1 or PKCS#8 (SubjectPublicKeyInfo
//! for public keys), sometimes with a UTF-8 byte-order mark in front.

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::{RsaPrivateKey, RsaPublicKey};

/// The key size gateways use and we generate.
pub const KEY_BITS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("not an RSA private key in PKCS#1 or PKCS#8 PEM")]
    NotAPrivateKey,
    #[error("not an RSA public key in PEM (SubjectPublicKeyInfo or PKCS#1)")]
    NotAPublicKey,
    #[error("generating an RSA key failed: {0}")]
    Generate(String),
}

fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text).trim()
}

/// Parses a private key in PKCS#8 or PKCS#1 PEM.
pub fn private_key_from_pem(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    let pem = without_bom(pem);
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| KeyError::NotAPrivateKey)
}

/// Parses a public key in SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or PKCS#1 PEM.
pub fn public_key_from_pem(pem: &str) -> Result<RsaPublicKey, KeyError> {
    let pem = without_bom(pem);
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| KeyError::NotAPublicKey)
}

fn read(path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|error| KeyError::Unreadable {
        path: path.display().to_string(),
        reason: error.kind().to_string(),
    })
}

pub fn private_key_from_file(path: &std::path::Path) -> Result<RsaPrivateKey, KeyError> {
    private_key_from_pem(&read(path)?)
}

pub fn public_key_from_file(path: &std::path::Path) -> Result<RsaPublicKey, KeyError> {
    public_key_from_pem(&read(path)?)
}

/// A fresh key pair (the sandbox's signing key, test keys).
pub fn generate() -> Result<RsaPrivateKey, KeyError> {
    let mut rng = rsa::rand_core::OsRng;
    RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|error| KeyError::Generate(error.to_string()))
}

/// PKCS#8 PEM of a private key.
pub fn private_key_to_pem(key: &RsaPrivateKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|error| KeyError::Generate(error.to_string()))
}

/// SubjectPublicKeyInfo PEM of a public key, as Ping++ publishes its own.
pub fn public_key_to_pem(key: &RsaPublicKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|error| KeyError::Generate(error.to_string()))
}
