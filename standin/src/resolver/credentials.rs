//! Reading credentials from request headers, the way Authgear's Go server reads them.

use hyper::header::{AUTHORIZATION, COOKIE};
use hyper::HeaderMap;

/// Returns the token of an `Authorization: Bearer <token>` header.
///
/// Only the first `Authorization` header counts, as with Go's `Header.Get`. The scheme is
/// matched without case and ends at the first space. Everything after that space is the
/// token. A missing header, another scheme or an empty token yields `None`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return None;
    }
    Some(token)
}

/// Returns the value of the first cookie named exactly `name` across all `Cookie` headers.
///
/// Pairs are separated by `;`, surrounding spaces are ignored and one pair of double quotes
/// around the value is removed. A cookie sent with an empty value is returned as `Some("")`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie_name, _)| *cookie_name == name)
        .map(|(_, value)| unquote(value.trim()))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// Returns whether `value` has the form of a `session` cookie: `<session id>.<secret>`, with a
/// non-empty session id without dots and a secret of exactly 32 ASCII letters or digits.
pub(crate) fn is_session_cookie_value(value: &str) -> bool {
    let Some((id, secret)) = value.split_once('.') else {
        return false;
    };
    !id.is_empty()
        && id.chars().all(|c| c.is_ascii_graphic())
        && secret.len() == 32
        && secret.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    /// Header name and value pairs, in sending order.
    type Pairs<'a> = &'a [(&'static str, &'a str)];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_token_cases() {
        let cases: [(Pairs, Option<&str>); 8] = [
            (&[], None),
            (&[("authorization", "Bearer abc")], Some("abc")),
            (&[("authorization", "bearer abc")], Some("abc")),
            (&[("authorization", "BEARER abc")], Some("abc")),
            (&[("authorization", "Basic dXNlcjpwYXNz")], None),
            (&[("authorization", "Bearer ")], None),
            (&[("authorization", "Bearer")], None),
            (
                &[
                    ("authorization", "Basic x"),
                    ("authorization", "Bearer abc"),
                ],
                None,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(bearer_token(&headers(pairs)), expected, "headers {pairs:?}");
        }
    }

    #[test]
    fn cookie_cases() {
        let cases: [(Pairs, Option<&str>); 8] = [
            (&[], None),
            (&[("cookie", "session=abc")], Some("abc")),
            (&[("cookie", "a=1; session=abc; b=2")], Some("abc")),
            (&[("cookie", "a=1;session=abc")], Some("abc")),
            (&[("cookie", "a=1"), ("cookie", "session=abc")], Some("abc")),
            (
                &[("cookie", "session=first; session=second")],
                Some("first"),
            ),
            (&[("cookie", "session=\"abc\"")], Some("abc")),
            (&[("cookie", "Session=abc; my_session=x")], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                cookie(&headers(pairs), "session"),
                expected,
                "headers {pairs:?}"
            );
        }
    }

    #[test]
    fn empty_cookie_value_is_present() {
        assert_eq!(
            cookie(&headers(&[("cookie", "session=")]), "session"),
            Some("")
        );
    }

    #[test]
    fn session_cookie_form() {
        let secret = "Q3vN8xLp2RtY7kWm4ZbH9sJd6FgC1aEu";
        let cases = [
            (
                format!("5f0c2a9e-1c4b-4d7e-8a63-0e9b2f4c7d18.{secret}"),
                true,
            ),
            (format!("id.{secret}"), true),
            (format!(".{secret}"), false),
            (format!("id.{secret}x"), false),
            (format!("id.{}", &secret[1..]), false),
            (format!("id.{}-", &secret[1..]), false),
            (format!("a.b.{secret}"), false),
            (secret.to_owned(), false),
            (String::new(), false),
        ];
        for (value, expected) in cases {
            assert_eq!(is_session_cookie_value(&value), expected, "value {value:?}");
        }
    }
}
