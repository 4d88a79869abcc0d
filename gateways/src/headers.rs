//! The headers of a webhook request, as the port sees them.

/// Headers exactly as received: names lowercased, values as raw bytes, in arrival order. A
/// name may appear more than once, so a verifier can refuse a request that carries two
/// different signatures instead of silently checking only the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookHeaders {
    entries: Vec<(String, Vec<u8>)>,
}

impl WebhookHeaders {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one header line.
    pub fn push(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.entries.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Every value of `name` (case-insensitive), in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

impl<N: AsRef<str>, V: Into<Vec<u8>>> FromIterator<(N, V)> for WebhookHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (name, value) in iter {
            headers.push(name.as_ref(), value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_whatever_their_case_and_repeats_are_kept() {
        let headers: WebhookHeaders = [("X-Sig", "a"), ("x-sig", "b"), ("Other", "c")]
            .into_iter()
            .collect();
        assert_eq!(headers.get("X-SIG"), Some(&b"a"[..]));
        assert_eq!(headers.get_all("x-sig").count(), 2);
        assert_eq!(headers.get("missing"), None);
    }
}
