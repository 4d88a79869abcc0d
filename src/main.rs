//! Entry point: read settings, open the store, migrate, then run the chosen command.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use gateways::config::Provider;
use gateways::pingpp::keys;
use gateways::pingpp::verify_cli::{self, EXIT_KEY_ERROR};
use payledger::auth::{self, Role, TokenKeys};
use payledger::checkout;
use payledger::cli::{Cli, Command, WebhookCommand};
use payledger::config::{
    self, ConfigError, LogFormat, Secret, Settings, WECHATPAY_API_V3_KEY_VARIABLE,
};
use payledger::gateway_setup::GatewaySetup;
use payledger::ledger::CreationQuota;
use payledger::server::Service;
use payledger::store::{self, Store};
use payledger::variable;
use sandbox::{self, SandboxConfig};

/// Lifetime of the demo token printed at start-up.
const DEMO_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(12);
const DEMO_USER: &str = "demo-user";

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // Before anything reads the environment; variables already set always win over the file.
    config::load_dotenv(std::path::Path::new(".env"))?;

    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Webhook {
            command:
                WebhookCommand::Verify {
                    provider,
                    public_key,
                    secret,
                    signature,
                    headers,
                    at,
                    body,
                },
        }) => {
            init_logging(log_format_alone()?);
            if provider == "payledger" {
                return Ok(verify_merchant_delivery(
                    secret.as_deref().unwrap_or_default(),
                    headers,
                    *at,
                    body.as_deref(),
                ));
            }
            return Ok(verify_webhook(
                provider,
                public_key.as_deref().unwrap_or(std::path::Path::new("")),
                signature.as_deref(),
                headers,
                *at,
                body.as_deref(),
            ));
        }
        Some(Command::Sandbox {
            addr,
            webhook_url,
            private_key,
            api_key,
        }) => {
            init_logging(log_format_alone()?);
            run_sandbox(
                *addr,
                webhook_url,
                private_key.as_deref(),
                api_key.as_deref(),
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    // Every setting, read once; every bad one named. Logging starts after, in the format read.
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        // `verify` promises 2 for input it cannot use, such as a bad WECHATPAY_APIV3_KEY.
        Err(error) if matches!(cli.command, Some(Command::Verify { .. })) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
        Err(error) => return Err(error.into()),
    };
    init_logging(settings.log_format);

    if let Some(Command::Token { user, admin, ttl }) = &cli.command {
        let tokens = cli_token_keys(&settings)?;
        let role = if *admin { Role::Admin } else { Role::User };
        let ttl = auth::parse_ttl(ttl)?;
        println!("{}", tokens.issue(user, role, ttl, chrono::Utc::now())?);
        return Ok(ExitCode::SUCCESS);
    }

    // Before the store opens, so an embedded database is created inside an owner-only folder.
    config::create_data_dir(&settings.data_dir)?;
    let (tokens, generated) = token_keys(&settings)?;
    let store = Store::connect(&settings.database).await?;
    config::restrict_sqlite_files(&settings.database)?;
    store::migrate(&store).await?;

    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate {
            print_grants,
            apply_grants,
            app_role,
        } => {
            println!("migrations applied to the {} database", store.kind());
            if !(print_grants || apply_grants) {
                return Ok(ExitCode::SUCCESS);
            }
            grants(&store, app_role.as_deref(), apply_grants).await
        }
        Command::Replay { as_of } => replay(&store, as_of.as_deref()).await,
        Command::Reconcile => reconcile(&settings, store, tokens).await,
        Command::Export {
            as_of,
            from,
            to,
            format,
        } => export(&store, &as_of, from.as_deref(), to.as_deref(), &format).await,
        Command::Verify {
            anchor,
            audit_key,
            gateway_keys,
        } => {
            verify(
                &settings,
                &store,
                anchor.as_deref(),
                audit_key.as_deref(),
                &gateway_keys,
            )
            .await
        }
        Command::Token { .. } | Command::Webhook { .. } | Command::Sandbox { .. } => {
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            serve(&settings, store, tokens, generated).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configured secret, or the development one kept in the data directory (which the
/// settings allow only with the sandbox gateway).
fn token_keys(settings: &Settings) -> anyhow::Result<(TokenKeys, bool)> {
    let keys = |secret: &[u8]| {
        TokenKeys::with_policy(secret, settings.token_policy.clone())
            .with_metrics_token(settings.metrics_token.clone())
    };
    match &settings.jwt_secret {
        Some(secret) => Ok((keys(secret.expose().as_bytes()), false)),
        None => {
            let secret = auth::load_or_create_dev_secret(&settings.data_dir)
                .context("cannot keep a development JWT secret in the data directory")?;
            Ok((keys(&secret), true))
        }
    }
}

/// The keys `payledger token` signs with: the configured secret, or the development secret a
/// server already created. It never creates one: a token signed with a secret no server uses
/// would be refused, and saying so here is clearer than a 401 later.
fn cli_token_keys(settings: &Settings) -> anyhow::Result<TokenKeys> {
    let keys = |secret: &[u8]| TokenKeys::with_policy(secret, settings.token_policy.clone());
    if let Some(secret) = &settings.jwt_secret {
        eprintln!("signing with PAYLEDGER_JWT_SECRET");
        return Ok(keys(secret.expose().as_bytes()));
    }
    let path = auth::dev_secret_path(&settings.data_dir);
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    match auth::load_dev_secret(&settings.data_dir) {
        Ok(secret) => {
            eprintln!(
                "signing with the development secret in {} (PAYLEDGER_JWT_SECRET is not set)",
                shown.display()
            );
            Ok(keys(&secret))
        }
        Err(error) => anyhow::bail!(
            "PAYLEDGER_JWT_SECRET is not set and there is no development secret at {} ({error}); \
             set PAYLEDGER_JWT_SECRET to the server's secret, or PAYLEDGER_DATA_DIR to the \
             server's data directory (a development secret is created only by the server)",
            shown.display()
        ),
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
    let (gateway, generated_key) = gateway_setup(settings)?;
    let database = store.kind();
    let mut service = Service::start(store, tokens.clone(), &settings.public_url, &gateway).await?;
    service.state.limits = settings.order_limits;
    service.state.quota = Arc::new(CreationQuota::new(settings.quota));
    service.state.trusted_proxies = Arc::new(settings.trusted_proxies.clone());
    service.state.checkout = std::sync::Arc::new(settings.checkout.clone());
    service.state.catalog = std::sync::Arc::new(settings.catalog.clone());
    tracing::info!(routing = ?service.state.gateways, "payment gateways configured");
    if service.sandbox.is_some() {
        println!(
            "Sandbox gateway: pay an order by opening its qr_code URL, or POST {}/sandbox/charges/CHARGE_ID/pay",
            settings.public_url
        );
    }
    tracing::info!(addr = %settings.addr, database, "payledger is serving");
    if settings.development_mode() {
        announce_development_mode(settings, generated_key.as_ref());
    }
    if generated_secret {
        let ttl = DEMO_TOKEN_TTL.min(settings.token_policy.lifetime_max);
        let token = tokens.issue(DEMO_USER, Role::User, ttl, chrono::Utc::now())?;
        println!(
            "No PAYLEDGER_JWT_SECRET set: using a development secret kept in the data directory."
        );
        println!(
            "Demo token for user {DEMO_USER} (valid {} min):\n{token}",
            ttl.num_minutes()
        );
        let url = demo_checkout(&service.state).await?;
        println!("Demo checkout for user {DEMO_USER} (open it in a browser):\n{url}");
    }
    if let Some(path) = &settings.audit.key_path {
        let key = gateways::keys::private_key_from_file(path)
            .with_context(|| format!("PAYLEDGER_AUDIT_KEY_PATH: cannot read {}", path.display()))?;
        service.state.audit_key = Some(std::sync::Arc::new(key));
    }
    tokio::spawn(payledger::audit::anchor::log_heads(
        service.state.store.read.clone(),
        settings.audit.anchor_interval,
    ));
    service.spawn_reconciler(settings.reconciler);
    service.spawn_merchant(&settings.merchant).await?;
    service
        .serve_with(listener, shutdown_signal(), settings.serve)
        .await?;
    tracing::info!("payledger stopped");
    Ok(())
}

/// A checkout link for the demo user, with the plan and channel left to the buyer.
async fn demo_checkout(state: &payledger::AppState) -> anyhow::Result<String> {
    let opened = checkout::open_session(
        state,
        checkout::OpenSession {
            user_id: aggregates::UserId::parse(DEMO_USER)?,
            plan_id: None,
            channel: None,
            success_url: None,
            cancel_url: None,
        },
    )
    .await?;
    Ok(format!(
        "{}{}",
        state.public_url,
        checkout::page_path(&opened.secret)
    ))
}

/// The gateway settings. With the in-process sandbox and no `PINGPP_API_KEY`, the
/// sandbox's API (charges, knobs, deliveries) gets a key generated once and kept in the data
/// directory, so that it is never open to anyone who can reach it, and a `payledger reconcile`
/// on the same data directory uses the same key. Without `SANDBOX_PRIVATE_KEY_PATH` its
/// signing key is kept there too (see `sandbox_key`).
fn gateway_setup(settings: &Settings) -> anyhow::Result<(GatewaySetup, Option<Secret>)> {
    let mut setup = settings.gateways.clone();
    let mut generated = None;
    let sandbox = setup
        .providers
        .pingpp
        .as_mut()
        .filter(|pingpp| pingpp.provider == Provider::Sandbox);
    if let Some(pingpp) = sandbox {
        if pingpp.sandbox_private_key.is_none() {
            let key = payledger::sandbox_key::load_or_create(&settings.data_dir)
                .context("cannot keep the sandbox's signing key in the data directory")?;
            pingpp.sandbox_private_key = Some(key);
        }
        if pingpp.api_key.is_none() {
            let key =
                auth::load_or_create_secret_file(&settings.data_dir, SANDBOX_API_KEY_FILE_NAME)
                    .context("cannot keep the sandbox's API key in the data directory")?;
            let key = String::from_utf8(key).context("the sandbox's API key file is not text")?;
            let key = Secret::new(format!("sk_test_{key}"));
            pingpp.api_key = Some(key.clone());
            generated = Some(key);
        }
    }
    Ok((setup, generated))
}

/// Name of the file in the data directory that keeps the generated sandbox API key.
const SANDBOX_API_KEY_FILE_NAME: &str = "sandbox_api_key";

/// Says on standard error, where an operator looks first, that this is not a production set-up.
/// Only a key generated here is shown: one the operator configured is never printed.
fn announce_development_mode(settings: &Settings, generated_sandbox_key: Option<&Secret>) {
    let mut reasons = Vec::new();
    if settings.sandbox {
        reasons.push("the payment gateway is the sandbox: no real money moves");
    }
    if settings.jwt_secret.is_none() {
        reasons.push("PAYLEDGER_JWT_SECRET is not set: tokens are signed with a development secret kept in the data directory");
    }
    tracing::warn!(reasons = ?reasons, "DEVELOPMENT MODE: not for production");
    let mut banner = vec![
        "==================================================================".to_owned(),
        " DEVELOPMENT MODE: do not use this set-up in production.".to_owned(),
    ];
    banner.extend(reasons.iter().map(|reason| format!("  - {reason}")));
    if let Some(key) = generated_sandbox_key {
        banner.push(format!(
            "  - the sandbox API ({}/sandbox/v1, /sandbox/knobs, /sandbox/deliveries) needs: \
             Authorization: Bearer {}",
            settings.public_url,
            key.expose()
        ));
    }
    banner.push("==================================================================".to_owned());
    // Standard error is where an operator looks first, unless it carries JSON lines that a
    // banner would break: then standard output, next to the demo token.
    for line in banner {
        match settings.log_format {
            LogFormat::Json => println!("{line}"),
            LogFormat::Text => eprintln!("{line}"),
        }
    }
}

/// `payledger reconcile`: one pass, printed. With the in-process sandbox the gateway is the
/// sandbox of the server at PAYLEDGER_PUBLIC_URL (this process serves none of its own).
async fn reconcile(
    settings: &Settings,
    store: Store,
    tokens: TokenKeys,
) -> anyhow::Result<ExitCode> {
    let (gateway, _) = gateway_setup(settings)?;
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
        let scratch = projections::replay::rebuild_as_of_reporting(
            &store.read,
            instant,
            progress_line("replay"),
        )
        .await?;
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
    let report = projections::replay::audit_reporting(&store.read, progress_line("replay")).await?;
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
        let listed = report.differences.len();
        let total = report.differences_total;
        if usize::try_from(total).is_ok_and(|total| total > listed) {
            println!("{total} differences ({listed} listed)");
        } else {
            println!("{total} differences");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// `payledger migrate --print-grants | --apply-grants`: the application role's privileges.
async fn grants(store: &Store, role: Option<&str>, apply: bool) -> anyhow::Result<ExitCode> {
    if store.dialect() != store::Dialect::Postgres {
        eprintln!("roles and grants exist on PostgreSQL only");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let Some(role) = role else {
        eprintln!("name the application role with --app-role or PAYLEDGER_APP_ROLE");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    };
    let statements = match store::grants::grant_statements(role) {
        Ok(statements) => statements,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    if apply {
        store::grants::apply_grants(&store.read, role).await?;
        println!("granted the application role {role} what the server needs");
    } else {
        for statement in statements {
            println!("{statement};");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `payledger export`: the history at an instant on standard output; 2 on bad input.
async fn export(
    store: &Store,
    as_of: &str,
    from: Option<&str>,
    to: Option<&str>,
    format: &str,
) -> anyhow::Result<ExitCode> {
    let instant = |name: &str, text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|_| format!("--{name}: `{text}` is not an RFC 3339 instant"))
    };
    let window = (|| {
        Ok::<_, String>(payledger::audit::export::Window {
            as_of: instant("as-of", as_of)?,
            from: from.map(|text| instant("from", text)).transpose()?,
            to: to.map(|text| instant("to", text)).transpose()?,
        })
    })();
    let window = match window {
        Ok(window) => window,
        Err(problem) => {
            eprintln!("{problem}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let format = if format == "json" {
        payledger::audit::export::Format::Json
    } else {
        payledger::audit::export::Format::Csv
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let exported = payledger::audit::export::export(&store.read, window, format, &mut out).await?;
    eprintln!(
        "exported {} entries as of {}, built from position {}",
        exported.entries, window.as_of, exported.head_position
    );
    Ok(ExitCode::SUCCESS)
}

/// `payledger verify`: 0 intact, 1 problems (each printed with its position), 2 bad input.
async fn verify(
    settings: &Settings,
    store: &Store,
    anchor: Option<&std::path::Path>,
    audit_key: Option<&std::path::Path>,
    gateway_keys: &[std::path::PathBuf],
) -> anyhow::Result<ExitCode> {
    let audit_key = match audit_key.map(gateways::keys::public_key_material_from_file) {
        None => None,
        Some(Ok(material)) => Some(material.key),
        Some(Err(error)) => {
            eprintln!("audit key: {error}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let anchor = match anchor
        .map(|path| payledger::audit::anchor::read_file(path, audit_key.as_ref()))
        .transpose()
    {
        Ok(anchor) => anchor,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let mut paths = gateway_keys.to_vec();
    paths.extend(settings.gateway_public_keys.iter().cloned());
    let mut keys = Vec::new();
    for path in &paths {
        match gateways::keys::public_key_material_from_file(path) {
            Ok(material) => keys.push(material.key),
            Err(error) => {
                eprintln!("gateway key {}: {error}", path.display());
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
    }
    // What the sandbox signed is checked with its key, as the server verified it.
    if let Some(pingpp) = &settings.gateways.providers.pingpp {
        match payledger::sandbox_key::public_key(pingpp, &settings.data_dir) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(error) => {
                eprintln!("the sandbox's signing key: {error}");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
    }
    let mut evidence = payledger::audit::evidence::EvidenceCheck::new(keys);
    // The same setting the server opens callbacks with.
    if let Some(key) = &settings.wechatpay_api_v3_key {
        evidence = evidence.with_wechatpay_api_v3_key(key.clone());
    }
    let report = payledger::audit::verify(
        &store.read,
        store.dialect(),
        anchor,
        &mut evidence,
        progress_line("verify"),
    )
    .await?;
    println!(
        "evidence: {} webhook(s) and {} signed gateway answer(s) verified again, {} unsigned \
         gateway answer(s) compared (nobody signed them), {} signed by a protocol not verified \
         again yet",
        evidence.reverified,
        evidence.answers_reverified,
        evidence.unsigned,
        evidence.not_reverified
    );
    if evidence.amounts_not_compared > 0 {
        println!(
            "evidence: {} WeChat Pay webhook(s) verified again but their order, charge and \
             amount NOT compared: set {WECHATPAY_API_V3_KEY_VARIABLE} to open them",
            evidence.amounts_not_compared
        );
    }
    let head_hash = report.head_hash.map_or_else(
        || "none".to_owned(),
        |hash| projections::chain::to_hex(&hash),
    );
    println!(
        "verified {} events; head: position {} hash {head_hash}",
        report.events, report.head_position
    );
    if report.is_clean() {
        println!("the log is intact");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("  PROBLEM {problem}");
    }
    println!(
        "{} problem(s) ({} listed)",
        report.problems_total,
        report.problems.len()
    );
    Ok(ExitCode::FAILURE)
}

/// Exit status of a command given input it cannot use (a missing or malformed file).
const EXIT_BAD_INPUT: u8 = 2;

/// Events between two progress lines of a long walk of the log.
const PROGRESS_EVERY: u64 = 100_000;

/// A progress reporter for long walks of the log (`replay`, `export`, `verify`, named by
/// `command`): a line on stderr every [`PROGRESS_EVERY`] events with the events done, the
/// position reached and the rate, so stdout stays the report alone.
fn progress_line(command: &'static str) -> impl FnMut(projections::Progress) {
    let started = std::time::Instant::now();
    let mut next = PROGRESS_EVERY;
    move |progress| {
        if progress.events < next {
            return;
        }
        next = (progress.events / PROGRESS_EVERY + 1) * PROGRESS_EVERY;
        let seconds = started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            format!(
                "{:.0}",
                f64::from(u32::try_from(progress.events).unwrap_or(u32::MAX)) / seconds
            )
        } else {
            "-".to_owned()
        };
        let target = progress
            .up_to
            .map_or_else(String::new, |up_to| format!(" of {up_to}"));
        eprintln!(
            "{command}: {} events, position {}{target}, {rate} events/s",
            progress.events, progress.checkpoint
        );
    }
}

/// Reads the captured body from `body`, or standard input.
fn read_body(body: Option<&std::path::Path>) -> std::io::Result<Vec<u8>> {
    match body {
        Some(path) => std::fs::read(path),
        None => {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map(|_| buffer)
        }
    }
}

/// `payledger webhook verify --provider payledger`: 0 genuine, 1 not genuine, 2 bad input.
fn verify_merchant_delivery(
    secret: &str,
    headers: &[String],
    at: Option<i64>,
    body: Option<&std::path::Path>,
) -> ExitCode {
    use payledger::merchant::signature::{self, SignatureProblem};

    let bytes = match read_body(body) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("cannot read the body: {error}");
            return ExitCode::from(EXIT_KEY_ERROR);
        }
    };
    let now = at.unwrap_or_else(|| chrono::Utc::now().timestamp());
    match signature::check_captured(headers, &bytes, secret.trim().as_bytes(), now) {
        Ok(Ok(())) => {
            println!("genuine: a v1 signature matches and t is within 5 minutes");
            ExitCode::SUCCESS
        }
        Ok(Err(problem @ SignatureProblem::OutsideTolerance { .. })) => {
            println!("NOT genuine: {problem} (pass --at with the capture's time)");
            ExitCode::from(1)
        }
        Ok(Err(problem)) => {
            println!("NOT genuine: {problem}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_KEY_ERROR)
        }
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
    let bytes = match read_body(body) {
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
    api_key: Option<&str>,
) -> anyhow::Result<()> {
    let signing_key = match private_key {
        Some(path) => keys::private_key_from_file(path)?,
        None => keys::generate()?,
    };
    let public_pem = keys::public_key_to_pem(&signing_key.to_public_key())?;
    println!("Sandbox gateway on http://{addr}/sandbox/v1, delivering webhooks to {webhook_url}");
    println!("Its webhook signing public key (give it to the ledger as PINGPP_PUBLIC_KEY_PATH):\n{public_pem}");
    // Its API marks charges paid: never open to anyone. Without a configured key, a fresh
    // one for this run, printed (the operator asked for a sandbox; no real money moves).
    let api_key = match api_key.filter(|key| !key.trim().is_empty()) {
        Some(key) => Secret::new(key.to_owned()),
        None => {
            let key = Secret::new(format!("sk_test_{}", auth::random_hex_secret()));
            println!(
                "Its API (/sandbox/v1, /sandbox/knobs, /sandbox/deliveries) needs: \
                 Authorization: Bearer {} (set PINGPP_API_KEY to choose one)",
                key.expose()
            );
            key
        }
    };
    sandbox::serve_standalone(
        addr,
        SandboxConfig {
            api_key: Some(api_key),
            signing_key,
            webhook_url: webhook_url.to_owned(),
            public_url: format!("http://{addr}"),
        },
    )
    .await?;
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, the signal service managers and container
/// runtimes send; the server then drains the requests in flight and exits 0. The handlers are
/// installed here, before serving starts, so that a signal arriving early is not fatal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};

    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let name = match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            (Ok(mut interrupt), Err(_)) => {
                interrupt.recv().await;
                "SIGINT"
            }
            (Err(_), Ok(mut terminate)) => {
                terminate.recv().await;
                "SIGTERM"
            }
            (Err(_), Err(_)) => std::future::pending::<&str>().await,
        };
        tracing::info!(signal = name, "shutdown signal received");
    }
}

/// The log format alone, for the commands that need no other setting.
fn log_format_alone() -> Result<LogFormat, ConfigError> {
    LogFormat::from_lookup(&variable::environment).map_err(|problem| ConfigError(vec![problem]))
}

/// Logs go to standard error, as JSON lines with `PAYLEDGER_LOG_FORMAT=json`, and carry colour
/// only when standard error is a terminal (a log file or collector gets plain text).
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
