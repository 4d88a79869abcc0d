//! A long-running child (the ledger, or the standalone sandbox): started from a `Launch`,
//! waited for until it is ready, stopped with SIGTERM (a clean shutdown) or SIGKILL (a
//! crash), and killed and reaped on drop whatever happened to its owner.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::ready::Check;
use crate::{memory_of, HarnessError, Launch, Memory, Readiness};

/// How often a start or a stop is checked on.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The longest one readiness request may take, so a hung server cannot outlast the limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of output a failure message carries.
const TAIL_LINES: usize = 40;

pub struct ServerProcess {
    child: Option<Child>,
    pid: u32,
    command: String,
    base: String,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
}

impl ServerProcess {
    /// Starts the child and returns at once; `base` is the URL it will serve on (the caller
    /// chose the port and told the child in its arguments or environment).
    pub fn spawn(launch: &Launch, base: impl Into<String>) -> Result<Self, HarnessError> {
        let command = launch.describe();
        let child = launch
            .command()?
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                command: command.clone(),
                source,
            })?;
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            command,
            base: base.into(),
            stdout: launch.stdout_path().map(ToOwned::to_owned),
            stderr: launch.stderr_path().map(ToOwned::to_owned),
        })
    }

    /// Starts the child and waits until it is ready.
    pub async fn start(
        launch: &Launch,
        base: impl Into<String>,
        readiness: &Readiness,
    ) -> Result<Self, HarnessError> {
        let mut server = Self::spawn(launch, base)?;
        server.wait_ready(readiness).await?;
        Ok(server)
    }

    /// Waits until the child is ready; fails at once when it exits first.
    pub async fn wait_ready(&mut self, readiness: &Readiness) -> Result<(), HarnessError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| HarnessError::Io {
                what: "cannot build an HTTP client".to_owned(),
                source: std::io::Error::other(error),
            })?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited()? {
                return Err(HarnessError::ExitedEarly {
                    command: self.command.clone(),
                    status,
                    output: self.output_tail(TAIL_LINES),
                });
            }
            if self.is_ready(&client, readiness).await {
                return Ok(());
            }
            if started.elapsed() > readiness.timeout {
                return Err(HarnessError::NotReady {
                    command: self.command.clone(),
                    waited: readiness.timeout,
                    readiness: readiness.describe(),
                    output: self.output_tail(TAIL_LINES),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn is_ready(&self, client: &reqwest::Client, readiness: &Readiness) -> bool {
        match &readiness.check {
            Check::Answers { path, bearer } => {
                let mut request = client.get(self.url(path));
                if let Some(token) = bearer {
                    request = request.bearer_auth(token);
                }
                request
                    .send()
                    .await
                    .is_ok_and(|response| response.status().is_success())
            }
            Check::Prints(text) => self.stdout().contains(text.as_str()),
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its resident memory now and at its peak, while it runs.
    pub fn memory(&self) -> Option<Memory> {
        self.child.as_ref().and_then(|_| memory_of(self.pid))
    }

    /// The exit status when the child has exited (or was stopped), else `None`.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.not_running());
        };
        child.try_wait().map_err(|source| HarnessError::Io {
            what: format!("cannot check on `{}`", self.command),
            source,
        })
    }

    /// Everything written to standard output so far (empty when it is not kept).
    pub fn stdout(&self) -> String {
        read_log(self.stdout.as_ref())
    }

    /// Everything written to standard error so far (empty when it is not kept).
    pub fn stderr(&self) -> String {
        read_log(self.stderr.as_ref())
    }

    /// The last `lines` lines of each kept output, for failure messages.
    pub fn output_tail(&self, lines: usize) -> String {
        let mut files = vec![self.stdout.as_ref(), self.stderr.as_ref()];
        files.dedup();
        files
            .into_iter()
            .flatten()
            .map(|path| {
                let text = read_log(Some(path));
                let all: Vec<&str> = text.lines().collect();
                let tail = all.get(all.len().saturating_sub(lines)..).unwrap_or(&[]);
                format!("--- {} ---\n{}", path.display(), tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends SIGTERM and returns at once: the child drains and exits on its own.
    pub fn signal_terminate(&self) -> Result<(), HarnessError> {
        if self.child.is_none() {
            return Err(self.not_running());
        }
        // The standard library can only SIGKILL; `kill(1)` avoids unsafe code for the rest.
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|error| self.signal_error(error.to_string()))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.signal_error(format!("kill exited {status}")))
        }
    }

    fn signal_error(&self, detail: String) -> HarnessError {
        HarnessError::Signal {
            command: self.command.clone(),
            signal: "SIGTERM",
            detail,
        }
    }

    /// Waits up to `limit` for the child to exit; past it, kills it and fails.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, HarnessError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited()? {
                self.child = None;
                return Ok(status);
            }
            if started.elapsed() > limit {
                let _ = self.kill();
                return Err(HarnessError::TimedOut {
                    command: self.command.clone(),
                    limit,
                    output: self.output_tail(TAIL_LINES),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// SIGTERM, then waits up to `limit` for the clean exit.
    pub async fn terminate(&mut self, limit: Duration) -> Result<ExitStatus, HarnessError> {
        self.signal_terminate()?;
        self.wait_exit(limit).await
    }

    /// SIGKILL, as a crash would: nothing in flight gets to finish. Returns how it ended.
    pub fn kill(&mut self) -> Result<ExitStatus, HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Err(self.not_running());
        };
        let io = |source| HarnessError::Io {
            what: format!("cannot kill `{}`", self.command),
            source,
        };
        // It may have exited already; reaping it is all that is left then.
        if child.try_wait().map_err(io)?.is_none() {
            child.kill().map_err(io)?;
        }
        child.wait().map_err(io)
    }

    fn not_running(&self) -> HarnessError {
        HarnessError::NotRunning {
            command: self.command.clone(),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}

fn read_log(path: Option<&PathBuf>) -> String {
    path.and_then(|path| std::fs::read(path).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ScratchDir;

    #[tokio::test]
    async fn a_server_ready_by_its_output_stops_on_sigterm() {
        let dir = ScratchDir::new("harness-test").unwrap();
        let launch = Launch::new("sh")
            .args(["-c", "echo listening; exec sleep 30"])
            .stdout_to(dir.join("out.log"));
        let mut server = ServerProcess::start(
            &launch,
            "http://127.0.0.1:9",
            &Readiness::prints("listening").within(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        assert_eq!(server.exited().unwrap(), None);
        assert!(server.memory().is_some());
        let status = server.terminate(Duration::from_secs(10)).await.unwrap();
        assert!(!status.success());
        assert!(server.kill().is_err(), "it was already reaped");
    }

    #[tokio::test]
    async fn a_server_that_exits_before_it_is_ready_fails_with_its_output() {
        let dir = ScratchDir::new("harness-test").unwrap();
        let launch = Launch::new("sh")
            .args(["-c", "echo no database >&2; exit 4"])
            .stderr_to(dir.join("err.log"));
        let error = ServerProcess::start(
            &launch,
            "http://127.0.0.1:9",
            &Readiness::answers("/healthz"),
        )
        .await
        .err()
        .unwrap();
        let message = error.to_string();
        assert!(
            matches!(error, HarnessError::ExitedEarly { .. }),
            "{message}"
        );
        assert!(message.contains("no database"), "{message}");
    }
}
