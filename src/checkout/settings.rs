//! The checkout's settings: which browser origins may call the API, where a checkout may send
//! the buyer back to, and how long a checkout link stays open.

use std::time::Duration;

use super::origin::{self, Origin};
use crate::variable::{non_empty, InvalidVariable};

/// How long a checkout link opens its page when `PAYLEDGER_CHECKOUT_SESSION_TTL_SECS` is unset.
pub const SESSION_TTL_DEFAULT: Duration = Duration::from_secs(30 * 60);
/// The longest a checkout link may be configured to live.
pub const SESSION_TTL_MAX: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSettings {
    /// Origins whose pages may call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<Origin>,
    /// Origins a checkout's `success_url` and `cancel_url` may point at; none by default,
    /// so a session without an allowed origin can name no redirect at all.
    pub allowed_redirects: Vec<Origin>,
    /// How long a checkout link opens its page.
    pub session_ttl: Duration,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            allowed_redirects: Vec::new(),
            session_ttl: SESSION_TTL_DEFAULT,
        }
    }
}

impl CheckoutSettings {
    /// `PAYLEDGER_CORS_ORIGINS`, `PAYLEDGER_CHECKOUT_ALLOWED_REDIRECTS` (comma-separated
    /// origins) and `PAYLEDGER_CHECKOUT_SESSION_TTL_SECS`; every bad one is named.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let mut problems = Vec::new();
        let mut origins = |variable: &'static str| {
            origin::parse_list(&lookup(variable).unwrap_or_default()).unwrap_or_else(|error| {
                problems.push(InvalidVariable {
                    variable,
                    reason: error.to_string(),
                });
                Vec::new()
            })
        };
        let cors_origins = origins("PAYLEDGER_CORS_ORIGINS");
        let allowed_redirects = origins("PAYLEDGER_CHECKOUT_ALLOWED_REDIRECTS");
        let session_ttl = match non_empty(&lookup, "PAYLEDGER_CHECKOUT_SESSION_TTL_SECS") {
            None => SESSION_TTL_DEFAULT,
            Some(text) => match text.trim().parse::<u64>().map(Duration::from_secs) {
                Ok(ttl) if !ttl.is_zero() && ttl <= SESSION_TTL_MAX => ttl,
                _ => {
                    problems.push(InvalidVariable {
                        variable: "PAYLEDGER_CHECKOUT_SESSION_TTL_SECS",
                        reason: format!(
                            "`{text}` is not a whole number of seconds from 1 to {}",
                            SESSION_TTL_MAX.as_secs()
                        ),
                    });
                    SESSION_TTL_DEFAULT
                }
            },
        };
        if problems.is_empty() {
            Ok(Self {
                cors_origins,
                allowed_redirects,
                session_ttl,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether a buyer may be sent to `url`: an absolute http(s) URL on an allowed origin.
    pub fn allows_redirect(&self, url: &str) -> bool {
        Origin::of_url(url).is_ok_and(|origin| self.allowed_redirects.contains(&origin))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<CheckoutSettings, Vec<InvalidVariable>> {
        CheckoutSettings::from_lookup(|name| {
            vars.iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let plain = settings(&[]).unwrap();
        assert!(plain.cors_origins.is_empty());
        assert!(!plain.allows_redirect("https://shop.example/paid"));
        assert_eq!(plain.session_ttl, SESSION_TTL_DEFAULT);
    }

    #[test]
    fn redirects_must_be_on_an_allowed_origin() {
        let shop = settings(&[(
            "PAYLEDGER_CHECKOUT_ALLOWED_REDIRECTS",
            "https://shop.example",
        )])
        .unwrap();
        assert!(shop.allows_redirect("https://shop.example/paid?x=1"));
        assert!(shop.allows_redirect("https://SHOP.example"));
        for refused in [
            "http://shop.example/paid",
            "https://shop.example.evil.example/",
            "https://shop.example@evil.example/",
            "//shop.example/paid",
            "javascript:alert(1)",
        ] {
            assert!(!shop.allows_redirect(refused), "{refused}");
        }
    }

    #[test]
    fn every_bad_variable_is_named() {
        let problems = settings(&[
            ("PAYLEDGER_CORS_ORIGINS", "shop.example"),
            (
                "PAYLEDGER_CHECKOUT_ALLOWED_REDIRECTS",
                "https://a.example/x",
            ),
            ("PAYLEDGER_CHECKOUT_SESSION_TTL_SECS", "0"),
        ])
        .unwrap_err();
        let named: Vec<&str> = problems.iter().map(|problem| problem.variable).collect();
        assert_eq!(
            named,
            [
                "PAYLEDGER_CORS_ORIGINS",
                "PAYLEDGER_CHECKOUT_ALLOWED_REDIRECTS",
                "PAYLEDGER_CHECKOUT_SESSION_TTL_SECS"
            ]
        );
    }
}
