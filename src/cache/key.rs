//! Cache keys: which request parts decide the resolver's answer, hashed with
//! SHA-256 so that no token or session secret is stored in clear.

use sha2::{Digest, Sha256};

/// A SHA-256 digest of a cache key.
pub type KeyDigest = [u8; 32];

/// The names of the cookies that carry Authgear credentials, without the
/// configurable prefix. The resolver reads them in this order, after the
/// `Authorization` header.
pub const CREDENTIAL_COOKIES: [&[u8]; 3] = [b"app_session", b"app_access_token", b"session"];

/// The request parts that the default key covers.
#[derive(Debug, Default, Clone)]
pub struct KeyParts<'a> {
    /// The resolver URI, so locations that resolve through different
    /// resolvers never share entries.
    pub resolver: &'a [u8],
    /// The request's host, which picks the Authgear app in a multi-tenant
    /// deployment.
    pub host: &'a [u8],
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The values of every `Cookie` header, in order.
    pub cookie_headers: Vec<&'a [u8]>,
    /// The prefix of the cookie names (Authgear's `http.cookie_prefix`).
    pub cookie_prefix: &'a [u8],
}

/// Feeds one field into the hash with its length, so that no two different
/// field lists produce the same byte stream.
fn hash_field(hasher: &mut Sha256, tag: u8, value: Option<&[u8]>) {
    hasher.update([tag]);
    match value {
        None => hasher.update([0]),
        Some(value) => {
            hasher.update([1]);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value);
        }
    }
}

/// Iterates over the values of the cookies named `name` in the `Cookie`
/// header values, in order. Names match exactly, as the resolver matches them.
pub fn cookie_values<'a>(
    cookie_headers: &'a [&'a [u8]],
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    cookie_headers
        .iter()
        .flat_map(|header| header.split(|&byte| byte == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let split = pair.iter().position(|&byte| byte == b'=')?;
            let (cookie_name, value) = pair.split_at(split);
            let value = value.get(1..)?;
            (cookie_name.trim_ascii() == name).then_some(value.trim_ascii())
        })
}

/// Builds the default key: the resolver URI, the host, the `Authorization`
/// header and every value of the three credential cookies.
pub fn default_key(parts: &KeyParts<'_>) -> KeyDigest {
    let mut hasher = Sha256::new();
    hasher.update(b"authgear-default-key-v1");
    hash_field(&mut hasher, b'r', Some(parts.resolver));
    hash_field(&mut hasher, b'h', Some(parts.host));
    hash_field(&mut hasher, b'a', parts.authorization);

    let mut name = Vec::with_capacity(parts.cookie_prefix.len() + 16);
    for (index, cookie) in CREDENTIAL_COOKIES.iter().enumerate() {
        name.clear();
        name.extend_from_slice(parts.cookie_prefix);
        name.extend_from_slice(cookie);
        let tag = b'0' + index as u8;
        let mut found = false;
        for value in cookie_values(&parts.cookie_headers, &name) {
            found = true;
            hash_field(&mut hasher, tag, Some(value));
        }
        if !found {
            hash_field(&mut hasher, tag, None);
        }
    }
    hasher.finalize().into()
}

/// Reports whether the key parts carry any credential the resolver reads:
/// an `Authorization` header or a value of a credential cookie. An answer
/// for a valid session to a request without one means the key misses the
/// credential that was used, for example because Authgear's cookie prefix
/// is not configured.
pub fn has_credentials(parts: &KeyParts<'_>) -> bool {
    if parts.authorization.is_some() {
        return true;
    }
    let mut name = Vec::with_capacity(parts.cookie_prefix.len() + 16);
    CREDENTIAL_COOKIES.iter().any(|cookie| {
        name.clear();
        name.extend_from_slice(parts.cookie_prefix);
        name.extend_from_slice(cookie);
        cookie_values(&parts.cookie_headers, &name).next().is_some()
    })
}

/// Builds the key from the value of `authgear_cache_key`, which the operator
/// composes from variables.
pub fn custom_key(resolver: &[u8], value: &[u8]) -> KeyDigest {
    let mut hasher = Sha256::new();
    hasher.update(b"authgear-custom-key-v1");
    hash_field(&mut hasher, b'r', Some(resolver));
    hash_field(&mut hasher, b'k', Some(value));
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(
        host: &'a str,
        authorization: Option<&'a str>,
        cookies: &[&'a str],
    ) -> KeyParts<'a> {
        KeyParts {
            resolver: b"/_authgear/resolve",
            host: host.as_bytes(),
            authorization: authorization.map(str::as_bytes),
            cookie_headers: cookies.iter().map(|c| c.as_bytes()).collect(),
            cookie_prefix: b"",
        }
    }

    #[test]
    fn cookie_values_finds_exact_names() {
        let headers: Vec<&[u8]> =
            vec![b"a=1; session=s1;app_session=x", b" session = s2 ; other=3"];
        let values: Vec<&[u8]> = cookie_values(&headers, b"session").collect();
        assert_eq!(values, vec![&b"s1"[..], b"s2"]);
        let values: Vec<&[u8]> = cookie_values(&headers, b"app_session").collect();
        assert_eq!(values, vec![&b"x"[..]]);
        assert_eq!(cookie_values(&headers, b"sess").count(), 0);
    }

    #[test]
    fn cookie_values_ignores_pairs_without_equals() {
        let headers: Vec<&[u8]> = vec![b"session; session=ok; ;="];
        let values: Vec<&[u8]> = cookie_values(&headers, b"session").collect();
        assert_eq!(values, vec![&b"ok"[..]]);
    }

    /// Every pair of these requests differs in one credential or the host,
    /// so every pair must get a different key.
    #[test]
    fn default_key_separates_each_credential() {
        let requests = [
            parts("app.example", None, &[]),
            parts("app.example", Some("Bearer t1"), &[]),
            parts("app.example", Some("Bearer t2"), &[]),
            parts("app.example", None, &["session=s1"]),
            parts("app.example", None, &["session=s2"]),
            parts("app.example", None, &["app_session=s1"]),
            parts("app.example", None, &["app_access_token=s1"]),
            parts("app.example", None, &["session="]),
            parts("app.example", Some(""), &[]),
            parts("other.example", None, &["session=s1"]),
            parts("app.example", Some("Bearer t1"), &["session=s1"]),
            parts("app.example", None, &["session=s1; app_session=s1"]),
        ];
        let keys: Vec<KeyDigest> = requests.iter().map(default_key).collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "requests {i} and {j} share a key");
            }
        }
    }

    #[test]
    fn default_key_ignores_other_cookies() {
        let plain = default_key(&parts("app.example", None, &["session=s1"]));
        let tracked = default_key(&parts(
            "app.example",
            None,
            &["_ga=1; session=s1; theme=dark"],
        ));
        assert_eq!(plain, tracked);
    }

    #[test]
    fn default_key_applies_cookie_prefix() {
        let mut prefixed = parts("app.example", None, &["myapp_session=s1"]);
        let unprefixed_cookie = default_key(&prefixed);
        prefixed.cookie_prefix = b"myapp_";
        let with_prefix = default_key(&prefixed);
        let anonymous = default_key(&parts("app.example", None, &[]));
        assert_eq!(unprefixed_cookie, anonymous);
        assert_ne!(with_prefix, anonymous);
    }

    #[test]
    fn default_key_separates_resolvers() {
        let mut other = parts("app.example", None, &["session=s1"]);
        other.resolver = b"/_authgear/other";
        assert_ne!(
            default_key(&parts("app.example", None, &["session=s1"])),
            default_key(&other)
        );
    }

    #[test]
    fn has_credentials_sees_each_credential() {
        assert!(!has_credentials(&parts("app.example", None, &[])));
        assert!(!has_credentials(&parts(
            "app.example",
            None,
            &["theme=dark"]
        )));
        assert!(has_credentials(&parts(
            "app.example",
            Some("Bearer t"),
            &[]
        )));
        assert!(has_credentials(&parts("app.example", None, &["session=s"])));
        assert!(has_credentials(&parts(
            "app.example",
            None,
            &["app_session=s"]
        )));
        assert!(has_credentials(&parts(
            "app.example",
            None,
            &["app_access_token=s"]
        )));

        let mut prefixed = parts("app.example", None, &["myapp_session=s"]);
        assert!(!has_credentials(&prefixed));
        prefixed.cookie_prefix = b"myapp_";
        assert!(has_credentials(&prefixed));
    }

    #[test]
    fn custom_key_differs_from_default() {
        assert_ne!(
            custom_key(b"/_authgear/resolve", b""),
            default_key(&parts("", None, &[]))
        );
        assert_ne!(custom_key(b"/r", b"a"), custom_key(b"/r", b"b"));
    }
}
