//! Why a piece of text was not accepted as an identifier.

/// The single way an id can fail: it is not valid for its kind. `problem` says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid {kind}: {problem}")]
    Invalid {
        kind: &'static str,
        problem: IdProblem,
    },
}

impl IdError {
    /// A stable machine-readable code; clients branch on it, so never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Invalid { .. } => "id.invalid",
        }
    }

    /// Which id was being parsed ("order_id", "charge_id", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            IdError::Invalid { kind, .. } => kind,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    #[error("it is empty")]
    Empty,
    #[error("it has {actual_chars} characters, fewer than {min_chars}")]
    TooShort {
        min_chars: usize,
        actual_chars: usize,
    },
    #[error("it is longer than {max_chars} characters")]
    TooLong { max_chars: usize },
    #[error("it contains the character {character:?}")]
    ForbiddenCharacter { character: char },
    #[error("it does not start with {prefix:?}")]
    MissingPrefix { prefix: &'static str },
    #[error("it is not a UUID")]
    NotUuid,
}
