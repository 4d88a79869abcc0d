//! Settings, read once from the environment at start-up. Every bad value is named in the
//! error so an operator can fix all of them in one go.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::client_ip::TrustedProxies;
use crate::auth::{TokenPolicy, TOKEN_LIFETIME_SECONDS_MAX_DEFAULT};
use aggregates::PlanCatalog;

use crate::checkout::CheckoutSettings;
use crate::gateway_setup::GatewaySetup;
use crate::ledger::QuotaSettings;
use crate::limits::OrderLimits;
use crate::merchant::MerchantSettings;
use crate::process::reconciler::{
    ReconcilerSettings, DEFAULT_INTERVAL, DEFAULT_PENDING_AGE, PENDING_BATCH_MAX,
};
use crate::server::ServeLimits;
use crate::variable::{self, positive_number};
use gateways::wechatpay::resource::ApiV3Key;

/// The default listen address: loopback only, so a bare `cargo run` exposes nothing.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Where the embedded database and generated development secrets live by default.
pub const DEFAULT_DATA_DIR: &str = "./data";

pub use crate::store::{DatabaseUrl, SQLITE_FILE_NAME};
pub use crate::variable::InvalidVariable;
pub use gateways::Secret;

/// The service's typed configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    /// The base URL gateways call back (webhooks) and customers are sent to.
    pub public_url: String,
    /// HS256 secret for bearer tokens; generated into the data directory when unset, which
    /// only the sandbox gateway allows.
    pub jwt_secret: Option<Secret>,
    /// Lifetime bound, issuer and audience every token must satisfy.
    pub token_policy: TokenPolicy,
    /// A static bearer token that may read `/metrics` (admin tokens may too).
    pub metrics_token: Option<Secret>,
    /// Whether the in-process sandbox gateway is configured (`PAYMENT_PROVIDER` unset or
    /// `sandbox`): no real money moves and anyone who reaches it can mark an order paid.
    pub sandbox: bool,
    /// Timeouts and the connection limit of the HTTP server.
    pub serve: ServeLimits,
    /// When and how often the background reconciler runs.
    pub reconciler: ReconcilerSettings,
    /// Proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: TrustedProxies,
    /// The merchant's webhook endpoint, the retry schedule, membership expiry timing.
    pub merchant: MerchantSettings,
    /// The plans on sale: `PAYLEDGER_PLANS`, else the standard catalog.
    pub catalog: PlanCatalog,
    /// The key that signs published heads, and how often the head is logged.
    pub audit: AuditSettings,
    /// Bounds on one order's amount.
    pub order_limits: OrderLimits,
    /// How many orders one user may start per minute and keep open at once.
    pub quota: QuotaSettings,
    /// Browser origins allowed to call the API, where the checkout may send buyers back to,
    /// and how long a checkout link lives.
    pub checkout: CheckoutSettings,
    /// Which provider serves each channel, with its credentials, and what the in-process
    /// sandbox speaks.
    pub gateways: GatewaySetup,
    /// `WECHATPAY_APIV3_KEY`, also when WeChat Pay serves no channel: `payledger verify`
    /// opens kept WeChat Pay callbacks with it.
    pub wechatpay_api_v3_key: Option<ApiV3Key>,
    /// The gateway public keys `payledger verify` checks kept evidence with, named by
    /// [`GATEWAY_KEY_VARIABLES`] whichever provider is configured.
    pub gateway_public_keys: Vec<PathBuf>,
    /// `PAYLEDGER_LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// Where the configured gateway public keys are, for `payledger verify`.
pub const GATEWAY_KEY_VARIABLES: [&str; 3] = [
    "PINGPP_PUBLIC_KEY_PATH",
    "ALIPAY_PUBLIC_KEY_PATH",
    "WECHATPAY_PLATFORM_PUBLIC_KEY_PATH",
];

/// The APIv3 key that opens WeChat Pay callbacks.
pub const WECHATPAY_API_V3_KEY_VARIABLE: &str = "WECHATPAY_APIV3_KEY";

/// Publishing the log's head where the database role cannot rewrite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// `PAYLEDGER_AUDIT_KEY_PATH`: an RSA private key (PEM or bare base64) kept outside the
    /// database; `GET /v1/audit/head` signs with it.
    pub key_path: Option<PathBuf>,
    /// `PAYLEDGER_ANCHOR_INTERVAL_SECS`: how often the server logs the head.
    pub anchor_interval: Duration,
}

/// How often the server logs the log's head when `PAYLEDGER_ANCHOR_INTERVAL_SECS` is unset.
pub const ANCHOR_INTERVAL_DEFAULT: Duration = Duration::from_secs(300);

/// Every bad variable found at start-up, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigError(pub Vec<InvalidVariable>);

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(variable::environment)
    }

    /// Reads settings through `lookup`, so tests can supply an environment of their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let non_empty = |name: &str| variable::non_empty(&lookup, name);

        let addr_text = non_empty("PAYLEDGER_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = match addr_text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_ADDR",
                    reason: format!("`{addr_text}` is not a socket address like 127.0.0.1:8080"),
                });
                None
            }
        };

        let data_dir = PathBuf::from(
            non_empty("PAYLEDGER_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()),
        );

        let database = match non_empty("DATABASE_URL") {
            None => Some(DatabaseUrl::sqlite_in(&data_dir)),
            Some(url) => match DatabaseUrl::parse(&url) {
                Ok(database) => Some(database),
                Err(reason) => {
                    problems.push(InvalidVariable {
                        variable: "DATABASE_URL",
                        reason,
                    });
                    None
                }
            },
        };

        let public_url = match non_empty("PAYLEDGER_PUBLIC_URL") {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(_) => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_PUBLIC_URL",
                    reason: "expected an http:// or https:// URL".to_owned(),
                });
                None
            }
            None => addr.map(|addr| format!("http://{addr}")),
        };
        // Checked even when the public URL is bad (against a stand-in: the settings are refused
        // then anyway), so that the gateway's problems are named too.
        let stand_in = format!("http://{DEFAULT_ADDR}");
        let gateways =
            GatewaySetup::from_lookup(&lookup, public_url.as_deref().unwrap_or(&stand_in))
                .map_err(|found| problems.extend(found))
                .ok();
        let wechatpay_api_v3_key = wechatpay_api_v3_key(&lookup, &mut problems);
        let gateway_public_keys = GATEWAY_KEY_VARIABLES
            .iter()
            .filter_map(|name| non_empty(name).map(PathBuf::from))
            .collect();
        let log_format = LogFormat::from_lookup(&lookup).unwrap_or_else(|problem| {
            problems.push(problem);
            LogFormat::Text
        });

        // Counted without surrounding whitespace: 31 spaces and an `x` are not a secret.
        let jwt_secret = match non_empty("PAYLEDGER_JWT_SECRET") {
            Some(secret) if secret.trim().len() < MIN_JWT_SECRET_BYTES => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_JWT_SECRET",
                    reason: format!(
                        "must be at least {MIN_JWT_SECRET_BYTES} bytes long, not counting \
                         surrounding whitespace"
                    ),
                });
                None
            }
            other => other.map(Secret::new),
        };

        // Only whether it is the sandbox: the gateway's own settings are checked with it.
        let sandbox = match non_empty("PAYMENT_PROVIDER") {
            None => true,
            Some(provider) => provider.trim() == "sandbox",
        };
        if !sandbox && non_empty("PAYLEDGER_JWT_SECRET").is_none() {
            problems.push(InvalidVariable {
                variable: "PAYLEDGER_JWT_SECRET",
                reason: "required with a real payment gateway (PAYMENT_PROVIDER is not \
                         `sandbox`): a development secret kept on disk must never guard real money"
                    .to_owned(),
            });
        }
        let allow_sandbox = match non_empty("PAYLEDGER_ALLOW_SANDBOX")
            .as_deref()
            .map(str::trim)
        {
            None | Some("0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(_) => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_ALLOW_SANDBOX",
                    reason: "expected 1 or 0".to_owned(),
                });
                false
            }
        };
        let exposed = addr.is_some_and(|addr| !addr.ip().is_loopback())
            || public_url
                .as_deref()
                .is_some_and(|url| !url_is_loopback(url));
        if sandbox && exposed && !allow_sandbox {
            problems.push(InvalidVariable {
                variable: "PAYLEDGER_ALLOW_SANDBOX",
                reason: SANDBOX_EXPOSED.to_owned(),
            });
        }

        let text = |name: &str| variable::trimmed(&lookup, name);
        let metrics_token = match text("PAYLEDGER_METRICS_TOKEN") {
            Some(token) if token.len() < MIN_JWT_SECRET_BYTES => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_METRICS_TOKEN",
                    reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes long"),
                });
                None
            }
            other => other.map(Secret::new),
        };
        let trusted_proxies =
            match TrustedProxies::parse(&text("PAYLEDGER_TRUSTED_PROXIES").unwrap_or_default()) {
                Ok(proxies) => proxies,
                Err(bad) => {
                    problems.push(InvalidVariable {
                        variable: "PAYLEDGER_TRUSTED_PROXIES",
                        reason: format!("not an IP address or CIDR block: {}", bad.join(", ")),
                    });
                    TrustedProxies::default()
                }
            };
        let merchant = MerchantSettings::from_lookup(&lookup, &mut problems);
        let order_limits = OrderLimits::from_lookup(&lookup)
            .map_err(|found| problems.extend(found))
            .ok();
        let quota = QuotaSettings::from_lookup(&lookup)
            .map_err(|found| problems.extend(found))
            .ok();
        let checkout = CheckoutSettings::from_lookup(&lookup)
            .map_err(|found| problems.extend(found))
            .ok();
        let catalog = match non_empty("PAYLEDGER_PLANS") {
            None => PlanCatalog::standard(),
            Some(path) => match crate::catalog::load(std::path::Path::new(path.trim())) {
                Ok(catalog) => catalog,
                Err(error) => {
                    problems.push(InvalidVariable {
                        variable: "PAYLEDGER_PLANS",
                        reason: error.to_string(),
                    });
                    PlanCatalog::standard()
                }
            },
        };
        let issuer = text("PAYLEDGER_JWT_ISSUER");
        let audience = text("PAYLEDGER_JWT_AUDIENCE");

        let mut seconds = |variable: &'static str, default: Duration| {
            Duration::from_secs(positive_number(
                &lookup,
                variable,
                default.as_secs(),
                "a positive whole number of seconds",
                &mut problems,
            ))
        };
        let reconciler = ReconcilerSettings {
            pending_age: seconds("PAYLEDGER_RECONCILE_AFTER_SECS", DEFAULT_PENDING_AGE),
            interval: seconds("PAYLEDGER_RECONCILE_INTERVAL_SECS", DEFAULT_INTERVAL),
            pending_batch: PENDING_BATCH_MAX,
        };
        let audit = AuditSettings {
            key_path: non_empty("PAYLEDGER_AUDIT_KEY_PATH").map(|path| PathBuf::from(path.trim())),
            anchor_interval: seconds("PAYLEDGER_ANCHOR_INTERVAL_SECS", ANCHOR_INTERVAL_DEFAULT),
        };
        let lifetime_max = seconds(
            "PAYLEDGER_JWT_MAX_TTL_SECS",
            Duration::from_secs(TOKEN_LIFETIME_SECONDS_MAX_DEFAULT),
        );
        let defaults = ServeLimits::default();
        let mut serve = ServeLimits {
            header_read_timeout: seconds(
                "PAYLEDGER_HEADER_READ_TIMEOUT_SECS",
                defaults.header_read_timeout,
            ),
            body_read_timeout: seconds(
                "PAYLEDGER_BODY_READ_TIMEOUT_SECS",
                defaults.body_read_timeout,
            ),
            connections_max: defaults.connections_max,
        };
        match non_empty("PAYLEDGER_MAX_CONNECTIONS").map(|text| text.trim().parse::<usize>()) {
            None => {}
            Some(Ok(count)) if (1..=CONNECTIONS_MAX_LIMIT).contains(&count) => {
                serve.connections_max = count;
            }
            Some(_) => problems.push(InvalidVariable {
                variable: "PAYLEDGER_MAX_CONNECTIONS",
                reason: format!("expected a whole number from 1 to {CONNECTIONS_MAX_LIMIT}"),
            }),
        }
        let token_policy = match chrono::Duration::from_std(lifetime_max) {
            Ok(lifetime_max)
                if lifetime_max <= chrono::Duration::days(TOKEN_LIFETIME_DAYS_LIMIT) =>
            {
                Some(TokenPolicy {
                    lifetime_max,
                    issuer,
                    audience,
                })
            }
            _ => {
                problems.push(InvalidVariable {
                    variable: "PAYLEDGER_JWT_MAX_TTL_SECS",
                    reason: format!("at most {TOKEN_LIFETIME_DAYS_LIMIT} days"),
                });
                None
            }
        };

        match (
            addr,
            database,
            public_url,
            token_policy,
            order_limits,
            quota,
            checkout,
            gateways,
        ) {
            (
                Some(addr),
                Some(database),
                Some(public_url),
                Some(token_policy),
                Some(order_limits),
                Some(quota),
                Some(checkout),
                Some(gateways),
            ) if problems.is_empty() => Ok(Self {
                addr,
                data_dir,
                database,
                public_url,
                jwt_secret,
                token_policy,
                metrics_token,
                sandbox,
                serve,
                reconciler,
                trusted_proxies,
                merchant,
                catalog,
                audit,
                order_limits,
                quota,
                checkout,
                gateways,
                wechatpay_api_v3_key,
                gateway_public_keys,
                log_format,
            }),
            _ => Err(ConfigError(problems)),
        }
    }

    /// Development mode: the sandbox gateway, or a token secret generated on disk. Convenient
    /// on a laptop, never what production runs; the server says so loudly at start-up.
    pub fn development_mode(&self) -> bool {
        self.sandbox || self.jwt_secret.is_none()
    }
}

/// How the service writes its logs (`PAYLEDGER_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Reads `PAYLEDGER_LOG_FORMAT`: with the other settings, or alone for the commands that
    /// read nothing else.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, InvalidVariable> {
        Self::parse(lookup("PAYLEDGER_LOG_FORMAT").as_deref())
    }

    pub fn parse(value: Option<&str>) -> Result<Self, InvalidVariable> {
        match value.map(str::trim) {
            None | Some("" | "text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(_) => Err(InvalidVariable {
                variable: "PAYLEDGER_LOG_FORMAT",
                reason: "expected `text` or `json`".to_owned(),
            }),
        }
    }
}

/// Reads `path` (a `.env` file) into the environment when it exists. A variable already set in
/// the environment is never overridden: the file only fills in what is missing.
pub fn load_dotenv(path: &std::path::Path) -> Result<(), ConfigError> {
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ConfigError(vec![InvalidVariable {
            variable: "PAYLEDGER_DOTENV",
            reason: format!("cannot read {}: {error}", path.display()),
        }])),
    }
}

/// Creates the data directory (and its parents) readable only by its owner, before the store
/// opens: it holds the embedded database and the development secrets. A directory that already
/// exists keeps its mode (it may be shared on purpose), with a warning when others can read it.
pub fn create_data_dir(data_dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
    }
    let mode = std::fs::metadata(data_dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %data_dir.display(),
            mode = format!("{:o}", mode & 0o777),
            "the data directory can be read by other users; chmod 700 it"
        );
    }
    Ok(())
}

/// Makes the embedded database's files (the database, its write-ahead log and shared memory)
/// readable and writable by their owner only. Nothing to do for PostgreSQL.
pub fn restrict_sqlite_files(database: &DatabaseUrl) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let DatabaseUrl::Sqlite(url) = database else {
        return Ok(());
    };
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// The file of an SQLite URL (`sqlite://path?options` or `sqlite:path`); None in memory.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// `WECHATPAY_APIV3_KEY` when set. A bad one is named once, even when the WeChat Pay gateway's
/// own settings named it already; its value is never echoed, it is the secret.
fn wechatpay_api_v3_key(
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<InvalidVariable>,
) -> Option<ApiV3Key> {
    let text = variable::trimmed(lookup, WECHATPAY_API_V3_KEY_VARIABLE)?;
    match ApiV3Key::parse(&text) {
        Ok(key) => Some(key),
        Err(error) => {
            let named = problems
                .iter()
                .any(|problem| problem.variable == WECHATPAY_API_V3_KEY_VARIABLE);
            if !named {
                problems.push(InvalidVariable {
                    variable: WECHATPAY_API_V3_KEY_VARIABLE,
                    reason: error.to_string(),
                });
            }
            None
        }
    }
}

/// The most `PAYLEDGER_MAX_CONNECTIONS` may be: far beyond what one process should hold.
const CONNECTIONS_MAX_LIMIT: usize = 1_000_000;

/// The longest token lifetime `PAYLEDGER_JWT_MAX_TTL_SECS` may allow.
const TOKEN_LIFETIME_DAYS_LIMIT: i64 = 365;

/// Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn url_is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why the sandbox may not be reachable from other machines unless allowed on purpose.
const SANDBOX_EXPOSED: &str = "the sandbox gateway (no real money; its pay button marks any \
    order paid) would be reachable beyond this machine (PAYLEDGER_ADDR or PAYLEDGER_PUBLIC_URL \
    is not loopback): configure a real gateway with PAYMENT_PROVIDER, or set \
    PAYLEDGER_ALLOW_SANDBOX=1 to expose it on purpose";

/// HS256 keys shorter than the hash output weaken the signature.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        Settings::from_lookup(|name| env.get(name).cloned())
    }

    /// Everything Ping++ needs but the token secret: the gateway is checked with the rest.
    fn pingpp_with<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        static KEY_PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let key_path = KEY_PATH.get_or_init(|| {
            // Small, so that the test is quick: only its shape is checked here.
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).unwrap();
            let pem = gateways::pingpp::keys::public_key_to_pem(&key.to_public_key()).unwrap();
            let path =
                std::env::temp_dir().join(format!("payledger-pingpp-{}.pem", uuid::Uuid::new_v4()));
            std::fs::write(&path, pem).unwrap();
            path.display().to_string()
        });
        let mut variables = vec![
            ("PAYMENT_PROVIDER", "pingpp"),
            ("PINGPP_APP_ID", "app_test"),
            ("PINGPP_API_KEY", "sk_live_test"),
            ("PINGPP_PUBLIC_KEY_PATH", key_path.as_str()),
        ];
        variables.extend_from_slice(more);
        variables
    }

    #[test]
    fn an_empty_environment_runs_embedded_on_loopback() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(settings.database.kind(), "sqlite");
        assert!(settings.database.as_str().ends_with("data/payledger.db"));
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert!(settings.jwt_secret.is_none());
    }

    #[test]
    fn the_database_scheme_picks_the_store() {
        let settings = settings(&[("DATABASE_URL", "postgres://u@h/db")]).unwrap();
        assert_eq!(settings.database.kind(), "postgres");
    }

    #[test]
    fn every_bad_variable_is_named_at_once() {
        let error = settings(&[
            ("PAYLEDGER_ADDR", "not-an-address"),
            ("DATABASE_URL", "mysql://x"),
            ("PAYLEDGER_JWT_SECRET", "short"),
        ])
        .unwrap_err();
        let text = error.to_string();
        for variable in ["PAYLEDGER_ADDR", "DATABASE_URL", "PAYLEDGER_JWT_SECRET"] {
            assert!(text.contains(variable), "{text}");
        }
        assert!(!text.contains("short"), "a secret leaked into {text}");
    }

    #[test]
    fn reconciler_timings_are_positive_seconds() {
        let defaults = settings(&[]).unwrap().reconciler;
        assert_eq!(defaults, ReconcilerSettings::default());
        let chosen = settings(&[
            ("PAYLEDGER_RECONCILE_AFTER_SECS", "120"),
            ("PAYLEDGER_RECONCILE_INTERVAL_SECS", "5"),
        ])
        .unwrap()
        .reconciler;
        assert_eq!(chosen.pending_age, Duration::from_secs(120));
        assert_eq!(chosen.interval, Duration::from_secs(5));
        let text = settings(&[
            ("PAYLEDGER_RECONCILE_AFTER_SECS", "0"),
            ("PAYLEDGER_RECONCILE_INTERVAL_SECS", "soon"),
        ])
        .unwrap_err()
        .to_string();
        for variable in [
            "PAYLEDGER_RECONCILE_AFTER_SECS",
            "PAYLEDGER_RECONCILE_INTERVAL_SECS",
        ] {
            assert!(text.contains(variable), "{text}");
        }
    }

    #[test]
    fn secrets_and_urls_do_not_print() {
        let secret = Secret::new("super-secret-value".to_owned());
        assert!(!format!("{secret:?}").contains("super"));
        let url = DatabaseUrl::parse("postgres://user:hunter2@host/db").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn a_real_gateway_without_a_token_secret_refuses_to_start() {
        let text = settings(&pingpp_with(&[])).unwrap_err().to_string();
        assert!(text.contains("PAYLEDGER_JWT_SECRET"), "{text}");
        let text = settings(&pingpp_with(&[("PAYLEDGER_JWT_SECRET", "   ")]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("PAYLEDGER_JWT_SECRET"), "{text}");
        let secret = "s".repeat(MIN_JWT_SECRET_BYTES);
        let chosen = settings(&pingpp_with(&[("PAYLEDGER_JWT_SECRET", &secret)])).unwrap();
        assert!(!chosen.sandbox);
        assert!(!chosen.development_mode());
    }

    #[test]
    fn a_secret_is_measured_without_its_surrounding_whitespace() {
        let padded = format!("{}x{}", " ".repeat(32), "\t".repeat(8));
        let text = settings(&[("PAYLEDGER_JWT_SECRET", &padded)])
            .unwrap_err()
            .to_string();
        assert!(text.contains("PAYLEDGER_JWT_SECRET"), "{text}");
        assert!(settings(&[("PAYLEDGER_JWT_SECRET", &"k".repeat(32))]).is_ok());
    }

    #[test]
    fn the_sandbox_beyond_loopback_must_be_allowed_explicitly() {
        for exposed in [
            vec![("PAYLEDGER_PUBLIC_URL", "https://pay.example.com")],
            vec![("PAYLEDGER_ADDR", "0.0.0.0:8080")],
            vec![("PAYLEDGER_PUBLIC_URL", "http://10.0.0.5:8080")],
        ] {
            let text = settings(&exposed).unwrap_err().to_string();
            assert!(
                text.contains("PAYLEDGER_ALLOW_SANDBOX"),
                "{exposed:?}: {text}"
            );
            let mut allowed = exposed.clone();
            allowed.push(("PAYLEDGER_ALLOW_SANDBOX", "1"));
            assert!(settings(&allowed).unwrap().development_mode());
        }
        for loopback in [
            "http://127.0.0.1:8080",
            "http://localhost:9000/x",
            "http://[::1]:8080",
            "http://127.1.2.3",
        ] {
            assert!(
                settings(&[("PAYLEDGER_PUBLIC_URL", loopback)]).is_ok(),
                "{loopback}"
            );
        }
        assert!(!url_is_loopback("http://localhost.example.com"));
        assert!(!url_is_loopback("http://127.0.0.1.example.com:80"));
        assert!(!url_is_loopback("http://user@evil.com"));
        // A real gateway needs no such permission.
        let secret = "s".repeat(MIN_JWT_SECRET_BYTES);
        assert!(settings(&pingpp_with(&[
            ("PAYLEDGER_JWT_SECRET", &secret),
            ("PAYLEDGER_PUBLIC_URL", "https://pay.example.com"),
        ]))
        .is_ok());
    }

    #[test]
    fn the_token_policy_comes_from_the_environment() {
        assert_eq!(settings(&[]).unwrap().token_policy, TokenPolicy::default());
        let chosen = settings(&[
            ("PAYLEDGER_JWT_MAX_TTL_SECS", "3600"),
            ("PAYLEDGER_JWT_ISSUER", "https://id.example.com"),
            ("PAYLEDGER_JWT_AUDIENCE", "payledger"),
        ])
        .unwrap()
        .token_policy;
        assert_eq!(chosen.lifetime_max, chrono::Duration::hours(1));
        assert_eq!(chosen.issuer.as_deref(), Some("https://id.example.com"));
        assert_eq!(chosen.audience.as_deref(), Some("payledger"));
        for bad in ["0", "soon", "99999999999"] {
            let text = settings(&[("PAYLEDGER_JWT_MAX_TTL_SECS", bad)])
                .unwrap_err()
                .to_string();
            assert!(text.contains("PAYLEDGER_JWT_MAX_TTL_SECS"), "{text}");
        }
    }

    #[test]
    fn the_metrics_token_is_optional_and_long_when_given() {
        assert!(settings(&[]).unwrap().metrics_token.is_none());
        let chosen = settings(&[("PAYLEDGER_METRICS_TOKEN", &"m".repeat(40))]).unwrap();
        assert_eq!(chosen.metrics_token.unwrap().expose(), "m".repeat(40));
        let text = settings(&[("PAYLEDGER_METRICS_TOKEN", "short")])
            .unwrap_err()
            .to_string();
        assert!(text.contains("PAYLEDGER_METRICS_TOKEN"), "{text}");
        assert!(!text.contains("short"), "a secret leaked into {text}");
    }

    #[test]
    fn no_proxy_is_trusted_unless_named_and_bad_entries_are_refused() {
        assert_eq!(
            settings(&[]).unwrap().trusted_proxies,
            TrustedProxies::default()
        );
        let named = settings(&[("PAYLEDGER_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(
            named.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8,::1").unwrap()
        );
        let text = settings(&[("PAYLEDGER_TRUSTED_PROXIES", "10.0.0.0/8, my-proxy")])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("PAYLEDGER_TRUSTED_PROXIES") && text.contains("my-proxy"),
            "{text}"
        );
    }

    #[test]
    fn server_limits_come_from_the_environment() {
        let defaults = settings(&[]).unwrap().serve;
        assert_eq!(defaults, ServeLimits::default());
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        let chosen = settings(&[
            ("PAYLEDGER_HEADER_READ_TIMEOUT_SECS", "3"),
            ("PAYLEDGER_BODY_READ_TIMEOUT_SECS", "4"),
            ("PAYLEDGER_MAX_CONNECTIONS", "16"),
        ])
        .unwrap()
        .serve;
        assert_eq!(chosen.header_read_timeout, Duration::from_secs(3));
        assert_eq!(chosen.body_read_timeout, Duration::from_secs(4));
        assert_eq!(chosen.connections_max, 16);
        let text = settings(&[
            ("PAYLEDGER_MAX_CONNECTIONS", "0"),
            ("PAYLEDGER_HEADER_READ_TIMEOUT_SECS", "soon"),
            ("PAYLEDGER_BODY_READ_TIMEOUT_SECS", "-1"),
        ])
        .unwrap_err()
        .to_string();
        for variable in [
            "PAYLEDGER_MAX_CONNECTIONS",
            "PAYLEDGER_HEADER_READ_TIMEOUT_SECS",
            "PAYLEDGER_BODY_READ_TIMEOUT_SECS",
        ] {
            assert!(text.contains(variable), "{text}");
        }
    }

    #[test]
    fn a_merchant_webhook_secret_too_short_refuses_to_start() {
        let text = settings(&[
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_URL",
                "https://merchant.example/hooks",
            ),
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_SECRET",
                "too-short-to-sign-with",
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(text.contains("PAYLEDGER_MERCHANT_WEBHOOK_SECRET"), "{text}");
        assert!(text.contains("32 bytes"), "{text}");
        assert!(!text.contains("too-short"), "a secret leaked into {text}");
        let chosen = settings(&[
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_URL",
                "https://merchant.example/hooks",
            ),
            ("PAYLEDGER_MERCHANT_WEBHOOK_SECRET", &"w".repeat(32)),
        ])
        .unwrap();
        let endpoint = chosen.merchant.endpoint.unwrap();
        assert_eq!(endpoint.url, "https://merchant.example/hooks");
        assert!(!format!("{endpoint:?}").contains("wwww"));
    }

    #[test]
    fn a_bad_plans_file_refuses_to_start_with_its_line() {
        assert_eq!(settings(&[]).unwrap().catalog, PlanCatalog::standard());
        let dir = std::env::temp_dir().join(format!("payledger-plans-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plans.json");
        std::fs::write(&path, "{\"plans\": [\n  {\"id\": \"pro\", \"name\": 7}\n]}").unwrap();
        let text = settings(&[("PAYLEDGER_PLANS", &path.display().to_string())])
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.contains("PAYLEDGER_PLANS"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn a_bad_server_variable_and_a_bad_gateway_variable_are_named_in_one_error() {
        let error = settings(&[
            ("PAYLEDGER_MAX_CONNECTIONS", "0"),
            ("PAYMENT_PROVIDER", "stripe"),
            ("SANDBOX_PROTOCOL_WX_PUB_QR", "paypal"),
            ("PAYLEDGER_LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        let named: Vec<&str> = error.0.iter().map(|problem| problem.variable).collect();
        for variable in [
            "PAYLEDGER_MAX_CONNECTIONS",
            "PAYMENT_PROVIDER",
            "SANDBOX_PROTOCOL_WX_PUB_QR",
            "PAYLEDGER_LOG_FORMAT",
        ] {
            assert!(named.contains(&variable), "{named:?}");
        }
    }

    #[test]
    fn gateway_problems_are_named_even_when_the_public_url_is_bad() {
        let error = settings(&[
            ("PAYLEDGER_PUBLIC_URL", "ftp://pay.example.com"),
            ("PAYMENT_PROVIDER_ALIPAY_QR", "alipay"),
        ])
        .unwrap_err();
        let named: Vec<&str> = error.0.iter().map(|problem| problem.variable).collect();
        assert!(named.contains(&"PAYLEDGER_PUBLIC_URL"), "{named:?}");
        assert!(named.contains(&"ALIPAY_APP_ID"), "{named:?}");
    }

    #[test]
    fn the_gateways_and_the_log_format_are_read_in_the_same_pass() {
        let plain = settings(&[]).unwrap();
        assert_eq!(plain.log_format, LogFormat::Text);
        assert_eq!(
            plain
                .gateways
                .providers
                .provider_for(aggregates::Channel::AlipayQr),
            gateways::routing::ProviderName::Sandbox
        );
        assert!(plain.wechatpay_api_v3_key.is_none());
        assert!(plain.gateway_public_keys.is_empty());
        let chosen = settings(&[
            ("PAYLEDGER_LOG_FORMAT", "json"),
            ("SANDBOX_PROTOCOL_ALIPAY_QR", "alipay"),
            ("PINGPP_API_KEY", "sk_test_chosen"),
            (
                WECHATPAY_API_V3_KEY_VARIABLE,
                "a-32-byte-apiv3-key-for-testing!",
            ),
            ("ALIPAY_PUBLIC_KEY_PATH", "keys/alipay.pem"),
        ])
        .unwrap();
        assert_eq!(chosen.log_format, LogFormat::Json);
        assert_eq!(
            chosen
                .gateways
                .sandbox_protocols
                .get(&aggregates::Channel::AlipayQr),
            Some(&gateways::routing::ProviderName::Alipay)
        );
        let pingpp = chosen.gateways.providers.pingpp.as_ref().unwrap();
        assert_eq!(pingpp.api_key.as_ref().unwrap().expose(), "sk_test_chosen");
        assert!(chosen.wechatpay_api_v3_key.is_some());
        assert_eq!(
            chosen.gateway_public_keys,
            vec![PathBuf::from("keys/alipay.pem")]
        );
    }

    #[test]
    fn a_bad_wechatpay_key_is_named_once_without_its_value() {
        let text = settings(&[(WECHATPAY_API_V3_KEY_VARIABLE, "short-secret")])
            .unwrap_err()
            .to_string();
        assert!(text.contains(WECHATPAY_API_V3_KEY_VARIABLE), "{text}");
        assert!(
            !text.contains("short-secret"),
            "a secret leaked into {text}"
        );
        // With WeChat Pay serving a channel its own settings check the key too: still once.
        let error = settings(&[
            ("PAYMENT_PROVIDER", "wechatpay"),
            ("PAYLEDGER_JWT_SECRET", &"s".repeat(MIN_JWT_SECRET_BYTES)),
            (WECHATPAY_API_V3_KEY_VARIABLE, "short-secret"),
        ])
        .unwrap_err();
        let named = error
            .0
            .iter()
            .filter(|problem| problem.variable == WECHATPAY_API_V3_KEY_VARIABLE)
            .count();
        assert_eq!(named, 1, "{error}");
    }

    #[test]
    fn settings_print_no_secret() {
        let chosen = settings(&[
            ("PAYLEDGER_JWT_SECRET", "jwt-secret-jwt-secret-jwt-secret-1"),
            (
                "PAYLEDGER_METRICS_TOKEN",
                "metrics-token-metrics-token-metrics-2",
            ),
            ("DATABASE_URL", "postgres://user:db-password-3@host/db"),
            ("PINGPP_API_KEY", "sk_test_pingpp-key-4"),
            (
                WECHATPAY_API_V3_KEY_VARIABLE,
                "apiv3-key-5-apiv3-key-5-apiv3-k5",
            ),
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_URL",
                "https://merchant.example/hooks",
            ),
            (
                "PAYLEDGER_MERCHANT_WEBHOOK_SECRET",
                "merchant-secret-merchant-secret-6",
            ),
        ])
        .unwrap();
        let printed = format!("{chosen:?}");
        for secret in [
            "jwt-secret",
            "metrics-token",
            "db-password",
            "pingpp-key",
            "apiv3-key",
            "merchant-secret",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked into {printed}");
        }
        assert!(printed.contains("log_format: Text"), "{printed}");
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(
            LogFormat::from_lookup(
                &|name| (name == "PAYLEDGER_LOG_FORMAT").then(|| " json ".to_owned())
            ),
            Ok(LogFormat::Json)
        );
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        assert!(LogFormat::parse(Some("xml")).is_err());
    }

    #[test]
    fn a_dotenv_file_fills_in_but_never_overrides_the_environment() {
        let dir = std::env::temp_dir().join(format!("payledger-dotenv-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        let set = format!(
            "PAYLEDGER_TEST_DOTENV_SET_{}",
            uuid::Uuid::new_v4().simple()
        );
        let unset = format!(
            "PAYLEDGER_TEST_DOTENV_UNSET_{}",
            uuid::Uuid::new_v4().simple()
        );
        std::fs::write(&path, format!("{set}=from-file\n{unset}=from-file\n")).unwrap();
        std::env::set_var(&set, "from-environment");
        load_dotenv(&path).unwrap();
        let (kept, filled) = (std::env::var(&set), std::env::var(&unset));
        load_dotenv(&dir.join("missing.env")).unwrap();
        std::fs::write(&path, "NOT A VALID LINE ===\n'").unwrap();
        let broken = load_dotenv(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(kept.unwrap(), "from-environment");
        assert_eq!(filled.unwrap(), "from-file");
        assert!(broken.is_err());
    }

    #[test]
    fn the_data_directory_is_created_owner_only_and_sqlite_files_are_restricted() {
        use std::os::unix::fs::PermissionsExt;

        let root = std::env::temp_dir().join(format!("payledger-mode-{}", uuid::Uuid::new_v4()));
        let data_dir = root.join("nested").join("data");
        create_data_dir(&data_dir).unwrap();
        let dir_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
        let database = DatabaseUrl::sqlite_in(&data_dir);
        let file = data_dir.join(SQLITE_FILE_NAME);
        std::fs::write(&file, b"").unwrap();
        std::fs::write(data_dir.join(format!("{SQLITE_FILE_NAME}-wal")), b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_sqlite_files(&database).unwrap();
        let file_mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        let wal_mode = std::fs::metadata(data_dir.join(format!("{SQLITE_FILE_NAME}-wal")))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(dir_mode, 0o700);
        assert_eq!(file_mode, 0o600);
        assert_eq!(wal_mode, 0o600);
        assert!(restrict_sqlite_files(&DatabaseUrl::parse("postgres://u@h/db").unwrap()).is_ok());
        assert_eq!(
            sqlite_path("sqlite://d/x.db?mode=rwc"),
            Some(PathBuf::from("d/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
