//! Web origins (`scheme://host[:port]`), as the CORS list and the redirect allow-list name
//! them. Parsed strictly, so a setting such as `https://shop.example/` or `shop.example` is
//! named at start-up rather than silently never matching.

use std::fmt;

/// The longest origin or redirect URL accepted; real ones are far shorter.
pub const URL_LENGTH_MAX: usize = 2048;

/// A lower-cased `http` or `https` origin without a path, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("`{0}` is not an http:// or https:// origin (scheme://host[:port], no path)")]
    NotAnOrigin(String),
    #[error("`{0}` is not an absolute http:// or https:// URL")]
    NotAUrl(String),
}

impl Origin {
    /// Parses `scheme://host[:port]`; a trailing slash is tolerated, a path is not.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        let trimmed = text.trim();
        let bare = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let (scheme, authority) =
            split_scheme(bare).ok_or_else(|| OriginError::NotAnOrigin(text.to_owned()))?;
        if !authority_is_plain(authority) {
            return Err(OriginError::NotAnOrigin(text.to_owned()));
        }
        Ok(Self(format!(
            "{scheme}://{}",
            authority.to_ascii_lowercase()
        )))
    }

    /// The origin of an absolute URL (`https://shop.example/paid?x=1` ->
    /// `https://shop.example`). Refuses anything a browser could read differently: user
    /// info, backslashes, control characters, whitespace, or a missing host.
    pub fn of_url(url: &str) -> Result<Self, OriginError> {
        let refuse = || OriginError::NotAUrl(url.to_owned());
        if url.len() > URL_LENGTH_MAX
            || url
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(refuse());
        }
        let (scheme, rest) = split_scheme(url).ok_or_else(refuse)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if !authority_is_plain(authority) {
            return Err(refuse());
        }
        Ok(Self(format!(
            "{scheme}://{}",
            authority.to_ascii_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

fn split_scheme(text: &str) -> Option<(&'static str, &str)> {
    let lower = text
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("https://") {
        Some(("https", &text[8..]))
    } else if lower.starts_with("http://") {
        Some(("http", &text[7..]))
    } else {
        None
    }
}

/// A host (name, IPv4 or bracketed IPv6) with an optional numeric port, nothing else.
fn authority_is_plain(authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((before, _)) if !before.ends_with(']') && before.contains(':') => (authority, None),
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = match port {
        None => true,
        Some(port) => port.parse::<u16>().is_ok(),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    port_ok && host_ok
}

/// Parses a comma-separated list of origins; blank entries are ignored.
pub fn parse_list(text: &str) -> Result<Vec<Origin>, OriginError> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(Origin::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(
            Origin::parse("HTTPS://Shop.Example:8443/")
                .unwrap()
                .as_str(),
            "https://shop.example:8443"
        );
        for bad in [
            "shop.example",
            "ftp://shop.example",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://",
            "https://shop.example:99999",
            "https://shop example",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_s_origin_ignores_its_path_but_refuses_tricks() {
        assert_eq!(
            Origin::of_url("https://shop.example/paid?order=1#top")
                .unwrap()
                .as_str(),
            "https://shop.example"
        );
        assert_eq!(
            Origin::of_url("http://127.0.0.1:3000").unwrap().as_str(),
            "http://127.0.0.1:3000"
        );
        for bad in [
            "//evil.example/",
            "javascript:alert(1)",
            "https://shop.example@evil.example/",
            "https:\\\\evil.example",
            "https://evil.example\t/",
            "/relative",
            "data:text/html,hi",
        ] {
            assert!(Origin::of_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_are_comma_separated() {
        let list = parse_list(" https://a.example, ,http://b.example:8080 ").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_list("https://a.example,nope").is_err());
        assert!(parse_list("").unwrap().is_empty());
    }
}
