//! Loading RSA keys in every form the gateways' consoles hand them out: PEM (PKCS#1, PKCS#8,
//! SubjectPublicKeyInfo), bare base64 DER without armour (Alipay's console), and X.509
//! certificates (Alipay's certificate mode, WeChat Pay's platform certificates), sometimes
//! with a UTF-8 byte-order mark in front. One loader for every provider, so a key that works
//! for one works for all.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// The key size gateways use and we generate.
pub const KEY_BITS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("not an RSA private key (PKCS#1 or PKCS#8, PEM or bare base64)")]
    NotAPrivateKey,
    #[error(
        "not an RSA public key (SubjectPublicKeyInfo or PKCS#1, PEM or bare base64) nor an \
         X.509 certificate holding one"
    )]
    NotAPublicKey,
    #[error("generating an RSA key failed: {0}")]
    Generate(String),
}

impl KeyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreadable { .. } => "key.unreadable",
            Self::NotAPrivateKey => "key.not_a_private_key",
            Self::NotAPublicKey => "key.not_a_public_key",
            Self::Generate(_) => "key.generate_failed",
        }
    }
}

/// A public key and, when it came in a certificate, that certificate's serial number as
/// WeChat Pay names it (`Wechatpay-Serial`): uppercase hex without leading zero bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyMaterial {
    pub key: RsaPublicKey,
    pub certificate_serial: Option<String>,
}

fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text).trim()
}

/// Bare base64 as consoles show it: possibly wrapped over several lines.
fn bare_base64(text: &str) -> Option<Vec<u8>> {
    if text.starts_with("-----") {
        return None;
    }
    let joined: String = text.split_whitespace().collect();
    STANDARD.decode(joined).ok()
}

/// Parses a private key: PKCS#8 or PKCS#1, in PEM or as bare base64 DER.
pub fn private_key_from_text(text: &str) -> Result<RsaPrivateKey, KeyError> {
    let text = without_bom(text);
    if let Some(der) = bare_base64(text) {
        return RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
            .map_err(|_| KeyError::NotAPrivateKey);
    }
    RsaPrivateKey::from_pkcs8_pem(text)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
        .map_err(|_| KeyError::NotAPrivateKey)
}

/// Parses a public key, or a certificate's, in any of the accepted forms.
pub fn public_key_material_from_text(text: &str) -> Result<PublicKeyMaterial, KeyError> {
    let text = without_bom(text);
    let bare = |key| PublicKeyMaterial {
        key,
        certificate_serial: None,
    };
    if let Some(der) = bare_base64(text) {
        return RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
            .map(bare)
            .or_else(|_| {
                Certificate::from_der(&der)
                    .map_err(|_| KeyError::NotAPublicKey)
                    .and_then(|certificate| from_certificate(&certificate))
            });
    }
    if let Some(body) = text.strip_prefix(CERTIFICATE_BEGIN) {
        // Read leniently: Alipay wraps its certificates at 76 columns, which strict PEM
        // (64) refuses. A chain file starts with the leaf we want.
        let body = body.split(CERTIFICATE_END).next().unwrap_or_default();
        let der = bare_base64(body.trim()).ok_or(KeyError::NotAPublicKey)?;
        let certificate = Certificate::from_der(&der).map_err(|_| KeyError::NotAPublicKey)?;
        return from_certificate(&certificate);
    }
    RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
        .map(bare)
        .map_err(|_| KeyError::NotAPublicKey)
}

const CERTIFICATE_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const CERTIFICATE_END: &str = "-----END CERTIFICATE-----";

fn from_certificate(certificate: &Certificate) -> Result<PublicKeyMaterial, KeyError> {
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| KeyError::NotAPublicKey)?;
    let key = RsaPublicKey::from_public_key_der(&spki).map_err(|_| KeyError::NotAPublicKey)?;
    Ok(PublicKeyMaterial {
        key,
        certificate_serial: Some(serial_hex(
            certificate.tbs_certificate.serial_number.as_bytes(),
        )),
    })
}

/// Uppercase hex of a DER serial number without its sign-padding zero bytes, the form
/// WeChat Pay sends in `Wechatpay-Serial`.
fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes
        .get(start..)
        .unwrap_or_default()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect()
}

/// Parses a public key in any accepted form, dropping a certificate's serial.
pub fn public_key_from_text(text: &str) -> Result<RsaPublicKey, KeyError> {
    public_key_material_from_text(text).map(|material| material.key)
}

/// Parses a private key in PKCS#8 or PKCS#1 PEM (or bare base64).
pub fn private_key_from_pem(pem: &str) -> Result<RsaPrivateKey, KeyError> {
    private_key_from_text(pem)
}

/// Parses a public key in SubjectPublicKeyInfo or PKCS#1 PEM (or any other accepted form).
pub fn public_key_from_pem(pem: &str) -> Result<RsaPublicKey, KeyError> {
    public_key_from_text(pem)
}

fn read(path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|error| KeyError::Unreadable {
        path: path.display().to_string(),
        reason: error.kind().to_string(),
    })
}

pub fn private_key_from_file(path: &std::path::Path) -> Result<RsaPrivateKey, KeyError> {
    private_key_from_text(&read(path)?)
}

pub fn public_key_from_file(path: &std::path::Path) -> Result<RsaPublicKey, KeyError> {
    public_key_from_text(&read(path)?)
}

pub fn public_key_material_from_file(
    path: &std::path::Path,
) -> Result<PublicKeyMaterial, KeyError> {
    public_key_material_from_text(&read(path)?)
}

/// A fresh key pair (the sandbox's signing keys, test keys).
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

/// SubjectPublicKeyInfo DER as bare base64 on one line, as Alipay's console shows its key.
pub fn public_key_to_bare_base64(key: &RsaPublicKey) -> Result<String, KeyError> {
    key.to_public_key_der()
        .map(|der| STANDARD.encode(der.as_bytes()))
        .map_err(|error| KeyError::Generate(error.to_string()))
}

/// The fingerprint of a public key: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER,
/// the same whatever form (PEM, bare base64, certificate) the key was read from.
pub fn fingerprint(key: &RsaPublicKey) -> Result<String, KeyError> {
    use sha2::Digest;
    let der = key
        .to_public_key_der()
        .map_err(|error| KeyError::Generate(error.to_string()))?;
    let digest = sha2::Sha256::digest(der.as_bytes());
    Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALIPAY_PEM: &str = include_str!("../tests/fixtures/alipay/response_public_key.pem");
    const ALIPAY_BARE: &str = include_str!("../tests/fixtures/alipay/response_public_key_bare.txt");
    const ALIPAY_CERTIFICATE: &str =
        include_str!("../tests/fixtures/alipay/alipay_cert_public_key_rsa2.crt");
    const WECHATPAY_CERTIFICATE: &str =
        include_str!("../tests/fixtures/wechatpay/platform_certificate.pem");

    #[test]
    fn a_bare_base64_key_equals_its_pem_form() {
        let pem = public_key_from_text(ALIPAY_PEM).unwrap();
        let bare = public_key_from_text(ALIPAY_BARE).unwrap();
        assert_eq!(pem, bare);
        let wrapped: String = ALIPAY_BARE
            .trim()
            .as_bytes()
            .chunks(64)
            .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
            .collect();
        assert_eq!(public_key_from_text(&wrapped).unwrap(), pem);
        assert_eq!(
            public_key_from_text(&format!("\u{feff}{ALIPAY_BARE}")).unwrap(),
            pem
        );
    }

    #[test]
    fn a_certificate_yields_its_key_and_serial() {
        let wechat = public_key_material_from_text(WECHATPAY_CERTIFICATE).unwrap();
        assert_eq!(
            wechat.certificate_serial.as_deref(),
            Some("D7CE59D1F522D701")
        );
        let alipay = public_key_material_from_text(ALIPAY_CERTIFICATE).unwrap();
        assert!(alipay.certificate_serial.is_some());
    }

    #[test]
    fn a_certificate_as_bare_base64_loads_too() {
        let body: String = WECHATPAY_CERTIFICATE
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let material = public_key_material_from_text(&body).unwrap();
        assert_eq!(
            material.certificate_serial.as_deref(),
            Some("D7CE59D1F522D701")
        );
    }

    #[test]
    fn private_keys_load_in_every_form() {
        let key = crate::test_keys::merchant();
        let pkcs8 = private_key_to_pem(key).unwrap();
        let pkcs1 = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(key, LineEnding::LF).unwrap();
        let bare: String = pkcs8
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        for text in [pkcs8.as_str(), pkcs1.as_str(), bare.as_str()] {
            assert_eq!(&private_key_from_text(text).unwrap(), key);
        }
        let public = public_key_to_bare_base64(&key.to_public_key()).unwrap();
        assert_eq!(public_key_from_text(&public).unwrap(), key.to_public_key());
    }

    #[test]
    fn garbage_is_no_key() {
        assert_eq!(public_key_from_text("hello"), Err(KeyError::NotAPublicKey));
        assert_eq!(
            public_key_from_text("aGVsbG8="),
            Err(KeyError::NotAPublicKey)
        );
        assert_eq!(
            private_key_from_text(ALIPAY_PEM),
            Err(KeyError::NotAPrivateKey)
        );
    }

    #[test]
    fn serials_drop_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0xD7, 0x01]), "D701");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x12, 0x00]), "1200");
    }
}
