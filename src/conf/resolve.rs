//! The argument of `authgear_resolve`, parsed without nginx types.

use super::error::ConfError;

/// What `authgear_resolve` sets in one configuration block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveArg<'a> {
    /// `authgear_resolve off;`
    Off,
    /// `authgear_resolve /uri;`
    Uri(&'a [u8]),
}

/// Parses the argument of `authgear_resolve`. The URI must name a location
/// on this server, so it must start with `/`, as a subrequest URI does.
pub fn parse_resolve(arg: &[u8]) -> Result<ResolveArg<'_>, ConfError> {
    if arg == b"off" {
        return Ok(ResolveArg::Off);
    }
    if arg.first() != Some(&b'/') {
        return Err(ConfError::InvalidUri(
            String::from_utf8_lossy(arg).into_owned(),
        ));
    }
    Ok(ResolveArg::Uri(arg))
}

#[cfg(test)]
mod tests {
    use super::*;

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
