//! The gateways the service reaches, from settings to clients: which provider serves each
//! channel with which credentials (read with the other settings), and the clients, routing
//! and in-process sandbox built from them when the service starts.

use std::collections::HashMap;
use std::sync::Arc;

use aggregates::Channel;
use rsa::RsaPrivateKey;

use crate::variable::{trimmed, InvalidVariable};
use gateways::alipay::client::{AlipayClient, AlipaySettings};
use gateways::clock::{Clock, SystemClock};
use gateways::config::{GatewayConfig, Provider};
use gateways::keys::{self, KeyError};
use gateways::pingpp::client::PingppClient;
use gateways::routing::{ProviderName, ProviderSettings, Routing, RoutingError};
use gateways::wechatpay::client::{WechatPayClient, WechatPaySettings};
use gateways::wechatpay::notify::NonceCache;
use gateways::wechatpay::platform::PlatformKeys;
use gateways::wechatpay::resource::ApiV3Key;
use gateways::PaymentGateway;
use sandbox::{AlipaySide, Protocols, Sandbox, SandboxConfig, WechatPaySide, MOUNT_PATH};

/// Where Ping++ (and the sandbox speaking its protocol) delivers webhooks, under the public
/// URL.
pub const WEBHOOK_PATH: &str = "/v1/webhooks/pingpp";

/// Where `provider` delivers webhooks, under the public URL.
pub fn webhook_path(provider: ProviderName) -> String {
    format!("/v1/webhooks/{}", provider.as_str())
}

/// The name every sandbox protocol records its events under: no money moved.
const SANDBOX_PROVIDER: &str = "sandbox";
/// The merchant identities the in-process sandbox knows its clients by.
const SANDBOX_ALIPAY_APP_ID: &str = "2021000000000000";
const SANDBOX_WECHATPAY_MCHID: &str = "1900000000";
const SANDBOX_WECHATPAY_APPID: &str = "wx0000000000sandbox";
const SANDBOX_WECHATPAY_MERCHANT_SERIAL: &str = "5A4D5A4D5A4D5A4D";
const SANDBOX_WECHATPAY_PLATFORM_SERIAL: &str = "5A4D5A4D5A4D5A4E";

/// The per-channel variables choosing the protocol a channel speaks to the in-process
/// sandbox.
const SANDBOX_PROTOCOL_VARIABLES: [(Channel, &str); 2] = [
    (Channel::AlipayQr, "SANDBOX_PROTOCOL_ALIPAY_QR"),
    (Channel::WxPubQr, "SANDBOX_PROTOCOL_WX_PUB_QR"),
];

/// Why the gateway clients could not be built from their settings.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the sandbox signing key: {0}")]
    SandboxKey(#[from] KeyError),
    #[error("the {provider} client: {reason}")]
    Client {
        provider: &'static str,
        reason: String,
    },
    #[error("PINGPP_PUBLIC_KEY_PATH: required to verify Ping++ webhooks")]
    MissingWebhookKey,
    #[error(transparent)]
    Routing(#[from] RoutingError),
}

impl GatewayError {
    fn client(provider: ProviderName, error: impl std::fmt::Display) -> Self {
        Self::Client {
            provider: provider.as_str(),
            reason: error.to_string(),
        }
    }
}

/// How the service reaches its gateways.
#[derive(Clone)]
pub struct GatewaySetup {
    /// Which provider serves each channel, with each provider's credentials.
    pub providers: ProviderSettings,
    /// For the channels the sandbox serves: the protocol each speaks to it (`pingpp`,
    /// `alipay` or `wechatpay`; Ping++'s unless configured), so a sandbox deployment
    /// exercises the same adapter a production one uses.
    pub sandbox_protocols: HashMap<Channel, ProviderName>,
    /// The merchant key the sandbox's Alipay and WeChat Pay protocols know the service by;
    /// generated at start-up when unset (nothing is secret in the sandbox).
    pub sandbox_merchant_key: Option<RsaPrivateKey>,
    /// The APIv3 key the sandbox's WeChat Pay protocol seals callbacks with; random per start
    /// when unset. Set, `payledger verify` can be given it to open kept callbacks.
    pub sandbox_wechatpay_api_v3_key: Option<ApiV3Key>,
}

// Settings get logged and printed: the derived Debug of an RSA private key prints its secret
// numbers, so keys show only whether they are set.
impl std::fmt::Debug for GatewaySetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySetup")
            .field("providers", &self.providers)
            .field("sandbox_protocols", &self.sandbox_protocols)
            .field("sandbox_merchant_key", &self.sandbox_merchant_key.is_some())
            .field(
                "sandbox_wechatpay_api_v3_key",
                &self.sandbox_wechatpay_api_v3_key.is_some(),
            )
            .finish()
    }
}

impl From<GatewayConfig> for GatewaySetup {
    /// Every channel through Ping++'s client: Ping++ itself or the sandbox speaking its
    /// protocol.
    fn from(config: GatewayConfig) -> Self {
        let name = match config.provider {
            Provider::Sandbox => ProviderName::Sandbox,
            Provider::Pingpp => ProviderName::Pingpp,
        };
        Self {
            providers: ProviderSettings {
                default: name,
                channels: Channel::all()
                    .iter()
                    .map(|channel| (*channel, name))
                    .collect(),
                pingpp: Some(config),
                alipay: None,
                wechatpay: None,
            },
            sandbox_protocols: HashMap::new(),
            sandbox_merchant_key: None,
            sandbox_wechatpay_api_v3_key: None,
        }
    }
}

impl GatewaySetup {
    /// `PAYMENT_PROVIDER`, `PAYMENT_PROVIDER_ALIPAY_QR`, `PAYMENT_PROVIDER_WX_PUB_QR`, each
    /// provider's credentials and `SANDBOX_PROTOCOL_*`, read through `lookup` with the other
    /// settings; every bad variable is named at once.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        public_url: &str,
    ) -> Result<Self, Vec<InvalidVariable>> {
        let providers = ProviderSettings::from_lookup(&lookup, public_url);
        let mut problems = Vec::new();
        let mut sandbox_protocols = HashMap::new();
        for (channel, variable) in SANDBOX_PROTOCOL_VARIABLES {
            let Some(text) = trimmed(&lookup, variable) else {
                continue;
            };
            match ProviderName::parse(&text).filter(|name| *name != ProviderName::Sandbox) {
                Some(protocol) => {
                    sandbox_protocols.insert(channel, protocol);
                }
                None => problems.push(InvalidVariable {
                    variable,
                    reason: format!(
                        "expected one of `pingpp`, `alipay`, `wechatpay`, got `{text}`"
                    ),
                }),
            }
        }
        let providers = match providers {
            Ok(providers) => Some(providers),
            Err(found) => {
                problems.extend(found);
                None
            }
        };
        if let Some(providers) = &providers {
            // A protocol the sandbox speaks for one channel cannot also be the real
            // provider of another: its webhooks arrive at the same path.
            for (channel, variable) in SANDBOX_PROTOCOL_VARIABLES {
                let Some(protocol) = sandbox_protocols.get(&channel) else {
                    continue;
                };
                if providers.provider_for(channel) != ProviderName::Sandbox {
                    continue;
                }
                if Channel::all()
                    .iter()
                    .any(|other| providers.provider_for(*other) == *protocol)
                {
                    problems.push(InvalidVariable {
                        variable,
                        reason: format!(
                            "{} serves a channel for real; the sandbox cannot speak it too",
                            protocol.as_str()
                        ),
                    });
                }
            }
        }
        match providers {
            Some(providers) if problems.is_empty() => Ok(Self {
                providers,
                sandbox_protocols,
                sandbox_merchant_key: None,
                sandbox_wechatpay_api_v3_key: None,
            }),
            _ => Err(problems),
        }
    }
}

/// Gateway clients by the provider name their channels and webhooks are routed by.
type NamedGateways = Vec<(ProviderName, Arc<dyn PaymentGateway>)>;

/// One client per provider in use, routed by channel and webhook path, and the in-process
/// sandbox when some channel is served by it.
pub(crate) fn build_gateways(
    public_url: &str,
    setup: &GatewaySetup,
) -> Result<(Routing, Option<Sandbox>), GatewayError> {
    let settings = &setup.providers;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let notify_url = |provider: ProviderName| format!("{public_url}{}", webhook_path(provider));
    // The routing's view of the channels: a sandbox channel is routed to the protocol it
    // speaks, whose webhook path the sandbox delivers to.
    let mut routed = settings.clone();
    let mut gateways: NamedGateways = Vec::new();
    let mut sandbox = None;
    if let Some(pingpp) = &settings.pingpp {
        match pingpp.provider {
            Provider::Sandbox => {
                let (started, clients) = start_sandbox(public_url, setup, pingpp, &clock)?;
                for channel in Channel::all() {
                    if settings.provider_for(*channel) == ProviderName::Sandbox {
                        let protocol = setup
                            .sandbox_protocols
                            .get(channel)
                            .copied()
                            .unwrap_or(ProviderName::Pingpp);
                        routed.channels.insert(*channel, protocol);
                    }
                }
                gateways.extend(clients);
                sandbox = Some(started);
            }
            Provider::Pingpp => {
                let webhook_key = pingpp
                    .webhook_public_key
                    .clone()
                    .ok_or(GatewayError::MissingWebhookKey)?;
                let client = PingppClient::new(pingpp.pingpp_settings(&webhook_key))
                    .map_err(|error| GatewayError::client(ProviderName::Pingpp, error))?;
                gateways.push((ProviderName::Pingpp, Arc::new(client)));
            }
        }
    }
    if let Some(alipay) = &settings.alipay {
        let client = alipay
            .client(notify_url(ProviderName::Alipay), Arc::clone(&clock))
            .map_err(|error| GatewayError::client(ProviderName::Alipay, error))?;
        gateways.push((ProviderName::Alipay, Arc::new(client)));
    }
    if let Some(wechatpay) = &settings.wechatpay {
        let client = wechatpay
            .client(notify_url(ProviderName::WechatPay), Arc::clone(&clock))
            .map_err(|error| GatewayError::client(ProviderName::WechatPay, error))?;
        gateways.push((ProviderName::WechatPay, Arc::new(client)));
    }
    let routing = Routing::new(&routed, gateways)?;
    Ok((routing, sandbox))
}

/// The in-process sandbox, speaking all three protocols, and a client for each protocol some
/// channel speaks to it.
fn start_sandbox(
    public_url: &str,
    setup: &GatewaySetup,
    config: &GatewayConfig,
    clock: &Arc<dyn Clock>,
) -> Result<(Sandbox, NamedGateways), GatewayError> {
    let notify_url = |provider: ProviderName| format!("{public_url}{}", webhook_path(provider));
    let signing_key = match &config.sandbox_private_key {
        Some(key) => key.clone(),
        None => keys::generate()?,
    };
    let merchant_key = match &setup.sandbox_merchant_key {
        Some(key) => key.clone(),
        None => keys::generate()?,
    };
    // Random per start, like the signing key: the sandbox and its clients share it in memory.
    let api_v3_key = match &setup.sandbox_wechatpay_api_v3_key {
        Some(key) => key.clone(),
        None => ApiV3Key::parse(&uuid::Uuid::new_v4().simple().to_string())
            .map_err(|error| GatewayError::client(ProviderName::WechatPay, error))?,
    };
    let protocols = Protocols {
        alipay: Some(AlipaySide {
            app_id: SANDBOX_ALIPAY_APP_ID.to_owned(),
            app_public_key: merchant_key.to_public_key(),
            alipay_key: signing_key.clone(),
            notify_url: notify_url(ProviderName::Alipay),
        }),
        wechatpay: Some(WechatPaySide {
            mchid: SANDBOX_WECHATPAY_MCHID.to_owned(),
            appid: SANDBOX_WECHATPAY_APPID.to_owned(),
            merchant_serial: SANDBOX_WECHATPAY_MERCHANT_SERIAL.to_owned(),
            merchant_public_key: merchant_key.to_public_key(),
            platform_serial: SANDBOX_WECHATPAY_PLATFORM_SERIAL.to_owned(),
            platform_key: signing_key.clone(),
            api_v3_key: api_v3_key.clone(),
            notify_url: notify_url(ProviderName::WechatPay),
        }),
    };
    let sandbox = Sandbox::with_protocols(
        SandboxConfig {
            api_key: config.api_key.clone(),
            signing_key: signing_key.clone(),
            webhook_url: format!("{public_url}{WEBHOOK_PATH}"),
            public_url: public_url.to_owned(),
        },
        protocols,
    );
    let spoken = |protocol: ProviderName| {
        Channel::all().iter().any(|channel| {
            setup.providers.provider_for(*channel) == ProviderName::Sandbox
                && setup
                    .sandbox_protocols
                    .get(channel)
                    .copied()
                    .unwrap_or(ProviderName::Pingpp)
                    == protocol
        })
    };
    let mut clients: NamedGateways = Vec::new();
    if spoken(ProviderName::Pingpp) {
        let client = PingppClient::new(config.pingpp_settings(&sandbox.public_key()))
            .map_err(|error| GatewayError::client(ProviderName::Pingpp, error))?;
        clients.push((ProviderName::Pingpp, Arc::new(client)));
    }
    if spoken(ProviderName::Alipay) {
        let client = AlipayClient::new(
            AlipaySettings {
                gateway_url: format!("{public_url}{MOUNT_PATH}/alipay/gateway.do"),
                app_id: SANDBOX_ALIPAY_APP_ID.to_owned(),
                merchant_private_key: merchant_key.clone(),
                alipay_public_key: signing_key.to_public_key(),
                notify_url: notify_url(ProviderName::Alipay),
                provider_name: SANDBOX_PROVIDER,
            },
            Arc::clone(clock),
        )
        .map_err(|error| GatewayError::client(ProviderName::Alipay, error))?;
        clients.push((ProviderName::Alipay, Arc::new(client)));
    }
    if spoken(ProviderName::WechatPay) {
        let client = WechatPayClient::new(
            WechatPaySettings {
                api_base: format!("{public_url}{MOUNT_PATH}/wechatpay"),
                mchid: SANDBOX_WECHATPAY_MCHID.to_owned(),
                appid: SANDBOX_WECHATPAY_APPID.to_owned(),
                merchant_serial: SANDBOX_WECHATPAY_MERCHANT_SERIAL.to_owned(),
                merchant_private_key: merchant_key,
                platform_keys: PlatformKeys::new().with(
                    SANDBOX_WECHATPAY_PLATFORM_SERIAL,
                    signing_key.to_public_key(),
                ),
                api_v3_key,
                notify_url: notify_url(ProviderName::WechatPay),
                provider_name: SANDBOX_PROVIDER,
            },
            Arc::clone(clock),
            NonceCache::default(),
        )
        .map_err(|error| GatewayError::client(ProviderName::WechatPay, error))?;
        clients.push((ProviderName::WechatPay, Arc::new(client)));
    }
    Ok((sandbox, clients))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn setup(vars: &[(&str, &str)]) -> Result<GatewaySetup, Vec<InvalidVariable>> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        GatewaySetup::from_lookup(|name| env.get(name).cloned(), "http://127.0.0.1:8080")
    }

    #[test]
    fn the_sandbox_speaks_pingpp_unless_a_channel_names_another_protocol() {
        let plain = setup(&[]).unwrap();
        assert!(plain.sandbox_protocols.is_empty());
        let mixed = setup(&[("SANDBOX_PROTOCOL_ALIPAY_QR", "alipay")]).unwrap();
        assert_eq!(
            mixed.sandbox_protocols.get(&Channel::AlipayQr),
            Some(&ProviderName::Alipay)
        );
        assert_eq!(mixed.sandbox_protocols.get(&Channel::WxPubQr), None);
    }

    #[test]
    fn debug_output_shows_no_key() {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).unwrap();
        let exponent = rsa::traits::PrivateKeyParts::d(&key).to_string();
        let mut chosen = setup(&[("PINGPP_API_KEY", "sk_test_not_to_be_printed")]).unwrap();
        chosen.sandbox_merchant_key = Some(key);
        chosen.sandbox_wechatpay_api_v3_key =
            Some(ApiV3Key::parse("a-32-byte-apiv3-key-for-testing!").unwrap());
        let printed = format!("{chosen:?}");
        assert!(printed.contains("sandbox_merchant_key: true"), "{printed}");
        for secret in [exponent.as_str(), "sk_test_not", "apiv3-key"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn every_bad_protocol_and_provider_is_named() {
        let problems = setup(&[
            ("PAYMENT_PROVIDER", "stripe"),
            ("SANDBOX_PROTOCOL_ALIPAY_QR", "sandbox"),
            ("SANDBOX_PROTOCOL_WX_PUB_QR", "paypal"),
        ])
        .unwrap_err();
        let named: Vec<&str> = problems.iter().map(|problem| problem.variable).collect();
        assert!(named.contains(&"PAYMENT_PROVIDER"), "{named:?}");
        assert!(named.contains(&"SANDBOX_PROTOCOL_ALIPAY_QR"), "{named:?}");
        assert!(named.contains(&"SANDBOX_PROTOCOL_WX_PUB_QR"), "{named:?}");
    }
}
