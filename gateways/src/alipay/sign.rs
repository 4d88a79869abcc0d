//! What Alipay signs: parameters sorted by name and joined as `name=value` with `&`, the
//! values as they are (never URL-encoded), then RSA2 over the UTF-8 bytes.

use std::collections::BTreeMap;

use rsa::RsaPrivateKey;

use crate::signature;

/// The parameter carrying the signature; never signed itself.
pub const SIGN: &str = "sign";
/// The parameter naming the signature algorithm; signed in requests, not in trade notifications.
pub const SIGN_TYPE: &str = "sign_type";
/// The only algorithm we sign and accept: RSA with SHA-256.
pub const RSA2: &str = "RSA2";

/// The signed text of a request: every parameter but `sign`, empty values left out, as the
/// official SDKs build it for requests.
pub fn request_content(params: &BTreeMap<String, String>) -> String {
    joined(
        params
            .iter()
            .filter(|(name, value)| name.as_str() != SIGN && !value.is_empty()),
    )
}

/// The signed text of a notification: every parameter but `sign` (and `sign_type` unless
/// `keep_sign_type`), empty values kept, as the SDKs check notifications.
pub fn notification_content(params: &BTreeMap<String, String>, keep_sign_type: bool) -> String {
    joined(params.iter().filter(|(name, _)| {
        name.as_str() != SIGN && (keep_sign_type || name.as_str() != SIGN_TYPE)
    }))
}

fn joined<'a>(params: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut content = String::new();
    for (name, value) in params {
        if !content.is_empty() {
            content.push('&');
        }
        content.push_str(name);
        content.push('=');
        content.push_str(value);
    }
    content
}

/// Adds `sign` to a request's parameters (which must already hold `sign_type`).
pub fn sign_request(key: &RsaPrivateKey, params: &mut BTreeMap<String, String>) {
    let signature = signature::sign(key, request_content(params).as_bytes());
    params.insert(SIGN.to_owned(), signature);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn requests_sign_sorted_non_empty_values_with_sign_type() {
        let params = params(&[
            ("method", "alipay.trade.query"),
            ("app_id", "2021"),
            ("sign_type", "RSA2"),
            ("sign", "old"),
            ("notify_url", ""),
        ]);
        assert_eq!(
            request_content(&params),
            "app_id=2021&method=alipay.trade.query&sign_type=RSA2"
        );
    }

    #[test]
    fn notifications_keep_empty_values_and_drop_sign_type_unless_asked() {
        let params = params(&[
            ("b", ""),
            ("a", "1 2"),
            ("sign_type", "RSA2"),
            ("sign", "x"),
        ]);
        assert_eq!(notification_content(&params, false), "a=1 2&b=");
        assert_eq!(
            notification_content(&params, true),
            "a=1 2&b=&sign_type=RSA2"
        );
    }
}
