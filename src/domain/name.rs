//! The names people give things: orgs, products, environments, permission groups, tokens.

/// What a kind of name accepts: trimmed, not empty, at most `max_chars` characters (counted as
/// characters, not bytes: "é" is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    // Set by `at_most!` only, which the rest of the domain uses.
    pub(super) max_chars: usize,
    pub(super) too_long: &'static str,
}

/// The rule for names of at most `$max` characters; its message is spelled from the same
/// literal, so the number said is the number checked.
macro_rules! at_most {
    ($max:literal) => {
        $crate::domain::name::NameRule {
            max_chars: $max,
            too_long: concat!("must be at most ", $max, " characters"),
        }
    };
}
pub(crate) use at_most;

impl NameRule {
    /// The name, trimmed, or why it is refused (a message for the field, e.g. `name`).
    pub fn validate(self, name: &str) -> Result<String, &'static str> {
        let name = name.trim();
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.chars().count() > self.max_chars {
            return Err(self.too_long);
        }
        Ok(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: NameRule = at_most!(3);

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(SHORT.validate("  Acm "), Ok("Acm".to_owned()));
        assert_eq!(SHORT.validate(" \t "), Err("must not be empty"));
        assert_eq!(SHORT.validate("Acme"), Err("must be at most 3 characters"));
        assert_eq!(SHORT.validate("ééé"), Ok("ééé".to_owned()));
    }
}
