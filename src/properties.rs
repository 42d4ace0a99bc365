//! Property-based tests of the pure parsers and codecs, with `proptest`.
//!
//! Each property runs `PROPTEST_CASES` generated cases, which proptest reads
//! from the environment (256 when unset). `make fuzz` runs them with 100000.
//! Failing inputs are printed in their shrunk form and not written to a
//! regressions file, which proptest would create under `src/`.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// Returns the configuration of every property: the default case count,
/// which `PROPTEST_CASES` overrides, and no regressions file.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any bytes, at most `max_len` of them.
fn bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max_len)
}

/// Shuffles `items` in place with the Fisher-Yates algorithm.
fn shuffle<T>(items: &mut [T], rng: &mut TestRng) {
    for i in (1..items.len()).rev() {
        let j = rng.next_u32() as usize % (i + 1);
        items.swap(i, j);
    }
}

/// Decodes `%XX` escapes. Returns `None` for a malformed escape.
fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = core::str::from_utf8(tail.get(..2)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            out.push(byte);
            rest = tail;
        }
    }
    Some(out)
}

mod identity {
    use super::*;
    use crate::identity::{is_authgear_header, Header, Identity, Session};

    /// Derives the variable name suffix of a header name as the module does:
    /// the part after `X-Authgear-`, lowercase, with dashes as underscores.
    fn variable_suffix(header_name: &[u8]) -> Vec<u8> {
        header_name["X-Authgear-".len()..]
            .iter()
            .map(|&byte| {
                if byte == b'-' {
                    b'_'
                } else {
                    byte.to_ascii_lowercase()
                }
            })
            .collect()
    }

    /// The headers of Authgear's contract, and one it may add.
    const CONTRACT_NAMES: [&str; 9] = [
        "X-Authgear-Session-Valid",
        "X-Authgear-User-Id",
        "X-Authgear-User-Anonymous",
        "X-Authgear-User-Verified",
        "X-Authgear-User-Can-Reauthenticate",
        "X-Authgear-Session-Amr",
        "X-Authgear-User-Roles",
        "X-Authgear-Session-Authenticated-At",
        "X-Authgear-Future-Thing",
    ];

    /// Header names: the contract's in random letter case, `X-Authgear-*`
    /// in any case, with `_` or `-` in the prefix, and a token or any bytes
    /// after it, `Set-Cookie` in any case, and any bytes.
    fn header_name() -> impl Strategy<Value = Vec<u8>> {
        let recased =
            (prop::sample::select(&CONTRACT_NAMES[..]), any::<u64>()).prop_map(|(name, cases)| {
                name.bytes()
                    .enumerate()
                    .map(|(i, byte)| {
                        if (cases >> (i % 64)) & 1 == 1 {
                            byte.to_ascii_lowercase()
                        } else {
                            byte
                        }
                    })
                    .collect()
            });
        prop_oneof![
            3 => recased,
            1 => "[xX][-_][aA][uU][tT][hH][gG][eE][aA][rR][-_][A-Za-z0-9_-]{0,24}"
                .prop_map(String::into_bytes),
            1 => bytes(16).prop_map(|suffix| [&b"X-Authgear-"[..], &suffix].concat()),
            1 => "[sS][eE][tT]-[cC][oO][oO][kK][iI][eE]".prop_map(String::into_bytes),
            1 => bytes(24),
        ]
    }

    /// Header values: the booleans Authgear sends, `TRUE`, empty, and any
    /// bytes.
    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"true".to_vec()),
            Just(b"TRUE".to_vec()),
            Just(b"false".to_vec()),
            Just(Vec::new()),
            bytes(32),
        ]
    }

    fn response_headers() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        vec((header_name(), header_value()), 0..12)
    }

    fn identity_of(pairs: &[(Vec<u8>, Vec<u8>)]) -> Identity {
        Identity::from_response_headers(
            pairs
                .iter()
                .map(|(name, value)| (name.as_slice(), value.as_slice())),
        )
    }

    proptest! {
        #![proptest_config(config())]

        /// A resolver response splits into its `X-Authgear-*` headers and its
        /// `Set-Cookie` values, each in the order received, and nothing else.
        #[test]
        fn response_keeps_identity_headers_and_cookies(pairs in response_headers()) {
            let identity = identity_of(&pairs);

            let expected_headers: Vec<Header> = pairs
                .iter()
                .filter(|(name, _)| is_authgear_header(name))
                .map(|(name, value)| Header { name: name.clone(), value: value.clone() })
                .collect();
            let expected_cookies: Vec<Vec<u8>> = pairs
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(b"set-cookie"))
                .map(|(_, value)| value.clone())
                .collect();
            prop_assert_eq!(identity.headers(), expected_headers.as_slice());
            prop_assert_eq!(identity.set_cookies(), expected_cookies.as_slice());
        }

        /// Every `X-Authgear-*` header is found by its variable name, in
        /// lower or upper case, and gives the value of the first header
        /// with that variable name.
        #[test]
        fn every_header_found_by_variable_name(pairs in response_headers()) {
            let identity = identity_of(&pairs);
            for header in identity.headers() {
                let suffix = variable_suffix(&header.name);
                let first = identity
                    .headers()
                    .iter()
                    .find(|other| variable_suffix(&other.name) == suffix)
                    .map(|other| other.value.as_slice());
                prop_assert_eq!(identity.variable(&suffix), first, "suffix {:?}", suffix);
                prop_assert_eq!(
                    identity.variable(&suffix.to_ascii_uppercase()),
                    first,
                    "uppercase suffix {:?}",
                    suffix
                );
            }
        }

        /// A lookup of any suffix finds a value only when a header maps to
        /// that suffix.
        #[test]
        fn variable_lookup_of_any_suffix(pairs in response_headers(), suffix in bytes(24)) {
            let identity = identity_of(&pairs);
            let lowercase_suffix = suffix.to_ascii_lowercase();
            let expected = identity
                .headers()
                .iter()
                .find(|header| variable_suffix(&header.name) == lowercase_suffix)
                .map(|header| header.value.as_slice());
            prop_assert_eq!(identity.variable(&suffix), expected);
        }

        /// The session state comes from the first header of the variable
        /// `session_valid`: `true` in any case is valid, any other value
        /// invalid, and no header no session.
        #[test]
        fn session_state_from_first_valid_header(pairs in response_headers()) {
            let identity = identity_of(&pairs);
            let first = pairs.iter().find(|(name, _)| {
                is_authgear_header(name) && variable_suffix(name) == b"session_valid"
            });
            let expected = match first {
                None => Session::None,
                Some((_, value)) if value.eq_ignore_ascii_case(b"true") => Session::Valid,
                Some(_) => Session::Invalid,
            };
            prop_assert_eq!(identity.session(), expected);
        }
    }
}

mod cache_key {
    use super::*;
    use crate::cache::key::{
        custom_key, default_key, has_credentials, KeyParts, CREDENTIAL_COOKIES,
    };

    /// Every request part that the default key must tell apart.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Credentials {
        host: Vec<u8>,
        authorization: Option<Vec<u8>>,
        /// The values of `app_session`, `app_access_token` and `session`, in
        /// the order of `CREDENTIAL_COOKIES`, each in the order sent.
        cookies: [Vec<Vec<u8>>; 3],
    }

    /// Cookie values without `;` or whitespace, which the key would split
    /// or trim, and sometimes empty.
    fn cookie_value() -> impl Strategy<Value = Vec<u8>> {
        "[A-Za-z0-9._~=+/,-]{0,12}".prop_map(String::into_bytes)
    }

    fn credentials() -> impl Strategy<Value = Credentials> {
        (
            prop_oneof![Just(b"app.example".to_vec()), bytes(12)],
            prop::option::of(bytes(24)),
            [
                vec(cookie_value(), 0..3),
                vec(cookie_value(), 0..3),
                vec(cookie_value(), 0..3),
            ],
        )
            .prop_map(|(host, authorization, cookies)| Credentials {
                host,
                authorization,
                cookies,
            })
    }

    fn cookie_prefix() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            Just(b"myapp_".to_vec()),
            "[a-z_]{0,6}".prop_map(String::into_bytes),
        ]
    }

    fn credential_names(prefix: &[u8]) -> [Vec<u8>; 3] {
        CREDENTIAL_COOKIES.map(|name| [prefix, name].concat())
    }

    /// Cookies that carry no credential: names near the credential names
    /// but different from every prefixed one. A generated name that equals
    /// one gets an `x` appended.
    fn other_cookies(prefix: Vec<u8>) -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let names = credential_names(&prefix);
        let name = prop_oneof![
            "[a-z_]{1,16}".prop_map(String::into_bytes),
            Just(b"app_session".to_vec()),
            Just(b"session".to_vec()),
            Just(b"sessionx".to_vec()),
        ]
        .prop_map(move |mut name| {
            while names.contains(&name) {
                name.push(b'x');
            }
            name
        });
        vec((name, cookie_value()), 0..5)
    }

    /// Renders the credentials' cookies in one `Cookie` header, in the
    /// order of `CREDENTIAL_COOKIES`.
    fn canonical_cookie_header(credentials: &Credentials, prefix: &[u8]) -> Vec<u8> {
        let names = credential_names(prefix);
        let pairs: Vec<Vec<u8>> = names
            .iter()
            .zip(&credentials.cookies)
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| [name, &b"="[..], value].concat())
            })
            .collect();
        pairs.join(&b"; "[..])
    }

    /// Renders the credentials' cookies mixed with `others` in shuffled
    /// order, split over several `Cookie` headers with varying whitespace.
    /// Values of one credential cookie keep their order, which the key
    /// depends on.
    fn scrambled_cookie_headers(
        credentials: &Credentials,
        prefix: &[u8],
        others: &[(Vec<u8>, Vec<u8>)],
        rng: &mut TestRng,
    ) -> Vec<Vec<u8>> {
        let names = credential_names(prefix);
        let mut pairs: Vec<(Option<usize>, Vec<u8>, Vec<u8>)> = Vec::new();
        for (index, values) in credentials.cookies.iter().enumerate() {
            for value in values {
                pairs.push((Some(index), names[index].clone(), value.clone()));
            }
        }
        for (name, value) in others {
            pairs.push((None, name.clone(), value.clone()));
        }
        shuffle(&mut pairs, rng);

        // Put each credential's values back in their original order within
        // the slots the shuffle gave that credential.
        for index in 0..names.len() {
            let slots: Vec<usize> = (0..pairs.len())
                .filter(|&slot| pairs[slot].0 == Some(index))
                .collect();
            for (slot, value) in slots.into_iter().zip(&credentials.cookies[index]) {
                pairs[slot].2 = value.clone();
            }
        }

        let mut headers = vec![Vec::new()];
        for (_, name, value) in pairs {
            if rng.next_u32() % 4 == 0 {
                headers.push(Vec::new());
            }
            let header = headers.last_mut().expect("at least one header");
            if !header.is_empty() {
                header.push(b';');
            }
            let spaces = [&b""[..], b" ", b"  ", b"\t"];
            header.extend_from_slice(spaces[rng.next_u32() as usize % spaces.len()]);
            header.extend_from_slice(&name);
            header.push(b'=');
            header.extend_from_slice(&value);
            header.extend_from_slice(spaces[rng.next_u32() as usize % spaces.len()]);
        }
        headers
    }

    fn key_of(credentials: &Credentials, prefix: &[u8], cookie_headers: &[Vec<u8>]) -> [u8; 32] {
        default_key(&KeyParts {
            resolver: b"/_authgear/resolve",
            host: &credentials.host,
            authorization: credentials.authorization.as_deref(),
            cookie_headers: cookie_headers.iter().map(Vec::as_slice).collect(),
            cookie_prefix: prefix,
        })
    }

    fn canonical_key(credentials: &Credentials, prefix: &[u8]) -> [u8; 32] {
        key_of(
            credentials,
            prefix,
            &[canonical_cookie_header(credentials, prefix)],
        )
    }

    /// Changes one part of `credentials` a little, which must change the
    /// key unless the result is equal.
    fn mutate(mut credentials: Credentials, choice: u8, position: usize) -> Credentials {
        let kind = position % 3;
        match choice % 9 {
            0 => credentials.host.push(b'x'),
            1 => {
                credentials.authorization = match credentials.authorization {
                    None => Some(Vec::new()),
                    Some(_) => None,
                }
            }
            2 => credentials
                .authorization
                .get_or_insert_with(Vec::new)
                .push(b'='),
            3 => credentials.cookies[kind].push(Vec::new()),
            4 => {
                // Moves a value to the next credential cookie.
                if let Some(value) = credentials.cookies[kind].pop() {
                    credentials.cookies[(kind + 1) % 3].push(value);
                }
            }
            5 => {
                // Splits a value in two.
                let values = &mut credentials.cookies[kind];
                if let Some(value) = values.pop() {
                    let split = position % (value.len() + 1);
                    values.push(value[..split].to_vec());
                    values.push(value[split..].to_vec());
                }
            }
            6 => {
                // Joins the last two values.
                let values = &mut credentials.cookies[kind];
                if values.len() >= 2 {
                    let last = values.pop().expect("two values");
                    values
                        .last_mut()
                        .expect("one value")
                        .extend_from_slice(&last);
                }
            }
            7 => {
                credentials.cookies[kind].pop();
            }
            _ => {
                // Swaps the first two values of one cookie: the resolver
                // may read either, so the order matters.
                let values = &mut credentials.cookies[kind];
                if values.len() >= 2 {
                    values.swap(0, 1);
                }
            }
        }
        credentials
    }

    proptest! {
        #![proptest_config(config())]

        /// Cookie order, other cookies, whitespace and the split over
        /// several `Cookie` headers leave the key unchanged.
        #[test]
        fn key_ignores_order_and_other_cookies(
            (credentials, prefix, others) in (credentials(), cookie_prefix())
                .prop_flat_map(|(credentials, prefix)| {
                    let others = other_cookies(prefix.clone());
                    (Just(credentials), Just(prefix), others)
                }),
            seed in any::<[u8; 32]>(),
        ) {
            let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
            let headers = scrambled_cookie_headers(&credentials, &prefix, &others, &mut rng);
            prop_assert_eq!(
                key_of(&credentials, &prefix, &headers),
                canonical_key(&credentials, &prefix),
                "cookie headers {:?}",
                headers.iter().map(|header| String::from_utf8_lossy(header)).collect::<Vec<_>>()
            );
        }

        /// A request carries credentials exactly when it has an
        /// `Authorization` header or a value of a prefixed credential
        /// cookie, whatever other cookies it has.
        #[test]
        fn credentials_detected_among_other_cookies(
            (credentials, prefix, others) in (credentials(), cookie_prefix())
                .prop_flat_map(|(credentials, prefix)| {
                    let others = other_cookies(prefix.clone());
                    (Just(credentials), Just(prefix), others)
                }),
            seed in any::<[u8; 32]>(),
        ) {
            let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
            let headers = scrambled_cookie_headers(&credentials, &prefix, &others, &mut rng);
            let parts = KeyParts {
                resolver: b"/_authgear/resolve",
                host: &credentials.host,
                authorization: credentials.authorization.as_deref(),
                cookie_headers: headers.iter().map(Vec::as_slice).collect(),
                cookie_prefix: &prefix,
            };
            let expected = credentials.authorization.is_some()
                || credentials.cookies.iter().any(|values| !values.is_empty());
            prop_assert_eq!(has_credentials(&parts), expected);
        }

        /// Credentials that differ in one part get different keys.
        #[test]
        fn nearby_credentials_get_distinct_keys(
            credentials in credentials(),
            prefix in cookie_prefix(),
            choice in any::<u8>(),
            position in any::<usize>(),
        ) {
            let changed = mutate(credentials.clone(), choice, position);
            if changed != credentials {
                prop_assert_ne!(
                    canonical_key(&credentials, &prefix),
                    canonical_key(&changed, &prefix),
                    "{:?} and {:?}",
                    credentials,
                    changed
                );
            }
        }

        /// Any two different credential sets get different keys.
        #[test]
        fn distinct_credentials_get_distinct_keys(
            first in credentials(),
            second in credentials(),
            prefix in cookie_prefix(),
        ) {
            if first != second {
                prop_assert_ne!(canonical_key(&first, &prefix), canonical_key(&second, &prefix));
            }
        }

        /// The resolver URI and the custom key value each separate keys,
        /// and no custom key equals a default key.
        #[test]
        fn custom_keys_separate_inputs(
            first in (bytes(12), bytes(24)),
            second in (bytes(12), bytes(24)),
            credentials in credentials(),
        ) {
            if first != second {
                prop_assert_ne!(custom_key(&first.0, &first.1), custom_key(&second.0, &second.1));
            }
            prop_assert_ne!(
                custom_key(&first.0, &first.1),
                canonical_key(&credentials, b"")
            );
        }
    }
}

mod cache_entry {
    use super::*;
    use crate::cache::entry::{decode, encode};
    use crate::identity::{Header, Identity};

    /// Names the entry stores as one-byte codes, exactly as spelled there.
    const CODED_NAMES: [&str; 9] = [
        "X-Authgear-Session-Valid",
        "X-Authgear-User-Id",
        "X-Authgear-User-Anonymous",
        "X-Authgear-User-Verified",
        "X-Authgear-User-Can-Reauthenticate",
        "X-Authgear-Session-Amr",
        "X-Authgear-User-Roles",
        "X-Authgear-Session-Authenticated-At",
        "X-Authgear-Session-Acr",
    ];

    /// Header names: coded names, coded names in other letter cases, and
    /// any bytes, so that both the coded and the literal form are used.
    fn stored_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::sample::select(&CODED_NAMES[..]).prop_map(|name| name.as_bytes().to_vec()),
            prop::sample::select(&CODED_NAMES[..])
                .prop_map(|name| name.to_ascii_lowercase().into_bytes()),
            bytes(40),
        ]
    }

    /// Values of any bytes, sometimes long enough for two- and three-byte
    /// length prefixes.
    fn stored_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => bytes(64),
            1 => bytes(300),
            1 => (200usize..20_000).prop_map(|len| vec![b'r'; len]),
        ]
    }

    fn identity() -> impl Strategy<Value = Identity> {
        (
            vec((stored_name(), stored_value()), 0..10),
            vec(stored_value(), 0..3),
        )
            .prop_map(|(headers, cookies)| {
                Identity::from_parts(
                    headers
                        .into_iter()
                        .map(|(name, value)| Header { name, value })
                        .collect(),
                    cookies,
                )
            })
    }

    /// A change to a valid encoding: cut it, flip one byte or insert one.
    #[derive(Debug, Clone)]
    enum Damage {
        Truncate(usize),
        Flip(usize, u8),
        Insert(usize, u8),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            any::<usize>().prop_map(Damage::Truncate),
            (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip(at, mask)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert(at, byte)),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        /// Every identity decodes back to itself.
        #[test]
        fn encoding_round_trips(identity in identity()) {
            prop_assert_eq!(decode(&encode(&identity)), Ok(identity));
        }

        /// Every strict prefix of an encoding is rejected.
        #[test]
        fn truncated_encoding_rejected(identity in identity(), cut in any::<usize>()) {
            let encoded = encode(&identity);
            let len = cut % encoded.len();
            prop_assert!(decode(&encoded[..len]).is_err(), "prefix of {} bytes decoded", len);
        }

        /// Decoding any bytes returns without panicking, and whatever
        /// decodes survives another round trip.
        #[test]
        fn decode_of_any_bytes(input in prop_oneof![bytes(64), bytes(512)]) {
            if let Ok(identity) = decode(&input) {
                prop_assert_eq!(decode(&encode(&identity)), Ok(identity));
            }
        }

        /// Decoding a damaged encoding returns without panicking, and
        /// whatever decodes survives another round trip.
        #[test]
        fn decode_of_damaged_encoding(identity in identity(), damage in damage()) {
            let mut encoded = encode(&identity);
            match damage {
                Damage::Truncate(at) => encoded.truncate(at % (encoded.len() + 1)),
                Damage::Flip(at, mask) => {
                    let at = at % encoded.len();
                    encoded[at] ^= mask;
                }
                Damage::Insert(at, byte) => encoded.insert(at % (encoded.len() + 1), byte),
            }
            if let Ok(decoded) = decode(&encoded) {
                prop_assert_eq!(decode(&encode(&decoded)), Ok(decoded));
            }
        }
    }
}

mod cache_policy {
    use super::*;
    use crate::cache::policy::{may_serve_stale, refresh_due};

    proptest! {
        #![proptest_config(config())]

        /// The freshness checks take any times without overflow, and agree
        /// with their definitions computed in 128 bits.
        #[test]
        fn freshness_checks_on_any_times(
            now in any::<u64>(),
            expires in any::<u64>(),
            period in any::<u64>(),
        ) {
            let (now128, expires128, period128) = (now as u128, expires as u128, period as u128);
            prop_assert_eq!(
                refresh_due(now, expires, period),
                now128 < expires128 && expires128 - now128 <= period128 / 4
            );
            prop_assert_eq!(
                may_serve_stale(now, expires, period),
                period > 0 && now128 >= expires128 && now128 - expires128 <= period128
            );
        }
    }
}

mod directive_arguments {
    use super::*;
    use crate::conf::cache::{parse_size, parse_time, parse_valid, parse_zone, MIN_ZONE_SIZE};
    use crate::conf::resolve::{parse_failure, parse_resolve, ResolveArg, ResolveFailure};

    /// The size suffixes and their factors.
    const SIZE_UNITS: [(&str, usize); 5] = [
        ("", 1),
        ("k", 1024),
        ("K", 1024),
        ("m", 1024 * 1024),
        ("M", 1024 * 1024),
    ];

    /// The time units and their length in milliseconds. A bare number
    /// (the empty unit) means seconds and may only end a time.
    const TIME_UNITS: [(&str, u64); 9] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 7 * 86_400_000),
        ("M", 30 * 86_400_000),
        ("y", 365 * 86_400_000),
        ("", 1000),
    ];

    /// Numbers from small to past the range of the result.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![0..100_000u64, any::<u64>()]
    }

    /// Digits of `number` with up to three leading zeros.
    fn digits(number: u64, zeros: usize) -> String {
        format!("{}{number}", "0".repeat(zeros))
    }

    /// Generates a size in nginx syntax and the bytes it means, `None` past
    /// `usize`.
    fn size() -> impl Strategy<Value = (String, Option<usize>)> {
        (number(), 0..4usize, prop::sample::select(&SIZE_UNITS[..])).prop_map(
            |(number, zeros, (unit, factor))| {
                let bytes = usize::try_from(number)
                    .ok()
                    .and_then(|number| number.checked_mul(factor));
                (format!("{}{unit}", digits(number, zeros)), bytes)
            },
        )
    }

    /// Generates a time in nginx syntax made of one to four parts and the
    /// milliseconds it means, `None` past `u64`.
    fn time() -> impl Strategy<Value = (String, Option<u64>)> {
        (
            vec((number(), prop::sample::select(&TIME_UNITS[..8])), 1..4),
            any::<bool>(),
            number(),
            0..3usize,
        )
            .prop_map(|(mut parts, bare_end, bare, zeros)| {
                // nginx accepts each unit once, from the largest to the
                // smallest, and a bare number last as seconds.
                parts.sort_by_key(|part| core::cmp::Reverse(part.1 .1));
                parts.dedup_by(|a, b| a.1 .1 == b.1 .1);
                let mut text = String::new();
                let mut total = Some(0u64);
                let mut smallest_scale = u64::MAX;
                for (number, (unit, scale)) in parts {
                    text.push_str(&digits(number, zeros));
                    text.push_str(unit);
                    total = total.and_then(|total| total.checked_add(number.checked_mul(scale)?));
                    smallest_scale = scale;
                }
                if bare_end {
                    text.push_str(&bare.to_string());
                    total = if smallest_scale <= 1000 {
                        None
                    } else {
                        total.and_then(|total| total.checked_add(bare.checked_mul(1000)?))
                    };
                }
                (text, total)
            })
    }

    /// Bytes mostly made of the characters the parsers accept.
    fn argument_like() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[0-9kKmMsSdhwyz=:/.-]{0,12}".prop_map(String::into_bytes),
            bytes(16),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn size_parses_number_and_unit((text, bytes) in size()) {
            prop_assert_eq!(parse_size(text.as_bytes()), bytes, "size {}", text);
        }

        /// Only digits with an optional `k` or `m` in either case parse as
        /// a size.
        #[test]
        fn size_of_any_bytes(input in argument_like()) {
            if parse_size(&input).is_some() {
                let digits = match input.last() {
                    Some(b'k' | b'K' | b'm' | b'M') => &input[..input.len() - 1],
                    _ => &input[..],
                };
                prop_assert!(!digits.is_empty());
                prop_assert!(digits.iter().all(u8::is_ascii_digit), "size {:?}", input);
            }
        }

        #[test]
        fn time_sums_its_parts((text, milliseconds) in time()) {
            prop_assert_eq!(parse_time(text.as_bytes()), milliseconds, "time {}", text);
        }

        /// Only digits and unit letters parse as a time.
        #[test]
        fn time_of_any_bytes(input in argument_like()) {
            if parse_time(&input).is_some() {
                prop_assert!(
                    input.first().is_some_and(u8::is_ascii_digit),
                    "time {:?}",
                    input
                );
                prop_assert!(
                    input.iter().all(|byte| byte.is_ascii_digit() || b"mshdwMy".contains(byte)),
                    "time {:?}",
                    input
                );
            }
        }

        /// `zone=NAME:SIZE` gives the name, which may contain colons, and
        /// the size, when the size parses and is at least the minimum.
        #[test]
        fn zone_splits_at_last_colon(name in bytes(12), (size_text, size) in size()) {
            let arg = [&b"zone="[..], &name, b":", size_text.as_bytes()].concat();
            let parsed = parse_zone(&arg);
            match size {
                _ if name.is_empty() => {
                    prop_assert!(
                        format!("{parsed:?}").starts_with("Err(InvalidValue("),
                        "{:?}",
                        parsed
                    );
                }
                None => {
                    prop_assert!(
                        format!("{parsed:?}").starts_with("Err(InvalidZoneSize("),
                        "{:?}",
                        parsed
                    );
                }
                Some(size) if size < MIN_ZONE_SIZE => {
                    prop_assert!(
                        format!("{parsed:?}").starts_with("Err(ZoneTooSmall("),
                        "{:?}",
                        parsed
                    );
                }
                Some(size) => {
                    let (parsed_name, parsed_size) = parsed.map_err(|error| {
                        TestCaseError::fail(format!("{error:?} for {arg:?}"))
                    })?;
                    prop_assert_eq!(parsed_name, name.as_slice());
                    prop_assert_eq!(parsed_size, size);
                }
            }
        }

        /// Any argument of `authgear_cache_zone` is parsed or rejected
        /// without panicking, and a parsed one starts with `zone=`.
        #[test]
        fn zone_of_any_bytes(input in prop_oneof![
            argument_like().prop_map(|rest| [&b"zone="[..], &rest].concat()),
            bytes(24),
        ]) {
            if let Ok((name, size)) = parse_zone(&input) {
                prop_assert!(input.starts_with(b"zone="));
                prop_assert!(!name.is_empty());
                prop_assert!(size >= MIN_ZONE_SIZE);
            }
        }

        /// The kinds named before the time are selected, all three when
        /// none is named. A kind named twice or an unknown word is rejected.
        #[test]
        fn valid_selects_named_kinds(
            kinds in vec(prop::sample::select(&["valid", "invalid", "none", "expired"][..]), 0..4),
            (time_text, time) in time(),
        ) {
            let mut args: Vec<&[u8]> = kinds.iter().map(|kind| kind.as_bytes()).collect();
            args.push(time_text.as_bytes());
            let parsed = parse_valid(&args);

            let duplicate = kinds
                .iter()
                .enumerate()
                .any(|(i, kind)| kinds[..i].contains(kind));
            if time.is_none() || kinds.contains(&"expired") || duplicate {
                prop_assert!(parsed.is_err(), "{:?} gave {:?}", args, parsed);
            } else {
                let (selected, milliseconds) = parsed.map_err(|error| {
                    TestCaseError::fail(format!("{error:?} for {args:?}"))
                })?;
                let all = kinds.is_empty();
                prop_assert_eq!(milliseconds, time.unwrap_or_default());
                prop_assert_eq!(selected.valid, all || kinds.contains(&"valid"));
                prop_assert_eq!(selected.invalid, all || kinds.contains(&"invalid"));
                prop_assert_eq!(selected.none, all || kinds.contains(&"none"));
            }
        }

        /// `off` turns resolution off, a path that starts with `/` and has
        /// no `$`, which would be an unexpanded variable, is a URI, and
        /// everything else is rejected.
        #[test]
        fn resolve_accepts_off_and_paths(input in prop_oneof![
            Just(b"off".to_vec()),
            bytes(12).prop_map(|rest| [&b"/"[..], &rest].concat()),
            "/[a-z_/]{0,8}(\\$[a-z_]{1,8})?".prop_map(String::into_bytes),
            bytes(12),
        ]) {
            let is_uri = input.first() == Some(&b'/') && !input.contains(&b'$');
            match parse_resolve(&input) {
                Ok(ResolveArg::Off) => prop_assert_eq!(input.as_slice(), b"off"),
                Ok(ResolveArg::Uri(uri)) => {
                    prop_assert_eq!(uri, input.as_slice());
                    prop_assert!(is_uri, "URI {:?}", input);
                }
                Err(_) => prop_assert!(input != b"off" && !is_uri, "rejected {:?}", input),
            }
        }

        /// Every status from 400 to 599 written with three digits is
        /// accepted, every other number is rejected.
        #[test]
        fn failure_accepts_error_statuses(status in any::<u16>(), zeros in 0..3usize) {
            let text = digits(u64::from(status), zeros);
            let expected = (text.len() == 3 && (400..=599).contains(&status))
                .then_some(ResolveFailure::Status(status));
            prop_assert_eq!(parse_failure(text.as_bytes()).ok(), expected, "argument {}", text);
        }

        /// Only `anonymous` and three-digit statuses from 400 to 599 parse.
        #[test]
        fn failure_of_any_bytes(input in prop_oneof![
            "[0-9a-z+-]{0,5}".prop_map(String::into_bytes),
            bytes(8),
        ]) {
            match parse_failure(&input) {
                Ok(ResolveFailure::Anonymous) => prop_assert_eq!(input.as_slice(), b"anonymous"),
                Ok(ResolveFailure::Status(status)) => {
                    prop_assert!((400..=599).contains(&status));
                    prop_assert_eq!(input, status.to_string().into_bytes());
                }
                Err(_) => {}
            }
        }
    }
}

mod access_policy {
    use super::*;
    use crate::identity::{Header, Identity};
    use crate::policy::{Condition, Decision, Policy};

    /// Role names as `authgear_require` takes them: no `,` or `|`.
    fn role() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z_]{1,8}", "[^,|]{1,8}"]
    }

    /// Authentication methods as `amr=` takes them: no space.
    fn method() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(&["pwd", "mfa", "otp", "oauth"][..]).prop_map(str::to_owned),
            "[^ ]{1,8}",
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        prop_oneof![
            Just(Condition::Session),
            Just(Condition::NonAnonymous),
            Just(Condition::Verified),
            vec(role(), 1..4).prop_map(|roles| Condition::Role(
                roles.into_iter().map(String::into_bytes).collect()
            )),
            method().prop_map(|method| Condition::Amr(method.into_bytes())),
        ]
    }

    /// Arguments that are conditions, look like them, or are anything.
    fn argument() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            condition().prop_map(|condition| condition.to_string().into_bytes()),
            "(role|amr)=[a-z|, ]{0,8}".prop_map(String::into_bytes),
            bytes(12),
        ]
    }

    /// Identities of a valid session with any roles, methods and flags,
    /// and identities of any headers at all.
    fn identity() -> impl Strategy<Value = Identity> {
        let flag = prop::option::of(prop::sample::select(&["true", "false", "TRUE", ""][..]));
        let session = (
            flag.clone(),
            flag,
            prop::option::of(vec(role(), 0..4)),
            prop::option::of(vec(method(), 0..4)),
        )
            .prop_map(|(anonymous, verified, roles, methods)| {
                let mut headers = vec![("Session-Valid".to_owned(), "true".to_owned())];
                if let Some(anonymous) = anonymous {
                    headers.push(("User-Anonymous".to_owned(), anonymous.to_owned()));
                }
                if let Some(verified) = verified {
                    headers.push(("User-Verified".to_owned(), verified.to_owned()));
                }
                if let Some(roles) = roles {
                    headers.push(("User-Roles".to_owned(), roles.join(",")));
                }
                if let Some(methods) = methods {
                    headers.push(("Session-Amr".to_owned(), methods.join(" ")));
                }
                Identity::from_parts(
                    headers
                        .into_iter()
                        .map(|(name, value)| Header {
                            name: format!("X-Authgear-{name}").into_bytes(),
                            value: value.into_bytes(),
                        })
                        .collect(),
                    Vec::new(),
                )
            });
        let any_headers = vec((bytes(24), bytes(24)), 0..6).prop_map(|pairs| {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs
                .into_iter()
                .map(|(suffix, value)| ([&b"X-Authgear-"[..], &suffix].concat(), value))
                .collect();
            Identity::from_response_headers(
                pairs
                    .iter()
                    .map(|(name, value)| (name.as_slice(), value.as_slice())),
            )
        });
        prop_oneof![session, any_headers]
    }

    /// Evaluates one condition by its definition in `authgear_require`'s
    /// documentation, on the identity of a valid session.
    fn condition_holds(condition: &Condition, identity: &Identity) -> bool {
        let value = |suffix: &[u8]| identity.variable(suffix).unwrap_or_default().to_vec();
        match condition {
            Condition::Session => true,
            Condition::NonAnonymous => !value(b"user_anonymous").eq_ignore_ascii_case(b"true"),
            Condition::Verified => value(b"user_verified").eq_ignore_ascii_case(b"true"),
            Condition::Role(required_roles) => {
                let roles = value(b"user_roles");
                roles
                    .split(|&byte| byte == b',')
                    .any(|role| required_roles.iter().any(|name| name == role))
            }
            Condition::Amr(required_method) => {
                let methods = value(b"session_amr");
                methods
                    .split(|&byte| byte == b' ')
                    .any(|method| method == required_method.as_slice())
            }
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// A condition's text parses back to the same condition.
        #[test]
        fn condition_round_trips_through_text(condition in condition()) {
            let text = condition.to_string();
            prop_assert_eq!(Condition::parse(text.as_bytes()), Some(condition));
        }

        /// Any argument parses or is rejected without panicking, and a
        /// parsed UTF-8 argument is the text of its condition.
        #[test]
        fn condition_of_any_argument(input in argument()) {
            if let (Some(condition), Ok(text)) = (Condition::parse(&input), core::str::from_utf8(&input)) {
                prop_assert_eq!(condition.to_string(), text);
            }
        }

        /// A policy parses when every argument is a condition, and names
        /// the first argument that is not.
        #[test]
        fn policy_names_first_bad_argument(args in vec(argument(), 0..5)) {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let first_bad = args.iter().find(|arg| Condition::parse(arg).is_none());
            match (Policy::parse(&args), first_bad) {
                (Ok(_), None) => {}
                (Err(bad), Some(expected)) => prop_assert_eq!(bad, *expected),
                (result, expected) => {
                    prop_assert!(false, "{:?} for first bad argument {:?}", result, expected)
                }
            }
        }

        /// A policy allows a valid session when every condition holds,
        /// forbids it for the first one that does not, and rejects every
        /// identity without a valid session as unauthenticated.
        #[test]
        fn policy_decision_follows_conditions(
            conditions in vec(condition(), 1..4),
            identity in identity(),
        ) {
            let texts: Vec<String> = conditions.iter().map(ToString::to_string).collect();
            let args: Vec<&[u8]> = texts.iter().map(String::as_bytes).collect();
            let policy = Policy::parse(&args).map_err(|bad| {
                TestCaseError::fail(format!("condition text {bad:?} did not parse"))
            })?;

            let session_valid = identity
                .variable(b"session_valid")
                .is_some_and(|value| value.eq_ignore_ascii_case(b"true"));
            let expected = if !session_valid {
                Decision::Unauthenticated
            } else {
                match conditions.iter().find(|condition| !condition_holds(condition, &identity)) {
                    Some(condition) => Decision::Forbidden(condition.clone()),
                    None => Decision::Allow,
                }
            };
            prop_assert_eq!(policy.evaluate(&identity), expected);
        }
    }
}

mod login_redirect {
    use super::*;
    use crate::policy::login::{
        is_navigation, login_location, percent_encode, prefers_html, RequestKind,
    };

    /// Media types of `Accept` elements, in several letter cases.
    const MEDIA_TYPES: [&str; 9] = [
        "text/html",
        "TEXT/HTML",
        "application/xhtml+xml",
        "application/json",
        "application/xml",
        "text/plain",
        "text/*",
        "*/*",
        "image/avif",
    ];

    /// One `Accept` element: a media type and its quality in thousandths,
    /// `None` for no `q` parameter.
    type Element = (&'static str, Option<u16>);

    fn element() -> impl Strategy<Value = (Element, bool, bool, bool)> {
        (
            (
                prop::sample::select(&MEDIA_TYPES[..]),
                prop::option::of(0..=1000u16),
            ),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
    }

    /// Writes an `Accept` header. The flags per element add spaces, an
    /// extra parameter before `q`, and write `Q=` in place of `q=`.
    fn render_accept(elements: &[(Element, bool, bool, bool)]) -> String {
        let rendered: Vec<String> = elements
            .iter()
            .map(|((media, quality), spaced, level, upper_q)| {
                let space = if *spaced { " " } else { "" };
                let mut text = format!("{space}{media}");
                if *level {
                    text.push_str(&format!("{space};{space}level=1"));
                }
                if let Some(quality) = quality {
                    let q = if *upper_q { "Q" } else { "q" };
                    let value = if *quality == 1000 {
                        "1".to_owned()
                    } else {
                        format!("0.{quality:03}")
                    };
                    text.push_str(&format!(";{space}{q}={value}"));
                }
                text
            })
            .collect();
        rendered.join(",")
    }

    /// Reports whether the element with the highest quality, the first on a
    /// tie, is an HTML type with a quality above zero.
    fn expected_prefers_html(elements: &[(Element, bool, bool, bool)]) -> bool {
        let mut best: Option<Element> = None;
        for ((media, quality), ..) in elements {
            let quality = quality.unwrap_or(1000);
            if best.is_none_or(|(_, best_quality)| quality > best_quality.unwrap_or(1000)) {
                best = Some((media, Some(quality)));
            }
        }
        best.is_some_and(|(media, quality)| {
            quality.unwrap_or(1000) > 0
                && (media.eq_ignore_ascii_case("text/html")
                    || media.eq_ignore_ascii_case("application/xhtml+xml"))
        })
    }

    fn optional_header(values: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<u8>>> {
        prop::option::of(prop_oneof![
            prop::sample::select(values).prop_map(|value| value.as_bytes().to_vec()),
            bytes(16),
        ])
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn accept_prefers_highest_quality(elements in vec(element(), 0..6)) {
            let accept = render_accept(&elements);
            prop_assert_eq!(
                prefers_html(accept.as_bytes()),
                expected_prefers_html(&elements),
                "Accept: {}",
                accept
            );
        }

        /// Any `Accept` value is read without panicking, whatever its `q`.
        #[test]
        fn accept_of_any_bytes(
            input in prop_oneof![
                "[a-z/+*]{0,8}(;[qQ]=[0-9.eE+-]{0,6}|;q=(nan|inf|-1))?(,[a-z/*]{0,8})?"
                    .prop_map(String::into_bytes),
                bytes(32),
            ]
        ) {
            let _ = prefers_html(&input);
        }

        /// Only a GET or HEAD navigates. `Sec-Fetch-Mode` decides alone
        /// when present. Without it, an XMLHttpRequest never navigates and
        /// the `Accept` preference decides.
        #[test]
        fn navigation_by_headers(
            method_is_get_or_head in any::<bool>(),
            sec_fetch_mode in optional_header(&["navigate", " NAVIGATE ", "cors", "no-cors"]),
            accept in optional_header(&["text/html", "application/json", "*/*"]),
            x_requested_with in optional_header(&["XMLHttpRequest", " xmlhttprequest", "fetch"]),
        ) {
            let kind = RequestKind {
                method_is_get_or_head,
                sec_fetch_mode: sec_fetch_mode.as_deref(),
                accept: accept.as_deref(),
                x_requested_with: x_requested_with.as_deref(),
            };
            let expected = if !method_is_get_or_head {
                false
            } else if let Some(mode) = &sec_fetch_mode {
                mode.trim_ascii().eq_ignore_ascii_case(b"navigate")
            } else if x_requested_with
                .as_deref()
                .is_some_and(|value| value.trim_ascii().eq_ignore_ascii_case(b"xmlhttprequest"))
            {
                false
            } else {
                accept.as_deref().is_some_and(prefers_html)
            };
            prop_assert_eq!(is_navigation(&kind), expected);
        }

        /// Percent-encoding leaves only unreserved characters and escapes,
        /// and decodes back to the input.
        #[test]
        fn percent_encoding_round_trips(input in bytes(64)) {
            let encoded = percent_encode(&input);
            prop_assert!(
                encoded
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte)),
                "encoded {}",
                encoded
            );
            prop_assert_eq!(percent_decode(encoded.as_bytes()), Some(input));
        }

        /// The redirect target is the login URL, one separator that keeps
        /// its query valid, and the parameter whose decoded value is the
        /// original URL.
        #[test]
        fn login_location_carries_original_url(
            login_url in prop_oneof![
                "(https://auth\\.example)?/[a-z/]{0,8}(\\?([a-z]=[a-z0-9]{0,3}&?)*)?"
                    .prop_map(String::into_bytes),
                bytes(16),
            ],
            param in prop_oneof![Just(b"redirect_uri".to_vec()), bytes(8)],
            original_url in prop_oneof![
                "https?://[a-z.]{1,12}(:[0-9]{1,5})?/[ -~]{0,20}".prop_map(String::into_bytes),
                bytes(32),
            ],
        ) {
            let location = login_location(&login_url, &param, &original_url);
            let tail = location
                .strip_prefix(login_url.as_slice())
                .ok_or_else(|| TestCaseError::fail("the location does not start with the login URL"))?;

            let separator: &[u8] = if !login_url.contains(&b'?') {
                b"?"
            } else if login_url.ends_with(b"?") || login_url.ends_with(b"&") {
                b""
            } else {
                b"&"
            };
            let query = tail
                .strip_prefix(separator)
                .ok_or_else(|| TestCaseError::fail(format!("no separator {separator:?} after the login URL")))?;

            // Neither encoded part contains `=`, so the first one ends the name.
            let split = query
                .iter()
                .position(|&byte| byte == b'=')
                .ok_or_else(|| TestCaseError::fail("no `=` in the parameter"))?;
            let (name, value) = (&query[..split], &query[split + 1..]);
            prop_assert!(!value.contains(&b'&') && !value.contains(&b'='));
            prop_assert_eq!(percent_decode(name), Some(param));
            prop_assert_eq!(percent_decode(value), Some(original_url));
        }
    }
}
