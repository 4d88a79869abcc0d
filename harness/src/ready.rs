//! How a started server shows it is ready to be used: an HTTP path that answers 2xx, or a
//! line it prints. Each has a time limit, after which the start is a failure that shows
//! what the server wrote.

use std::time::Duration;

/// The time limit when none is given: a debug build on a loaded 2-core machine may take
/// tens of seconds to migrate and generate its keys.
const TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Readiness {
    pub(crate) check: Check,
    pub(crate) timeout: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// `GET base + path` answers a 2xx status.
    Answers {
        path: String,
        bearer: Option<String>,
    },
    /// Standard output contains this text.
    Prints(String),
}

impl Readiness {
    /// Ready once `GET <base><path>` answers 2xx (for the ledger, `/healthz`).
    pub fn answers(path: impl Into<String>) -> Self {
        Self {
            check: Check::Answers {
                path: path.into(),
                bearer: None,
            },
            timeout: TIMEOUT_DEFAULT,
        }
    }

    /// Ready once standard output (which must go to a file) contains `text`.
    pub fn prints(text: impl Into<String>) -> Self {
        Self {
            check: Check::Prints(text.into()),
            timeout: TIMEOUT_DEFAULT,
        }
    }

    /// Sends `Authorization: Bearer <token>` with the readiness request.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        if let Check::Answers { bearer, .. } = &mut self.check {
            *bearer = Some(token.into());
        }
        self
    }

    pub fn within(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn describe(&self) -> String {
        match &self.check {
            Check::Answers { path, .. } => format!("GET {path} answering 2xx"),
            Check::Prints(text) => format!("printing {text:?}"),
        }
    }
}
