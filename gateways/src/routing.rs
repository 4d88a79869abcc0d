//! Which provider serves which channel, and which verifier reads which webhook path: read
//! once from the environment (`PAYMENT_PROVIDER`, `PAYMENT_PROVIDER_ALIPAY_QR`,
//! `PAYMENT_PROVIDER_WX_PUB_QR` and each provider's credentials), naming every bad variable
//! at once, then turned into a [`Routing`] the HTTP layer asks without knowing any provider.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aggregates::Channel;
use rsa::RsaPrivateKey;

use crate::alipay::client::{self as alipay_client, AlipayClient, AlipaySettings};
use crate::clock::Clock;
use crate::config::{GatewayConfig, InvalidVariable};
use crate::keys::{self, KeyError, PublicKeyMaterial};
use crate::wechatpay::client::{self as wechatpay_client, WechatPayClient, WechatPaySettings};
use crate::wechatpay::notify::NonceCache;
use crate::wechatpay::platform::PlatformKeys;
use crate::wechatpay::resource::ApiV3Key;
use crate::PaymentGateway;

/// A provider as named in `PAYMENT_PROVIDER*` and in webhook paths (`/webhooks/{name}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderName {
    Sandbox,
    Pingpp,
    Alipay,
    WechatPay,
}

impl ProviderName {
    pub const ALL: [ProviderName; 4] = [Self::Sandbox, Self::Pingpp, Self::Alipay, Self::WechatPay];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Pingpp => "pingpp",
            Self::Alipay => "alipay",
            Self::WechatPay => "wechatpay",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|name| name.as_str() == text)
    }

    /// Whether the provider is reached through the Ping++ client (Ping++ or its sandbox).
    pub const fn speaks_pingpp(self) -> bool {
        matches!(self, Self::Sandbox | Self::Pingpp)
    }
}

/// Alipay's open-platform credentials.
#[derive(Clone)]
pub struct AlipayConfig {
    pub app_id: String,
    pub gateway_url: String,
    pub private_key: RsaPrivateKey,
    pub alipay_public_key: PublicKeyMaterial,
}

impl AlipayConfig {
    /// The client; notifications for its charges go to `notify_url`.
    pub fn client(
        &self,
        notify_url: String,
        clock: Arc<dyn Clock>,
    ) -> Result<AlipayClient, alipay_client::ClientBuildError> {
        AlipayClient::new(
            AlipaySettings {
                gateway_url: self.gateway_url.clone(),
                app_id: self.app_id.clone(),
                merchant_private_key: self.private_key.clone(),
                alipay_public_key: self.alipay_public_key.key.clone(),
                notify_url,
                provider_name: ProviderName::Alipay.as_str(),
            },
            clock,
        )
    }
}

/// WeChat Pay API v3 credentials.
#[derive(Clone)]
pub struct WechatPayConfig {
    pub mchid: String,
    pub appid: String,
    pub api_base: String,
    pub merchant_serial: String,
    pub private_key: RsaPrivateKey,
    pub platform_keys: PlatformKeys,
    pub api_v3_key: ApiV3Key,
}

impl WechatPayConfig {
    /// The client; callbacks for its orders and refunds go to `notify_url`. The client keeps
    /// the nonces of admitted callbacks in memory.
    pub fn client(
        &self,
        notify_url: String,
        clock: Arc<dyn Clock>,
    ) -> Result<WechatPayClient, wechatpay_client::ClientBuildError> {
        WechatPayClient::new(
            WechatPaySettings {
                api_base: self.api_base.clone(),
                mchid: self.mchid.clone(),
                appid: self.appid.clone(),
                merchant_serial: self.merchant_serial.clone(),
                merchant_private_key: self.private_key.clone(),
                platform_keys: self.platform_keys.clone(),
                api_v3_key: self.api_v3_key.clone(),
                notify_url,
                provider_name: ProviderName::WechatPay.as_str(),
            },
            clock,
            NonceCache::default(),
        )
    }
}

/// Every provider setting. Invariant: each provider some channel routes to has its
/// credentials present.
#[derive(Clone)]
pub struct ProviderSettings {
    /// `PAYMENT_PROVIDER`; the default for every channel.
    pub default: ProviderName,
    /// The provider of each channel (per-channel variables, or the default).
    pub channels: HashMap<Channel, ProviderName>,
    /// The Ping++ (or sandbox) settings, when some channel goes through Ping++'s client.
    pub pingpp: Option<GatewayConfig>,
    pub alipay: Option<AlipayConfig>,
    pub wechatpay: Option<WechatPayConfig>,
}

// Private keys' derived Debug prints their secret numbers: never use it.
impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("default", &self.default)
            .field("channels", &self.channels)
            .field("pingpp", &self.pingpp)
            .field("alipay", &self.alipay.as_ref().map(|alipay| &alipay.app_id))
            .field(
                "wechatpay",
                &self.wechatpay.as_ref().map(|wechatpay| &wechatpay.mchid),
            )
            .finish()
    }
}

/// The per-channel variables.
const CHANNEL_VARIABLES: [(Channel, &str); 2] = [
    (Channel::AlipayQr, "PAYMENT_PROVIDER_ALIPAY_QR"),
    (Channel::WxPubQr, "PAYMENT_PROVIDER_WX_PUB_QR"),
];

fn expected_names() -> String {
    ProviderName::ALL
        .iter()
        .map(|name| format!("`{}`", name.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProviderSettings {
    /// Reads the settings through `lookup`; blank values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        public_url: &str,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let mut problems = Vec::new();
        let mut provider =
            |variable: &'static str, fallback: ProviderName| match non_empty(variable) {
                None => fallback,
                Some(text) => ProviderName::parse(&text).unwrap_or_else(|| {
                    problems.push(InvalidVariable {
                        variable,
                        reason: format!("expected one of {}, got `{text}`", expected_names()),
                    });
                    fallback
                }),
            };
        let default = provider("PAYMENT_PROVIDER", ProviderName::Sandbox);
        let channels: HashMap<Channel, ProviderName> = CHANNEL_VARIABLES
            .iter()
            .map(|(channel, variable)| (*channel, provider(variable, default)))
            .collect();
        let used = |name: ProviderName| default == name || channels.values().any(|n| *n == name);

        // Ping++ and its sandbox share one client configuration, so one process uses one
        // of the two.
        if used(ProviderName::Pingpp) && used(ProviderName::Sandbox) {
            problems.push(InvalidVariable {
                variable: "PAYMENT_PROVIDER",
                reason: "`pingpp` and `sandbox` cannot serve channels side by side".to_owned(),
            });
        }
        // Ping++ and its sandbox keep their own parser; it sees which of the two is used.
        let pingpp_name = if used(ProviderName::Pingpp) {
            Some(ProviderName::Pingpp)
        } else if used(ProviderName::Sandbox) {
            Some(ProviderName::Sandbox)
        } else {
            None
        };
        let pingpp = match pingpp_name {
            None => None,
            Some(name) => {
                let pingpp_lookup = |variable: &str| {
                    if variable == "PAYMENT_PROVIDER" {
                        Some(name.as_str().to_owned())
                    } else {
                        lookup(variable)
                    }
                };
                match GatewayConfig::from_lookup(pingpp_lookup, public_url) {
                    Ok(config) => Some(config),
                    Err(found) => {
                        problems.extend(found);
                        None
                    }
                }
            }
        };
        let alipay = used(ProviderName::Alipay)
            .then(|| alipay_config(&non_empty, &mut problems))
            .flatten();
        let wechatpay = used(ProviderName::WechatPay)
            .then(|| wechatpay_config(&non_empty, &mut problems))
            .flatten();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            default,
            channels,
            pingpp,
            alipay,
            wechatpay,
        })
    }

    /// The provider serving `channel`.
    pub fn provider_for(&self, channel: Channel) -> ProviderName {
        self.channels.get(&channel).copied().unwrap_or(self.default)
    }
}

fn required(
    non_empty: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
    variable: &'static str,
    provider: ProviderName,
) -> Option<String> {
    let value = non_empty(variable);
    if value.is_none() {
        problems.push(InvalidVariable {
            variable,
            reason: format!("required when a channel is served by {}", provider.as_str()),
        });
    }
    value
}

fn key_problem(path: &str, error: &KeyError) -> String {
    match error {
        KeyError::Unreadable { .. } => error.to_string(),
        _ => format!("{path}: {error}"),
    }
}

fn private_key(
    non_empty: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
    variable: &'static str,
    provider: ProviderName,
) -> Option<RsaPrivateKey> {
    let path = required(non_empty, problems, variable, provider)?;
    keys::private_key_from_file(Path::new(&path))
        .map_err(|error| {
            problems.push(InvalidVariable {
                variable,
                reason: key_problem(&path, &error),
            })
        })
        .ok()
}

fn public_key(
    non_empty: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
    variable: &'static str,
    provider: ProviderName,
) -> Option<PublicKeyMaterial> {
    let path = required(non_empty, problems, variable, provider)?;
    keys::public_key_material_from_file(Path::new(&path))
        .map_err(|error| {
            problems.push(InvalidVariable {
                variable,
                reason: key_problem(&path, &error),
            })
        })
        .ok()
}

/// An API URL: https, or plain http on this machine only (the sandbox).
fn api_url(
    non_empty: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
    variable: &'static str,
    default: &str,
) -> String {
    let Some(url) = non_empty(variable) else {
        return default.to_owned();
    };
    let url = url.trim_end_matches('/').to_owned();
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if !url.starts_with("https://") && !loopback {
        problems.push(InvalidVariable {
            variable,
            reason: "must be https:// (plain http only on this machine)".to_owned(),
        });
    }
    url
}

fn alipay_config(
    non_empty: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
) -> Option<AlipayConfig> {
    let provider = ProviderName::Alipay;
    let app_id = required(non_empty, problems, "ALIPAY_APP_ID", provider);
    let private_key = private_key(non_empty, problems, "ALIPAY_PRIVATE_KEY_PATH", provider);
    let alipay_public_key = public_key(non_empty, problems, "ALIPAY_PUBLIC_KEY_PATH", provider);
    let gateway_url = api_url(
        non_empty,
        problems,
        "ALIPAY_GATEWAY_URL",
        alipay_client::GATEWAY_URL_DEFAULT,
    );
    Some(AlipayConfig {
        app_id: app_id?,
        gateway_url,
        private_key: private_key?,
        alipay_public_key: alipay_public_key?,
    })
}

fn wechatpay_config(
    non_empty: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
) -> Option<WechatPayConfig> {
    let provider = ProviderName::WechatPay;
    let mchid = required(non_empty, problems, "WECHATPAY_MCH_ID", provider);
    let appid = required(non_empty, problems, "WECHATPAY_APP_ID", provider);
    let merchant_serial = required(non_empty, problems, "WECHATPAY_MERCHANT_SERIAL", provider);
    let private_key = private_key(non_empty, problems, "WECHATPAY_PRIVATE_KEY_PATH", provider);
    let platform = public_key(
        non_empty,
        problems,
        "WECHATPAY_PLATFORM_PUBLIC_KEY_PATH",
        provider,
    );
    let serial = non_empty("WECHATPAY_PLATFORM_SERIAL");
    let platform_keys = platform.and_then(|material| {
        let certificate_serial = material.certificate_serial.clone();
        if let (Some(configured), Some(in_certificate)) = (&serial, &certificate_serial) {
            if !configured.eq_ignore_ascii_case(in_certificate) {
                problems.push(InvalidVariable {
                    variable: "WECHATPAY_PLATFORM_SERIAL",
                    reason: format!(
                        "the certificate's serial is {in_certificate}, not {configured}"
                    ),
                });
                return None;
            }
        }
        let keys = PlatformKeys::new().with_material(serial.as_deref(), material);
        if keys.is_none() {
            problems.push(InvalidVariable {
                variable: "WECHATPAY_PLATFORM_SERIAL",
                reason: "required with a platform public key (PUB_KEY_ID_...); a certificate \
                         names its own serial"
                    .to_owned(),
            });
        }
        keys
    });
    let api_v3_key = required(non_empty, problems, "WECHATPAY_APIV3_KEY", provider).and_then(
        // Never echo the value: it is the secret.
        |text| {
            ApiV3Key::parse(&text)
                .map_err(|error| {
                    problems.push(InvalidVariable {
                        variable: "WECHATPAY_APIV3_KEY",
                        reason: error.to_string(),
                    })
                })
                .ok()
        },
    );
    let api_base = api_url(
        non_empty,
        problems,
        "WECHATPAY_API_BASE",
        wechatpay_client::API_BASE_DEFAULT,
    );
    Some(WechatPayConfig {
        mchid: mchid?,
        appid: appid?,
        api_base,
        merchant_serial: merchant_serial?,
        private_key: private_key?,
        platform_keys: platform_keys?,
        api_v3_key: api_v3_key?,
    })
}

/// The gateways in use: which serves each channel, and which verifies each webhook path.
#[derive(Clone, Default)]
pub struct Routing {
    by_name: HashMap<ProviderName, Arc<dyn PaymentGateway>>,
    by_channel: HashMap<Channel, ProviderName>,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("providers", &self.by_name.keys().collect::<Vec<_>>())
            .field("channels", &self.by_channel)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("channel {channel} is routed to {provider}, which has no gateway")]
    MissingGateway {
        channel: &'static str,
        provider: &'static str,
    },
}

impl Routing {
    /// Routes each channel as `settings` say, to the gateways given by provider name.
    pub fn new(
        settings: &ProviderSettings,
        gateways: impl IntoIterator<Item = (ProviderName, Arc<dyn PaymentGateway>)>,
    ) -> Result<Self, RoutingError> {
        let by_name: HashMap<_, _> = gateways.into_iter().collect();
        let mut by_channel = HashMap::new();
        for channel in Channel::all() {
            let provider = settings.provider_for(*channel);
            if !by_name.contains_key(&provider) {
                return Err(RoutingError::MissingGateway {
                    channel: channel.as_str(),
                    provider: provider.as_str(),
                });
            }
            by_channel.insert(*channel, provider);
        }
        Ok(Self {
            by_name,
            by_channel,
        })
    }

    /// The gateway that charges and refunds `channel`.
    pub fn for_channel(&self, channel: Channel) -> Option<&Arc<dyn PaymentGateway>> {
        self.by_channel
            .get(&channel)
            .and_then(|name| self.by_name.get(name))
    }

    /// The gateway whose webhooks arrive at `/webhooks/{provider}`; None for a provider not
    /// in use (answer 404: nobody should be sending them).
    pub fn for_webhook(&self, provider: &str) -> Option<&Arc<dyn PaymentGateway>> {
        ProviderName::parse(provider).and_then(|name| self.by_name.get(&name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::path::PathBuf;

    use super::*;
    use crate::clock::SystemClock;

    struct TempFile(PathBuf);

    impl TempFile {
        fn with(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "payledger-routing-{}.pem",
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

    fn settings(vars: &[(&str, &str)]) -> Result<ProviderSettings, Vec<InvalidVariable>> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        ProviderSettings::from_lookup(|name| env.get(name).cloned(), "http://127.0.0.1:8080")
    }

    fn named(problems: &[InvalidVariable]) -> Vec<&'static str> {
        problems.iter().map(|problem| problem.variable).collect()
    }

    #[test]
    fn nothing_set_routes_every_channel_to_the_sandbox() {
        let settings = settings(&[]).unwrap();
        assert_eq!(
            settings.provider_for(Channel::AlipayQr),
            ProviderName::Sandbox
        );
        assert_eq!(
            settings.provider_for(Channel::WxPubQr),
            ProviderName::Sandbox
        );
        assert!(settings.pingpp.is_some());
        assert!(settings.alipay.is_none() && settings.wechatpay.is_none());
    }

    #[test]
    fn pingpp_and_its_sandbox_do_not_mix() {
        let problems = settings(&[
            ("PAYMENT_PROVIDER", "sandbox"),
            ("PAYMENT_PROVIDER_WX_PUB_QR", "pingpp"),
        ])
        .unwrap_err();
        assert_eq!(named(&problems)[0], "PAYMENT_PROVIDER");
    }

    #[test]
    fn missing_credentials_are_all_named() {
        let problems = settings(&[
            ("PAYMENT_PROVIDER_ALIPAY_QR", "alipay"),
            ("PAYMENT_PROVIDER_WX_PUB_QR", "wechatpay"),
        ])
        .unwrap_err();
        assert_eq!(
            named(&problems),
            [
                "ALIPAY_APP_ID",
                "ALIPAY_PRIVATE_KEY_PATH",
                "ALIPAY_PUBLIC_KEY_PATH",
                "WECHATPAY_MCH_ID",
                "WECHATPAY_APP_ID",
                "WECHATPAY_MERCHANT_SERIAL",
                "WECHATPAY_PRIVATE_KEY_PATH",
                "WECHATPAY_PLATFORM_PUBLIC_KEY_PATH",
                "WECHATPAY_APIV3_KEY",
            ]
        );
    }

    #[test]
    fn an_unknown_provider_and_bad_values_are_named_without_secrets() {
        let problems = settings(&[
            ("PAYMENT_PROVIDER", "stripe"),
            ("PAYMENT_PROVIDER_WX_PUB_QR", "wechatpay"),
            ("WECHATPAY_APIV3_KEY", "too-short-secret"),
            ("WECHATPAY_API_BASE", "http://api.mch.weixin.qq.com"),
        ])
        .unwrap_err();
        let names = named(&problems);
        assert_eq!(names[0], "PAYMENT_PROVIDER");
        assert!(names.contains(&"WECHATPAY_APIV3_KEY"));
        assert!(names.contains(&"WECHATPAY_API_BASE"));
        for problem in &problems {
            assert!(
                !problem.to_string().contains("too-short-secret"),
                "{problem}"
            );
        }
    }

    fn full_environment(
        merchant: &TempFile,
        alipay_key: &TempFile,
        certificate: &TempFile,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("PAYMENT_PROVIDER", "alipay".to_owned()),
            ("PAYMENT_PROVIDER_WX_PUB_QR", "wechatpay".to_owned()),
            ("ALIPAY_APP_ID", "2021000000000001".to_owned()),
            ("ALIPAY_PRIVATE_KEY_PATH", merchant.path().to_owned()),
            ("ALIPAY_PUBLIC_KEY_PATH", alipay_key.path().to_owned()),
            ("WECHATPAY_MCH_ID", "1900009191".to_owned()),
            ("WECHATPAY_APP_ID", "wxd678efh567hg6787".to_owned()),
            ("WECHATPAY_MERCHANT_SERIAL", "1DDE55AD98ED71D6".to_owned()),
            ("WECHATPAY_PRIVATE_KEY_PATH", merchant.path().to_owned()),
            (
                "WECHATPAY_PLATFORM_PUBLIC_KEY_PATH",
                certificate.path().to_owned(),
            ),
            (
                "WECHATPAY_APIV3_KEY",
                "0123456789abcdef0123456789abcdef".to_owned(),
            ),
        ]
    }

    #[test]
    fn console_key_forms_load_and_channels_route() {
        // A bare base64 merchant key, Alipay's bare public key, WeChat Pay's certificate.
        let pem = keys::private_key_to_pem(crate::test_keys::merchant()).unwrap();
        let bare: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let merchant = TempFile::with(&bare);
        let alipay_key = TempFile::with(include_str!(
            "../tests/fixtures/alipay/response_public_key_bare.txt"
        ));
        let certificate = TempFile::with(include_str!(
            "../tests/fixtures/wechatpay/platform_certificate.pem"
        ));
        let environment = full_environment(&merchant, &alipay_key, &certificate);
        let pairs: Vec<(&str, &str)> = environment
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let settings = settings(&pairs).unwrap();
        assert_eq!(
            settings.provider_for(Channel::AlipayQr),
            ProviderName::Alipay
        );
        assert_eq!(
            settings.provider_for(Channel::WxPubQr),
            ProviderName::WechatPay
        );
        assert!(settings.pingpp.is_none());
        let wechatpay = settings.wechatpay.as_ref().unwrap();
        assert!(wechatpay.platform_keys.get("D7CE59D1F522D701").is_some());
        let debug = format!("{settings:?}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let alipay: Arc<dyn PaymentGateway> = Arc::new(
            settings
                .alipay
                .as_ref()
                .unwrap()
                .client(
                    "https://example.com/webhooks/alipay".to_owned(),
                    Arc::clone(&clock),
                )
                .unwrap(),
        );
        let wechat: Arc<dyn PaymentGateway> = Arc::new(
            wechatpay
                .client("https://example.com/webhooks/wechatpay".to_owned(), clock)
                .unwrap(),
        );
        let routing = Routing::new(
            &settings,
            [
                (ProviderName::Alipay, alipay),
                (ProviderName::WechatPay, wechat),
            ],
        )
        .unwrap();
        assert_eq!(
            routing.for_channel(Channel::AlipayQr).unwrap().provider(),
            "alipay"
        );
        assert_eq!(
            routing.for_channel(Channel::WxPubQr).unwrap().provider(),
            "wechatpay"
        );
        assert_eq!(
            routing.for_webhook("wechatpay").unwrap().provider(),
            "wechatpay"
        );
        assert!(routing.for_webhook("pingpp").is_none());
        assert!(routing.for_webhook("../admin").is_none());
        assert!(matches!(
            Routing::new(&settings, []),
            Err(RoutingError::MissingGateway { .. })
        ));
    }

    #[test]
    fn a_platform_key_needs_its_serial_and_a_certificate_must_match_it() {
        let merchant =
            TempFile::with(&keys::private_key_to_pem(crate::test_keys::merchant()).unwrap());
        let alipay_key = TempFile::with(include_str!(
            "../tests/fixtures/alipay/response_public_key.pem"
        ));
        let bare_platform_key = TempFile::with(include_str!(
            "../tests/fixtures/alipay/response_public_key.pem"
        ));
        let environment = full_environment(&merchant, &alipay_key, &bare_platform_key);
        let pairs: Vec<(&str, &str)> = environment
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        assert_eq!(
            named(&settings(&pairs).unwrap_err()),
            ["WECHATPAY_PLATFORM_SERIAL"]
        );
        let mut with_serial = pairs.clone();
        with_serial.push((
            "WECHATPAY_PLATFORM_SERIAL",
            "PUB_KEY_ID_0114232134912410000000000000",
        ));
        assert!(settings(&with_serial).is_ok());

        let certificate = TempFile::with(include_str!(
            "../tests/fixtures/wechatpay/platform_certificate.pem"
        ));
        let environment = full_environment(&merchant, &alipay_key, &certificate);
        let mut pairs: Vec<(&str, &str)> = environment
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        pairs.push(("WECHATPAY_PLATFORM_SERIAL", "0000"));
        assert_eq!(
            named(&settings(&pairs).unwrap_err()),
            ["WECHATPAY_PLATFORM_SERIAL"]
        );
    }
}
