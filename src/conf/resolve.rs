//! The argument of `authgear_resolve`, parsed without nginx types.

use super::error::ConfError;

/// The setting that `authgear_resolve` makes in one configuration block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveArg<'a> {
    /// `authgear_resolve off;`
    Off,
    /// `authgear_resolve /uri;`
    Uri(&'a [u8]),
}

/// Parses the argument of `authgear_resolve`. The URI must name a location
/// on this server, so it must start with `/`, as a subrequest URI does. It
/// is used as written, so a `$` (a variable that would not be expanded) is
/// rejected.
pub fn parse_resolve(arg: &[u8]) -> Result<ResolveArg<'_>, ConfError> {
    if arg == b"off" {
        return Ok(ResolveArg::Off);
    }
    if arg.first() != Some(&b'/') || arg.contains(&b'$') {
        return Err(ConfError::InvalidUri(
            String::from_utf8_lossy(arg).into_owned(),
        ));
    }
    Ok(ResolveArg::Uri(arg))
}

/// What happens to a request when the resolver fails and no stale answer
/// can be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveFailure {
    /// Fail closed with this status.
    Status(u16),
    /// Continue with no identity: client-sent `X-Authgear-*` headers are
    /// still removed and none is added.
    Anonymous,
}

/// Parses the argument of `authgear_resolve_failure`: `anonymous` or a
/// status from 400 to 599.
pub fn parse_failure(arg: &[u8]) -> Result<ResolveFailure, ConfError> {
    if arg == b"anonymous" {
        return Ok(ResolveFailure::Anonymous);
    }
    let invalid = || ConfError::InvalidValue(String::from_utf8_lossy(arg).into_owned());
    if arg.len() != 3 || !arg.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let status: u16 = core::str::from_utf8(arg)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(invalid)?;
    if !(400..=599).contains(&status) {
        return Err(invalid());
    }
    Ok(ResolveFailure::Status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_failure_accepts_statuses_and_anonymous() {
        assert_eq!(parse_failure(b"anonymous"), Ok(ResolveFailure::Anonymous));
        assert_eq!(parse_failure(b"503"), Ok(ResolveFailure::Status(503)));
        assert_eq!(parse_failure(b"401"), Ok(ResolveFailure::Status(401)));
    }

    #[test]
    fn parse_failure_rejects_other_values() {
        for arg in [
            "",
            "200",
            "302",
            "600",
            "5000",
            "50",
            "abc",
            "Anonymous",
            "+50",
        ] {
            assert!(
                matches!(
                    parse_failure(arg.as_bytes()),
                    Err(ConfError::InvalidValue(_))
                ),
                "argument {arg:?}"
            );
        }
    }

    #[test]
    fn parse_resolve_accepts_off_and_paths() {
        assert_eq!(parse_resolve(b"off"), Ok(ResolveArg::Off));
        assert_eq!(
            parse_resolve(b"/_authgear/resolve"),
            Ok(ResolveArg::Uri(&b"/_authgear/resolve"[..]))
        );
    }

    #[test]
    fn parse_resolve_rejects_relative_uris() {
        for arg in [
            &b""[..],
            b"resolve",
            b"http://authgear:3001/resolve",
            b"@resolver",
            b"OFF",
        ] {
            assert!(
                matches!(parse_resolve(arg), Err(ConfError::InvalidUri(_))),
                "argument {:?}",
                String::from_utf8_lossy(arg)
            );
        }
    }
}
