//! Entry point: read settings, open the store, migrate, then run the chosen command.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use gateways::pingpp::keys;
use gateways::pingpp::verify_cli::{self, EXIT_KEY_ERROR};
use payledger::auth::{self, Role, TokenKeys};
use payledger::cli::{Cli, Command, WebhookCommand};
use payledger::config::{ConfigError, Settings};
use payledger::limits::OrderLimits;
use payledger::server::{GatewaySetup, Service};
use payledger::store::{self, Store};
use sandbox::{self, SandboxConfig};

/// Lifetime of the demo token printed at start-up.
const DEMO_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(12);
const DEMO_USER: &str = "demo-user";

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();

    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Webhook {
            command:
                WebhookCommand::Verify {
                    provider,
                    public_key,
                    signature,
                    headers,
                    at,
                    body,
                },
        }) => {
            return Ok(verify_webhook(
                provider,
                public_key,
                signature.as_deref(),
                headers,
                *at,
                body.as_deref(),
            ))
        }
        Some(Command::Sandbox {
            addr,
            webhook_url,
            private_key,
        }) => {
            run_sandbox(*addr, webhook_url, private_key.as_deref()).await?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let settings = Settings::from_env()?;
    let (tokens, generated) = token_keys(&settings)?;

    if let Some(Command::Token { user, admin, ttl }) = &cli.command {
        let role = if *admin { Role::Admin } else { Role::User };
        let ttl = auth::parse_ttl(ttl)?;
        println!("{}", tokens.issue(user, role, ttl, chrono::Utc::now())?);
        return Ok(ExitCode::SUCCESS);
    }

    let store = Store::connect(&settings.database).await?;
    store::migrate(&store).await?;

    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            println!("migrations applied to the {} database", store.kind());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { as_of } => replay(&store, as_of.as_deref()).await,
        Command::Reconcile => reconcile(&settings, store, tokens).await,
        Command::Token { .. } | Command::Webhook { .. } | Command::Sandbox { .. } => {
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            serve(&settings, store, tokens, generated).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configured secret, or the development one kept in the data directory.
fn token_keys(settings: &Settings) -> anyhow::Result<(TokenKeys, bool)> {
    match &settings.jwt_secret {
        Some(secret) => Ok((TokenKeys::from_secret(secret.expose().as_bytes()), false)),
        None => {
            let secret = auth::load_or_create_dev_secret(&settings.data_dir)
                .context("cannot keep a development JWT secret in the data directory")?;
            Ok((TokenKeys::from_secret(&secret), true))
        }
    }
}

async fn serve(
    settings: &Settings,
    store: Store,
    tokens: TokenKeys,
    generated_secret: bool,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.addr))?;
    let gateway = GatewaySetup::from_env(&settings.public_url).map_err(ConfigError)?;
    let limits = OrderLimits::from_env().map_err(ConfigError)?;
    let database = store.kind();
    let mut service = Service::start(store, tokens.clone(), &settings.public_url, &gateway).await?;
    service.state.limits = limits;
    tracing::info!(routing = ?service.state.gateways, "payment gateways configured");
    if service.sandbox.is_some() {
        println!(
            "Sandbox gateway: pay an order by opening its qr_code URL, or POST {}/sandbox/charges/CHARGE_ID/pay",
            settings.public_url
        );
    }
    tracing::info!(addr = %settings.addr, database, "payledger is serving");
    if generated_secret {
        let token = tokens.issue(DEMO_USER, Role::User, DEMO_TOKEN_TTL, chrono::Utc::now())?;
        println!(
            "No PAYLEDGER_JWT_SECRET set: using a development secret kept in the data directory."
        );
        println!("Demo token for user {DEMO_USER} (valid 12 h):\n{token}");
    }
    service.spawn_reconciler(settings.reconciler);
    service.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// `payledger reconcile`: one pass, printed. With the in-process sandbox the gateway is the
/// sandbox of the server at PAYLEDGER_PUBLIC_URL (this process serves none of its own).
async fn reconcile(
    settings: &Settings,
    store: Store,
    tokens: TokenKeys,
) -> anyhow::Result<ExitCode> {
    let gateway = GatewaySetup::from_env(&settings.public_url).map_err(ConfigError)?;
    let service = Service::start(store, tokens, &settings.public_url, &gateway).await?;
    let report =
        payledger::process::reconciler::run_once(&service.state, &settings.reconciler).await;
    service.stop().await;
    print!("{}", report?);
    Ok(ExitCode::SUCCESS)
}

async fn replay(store: &Store, as_of: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(text) = as_of {
        let instant = chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("--as-of: `{text}` is not an RFC 3339 instant"))?
            .with_timezone(&chrono::Utc);
        let scratch = projections::replay::rebuild_as_of(&store.read, instant).await?;
        let tables = scratch.tables();
        println!(
            "views rebuilt as of {instant} into the tables prefixed `{}`:",
            tables.prefix
        );
        for (table, _) in tables.views() {
            let count: i64 = sqlx::Row::try_get(
                &sqlx::query(&format!(
                    "SELECT CAST(count(*) AS BIGINT) AS n FROM {table}"
                ))
                .fetch_one(&store.read)
                .await?,
                "n",
            )?;
            println!("  {table}: {count} rows");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = projections::replay::audit(&store.read).await?;
    println!("replayed the log up to position {}", report.position);
    for (view, rows) in &report.rows {
        println!("  {view}: {rows} rows");
    }
    if report.is_clean() {
        println!("views equal the log");
        Ok(ExitCode::SUCCESS)
    } else {
        for difference in &report.differences {
            println!(
                "  DIFFERENCE {} {} ({:?})",
                difference.view, difference.key, difference.side
            );
        }
        println!("{} differences", report.differences.len());
        Ok(ExitCode::FAILURE)
    }
}

/// `payledger webhook verify`: 0 genuine, 1 not genuine, 2 bad input.
fn verify_webhook(
    provider: &str,
    public_key: &std::path::Path,
    signature: Option<&str>,
    headers: &[String],
    at: Option<i64>,
    body: Option<&std::path::Path>,
) -> ExitCode {
    let bytes = match body {
        Some(path) => std::fs::read(path),
        None => {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map(|_| buffer)
        }
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("cannot read the body: {error}");
            return ExitCode::from(EXIT_KEY_ERROR);
        }
    };
    let outcome = match provider {
        "alipay" => gateways::verify_cli::alipay(public_key, &bytes),
        "wechatpay" => gateways::verify_cli::header_lines(headers)
            .and_then(|headers| gateways::verify_cli::wechatpay(public_key, &headers, &bytes, at)),
        _ => verify_cli::verify_captured(public_key, signature.unwrap_or_default(), &bytes)
            .map_err(gateways::verify_cli::BadInput::from),
    };
    match outcome {
        Ok(outcome) => {
            println!("{}", gateways::verify_cli::describe(&outcome));
            ExitCode::from(outcome.exit_code())
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run_sandbox(
    addr: std::net::SocketAddr,
    webhook_url: &str,
    private_key: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let signing_key = match private_key {
        Some(path) => keys::private_key_from_file(path)?,
        None => keys::generate()?,
    };
    let public_pem = keys::public_key_to_pem(&signing_key.to_public_key())?;
    println!("Sandbox gateway on http://{addr}/sandbox/v1, delivering webhooks to {webhook_url}");
    println!("Its webhook signing public key (give it to the ledger as PINGPP_PUBLIC_KEY_PATH):\n{public_pem}");
    let api_key = std::env::var("PINGPP_API_KEY")
        .ok()
        .filter(|key| !key.is_empty())
        .map(payledger::config::Secret::new);
    sandbox::serve_standalone(
        addr,
        SandboxConfig {
            api_key,
            signing_key,
            webhook_url: webhook_url.to_owned(),
            public_url: format!("http://{addr}"),
        },
    )
    .await?;
    Ok(())
}

async fn shutdown_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
