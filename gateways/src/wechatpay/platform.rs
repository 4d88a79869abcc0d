//! The platform's verification keys, each under the serial WeChat Pay names it by in
//! `Wechatpay-Serial`: a platform certificate's serial number, or the `PUB_KEY_ID_...` id of
//! a platform public key.

use rsa::RsaPublicKey;

use crate::keys::PublicKeyMaterial;

/// Known platform keys. A serial we do not hold is refused, never guessed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformKeys {
    keys: Vec<(String, RsaPublicKey)>,
}

impl PlatformKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under `serial` (compared without regard to case, as serials are hex).
    pub fn with(mut self, serial: &str, key: RsaPublicKey) -> Self {
        self.keys.push((serial.trim().to_owned(), key));
        self
    }

    /// Adds a loaded key under `serial`, or under its certificate's serial when `serial`
    /// is None. None when neither names it.
    pub fn with_material(self, serial: Option<&str>, material: PublicKeyMaterial) -> Option<Self> {
        let serial = serial.map(str::to_owned).or(material.certificate_serial)?;
        Some(self.with(&serial, material.key))
    }

    pub fn get(&self, serial: &str) -> Option<&RsaPublicKey> {
        self.keys
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(serial.trim()))
            .map(|(_, key)| key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
