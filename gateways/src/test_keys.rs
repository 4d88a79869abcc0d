//! RSA keys shared by every test module, because generating keys is slow: one for the
//! merchant (signs requests) and one for the gateway (signs answers and notifications).

#![allow(clippy::expect_used)]

use std::sync::OnceLock;

use rsa::RsaPrivateKey;

pub(crate) fn merchant() -> &'static RsaPrivateKey {
    crate::pingpp::webhook::shared_test_key()
}

pub(crate) fn gateway() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| crate::keys::generate().expect("a test key"))
}
