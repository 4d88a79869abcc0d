//! A one-shot command (`payledger replay`, `verify`, `token`, ...) run to its end: its exit
//! status, output, wall time and peak memory, and one way to turn a failed run into an error
//! that shows the command, how it ended and what it said.

use std::io::Read;
use std::process::{ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{memory_of, HarnessError, Launch};

/// How often a running command is checked on (and its memory sampled).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct ChildRun {
    /// The command as typed, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The highest `VmHWM` seen while it ran, in KiB (0 when it ended before the first
    /// sample).
    pub peak_rss_kib: u64,
}

impl ChildRun {
    /// The run as an error: the command, its exit status and what it wrote. For callers that
    /// accept some non-zero exits, and for `succeeded`.
    pub fn failure(&self) -> HarnessError {
        HarnessError::Failed {
            command: self.command.clone(),
            status: self.status,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
        }
    }

    /// The run when it exited 0, else its `failure`.
    pub fn succeeded(self) -> Result<Self, HarnessError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(self.failure())
        }
    }

    /// The exit code, or -1 when a signal ended it.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs the command to its end, however long it takes, capturing its output whatever files
/// the launch names. Blocks the calling thread.
pub fn run(launch: &Launch) -> Result<ChildRun, HarnessError> {
    execute(launch, None)
}

/// Runs the command, killing it and failing when it takes longer than `limit`. Blocks the
/// calling thread.
pub fn run_within(launch: &Launch, limit: Duration) -> Result<ChildRun, HarnessError> {
    execute(launch, Some(limit))
}

fn execute(launch: &Launch, limit: Option<Duration>) -> Result<ChildRun, HarnessError> {
    let command = launch.describe();
    let io = |what: &str, source| HarnessError::Io {
        what: format!("{what} `{command}`"),
        source,
    };
    let started = Instant::now();
    let mut child = launch
        .bare_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| HarnessError::Spawn {
            command: command.clone(),
            source,
        })?;
    // Both pipes are drained while it runs, so a chatty child never blocks on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut peak_rss_kib = 0_u64;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|source| io("waiting for", source))?
        {
            break status;
        }
        if let Some(memory) = memory_of(child.id()) {
            peak_rss_kib = peak_rss_kib.max(memory.peak_kib);
        }
        if limit.is_some_and(|limit| started.elapsed() > limit) {
            let _ = child.kill();
            let _ = child.wait();
            let output = format!("{}\n{}", collect(stdout), collect(stderr));
            return Err(HarnessError::TimedOut {
                command,
                limit: limit.unwrap_or_default(),
                output,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let elapsed = started.elapsed();
    Ok(ChildRun {
        command,
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
        elapsed,
        peak_rss_kib,
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

fn collect(reader: Option<JoinHandle<Vec<u8>>>) -> String {
    reader
        .and_then(|reader| reader.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_run_keeps_what_the_command_wrote_and_how_it_ended() {
        let run = run(&Launch::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!(run.code(), 3);
        assert_eq!(run.stdout, "out\n");
        assert_eq!(run.stderr, "err\n");
        let message = run.failure().to_string();
        assert!(message.contains("sh -c"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("err"), "{message}");
        assert!(run.succeeded().is_err());
    }

    #[test]
    fn a_run_past_its_limit_is_killed() {
        let started = Instant::now();
        let error =
            run_within(&Launch::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, HarnessError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
