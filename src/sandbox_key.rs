//! The key the in-process sandbox signs with when none is configured. It is generated once and
//! kept in the data directory, like the development token secret, so that a restart signs with
//! the same key and `payledger verify` can check again what the sandbox signed. Nothing about it
//! is secret in the usual sense: the sandbox moves no money.

use std::io;
use std::path::Path;

use gateways::config::{GatewayConfig, Provider};
use gateways::keys;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::auth;

/// Name of the file in the data directory that keeps the sandbox's signing key (PEM).
pub const SANDBOX_SIGNING_KEY_FILE_NAME: &str = "sandbox_signing_key.pem";

/// The kept signing key, generated and written (owner-readable only) the first time.
pub fn load_or_create(data_dir: &Path) -> io::Result<RsaPrivateKey> {
    let pem = auth::load_or_create_private_file(data_dir, SANDBOX_SIGNING_KEY_FILE_NAME, || {
        let key = keys::generate().map_err(io::Error::other)?;
        keys::private_key_to_pem(&key)
            .map(String::into_bytes)
            .map_err(io::Error::other)
    })?;
    parse(&pem, data_dir)
}

/// The public half of the key the sandbox signs with under `config`: the configured one, else
/// the one kept in `data_dir` (None when the sandbox does not serve, or has never run there).
pub fn public_key(config: &GatewayConfig, data_dir: &Path) -> io::Result<Option<RsaPublicKey>> {
    if config.provider != Provider::Sandbox {
        return Ok(None);
    }
    if let Some(key) = &config.sandbox_private_key {
        return Ok(Some(key.to_public_key()));
    }
    match std::fs::read(data_dir.join(SANDBOX_SIGNING_KEY_FILE_NAME)) {
        Ok(pem) => parse(&pem, data_dir).map(|key| Some(key.to_public_key())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The kept key; an unreadable one is named by its file, so the operator knows what to fix.
fn parse(pem: &[u8], data_dir: &Path) -> io::Result<RsaPrivateKey> {
    let path = data_dir.join(SANDBOX_SIGNING_KEY_FILE_NAME);
    std::str::from_utf8(pem)
        .map_err(|_| "not text".to_owned())
        .and_then(|text| keys::private_key_from_pem(text).map_err(|error| error.to_string()))
        .map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {reason}", path.display()),
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_is_made_once_and_read_back_the_same() {
        let dir =
            std::env::temp_dir().join(format!("payledger-sandbox-key-{}", uuid::Uuid::new_v4()));
        let first = load_or_create(&dir).unwrap();
        let again = load_or_create(&dir).unwrap();
        assert_eq!(first, again);
        let config = GatewayConfig::from_lookup(|_| None, "http://127.0.0.1:8080").unwrap();
        assert_eq!(
            public_key(&config, &dir).unwrap(),
            Some(first.to_public_key())
        );
        let mode = std::fs::metadata(dir.join(SANDBOX_SIGNING_KEY_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
