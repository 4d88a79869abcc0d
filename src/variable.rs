//! Reading one setting from an environment: the primitives every settings module shares.
//!
//! A leaf on purpose: it imports nothing from this crate, so the settings of the server, the
//! limits, the checkout or the gateways can all use it without importing one another.

pub use gateways::config::InvalidVariable;

/// The process environment, as every settings reader sees it. Tests pass their own lookup.
pub fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The value of `name` as given, or `None` when it is unset or blank (a blank variable counts
/// as unset everywhere, so that `NAME=` in a file does not mean something different).
pub fn non_empty(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|value| !value.trim().is_empty())
}

/// The value of `name` without surrounding whitespace, or `None` when it is unset or blank.
pub fn trimmed(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    non_empty(lookup, name).map(|value| value.trim().to_owned())
}

/// Reads `variable` as a whole number above zero. Unset or blank gives `default`; anything
/// else is added to `problems`, saying what was `expected`, and gives `default` so that the
/// other variables are still checked.
pub fn positive_number<T: std::str::FromStr + PartialOrd + Default>(
    lookup: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    expected: &str,
    problems: &mut Vec<InvalidVariable>,
) -> T {
    let Some(text) = trimmed(lookup, variable) else {
        return default;
    };
    match text.parse::<T>() {
        Ok(value) if value > T::default() => value,
        _ => {
            problems.push(InvalidVariable {
                variable,
                reason: format!("`{text}` is not {expected}"),
            });
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "BLANK" => Some(" \t".to_owned()),
            "PADDED" => Some(" 42 ".to_owned()),
            "ZERO" => Some("0".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn blank_counts_as_unset_and_padding_is_trimmed_only_on_request() {
        assert_eq!(non_empty(&lookup, "BLANK"), None);
        assert_eq!(non_empty(&lookup, "UNSET"), None);
        assert_eq!(non_empty(&lookup, "PADDED").as_deref(), Some(" 42 "));
        assert_eq!(trimmed(&lookup, "PADDED").as_deref(), Some("42"));
    }

    #[test]
    fn a_positive_number_defaults_when_unset_and_names_a_bad_value() {
        let mut problems = Vec::new();
        assert_eq!(
            positive_number(&lookup, "UNSET", 7_u32, "n", &mut problems),
            7
        );
        assert_eq!(
            positive_number(&lookup, "PADDED", 7_u32, "n", &mut problems),
            42
        );
        assert!(problems.is_empty());
        assert_eq!(
            positive_number(&lookup, "ZERO", 7_u32, "n", &mut problems),
            7
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].variable, "ZERO");
    }
}
