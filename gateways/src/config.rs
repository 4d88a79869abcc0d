//! Which payment gateway to use and with which credentials, read from the environment once at
//! start-up so a missing key or an unreadable key file stops the service before it takes an
//! order, naming every bad variable at once.

use std::path::Path;

use rsa::{RsaPrivateKey, RsaPublicKey};

use super::pingpp::client::PingppSettings;
use super::pingpp::keys::{self, KeyError};
use crate::Secret;

/// One bad setting, named so an operator can fix it; every bad one is reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct InvalidVariable {
    pub variable: &'static str,
    pub reason: String,
}

/// Ping++'s production API.
pub const PINGPP_API_BASE_DEFAULT: &str = "https://api.pingxx.com/v1";
/// The in-process sandbox's app id when none is configured.
pub const SANDBOX_APP_ID_DEFAULT: &str = "app_sandbox";
/// Where the in-process sandbox answers, below the service's public URL.
pub const SANDBOX_API_PATH: &str = "/sandbox/v1";
/// The bearer key sent to the in-process sandbox when `PINGPP_API_KEY` is unset.
pub const SANDBOX_API_KEY_DEFAULT: &str = "sk_test_sandbox";

/// The payment gateway behind the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The built-in imitation of Ping++: no money moves. The default.
    Sandbox,
    /// Ping++ itself.
    Pingpp,
}

impl Provider {
    /// The name in `PAYMENT_PROVIDER`, also recorded with every webhook we keep.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Pingpp => "pingpp",
        }
    }
}

/// The gateway configuration.
///
/// Invariants: for `Pingpp`, `api_key` and `webhook_public_key` are present and `api_base` is
/// HTTPS (or loopback); `api_base` never ends in a slash.
#[derive(Clone)]
pub struct GatewayConfig {
    pub provider: Provider,
    /// E.g. "https://api.pingxx.com/v1", no trailing slash.
    pub api_base: String,
    pub app_id: String,
    /// Required for Ping++; optional for the sandbox.
    pub api_key: Option<Secret>,
    /// Signs our requests when request signing is enabled at Ping++ (`PINGPP_PRIVATE_KEY_PATH`).
    pub merchant_private_key: Option<RsaPrivateKey>,
    /// Verifies webhooks (`PINGPP_PUBLIC_KEY_PATH`). For the sandbox, `None` means "the
    /// sandbox's own key".
    pub webhook_public_key: Option<RsaPublicKey>,
    /// The key the in-process sandbox signs its webhooks with (`SANDBOX_PRIVATE_KEY_PATH`);
    /// `None` lets it generate one at start-up.
    pub sandbox_private_key: Option<RsaPrivateKey>,
}

// The derived Debug of RSA private keys prints their secret numbers: never use it.
impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("provider", &self.provider)
            .field("api_base", &self.api_base)
            .field("app_id", &self.app_id)
            .field("api_key", &self.api_key)
            .field("merchant_private_key", &self.merchant_private_key.is_some())
            .field("webhook_public_key", &self.webhook_public_key.is_some())
            .field("sandbox_private_key", &self.sandbox_private_key.is_some())
            .finish()
    }
}

impl GatewayConfig {
    /// Reads the configuration through `lookup`; `public_url` is the service's own base URL,
    /// under which the sandbox answers. Blank values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        public_url: &str,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let mut problems = Vec::new();
        let non_empty = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let mut problem = |variable: &'static str, reason: String| {
            problems.push(InvalidVariable { variable, reason });
        };

        let provider = match non_empty("PAYMENT_PROVIDER").as_deref() {
            None | Some("sandbox") => Provider::Sandbox,
            Some("pingpp") => Provider::Pingpp,
            Some(other) => {
                problem(
                    "PAYMENT_PROVIDER",
                    format!("expected `sandbox` or `pingpp`, got `{other}`"),
                );
                // Check the rest as leniently as the default would.
                Provider::Sandbox
            }
        };
        let pingpp = provider == Provider::Pingpp;

        let api_base = match non_empty("PINGPP_API_BASE") {
            Some(url) => {
                let url = url.trim_end_matches('/').to_owned();
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    problem(
                        "PINGPP_API_BASE",
                        "expected an http:// or https:// URL".to_owned(),
                    );
                } else if pingpp && !url.starts_with("https://") && !is_loopback(&url) {
                    problem(
                        "PINGPP_API_BASE",
                        "must be https:// (the API key travels with every request)".to_owned(),
                    );
                }
                url
            }
            None if pingpp => PINGPP_API_BASE_DEFAULT.to_owned(),
            None => format!("{}{SANDBOX_API_PATH}", public_url.trim_end_matches('/')),
        };

        let app_id = match non_empty("PINGPP_APP_ID") {
            Some(app_id) => app_id,
            None if pingpp => {
                problem(
                    "PINGPP_APP_ID",
                    "required when PAYMENT_PROVIDER is pingpp".to_owned(),
                );
                String::new()
            }
            None => SANDBOX_APP_ID_DEFAULT.to_owned(),
        };

        let api_key = match non_empty("PINGPP_API_KEY") {
            // Never echo the value: it is the secret.
            Some(key) if !key.bytes().all(|byte| byte.is_ascii_graphic()) => {
                problem(
                    "PINGPP_API_KEY",
                    "must be printable ASCII without spaces".to_owned(),
                );
                None
            }
            Some(key) => Some(Secret::new(key)),
            None if pingpp => {
                problem(
                    "PINGPP_API_KEY",
                    "required when PAYMENT_PROVIDER is pingpp".to_owned(),
                );
                None
            }
            None => None,
        };

        let mut load_private = |variable: &'static str| {
            non_empty(variable).and_then(|path| {
                keys::private_key_from_file(Path::new(&path))
                    .map_err(|error| problem(variable, key_problem(&path, &error)))
                    .ok()
            })
        };
        let merchant_private_key = load_private("PINGPP_PRIVATE_KEY_PATH");
        let sandbox_private_key = load_private("SANDBOX_PRIVATE_KEY_PATH");

        let webhook_public_key = match non_empty("PINGPP_PUBLIC_KEY_PATH") {
            Some(path) => keys::public_key_from_file(Path::new(&path))
                .map_err(|error| problem("PINGPP_PUBLIC_KEY_PATH", key_problem(&path, &error)))
                .ok(),
            None if pingpp => {
                problem(
                    "PINGPP_PUBLIC_KEY_PATH",
                    "required when PAYMENT_PROVIDER is pingpp: Ping++'s public key verifies \
                     its webhooks"
                        .to_owned(),
                );
                None
            }
            None => None,
        };

        // In the sandbox both keys are ours: if they disagree, no sandbox webhook would verify.
        if let (Provider::Sandbox, Some(public), Some(private)) =
            (provider, &webhook_public_key, &sandbox_private_key)
        {
            if *public != private.to_public_key() {
                problem(
                    "PINGPP_PUBLIC_KEY_PATH",
                    "does not match the sandbox's signing key (SANDBOX_PRIVATE_KEY_PATH), so no \
                     sandbox webhook would verify"
                        .to_owned(),
                );
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            provider,
            api_base,
            app_id,
            api_key,
            merchant_private_key,
            webhook_public_key,
            sandbox_private_key,
        })
    }

    /// The Ping++ client settings. `sandbox_public_key` is the in-process sandbox's key,
    /// used when no webhook key was configured (which only the sandbox allows).
    pub fn pingpp_settings(&self, sandbox_public_key: &RsaPublicKey) -> PingppSettings {
        PingppSettings {
            api_base: self.api_base.clone(),
            app_id: self.app_id.clone(),
            api_key: self
                .api_key
                .clone()
                .unwrap_or_else(|| Secret::new(SANDBOX_API_KEY_DEFAULT.to_owned())),
            merchant_key: self.merchant_private_key.clone(),
            webhook_public_key: self
                .webhook_public_key
                .clone()
                .unwrap_or_else(|| sandbox_public_key.clone()),
            provider_name: self.provider.as_str(),
        }
    }
}

/// A key file problem, naming the file (its path is no secret, its content may be).
fn key_problem(path: &str, error: &KeyError) -> String {
    match error {
        // Already names the file.
        KeyError::Unreadable { .. } => error.to_string(),
        _ => format!("{path}: {error}"),
    }
}

/// A plain-HTTP API base is tolerated only on this machine (a local imitation of Ping++).
fn is_loopback(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashMap;
    use std::path::PathBuf;

    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::LineEnding;

    use super::*;
    use crate::pingpp::webhook::shared_test_key;

    const PUBLIC_URL: &str = "http://127.0.0.1:8080";

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "payledger-gateway-config-{}.pem",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn pkcs1_private() -> TempFile {
        let pem = shared_test_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        TempFile::with(&pem)
    }

    fn pkcs8_private() -> TempFile {
        let pem = keys::private_key_to_pem(shared_test_key()).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        TempFile::with(&pem)
    }

    fn public() -> TempFile {
        TempFile::with(&keys::public_key_to_pem(&shared_test_key().to_public_key()).unwrap())
    }

    fn config(vars: &[(&str, &str)]) -> Result<GatewayConfig, Vec<InvalidVariable>> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        GatewayConfig::from_lookup(|name| env.get(name).cloned(), PUBLIC_URL)
    }

    fn variables(problems: &[InvalidVariable]) -> Vec<&'static str> {
        problems.iter().map(|problem| problem.variable).collect()
    }

    #[test]
    fn an_empty_environment_uses_the_sandbox_under_the_public_url() {
        let config = config(&[]).unwrap();
        assert_eq!(config.provider, Provider::Sandbox);
        assert_eq!(config.api_base, "http://127.0.0.1:8080/sandbox/v1");
        assert_eq!(config.app_id, SANDBOX_APP_ID_DEFAULT);
        assert!(config.api_key.is_none());
        assert!(config.webhook_public_key.is_none());
        assert!(config.merchant_private_key.is_none());
        assert!(config.sandbox_private_key.is_none());

        let sandbox_key = shared_test_key().to_public_key();
        let settings = config.pingpp_settings(&sandbox_key);
        assert_eq!(settings.provider_name, "sandbox");
        assert_eq!(settings.webhook_public_key, sandbox_key);
        assert_eq!(settings.api_key.expose(), SANDBOX_API_KEY_DEFAULT);
    }

    #[test]
    fn pingpp_without_credentials_names_all_of_them() {
        let problems = config(&[("PAYMENT_PROVIDER", "pingpp")]).unwrap_err();
        let named = variables(&problems);
        for variable in ["PINGPP_APP_ID", "PINGPP_API_KEY", "PINGPP_PUBLIC_KEY_PATH"] {
            assert!(named.contains(&variable), "{named:?}");
        }
        assert_eq!(named.len(), 3, "{problems:?}");
    }

    #[test]
    fn pingpp_with_credentials_loads_both_private_key_formats() {
        let public = public();
        for private in [pkcs1_private(), pkcs8_private()] {
            let config = config(&[
                ("PAYMENT_PROVIDER", "pingpp"),
                ("PINGPP_APP_ID", "app_1Gqj58ynP0mHeX1q"),
                ("PINGPP_API_KEY", "sk_live_secretvalue123"),
                ("PINGPP_PRIVATE_KEY_PATH", private.path()),
                ("PINGPP_PUBLIC_KEY_PATH", public.path()),
            ])
            .unwrap();
            assert_eq!(config.provider, Provider::Pingpp);
            assert_eq!(config.api_base, PINGPP_API_BASE_DEFAULT);
            assert_eq!(
                config.merchant_private_key.as_ref(),
                Some(shared_test_key())
            );
            assert_eq!(
                config.webhook_public_key,
                Some(shared_test_key().to_public_key())
            );
            let debug = format!("{config:?}");
            assert!(!debug.contains("secretvalue"), "{debug}");
            let settings = config.pingpp_settings(&shared_test_key().to_public_key());
            assert_eq!(settings.api_key.expose(), "sk_live_secretvalue123");
            assert_eq!(settings.provider_name, "pingpp");
        }
    }

    #[test]
    fn a_garbage_key_file_is_named_in_the_error() {
        let garbage = TempFile::with("this is no key");
        let problems = config(&[
            ("PINGPP_PRIVATE_KEY_PATH", garbage.path()),
            ("SANDBOX_PRIVATE_KEY_PATH", garbage.path()),
            ("PINGPP_PUBLIC_KEY_PATH", garbage.path()),
        ])
        .unwrap_err();
        assert_eq!(
            variables(&problems),
            [
                "PINGPP_PRIVATE_KEY_PATH",
                "SANDBOX_PRIVATE_KEY_PATH",
                "PINGPP_PUBLIC_KEY_PATH"
            ]
        );
        for problem in &problems {
            let text = problem.to_string();
            assert!(text.contains(garbage.path()), "{text}");
            assert!(!text.contains("this is no key"), "{text}");
        }
    }

    #[test]
    fn a_missing_key_file_is_reported_as_unreadable() {
        let problems =
            config(&[("PINGPP_PUBLIC_KEY_PATH", "/nonexistent/pingpp.pem")]).unwrap_err();
        let text = problems[0].to_string();
        assert!(
            text.starts_with(
                "PINGPP_PUBLIC_KEY_PATH: cannot read the key file /nonexistent/pingpp.pem"
            ),
            "{text}"
        );
        assert!(text.contains("not found"), "{text}");
    }

    #[test]
    fn a_key_with_a_byte_order_mark_loads() {
        let pem = keys::public_key_to_pem(&shared_test_key().to_public_key()).unwrap();
        let file = TempFile::with(&format!("\u{feff}{pem}"));
        let config = config(&[("PINGPP_PUBLIC_KEY_PATH", file.path())]).unwrap();
        assert!(config.webhook_public_key.is_some());
    }

    #[test]
    fn an_unknown_provider_and_a_bad_api_base_are_named() {
        let problems = config(&[
            ("PAYMENT_PROVIDER", "stripe"),
            ("PINGPP_API_BASE", "ftp://example.com"),
        ])
        .unwrap_err();
        assert_eq!(
            variables(&problems),
            ["PAYMENT_PROVIDER", "PINGPP_API_BASE"]
        );
        assert!(problems[0].reason.contains("stripe"));
    }

    #[test]
    fn pingpp_refuses_plain_http_except_on_loopback() {
        let public = public();
        let base = |api_base: &'static str| {
            config(&[
                ("PAYMENT_PROVIDER", "pingpp"),
                ("PINGPP_APP_ID", "app_1"),
                ("PINGPP_API_KEY", "sk_test_1"),
                ("PINGPP_PUBLIC_KEY_PATH", public.path()),
                ("PINGPP_API_BASE", api_base),
            ])
        };
        let problems = base("http://api.pingxx.com/v1").unwrap_err();
        assert_eq!(variables(&problems), ["PINGPP_API_BASE"]);
        assert_eq!(
            base("http://127.0.0.1:9000/v1/").unwrap().api_base,
            "http://127.0.0.1:9000/v1"
        );
        assert!(base("http://localhost.evil.example/v1").is_err());
    }

    #[test]
    fn an_api_key_with_spaces_is_refused_without_echoing_it() {
        let problems = config(&[("PINGPP_API_KEY", "sk_test_abc def")]).unwrap_err();
        assert_eq!(variables(&problems), ["PINGPP_API_KEY"]);
        assert!(!problems[0].to_string().contains("abc"));
    }

    #[test]
    fn sandbox_keys_that_disagree_are_refused() {
        let private = pkcs8_private();
        let public = public();
        let matching = config(&[
            ("SANDBOX_PRIVATE_KEY_PATH", private.path()),
            ("PINGPP_PUBLIC_KEY_PATH", public.path()),
        ])
        .unwrap();
        assert!(matching.sandbox_private_key.is_some());

        let other = TempFile::with(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pingpp/public_key.pem"
        )));
        let problems = config(&[
            ("SANDBOX_PRIVATE_KEY_PATH", private.path()),
            ("PINGPP_PUBLIC_KEY_PATH", other.path()),
        ])
        .unwrap_err();
        assert_eq!(variables(&problems), ["PINGPP_PUBLIC_KEY_PATH"]);
    }
}
