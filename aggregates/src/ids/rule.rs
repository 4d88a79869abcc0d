//! The shape rules text ids must satisfy, kept apart so each id states its rule in one line.

use super::{IdError, IdProblem};

/// Length bounds, an optional fixed prefix and an allowed alphabet for one kind of id.
pub(super) struct TextRule {
    pub(super) kind: &'static str,
    prefix: &'static str,
    min_chars: usize,
    max_chars: usize,
    allowed: fn(char) -> bool,
}

impl TextRule {
    pub(super) const fn plain(
        kind: &'static str,
        max_chars: usize,
        allowed: fn(char) -> bool,
    ) -> TextRule {
        TextRule {
            kind,
            prefix: "",
            min_chars: 1,
            max_chars,
            allowed,
        }
    }

    /// A prefixed id needs at least one character after the prefix ("ch_" alone is no charge).
    pub(super) const fn prefixed(
        kind: &'static str,
        prefix: &'static str,
        max_chars: usize,
        allowed: fn(char) -> bool,
    ) -> TextRule {
        TextRule {
            kind,
            prefix,
            min_chars: prefix.len() + 1,
            max_chars,
            allowed,
        }
    }

    /// Checks in order of cheapness and usefulness: emptiness, length cap (before scanning a
    /// huge input), alphabet, prefix, then the minimum length.
    pub(super) fn check(&self, text: &str) -> Result<(), IdError> {
        let fail = |problem| {
            Err(IdError::Invalid {
                kind: self.kind,
                problem,
            })
        };
        if text.is_empty() {
            return fail(IdProblem::Empty);
        }
        if text.chars().nth(self.max_chars).is_some() {
            return fail(IdProblem::TooLong {
                max_chars: self.max_chars,
            });
        }
        if let Some(character) = text.chars().find(|character| !(self.allowed)(*character)) {
            return fail(IdProblem::ForbiddenCharacter { character });
        }
        if !text.starts_with(self.prefix) {
            return fail(IdProblem::MissingPrefix {
                prefix: self.prefix,
            });
        }
        let actual_chars = text.chars().count();
        if actual_chars < self.min_chars {
            return fail(IdProblem::TooShort {
                min_chars: self.min_chars,
                actual_chars,
            });
        }
        Ok(())
    }
}

pub(super) fn user_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '@' | '-')
}

pub(super) fn gateway_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

pub(super) fn plan_char(character: char) -> bool {
    character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
}
