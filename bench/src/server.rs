//! The real server as a child process: the `payledger` binary built next to this one, with
//! the bench's environment, on a free loopback port (started and killed by the harness).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use harness::{free_port, loopback_base, Launch, Readiness, ScratchDir, ServerProcess};

/// How long the server may take to answer `/healthz` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A scratch directory `payledger-bench-<label>-<uuid>`, removed when dropped.
pub fn scratch_dir(label: &str) -> anyhow::Result<ScratchDir> {
    Ok(ScratchDir::new(&format!("bench-{label}"))?)
}

/// Variables `cargo run` sets about the package it runs (besides `CARGO_PKG_*`).
const CARGO_RUN_PACKAGE_VARIABLES: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

/// The `payledger` binary next to this executable. When run through `cargo run`, it is
/// rebuilt first with the same profile so the bench never measures a stale server.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("cannot find this executable")?;
    let binary = own.with_file_name(format!("payledger{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = own
            .parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .map_or("release", |name| if name == "debug" { "dev" } else { name });
        eprintln!("building the server binary (cargo build --profile {profile} -p payledger)");
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--profile", profile, "-p", "payledger"]);
        // Into the directory this executable was built in, for the workspace it belongs to.
        if let Some(target_dir) = own.parent().and_then(Path::parent) {
            build.arg("--target-dir").arg(target_dir);
        }
        if let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            build
                .arg("--manifest-path")
                .arg(Path::new(&manifest_dir).join("Cargo.toml"));
        }
        // `cargo run` describes this package to it in the environment; some build scripts
        // (ring's) track those variables, so passing them on would make this build differ
        // from a plain `cargo build --release`, which would then rebuild everything again.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|name| {
                CARGO_RUN_PACKAGE_VARIABLES.contains(&name) || name.starts_with("CARGO_PKG_")
            }) {
                build.env_remove(&name);
            }
        }
        let status = build
            .status()
            .context("cannot run cargo to build the server")?;
        if !status.success() {
            bail!("building the payledger binary failed ({status})");
        }
    }
    if !binary.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p payledger` \
             (or `cargo build --release --workspace`) first",
            binary.display()
        );
    }
    Ok(binary)
}

/// The key of the in-process sandbox's API (a server generates one when none is given, which
/// the bench could not know).
pub const SANDBOX_API_KEY: &str = "sk_test_bench";

/// The environment every `payledger` child gets, besides `DATABASE_URL`.
#[derive(Debug, Clone)]
pub struct ServerEnv {
    pub binary: PathBuf,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub jwt_secret: String,
    pub sandbox_key_path: PathBuf,
}

impl ServerEnv {
    /// A `payledger` launch with the bench's environment and nothing inherited that could
    /// point it at a real gateway or another database.
    pub fn launch(&self) -> Launch {
        let launch = [
            "PINGPP_API_KEY",
            "PINGPP_APP_ID",
            "PINGPP_API_BASE",
            "PINGPP_PUBLIC_KEY_PATH",
            "PINGPP_PRIVATE_KEY_PATH",
            "PAYLEDGER_PUBLIC_URL",
            "PAYLEDGER_ORDER_MIN_AMOUNT",
            "PAYLEDGER_ORDER_MAX_AMOUNT",
        ]
        .into_iter()
        .fold(Launch::new(&self.binary), Launch::env_remove);
        launch
            .env("DATABASE_URL", &self.database_url)
            .env("PAYLEDGER_DATA_DIR", &self.data_dir)
            .env("PAYLEDGER_JWT_SECRET", &self.jwt_secret)
            .env("SANDBOX_PRIVATE_KEY_PATH", &self.sandbox_key_path)
            .env("PAYMENT_PROVIDER", "sandbox")
            .env("PINGPP_API_KEY", SANDBOX_API_KEY)
            .env("RUST_LOG", "warn")
            // The load comes from a few simulated users: lift the per-user creation quota.
            .env("PAYLEDGER_ORDER_RATE_PER_MINUTE", u32::MAX.to_string())
            .env("PAYLEDGER_ORDER_OPEN_MAX", u32::MAX.to_string())
    }

    /// The server on a free loopback port, logging into the data directory, once it answers
    /// `/healthz`; killed (and reaped) when dropped.
    pub async fn start_server(&self) -> anyhow::Result<ServerProcess> {
        let port = free_port()?;
        let log = self.data_dir.join("server.log");
        let launch = self
            .launch()
            .env("PAYLEDGER_ADDR", format!("127.0.0.1:{port}"))
            .stdout_to(&log)
            .stderr_to(&log);
        let ready = Readiness::answers("/healthz").within(START_TIMEOUT);
        Ok(ServerProcess::start(&launch, loopback_base(port), &ready).await?)
    }
}

pub fn kib_to_mib(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).unwrap_or(u32::MAX)) / 1024.0
}
