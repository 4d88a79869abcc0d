//! What to start: a binary, its arguments, its environment, its working directory and
//! where its output goes. Nothing happens until a `ServerProcess` or `run` starts it, so a
//! caller can build one launch and start it several times (a server, then its restart, then
//! a command on the same data).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::HarnessError;

#[derive(Debug, Clone)]
pub struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    inherit_env: bool,
    /// In order; `None` removes the variable.
    env: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
}

impl Launch {
    /// The binary at `program`, inheriting this process's environment; standard input is
    /// always empty, and output is discarded unless sent to a file.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            inherit_env: true,
            env: Vec::new(),
            current_dir: None,
            stdout: None,
            stderr: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Starts from an empty environment, so nothing of the caller's (a database URL, a
    /// gateway key) reaches the child by accident.
    pub fn env_clear(mut self) -> Self {
        self.inherit_env = false;
        self.env.clear();
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((name.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn envs<I, K, V>(self, variables: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        variables
            .into_iter()
            .fold(self, |launch, (name, value)| launch.env(name, value))
    }

    pub fn env_remove(mut self, name: impl AsRef<OsStr>) -> Self {
        self.env.push((name.as_ref().to_owned(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Appends standard output to `path` (created when missing), so a restarted server adds
    /// to the same log.
    pub fn stdout_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdout = Some(path.into());
        self
    }

    /// Appends standard error to `path`; it may be the same file as standard output.
    pub fn stderr_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.stderr = Some(path.into());
        self
    }

    pub(crate) fn stdout_path(&self) -> Option<&Path> {
        self.stdout.as_deref()
    }

    pub(crate) fn stderr_path(&self) -> Option<&Path> {
        self.stderr.as_deref()
    }

    /// The command as a person would type it (binary name and arguments), for messages.
    pub fn describe(&self) -> String {
        let name = self
            .program
            .file_name()
            .unwrap_or_else(|| self.program.as_os_str())
            .to_string_lossy()
            .into_owned();
        self.args.iter().fold(name, |text, arg| {
            format!("{text} {}", arg.to_string_lossy())
        })
    }

    /// The command with the output files opened, ready to spawn.
    pub(crate) fn command(&self) -> Result<Command, HarnessError> {
        let mut command = self.bare_command();
        command.stdout(sink(self.stdout.as_deref())?);
        command.stderr(sink(self.stderr.as_deref())?);
        Ok(command)
    }

    /// The command with its output not yet directed anywhere.
    pub(crate) fn bare_command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::null());
        if !self.inherit_env {
            command.env_clear();
        }
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
    }
}

fn sink(path: Option<&Path>) -> Result<Stdio, HarnessError> {
    let Some(path) = path else {
        return Ok(Stdio::null());
    };
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| HarnessError::Io {
            what: format!("cannot open {}", path.display()),
            source,
        })?;
    Ok(Stdio::from(file))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_launch_describes_itself_by_binary_name_and_arguments() {
        let launch = Launch::new("/somewhere/bin/payledger").args(["verify", "--anchor", "a.json"]);
        assert_eq!(launch.describe(), "payledger verify --anchor a.json");
    }
}
