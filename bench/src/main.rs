//! `payledger-bench`: starts the real `payledger` server as a child process on a scratch
//! database, drives it over HTTP from this process, and prints one line per figure, each with
//! its ratio to a baseline measured on the same machine in the same run, then a Markdown table
//! of all of them. Everything it starts or creates is stopped or removed at the end, also when
//! it fails.

mod args;
mod baseline;
mod cpu;
mod database;
mod http;
mod report;
mod server;
mod stats;
mod workloads;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use gateways::pingpp::keys;
use payledger::auth::TokenKeys;
use payledger::config::DatabaseUrl;
use payledger::store::{self, Store};
use projections::{Projector, Tables};
use rsa::RsaPrivateKey;

use args::{Args, Plan, StoreChoice, Workload};
use baseline::Baselines;
use database::ScratchPostgres;
use report::{Figure, Report};
use server::{kib_to_mib, scratch_dir, ServerEnv};
use workloads::Context;

/// Lines of the server's log an error carries.
const SERVER_LOG_TAIL_LINES: usize = 20;
/// How long the server's projector may take to reach the head of the log after start-up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("payledger-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(&args) => result,
            signal = tokio::signal::ctrl_c() => match signal {
                Ok(()) => Err(anyhow::anyhow!("interrupted")),
                Err(error) => Err(error.into()),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("payledger-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What every store's run shares: the server binary, its secrets and the sandbox key.
struct Shared {
    binary: std::path::PathBuf,
    jwt_secret: String,
    keys: TokenKeys,
    signing_key: RsaPrivateKey,
    key_path: std::path::PathBuf,
    tag: String,
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let plan = Plan::from_args(args)?;
    let started = Instant::now();
    let binary = server::server_binary()?;
    let work = scratch_dir("run")?;

    let signing_key = keys::generate().context("generating the sandbox signing key")?;
    let key_path = work.path().join("sandbox-signing-key.pem");
    std::fs::write(&key_path, keys::private_key_to_pem(&signing_key)?)?;
    // 40 random characters.
    let jwt_secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let shared = Shared {
        binary,
        keys: TokenKeys::from_secret(jwt_secret.as_bytes()),
        jwt_secret,
        signing_key,
        key_path,
        tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
    };

    let stores: Vec<&'static str> = match args.store {
        StoreChoice::Postgres => vec!["postgres"],
        StoreChoice::Sqlite => vec!["sqlite"],
        StoreChoice::Both => vec!["postgres", "sqlite"],
    };
    println!(
        "payledger-bench: stores={} clients={} window={}s quick={} cores={} load={}",
        stores.join(","),
        plan.clients,
        plan.window.as_secs(),
        plan.quick,
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    let mut report = Report::default();
    let admin_url = database::postgres_admin_url();

    // Baselines first, before anything else loads the machine.
    let mut baselines = Vec::new();
    for &store_name in &stores {
        let measured = if store_name == "postgres" {
            baseline::postgres(&admin_url, &plan, work.path(), &mut report).await?
        } else {
            baseline::sqlite(&plan, work.path(), &mut report).await?
        };
        baselines.push((store_name, measured));
    }

    for (store_name, measured) in baselines {
        run_store(
            store_name,
            &admin_url,
            &plan,
            &shared,
            measured,
            &mut report,
        )
        .await?;
    }

    println!();
    println!(
        "finished in {:.1}s; the figures as a table:",
        started.elapsed().as_secs_f64()
    );
    println!();
    print!("{}", report.markdown());
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".to_owned())
}

async fn run_store(
    store_name: &'static str,
    admin_url: &str,
    plan: &Plan,
    shared: &Shared,
    baselines: Baselines,
    report: &mut Report,
) -> anyhow::Result<()> {
    let data = scratch_dir(store_name)?;
    let scratch = if store_name == "postgres" {
        Some(ScratchPostgres::create(admin_url, "server").await?)
    } else {
        None
    };
    let database_url = match &scratch {
        Some(scratch) => scratch.url.clone(),
        None => format!("sqlite://{}", data.path().join("bench.db").display()),
    };
    if let Some(scratch) = &scratch {
        println!("{store_name}: scratch database {}", scratch.name());
    }
    let env = ServerEnv {
        binary: shared.binary.clone(),
        database_url: database_url.clone(),
        data_dir: data.path().to_path_buf(),
        jwt_secret: shared.jwt_secret.clone(),
        sandbox_key_path: shared.key_path.clone(),
    };

    // The bench's own connection to the same database, migrated as the server would.
    let store = Store::connect(
        &DatabaseUrl::parse(&database_url).map_err(|reason| anyhow::anyhow!(reason))?,
    )
    .await?;
    store::migrate(&store).await?;

    if plan.runs(Workload::History) {
        workloads::history::run(&store, store_name, plan, &shared.tag, report).await?;
    }

    let server = env.start_server().await?;
    println!(
        "{store_name}: server pid {} at {}",
        server.pid(),
        server.base()
    );
    wait_caught_up(&store, store_name, report).await?;

    let context = Context {
        store: store_name,
        plan,
        api: http::Api::new(server.base().to_owned(), shared.keys.clone()),
        baselines,
        signing_key: &shared.signing_key,
        server_pid: Some(server.pid()),
        tag: shared.tag.clone(),
        read: store.read.clone(),
    };
    let outcome = async {
        // Idle first, before any load; then one order at a time, then the webhook path,
        // before the big payments load.
        let idle = if plan.runs(Workload::Idle) {
            workloads::idle::run(&context, report).await?
        } else {
            None
        };
        if plan.runs(Workload::Sequential) {
            workloads::sequential::run(&context, idle, report).await?;
        }
        if plan.runs(Workload::WebhooksPresigned) {
            workloads::webhooks::run(&context, report).await?;
        }
        if plan.runs(Workload::Payments) {
            workloads::payments::run(&context, report).await?;
        }
        if plan.runs(Workload::Polls) {
            workloads::polls::run(&context, report).await?;
        }
        if plan.runs(Workload::Hotspot) {
            workloads::hotspot::run(&context, report).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = outcome {
        return Err(error.context(format!(
            "server log tail:\n{}",
            server.output_tail(SERVER_LOG_TAIL_LINES)
        )));
    }
    let memory = server
        .memory()
        .context("no VmHWM/VmRSS in the server's /proc status")?;
    report.add(
        Figure::new(format!("memory.{store_name}"))
            .value(
                "server_peak_rss_mib",
                format!("{:.1}", kib_to_mib(memory.peak_kib)),
            )
            .value(
                "server_rss_now_mib",
                format!("{:.1}", kib_to_mib(memory.now_kib)),
            )
            .value(
                "source",
                "/proc/<pid>/status_VmHWM,VmRSS_after_the_HTTP_workloads",
            ),
    );
    // Stopped (killed) before replay, which would otherwise share the machine with it.
    drop(server);

    if plan.runs(Workload::Replay) {
        let setup = workloads::replay::Setup {
            store: &store,
            store_name,
            is_postgres: scratch.is_some(),
            plan,
            baselines,
            env: &env,
            tag: &shared.tag,
        };
        workloads::replay::run(&setup, report).await?;
    }
    store.close().await;
    drop(scratch);
    drop(data);
    Ok(())
}

/// Waits until the server's projector has reached the head of the log (it projects whatever
/// the bench appended before it started).
async fn wait_caught_up(
    store: &Store,
    store_name: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let projector = Projector::new(store.read.clone(), Tables::live());
    let head = projections::log::head(&store.read).await?;
    let started = Instant::now();
    loop {
        let checkpoint = projector.checkpoint().await.unwrap_or(0);
        if checkpoint >= head {
            break;
        }
        if started.elapsed() > CATCH_UP_TIMEOUT {
            anyhow::bail!(
                "the server's views reached {checkpoint} of {head} in {CATCH_UP_TIMEOUT:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.add(
        Figure::new(format!("startup.{store_name}"))
            .value("events_to_project", head)
            .value(
                "healthy_to_caught_up_s",
                format!("{:.2}", started.elapsed().as_secs_f64()),
            ),
    );
    Ok(())
}
