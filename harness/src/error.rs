//! What can go wrong starting, waiting for or running a child; each message names the
//! command and carries what the child wrote, so a failed test or benchmark explains itself.

use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited ({status}) before it was ready:\n{output}")]
    ExitedEarly {
        command: String,
        status: ExitStatus,
        output: String,
    },
    #[error("`{command}` was not ready within {waited:?} ({readiness}):\n{output}")]
    NotReady {
        command: String,
        waited: Duration,
        readiness: String,
        output: String,
    },
    #[error("`{command}` did not exit within {limit:?} and was killed:\n{output}")]
    TimedOut {
        command: String,
        limit: Duration,
        output: String,
    },
    #[error("`{command}` failed ({status}):\n{stdout}\n{stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    #[error("`{command}` is no longer running")]
    NotRunning { command: String },
    #[error("cannot send {signal} to `{command}` ({detail})")]
    Signal {
        command: String,
        signal: &'static str,
        detail: String,
    },
}
