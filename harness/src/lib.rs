//! One way to start the `payledger` binary as a child process, shared by the integration
//! tests and the benchmark: what to run (`Launch`), a long-running server that is ready
//! before it is used and gone however its owner ends (`ServerProcess`), a one-shot command
//! with its output, time and memory (`run`), and the scratch directories and ports they use.
//!
//! The binary's path is always given by the caller, so this crate knows nothing of the
//! product's own code.

mod address;
mod error;
mod launch;
mod memory;
mod ready;
mod run;
mod scratch;
mod server;

pub use address::{free_port, loopback_base};
pub use error::HarnessError;
pub use launch::Launch;
pub use memory::{memory_of, Memory};
pub use ready::Readiness;
pub use run::{run, run_within, ChildRun};
pub use scratch::ScratchDir;
pub use server::ServerProcess;
