//! The identity in a resolver answer: every `X-Authgear-*` header it carried
//! and the `Set-Cookie` headers meant for the client.
//!
//! This file is pure logic with no nginx types, so it is unit-tested without
//! nginx.

/// The lowercase prefix of the headers that carry the identity.
pub const HEADER_PREFIX: &[u8] = b"x-authgear-";

/// The prefix of the variables that expose those headers.
pub const VARIABLE_PREFIX: &[u8] = b"authgear_";

/// Reports whether `name` starts with `X-Authgear-`, in any letter case and
/// with `_` in place of any `-`. nginx accepts underscores in header names
/// with `underscores_in_headers on`, and `fastcgi_pass`, `uwsgi_pass` and the
/// `$http_*` variables read `X_Authgear_User_Id` as `X-Authgear-User-Id`.
pub fn is_authgear_header(name: &[u8]) -> bool {
    name.get(..HEADER_PREFIX.len()).is_some_and(|prefix| {
        prefix.iter().zip(HEADER_PREFIX).all(|(&byte, &expected)| {
            let byte = if byte == b'_' {
                b'-'
            } else {
                byte.to_ascii_lowercase()
            };
            byte == expected
        })
    })
}

/// Reports whether the header name suffix (after `X-Authgear-`) maps to the
/// variable name suffix (after `authgear_`): letters match in any case and a
/// dash in the header matches an underscore in the variable.
fn suffix_matches_variable(header_suffix: &[u8], variable_suffix: &[u8]) -> bool {
    header_suffix.len() == variable_suffix.len()
        && header_suffix.iter().zip(variable_suffix).all(|(&h, &v)| {
            let h = if h == b'-' {
                b'_'
            } else {
                h.to_ascii_lowercase()
            };
            h == v.to_ascii_lowercase()
        })
}

/// One `X-Authgear-*` header of a resolver answer, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// The state of the session that an answer describes, read from
/// `X-Authgear-Session-Valid` the way Authgear's own consumers read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// `X-Authgear-Session-Valid: true`.
    Valid,
    /// `X-Authgear-Session-Valid` with any other value, `false` in practice.
    Invalid,
    /// No `X-Authgear-Session-Valid` header: the request carried no
    /// credentials, or only unusable bearer tokens or app cookies.
    None,
}

/// The identity headers and client cookies of one resolver answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    headers: Vec<Header>,
    set_cookies: Vec<Vec<u8>>,
}

impl Identity {
    /// Collects the `X-Authgear-*` and `Set-Cookie` headers of an answer and
    /// ignores every other header.
    pub fn from_response_headers<'a, I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut identity = Identity::default();
        for (name, value) in headers {
            if is_authgear_header(name) {
                identity.headers.push(Header {
                    name: name.to_vec(),
                    value: value.to_vec(),
                });
            } else if name.eq_ignore_ascii_case(b"set-cookie") {
                identity.set_cookies.push(value.to_vec());
            }
        }
        identity
    }

    /// Builds an identity from parts, as the cache does when it decodes an entry.
    pub fn from_parts(headers: Vec<Header>, set_cookies: Vec<Vec<u8>>) -> Self {
        Identity {
            headers,
            set_cookies,
        }
    }

    /// Returns the `X-Authgear-*` headers, in the order the resolver sent them.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the values of the `Set-Cookie` headers, in the order the resolver
    /// sent them.
    pub fn set_cookies(&self) -> &[Vec<u8>] {
        &self.set_cookies
    }

    /// Looks up the header behind the variable `$authgear_<suffix>`. When the
    /// resolver repeated a header, the first copy wins.
    pub fn variable(&self, suffix: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|header| {
                header
                    .name
                    .get(HEADER_PREFIX.len()..)
                    .is_some_and(|header_suffix| suffix_matches_variable(header_suffix, suffix))
            })
            .map(|header| header.value.as_slice())
    }

    /// Reads the session state from `X-Authgear-Session-Valid`.
    pub fn session(&self) -> Session {
        match self.variable(b"session_valid") {
            None => Session::None,
            Some(value) if value.eq_ignore_ascii_case(b"true") => Session::Valid,
            Some(_) => Session::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(headers: &[(&str, &str)]) -> Identity {
        Identity::from_response_headers(
            headers
                .iter()
                .map(|(name, value)| (name.as_bytes(), value.as_bytes())),
        )
    }

    #[test]
    fn authgear_header_prefix_ignores_case() {
        assert!(is_authgear_header(b"X-Authgear-User-Id"));
        assert!(is_authgear_header(b"x-AUTHGEAR-user-id"));
        assert!(is_authgear_header(b"X-Authgear-"));
        assert!(!is_authgear_header(b"X-Authgear"));
        assert!(!is_authgear_header(b"X-Auth-User-Id"));
        assert!(!is_authgear_header(b""));
    }

    #[test]
    fn authgear_header_prefix_accepts_underscores() {
        assert!(is_authgear_header(b"X_Authgear_User_Id"));
        assert!(is_authgear_header(b"x_authgear-user-id"));
        assert!(is_authgear_header(b"X-AUTHGEAR_"));
        assert!(!is_authgear_header(b"X.Authgear.User-Id"));
        assert!(!is_authgear_header(b"XAuthgear_User"));
    }

    #[test]
    fn answer_keeps_only_authgear_headers_and_cookies() {
        let identity = identity(&[
            ("Content-Length", "0"),
            ("X-Authgear-Session-Valid", "true"),
            ("Set-Cookie", "session=; Path=/"),
            ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("X-Authgear-User-Id", "u1"),
        ]);
        let names: Vec<&[u8]> = identity
            .headers()
            .iter()
            .map(|h| h.name.as_slice())
            .collect();
        assert_eq!(
            names,
            vec![&b"X-Authgear-Session-Valid"[..], b"X-Authgear-User-Id"]
        );
        assert_eq!(identity.set_cookies(), &[b"session=; Path=/".to_vec()]);
    }

    #[test]
    fn variable_maps_dashes_and_case() {
        let identity = identity(&[
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("x-authgear-session-authenticated-at", "1700000000"),
            ("X-Authgear-Future-Header", "new"),
        ]);
        let cases: &[(&str, Option<&str>)] = &[
            ("user_can_reauthenticate", Some("true")),
            ("session_authenticated_at", Some("1700000000")),
            ("future_header", Some("new")),
            ("user_can", None),
            ("user_can_reauthenticate_", None),
            ("user_id", None),
        ];
        for (suffix, expected) in cases {
            assert_eq!(
                identity.variable(suffix.as_bytes()),
                expected.map(str::as_bytes),
                "variable suffix {suffix}"
            );
        }
    }

    #[test]
    fn variable_of_repeated_header_is_first_copy() {
        let identity = identity(&[
            ("X-Authgear-User-Roles", "a"),
            ("X-Authgear-User-Roles", "b"),
        ]);
        assert_eq!(identity.variable(b"user_roles"), Some(&b"a"[..]));
    }

    #[test]
    fn variable_may_be_empty() {
        let identity = identity(&[("X-Authgear-Session-Amr", "")]);
        assert_eq!(identity.variable(b"session_amr"), Some(&b""[..]));
    }

    #[test]
    fn session_state_from_valid_header() {
        let cases: &[(&[(&str, &str)], Session)] = &[
            (&[("X-Authgear-Session-Valid", "true")], Session::Valid),
            (&[("X-Authgear-Session-Valid", "TRUE")], Session::Valid),
            (&[("X-Authgear-Session-Valid", "false")], Session::Invalid),
            (&[("X-Authgear-Session-Valid", "")], Session::Invalid),
            (&[], Session::None),
            (&[("X-Authgear-User-Id", "u1")], Session::None),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                identity(headers).session(),
                *expected,
                "headers {headers:?}"
            );
        }
    }
}
