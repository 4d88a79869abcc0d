//! Where a child server listens: a loopback port picked before it starts, so the caller
//! knows the address without reading it back from the child.

use crate::HarnessError;

/// A loopback port nobody listens on right now (the listener that found it is closed
/// again, so a child can bind it).
pub fn free_port() -> Result<u16, HarnessError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| HarnessError::Io {
            what: "cannot bind a loopback port".to_owned(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| HarnessError::Io {
        what: "cannot read the bound port".to_owned(),
        source,
    })?;
    Ok(address.port())
}

/// The base URL of a server on a loopback port, without a trailing slash.
pub fn loopback_base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}
