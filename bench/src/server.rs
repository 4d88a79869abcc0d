//! The real server as a child process: the `payledger` binary built next to this one, on a
//! free loopback port, killed when the guard goes out of scope whatever happened.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long the server may take to answer `/healthz` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("payledger-bench-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
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

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
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
    /// A `payledger` command with the bench's environment and nothing inherited that could
    /// point it at a real gateway or another database.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        for variable in [
            "PINGPP_API_KEY",
            "PINGPP_APP_ID",
            "PINGPP_API_BASE",
            "PINGPP_PUBLIC_KEY_PATH",
            "PINGPP_PRIVATE_KEY_PATH",
            "PAYLEDGER_PUBLIC_URL",
            "PAYLEDGER_ORDER_MIN_AMOUNT",
            "PAYLEDGER_ORDER_MAX_AMOUNT",
        ] {
            command.env_remove(variable);
        }
        command
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
            .stdin(Stdio::null());
        command
    }
}

/// A running server; killed (and reaped) on drop.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    log_path: PathBuf,
}

impl ServerProcess {
    pub async fn start(env: &ServerEnv) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let log_path = env.data_dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = env
            .command()
            .env("PAYLEDGER_ADDR", &addr)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", env.binary.display()))?;
        let mut server = Self {
            child,
            base: format!("http://{addr}"),
            log_path,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/healthz", self.base);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) before it was healthy:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the server did not answer /healthz within {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines the server wrote, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Peak and current resident set size in KiB (`VmHWM`, `VmRSS` from /proc).
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        memory_kib_of(self.pid()).context("no VmHWM/VmRSS in the server's /proc status")
    }

    /// Stops the server now (the guard would anyway).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Peak and current resident set size of a process in KiB (`VmHWM`, `VmRSS`).
pub fn memory_kib_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

pub fn kib_to_mib(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).unwrap_or(u32::MAX)) / 1024.0
}
