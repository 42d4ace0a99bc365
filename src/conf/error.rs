//! Configuration errors, worded the way nginx words its own.

use core::fmt;

/// The reason nginx rejects a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfError {
    /// The directive appeared twice in one block.
    Duplicate,
    /// The resolver URI does not name a location.
    InvalidUri(String),
    /// An argument is not one the directive accepts.
    InvalidValue(String),
    /// An argument names the same thing twice.
    DuplicateValue(String),
    /// A time such as `10s` could not be parsed.
    InvalidTime(String),
    /// The size in `zone=name:size` could not be parsed.
    InvalidZoneSize(String),
    /// The zone is smaller than the slab allocator can manage.
    ZoneTooSmall(String),
    /// A zone with this name is already declared.
    DuplicateZone(String),
    /// `authgear_cache` names no declared zone.
    UnknownZone(String),
}

impl ConfError {
    /// Formats the whole message for `directive`, as nginx prints it before
    /// `in <file>:<line>`.
    pub fn message(&self, directive: &str) -> String {
        match self {
            ConfError::Duplicate => format!("\"{directive}\" directive is duplicate"),
            ConfError::InvalidUri(uri) => format!(
                "invalid URI \"{uri}\" in \"{directive}\" directive, it must start with \"/\" \
                 and contain no variables"
            ),
            ConfError::InvalidValue(value) => {
                format!("invalid value \"{value}\" in \"{directive}\" directive")
            }
            ConfError::DuplicateValue(value) => {
                format!("duplicate value \"{value}\" in \"{directive}\" directive")
            }
            ConfError::InvalidTime(value) => {
                format!("invalid time \"{value}\" in \"{directive}\" directive")
            }
            ConfError::InvalidZoneSize(value) => format!("invalid zone size \"{value}\""),
            ConfError::ZoneTooSmall(name) => format!("zone \"{name}\" is too small"),
            ConfError::DuplicateZone(name) => format!("duplicate zone \"{name}\""),
            ConfError::UnknownZone(name) => {
                format!("unknown zone \"{name}\" in \"{directive}\" directive")
            }
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfError::Duplicate => f.write_str("is duplicate"),
            ConfError::InvalidUri(uri) => write!(f, "invalid URI \"{uri}\""),
            other => f.write_str(&other.message("")),
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
            "invalid URI \"resolve\" in \"authgear_resolve\" directive, it must start with \"/\" \
             and contain no variables"
        );
    }
}
