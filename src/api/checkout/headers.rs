//! The headers every checkout page carries: a strict Content-Security-Policy (scripts,
//! styles, images and calls from this origin only; no inline script), no referrer (the path
//! holds the link's secret), no caching, no type sniffing.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};

use crate::checkout::CheckoutSettings;

/// The page's policy; framing is allowed to this origin and the merchant origins redirects
/// may go to, so `embed.js` can open the page in a modal on the merchant's site.
pub fn content_security_policy(settings: &CheckoutSettings) -> String {
    let mut ancestors = String::from("'self'");
    for origin in &settings.allowed_redirects {
        ancestors.push(' ');
        ancestors.push_str(origin.as_str());
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors {ancestors}"
    )
}

pub fn page_headers(settings: &CheckoutSettings) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Origins are parsed to plain ASCII, so this never fails; fall back to the strictest.
    let policy = HeaderValue::from_str(&content_security_policy(settings))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    headers.insert(CONTENT_SECURITY_POLICY, policy);
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::checkout::origin::Origin;

    #[test]
    fn the_policy_allows_no_inline_script_and_frames_only_on_allowed_origins() {
        let settings = CheckoutSettings {
            allowed_redirects: vec![Origin::parse("https://shop.example").unwrap()],
            ..CheckoutSettings::default()
        };
        let policy = content_security_policy(&settings);
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(
            policy.ends_with("frame-ancestors 'self' https://shop.example"),
            "{policy}"
        );
    }
}
