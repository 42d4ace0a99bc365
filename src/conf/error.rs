//! Configuration errors, worded the way nginx words its own.

use core::fmt;

/// Why a directive was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfError {
    /// The directive appeared twice in one block.
    Duplicate,
    /// The resolver URI does not name a location.
    InvalidUri(String),
}

impl ConfError {
    /// Formats the whole message for `directive`, as nginx prints it before
    /// `in <file>:<line>`.
    pub fn message(&self, directive: &str) -> String {
        match self {
            ConfError::Duplicate => format!("\"{directive}\" directive is duplicate"),
            ConfError::InvalidUri(uri) => format!(
                "invalid URI \"{uri}\" in \"{directive}\" directive, it must start with \"/\""
            ),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfError::Duplicate => f.write_str("is duplicate"),
            ConfError::InvalidUri(uri) => write!(f, "invalid URI \"{uri}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_message_names_directive() {
        assert_eq!(
            ConfError::Duplicate.message("authgear_resolve"),
            "\"authgear_resolve\" directive is duplicate"
        );
    }

    #[test]
    fn invalid_uri_message_shows_value() {
        assert_eq!(
            ConfError::InvalidUri("resolve".into()).message("authgear_resolve"),
            "invalid URI \"resolve\" in \"authgear_resolve\" directive, it must start with \"/\""
        );
    }
}
