//! The login redirect: which requests are browser navigations, and the
//! redirect target that carries the original URL.

/// The request headers that tell a browser navigation from an API call.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestKind<'a> {
    pub method_is_get_or_head: bool,
    pub sec_fetch_mode: Option<&'a [u8]>,
    pub accept: Option<&'a [u8]>,
    pub x_requested_with: Option<&'a [u8]>,
}

/// Reads the quality of one `Accept` list element, 1 when absent.
fn quality(params: &[u8]) -> f32 {
    params
        .split(|&byte| byte == b';')
        .filter_map(|param| {
            let param = param.trim_ascii();
            let value = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))?;
            core::str::from_utf8(value).ok()?.trim().parse::<f32>().ok()
        })
        .next()
        .unwrap_or(1.0)
}

/// Reports whether the `Accept` header prefers HTML: the media type with the
/// highest quality, the first one on a tie, is `text/html` or
/// `application/xhtml+xml`.
pub fn prefers_html(accept: &[u8]) -> bool {
    let mut best: Option<(&[u8], f32)> = None;
    for element in accept.split(|&byte| byte == b',') {
        let (media, params) = match element.iter().position(|&byte| byte == b';') {
            Some(split) => element.split_at(split),
            None => (element, &b""[..]),
        };
        let media = media.trim_ascii();
        if media.is_empty() {
            continue;
        }
        let q = quality(params);
        if best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((media, q));
        }
    }
    best.is_some_and(|(media, q)| {
        q > 0.0
            && (media.eq_ignore_ascii_case(b"text/html")
                || media.eq_ignore_ascii_case(b"application/xhtml+xml"))
    })
}

/// Reports whether a request is a browser navigation: a GET or HEAD with
/// `Sec-Fetch-Mode: navigate`, or, without that header, one whose `Accept`
/// prefers HTML and that is not marked as XMLHttpRequest.
pub fn is_navigation(kind: &RequestKind<'_>) -> bool {
    if !kind.method_is_get_or_head {
        return false;
    }
    if let Some(mode) = kind.sec_fetch_mode {
        return mode.trim_ascii().eq_ignore_ascii_case(b"navigate");
    }
    if kind
        .x_requested_with
        .is_some_and(|value| value.trim_ascii().eq_ignore_ascii_case(b"XMLHttpRequest"))
    {
        return false;
    }
    kind.accept.is_some_and(prefers_html)
}

/// Percent-encodes `value` for a query parameter, keeping only RFC 3986's
/// unreserved characters.
pub fn percent_encode(value: &[u8]) -> String {
    use core::fmt::Write;

    let mut out = String::with_capacity(value.len() * 3);
    for &byte in value {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Builds the redirect target: the login URL with the original absolute URL
/// appended as the query parameter `param`.
pub fn login_location(login_url: &[u8], param: &[u8], original_url: &[u8]) -> Vec<u8> {
    let mut location = login_url.to_vec();
    let separator = if login_url.contains(&b'?') {
        if login_url.ends_with(b"?") || login_url.ends_with(b"&") {
            None
        } else {
            Some(b'&')
        }
    } else {
        Some(b'?')
    };
    location.extend(separator);
    location.extend_from_slice(percent_encode(param).as_bytes());
    location.push(b'=');
    location.extend_from_slice(percent_encode(original_url).as_bytes());
    location
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind<'a>(
        get: bool,
        mode: Option<&'a str>,
        accept: Option<&'a str>,
        xhr: Option<&'a str>,
    ) -> RequestKind<'a> {
        RequestKind {
            method_is_get_or_head: get,
            sec_fetch_mode: mode.map(str::as_bytes),
            accept: accept.map(str::as_bytes),
            x_requested_with: xhr.map(str::as_bytes),
        }
    }

    const BROWSER_ACCEPT: &str =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

    #[test]
    fn navigation_cases() {
        let cases: &[(&str, RequestKind<'_>, bool)] = &[
            (
                "browser navigation",
                kind(true, Some("navigate"), Some(BROWSER_ACCEPT), None),
                true,
            ),
            (
                "fetch with HTML accept",
                kind(true, Some("cors"), Some("text/html"), None),
                false,
            ),
            (
                "no-cors fetch",
                kind(true, Some("no-cors"), None, None),
                false,
            ),
            (
                "old browser",
                kind(true, None, Some(BROWSER_ACCEPT), None),
                true,
            ),
            (
                "JSON first",
                kind(true, None, Some("application/json, text/html"), None),
                false,
            ),
            (
                "JSON preferred by q",
                kind(true, None, Some("text/html;q=0.5, application/json"), None),
                false,
            ),
            (
                "HTML preferred by q",
                kind(true, None, Some("application/json;q=0.2, text/html"), None),
                true,
            ),
            (
                "XHR",
                kind(true, None, Some(BROWSER_ACCEPT), Some("XMLHttpRequest")),
                false,
            ),
            ("no accept", kind(true, None, None, None), false),
            ("any type", kind(true, None, Some("*/*"), None), false),
            (
                "POST navigation",
                kind(false, Some("navigate"), Some(BROWSER_ACCEPT), None),
                false,
            ),
            (
                "HTML refused",
                kind(true, None, Some("text/html;q=0"), None),
                false,
            ),
        ];
        for (name, request, expected) in cases {
            assert_eq!(is_navigation(request), *expected, "{name}");
        }
    }

    #[test]
    fn percent_encode_keeps_unreserved_only() {
        assert_eq!(percent_encode(b"aZ09-._~"), "aZ09-._~");
        assert_eq!(
            percent_encode(b"https://app.example/a b?x=1&y=\xc3\xa9"),
            "https%3A%2F%2Fapp.example%2Fa%20b%3Fx%3D1%26y%3D%C3%A9"
        );
    }

    #[test]
    fn login_location_appends_parameter() {
        let original = b"https://app.example/p?q=1";
        let encoded = "https%3A%2F%2Fapp.example%2Fp%3Fq%3D1";
        let cases: &[(&str, String)] = &[
            ("/login", format!("/login?redirect_uri={encoded}")),
            ("/login?x=1", format!("/login?x=1&redirect_uri={encoded}")),
            ("/login?", format!("/login?redirect_uri={encoded}")),
            (
                "https://auth.example/login?a=b&",
                format!("https://auth.example/login?a=b&redirect_uri={encoded}"),
            ),
        ];
        for (login_url, expected) in cases {
            let location = login_location(login_url.as_bytes(), b"redirect_uri", original);
            assert_eq!(
                String::from_utf8(location).expect("ascii"),
                *expected,
                "login URL {login_url}"
            );
        }
    }
}
