//! Checking the ledger against itself and against what was published of it: the hash chain,
//! positions and streams (`verify`), and the evidence each gateway money event rests on.

pub mod anchor;
pub mod evidence;
pub mod export;
pub mod verify;

pub use verify::{verify, Anchor, Problem, ProblemKind, VerifyError, VerifyReport};
