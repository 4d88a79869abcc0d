//! The payer's address, sent to the gateway for its risk checks. A client can write any
//! `X-Forwarded-For` it likes, so the header is believed only when the connection comes from
//! a proxy the operator named (`PAYLEDGER_TRUSTED_PROXIES`); otherwise the address is the
//! connection's own.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The address of the TCP peer, put on every request by the server's accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Addresses or CIDR blocks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Block>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    network: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|&p| p <= width)?,
            None => width,
        };
        Some(Self { network, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        let (network, address, width) = match (self.network, canonical(address)) {
            (IpAddr::V4(network), IpAddr::V4(address)) => (
                u128::from(u32::from(network)),
                u128::from(u32::from(address)),
                32,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                (u128::from(network), u128::from(address), 128)
            }
            _ => return false,
        };
        let host_bits = width - u32::from(self.prefix);
        (network ^ address).checked_shr(host_bits).unwrap_or(0) == 0
    }
}

/// An IPv4 peer seen through a dual-stack socket arrives as `::ffff:a.b.c.d`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

impl TrustedProxies {
    /// A comma-separated list such as `10.0.0.0/8, 127.0.0.1, ::1`; the entries that are
    /// not addresses or blocks are returned as the error.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut blocks = Vec::new();
        let mut bad = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Block::parse(entry) {
                Some(block) => blocks.push(block),
                None => bad.push(entry.to_owned()),
            }
        }
        if bad.is_empty() {
            Ok(Self(blocks))
        } else {
            Err(bad)
        }
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(address))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case
    /// the nearest hop of `X-Forwarded-For` that is not itself a trusted proxy (hops are
    /// appended, so the ones on the right were written by our own proxies).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            for hop in text.split(',') {
                match hop.trim().parse::<IpAddr>() {
                    Ok(address) => hops.push(canonical(address)),
                    // A hop we cannot read: nothing to its left can be believed.
                    Err(_) => hops.clear(),
                }
            }
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            none.client_ip(ip("198.51.100.4"), &headers),
            ip("198.51.100.4")
        );
        let local = TrustedProxies::parse("127.0.0.1").unwrap();
        assert_eq!(
            local.client_ip(ip("198.51.100.4"), &headers),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // The client wrote a fake first hop; our proxies appended the real ones.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9", "10.1.2.3"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        // Only proxies all the way: the leftmost hop.
        let headers = forwarded(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &headers), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // Garbage to the right of a hop hides it.
        let headers = forwarded(&["203.0.113.9, junk"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn blocks_match_by_prefix_and_mapped_v4_peers_count_as_v4() {
        let proxies = TrustedProxies::parse("192.168.0.0/16, ::1, fd00::/8").unwrap();
        assert!(proxies.trusts(ip("192.168.40.2")));
        assert!(!proxies.trusts(ip("192.169.0.1")));
        assert!(proxies.trusts(ip("::ffff:192.168.1.1")));
        assert!(proxies.trusts(ip("::1")));
        assert!(proxies.trusts(ip("fd12::1")));
        assert!(!proxies.trusts(ip("fe80::1")));
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .unwrap()
            .trusts(ip("8.8.8.8")));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/33, localhost, 127.0.0.1").unwrap_err(),
            ["10.0.0.0/33", "localhost"]
        );
        assert_eq!(
            TrustedProxies::parse(" ").unwrap(),
            TrustedProxies::default()
        );
    }
}
