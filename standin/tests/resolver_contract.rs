//! Every row of the resolver contract's outcome table, the credential order and the cookie
//! prefix, checked over HTTP against a resolver on 127.0.0.1.

mod support;

use std::net::SocketAddr;

use authgear_standin::{start_resolver, CredentialKind, Directory, Outcome};
use support::*;

/// Response a case expects.
enum Expected {
    /// No `X-Authgear-*` headers and no `Set-Cookie`.
    Nothing,
    /// `X-Authgear-Session-Valid: false` only, with or without the cookie that clears
    /// `session`.
    Invalid { clears_session_cookie: bool },
    /// The full header set of this user and credential.
    Valid {
        user: &'static str,
        credential: &'static str,
    },
}

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    expected: Expected,
}

fn case(name: &'static str, headers: &[(&'static str, String)], expected: Expected) -> Case {
    Case {
        name,
        headers: headers.to_vec(),
        expected,
    }
}

fn valid(user: &'static str, credential: &'static str) -> Expected {
    Expected::Valid { user, credential }
}

fn invalid(clears_session_cookie: bool) -> Expected {
    Expected::Invalid {
        clears_session_cookie,
    }
}

fn session_cookie(value: &str) -> (&'static str, String) {
    ("Cookie", cookie("session", value))
}

fn authorization(token: &str) -> (&'static str, String) {
    ("Authorization", bearer(token))
}

/// Sends each case and checks status, `X-Authgear-*` headers, `Set-Cookie` and the 200
/// response shape, one assertion per condition.
fn check_cases(addr: SocketAddr, cases: &[Case], clearing_cookie: &str) {
    for case in cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = resolve(addr, &headers);
        let name = case.name;

        let (expected_headers, expected_cookies) = match case.expected {
            Expected::Nothing => (Vec::new(), Vec::new()),
            Expected::Invalid {
                clears_session_cookie,
            } => {
                let cookies = if clears_session_cookie {
                    vec![clearing_cookie]
                } else {
                    Vec::new()
                };
                (invalid_headers(), cookies)
            }
            Expected::Valid { user, credential } => (valid_headers(user, credential), Vec::new()),
        };

        assert_eq!(response.status, 200, "{name}: status");
        assert_eq!(
            response.authgear_headers(),
            expected_headers,
            "{name}: X-Authgear-* headers"
        );
        assert_eq!(
            response.header_values("set-cookie"),
            expected_cookies,
            "{name}: Set-Cookie"
        );
        assert_eq!(response.body, b"", "{name}: body");
        assert_eq!(
            response.header("content-length"),
            Some("0"),
            "{name}: Content-Length"
        );
        for absent in ["content-type", "cache-control", "expires", "vary"] {
            assert_eq!(
                response.header(absent),
                None,
                "{name}: {absent} must be absent"
            );
        }
    }
}

#[test]
fn outcome_table_rows() {
    let resolver = start_test_resolver();
    let cases = [
        // No credentials.
        case("no headers", &[], Expected::Nothing),
        case(
            "unrelated cookies",
            &[("Cookie", "theme=dark; lang=en".into())],
            Expected::Nothing,
        ),
        case(
            "basic authorization",
            &[("Authorization", "Basic dXNlcjpwYXNz".into())],
            Expected::Nothing,
        ),
        case(
            "bearer without token",
            &[("Authorization", "Bearer ".into())],
            Expected::Nothing,
        ),
        case(
            "cookie name differs in case",
            &[("Cookie", cookie("Session", ALICE_SESSION))],
            Expected::Nothing,
        ),
        // Invalid bearer token or app cookie, and no session cookie: same as none.
        case(
            "unknown opaque bearer",
            &[authorization(UNKNOWN_TOKEN)],
            Expected::Nothing,
        ),
        case(
            "unknown JWT bearer",
            &[authorization(UNKNOWN_JWT_TOKEN)],
            Expected::Nothing,
        ),
        case(
            "expired bearer",
            &[authorization(EXPIRED_TOKEN)],
            Expected::Nothing,
        ),
        case(
            "unknown app_session",
            &[("Cookie", cookie("app_session", UNKNOWN_APP_SESSION))],
            Expected::Nothing,
        ),
        case(
            "expired app_session",
            &[("Cookie", cookie("app_session", EXPIRED_APP_SESSION))],
            Expected::Nothing,
        ),
        case(
            "unknown app_access_token",
            &[("Cookie", cookie("app_access_token", UNKNOWN_TOKEN))],
            Expected::Nothing,
        ),
        case(
            "expired app_access_token",
            &[("Cookie", cookie("app_access_token", EXPIRED_TOKEN))],
            Expected::Nothing,
        ),
        case(
            "all three invalid",
            &[
                authorization(UNKNOWN_TOKEN),
                (
                    "Cookie",
                    format!("app_session={UNKNOWN_APP_SESSION}; app_access_token={EXPIRED_TOKEN}"),
                ),
            ],
            Expected::Nothing,
        ),
        // Invalid session cookie.
        case(
            "session without dot",
            &[session_cookie("abcdef")],
            invalid(true),
        ),
        case(
            "session with short secret",
            &[session_cookie(
                "7b07af95-a4ed-40d7-9a02-6403d6f9a023.KNXtfP1qQ0COpaXeoBOYorgMVPptdPK",
            )],
            invalid(true),
        ),
        case(
            "session with symbol in secret",
            &[session_cookie(
                "7b07af95-a4ed-40d7-9a02-6403d6f9a023.KNXtfP1qQ0COpaXeoBOYorgMVPptdPK-",
            )],
            invalid(true),
        ),
        case(
            "session with empty value",
            &[session_cookie("")],
            invalid(true),
        ),
        case(
            "unknown session",
            &[session_cookie(UNKNOWN_SESSION)],
            invalid(true),
        ),
        case(
            "expired session",
            &[session_cookie(EXPIRED_SESSION)],
            invalid(true),
        ),
        case(
            "unknown bearer and expired session",
            &[
                authorization(UNKNOWN_TOKEN),
                session_cookie(EXPIRED_SESSION),
            ],
            invalid(true),
        ),
        case(
            "expired app_session and unknown session",
            &[(
                "Cookie",
                format!("app_session={EXPIRED_APP_SESSION}; session={UNKNOWN_SESSION}"),
            )],
            invalid(true),
        ),
        // Valid credentials of a user who is not active.
        case(
            "disabled user by session",
            &[session_cookie(DISABLED_SESSION)],
            invalid(true),
        ),
        case(
            "disabled user by bearer",
            &[authorization(DISABLED_TOKEN)],
            invalid(false),
        ),
        case(
            "deactivated user by bearer",
            &[authorization(DEACTIVATED_TOKEN)],
            invalid(false),
        ),
        case(
            "deleted user by bearer",
            &[authorization(DELETED_TOKEN)],
            invalid(false),
        ),
        case(
            "disabled user by app_access_token",
            &[("Cookie", cookie("app_access_token", DISABLED_TOKEN))],
            invalid(false),
        ),
        // Valid.
        case(
            "session with roles",
            &[session_cookie(ALICE_SESSION)],
            valid(ALICE, ALICE_SESSION),
        ),
        case(
            "session without roles",
            &[session_cookie(BOB_SESSION)],
            valid(BOB, BOB_SESSION),
        ),
        case(
            "anonymous user session",
            &[session_cookie(ANONYMOUS_SESSION)],
            valid(ANONYMOUS, ANONYMOUS_SESSION),
        ),
        case(
            "unverified user session",
            &[session_cookie(UNVERIFIED_SESSION)],
            valid(UNVERIFIED, UNVERIFIED_SESSION),
        ),
        case(
            "opaque bearer",
            &[authorization(ALICE_OPAQUE_TOKEN)],
            valid(ALICE, ALICE_OPAQUE_TOKEN),
        ),
        case(
            "JWT bearer",
            &[authorization(BOB_JWT_TOKEN)],
            valid(BOB, BOB_JWT_TOKEN),
        ),
        case(
            "lower-case bearer scheme",
            &[("Authorization", format!("bearer {ALICE_OPAQUE_TOKEN}"))],
            valid(ALICE, ALICE_OPAQUE_TOKEN),
        ),
        case(
            "upper-case bearer scheme",
            &[("Authorization", format!("BEARER {ALICE_OPAQUE_TOKEN}"))],
            valid(ALICE, ALICE_OPAQUE_TOKEN),
        ),
        case(
            "app_session cookie",
            &[("Cookie", cookie("app_session", ALICE_APP_SESSION))],
            valid(ALICE, ALICE_APP_SESSION),
        ),
        case(
            "app_access_token cookie",
            &[("Cookie", cookie("app_access_token", BOB_JWT_TOKEN))],
            valid(BOB, BOB_JWT_TOKEN),
        ),
        case(
            "session among other cookies",
            &[(
                "Cookie",
                format!("theme=dark; session={BOB_SESSION}; lang=en"),
            )],
            valid(BOB, BOB_SESSION),
        ),
        case(
            "session in second Cookie header",
            &[("Cookie", "theme=dark".into()), session_cookie(BOB_SESSION)],
            valid(BOB, BOB_SESSION),
        ),
        case(
            "quoted session value",
            &[("Cookie", format!("session=\"{BOB_SESSION}\""))],
            valid(BOB, BOB_SESSION),
        ),
    ];
    check_cases(resolver.addr(), &cases, CLEARING_COOKIE);
}

#[test]
fn credential_order() {
    let resolver = start_test_resolver();
    let cases = [
        case(
            "bearer wins over session of another user",
            &[
                authorization(ALICE_OPAQUE_TOKEN),
                session_cookie(BOB_SESSION),
            ],
            valid(ALICE, ALICE_OPAQUE_TOKEN),
        ),
        case(
            "bearer wins over invalid session without clearing it",
            &[
                authorization(ALICE_OPAQUE_TOKEN),
                session_cookie(EXPIRED_SESSION),
            ],
            valid(ALICE, ALICE_OPAQUE_TOKEN),
        ),
        case(
            "bearer wins over app_session",
            &[
                authorization(BOB_JWT_TOKEN),
                ("Cookie", cookie("app_session", ALICE_APP_SESSION)),
            ],
            valid(BOB, BOB_JWT_TOKEN),
        ),
        case(
            "app_session wins over app_access_token",
            &[(
                "Cookie",
                format!("app_access_token={BOB_JWT_TOKEN}; app_session={ALICE_APP_SESSION}"),
            )],
            valid(ALICE, ALICE_APP_SESSION),
        ),
        case(
            "app_access_token wins over session",
            &[(
                "Cookie",
                format!("session={ALICE_SESSION}; app_access_token={BOB_JWT_TOKEN}"),
            )],
            valid(BOB, BOB_JWT_TOKEN),
        ),
        case(
            "unknown bearer falls through to session",
            &[authorization(UNKNOWN_TOKEN), session_cookie(BOB_SESSION)],
            valid(BOB, BOB_SESSION),
        ),
        case(
            "expired bearer falls through to app_session",
            &[
                authorization(EXPIRED_TOKEN),
                ("Cookie", cookie("app_session", ALICE_APP_SESSION)),
            ],
            valid(ALICE, ALICE_APP_SESSION),
        ),
        case(
            "unknown app_session falls through to session",
            &[(
                "Cookie",
                format!("app_session={UNKNOWN_APP_SESSION}; session={BOB_SESSION}"),
            )],
            valid(BOB, BOB_SESSION),
        ),
        case(
            "non-bearer scheme falls through to session",
            &[
                ("Authorization", "Basic dXNlcjpwYXNz".into()),
                session_cookie(BOB_SESSION),
            ],
            valid(BOB, BOB_SESSION),
        ),
        case(
            "disabled bearer user wins over valid session and clears it",
            &[authorization(DISABLED_TOKEN), session_cookie(ALICE_SESSION)],
            invalid(true),
        ),
        case(
            "disabled bearer user wins over app_session",
            &[
                authorization(DISABLED_TOKEN),
                ("Cookie", cookie("app_session", ALICE_APP_SESSION)),
            ],
            invalid(false),
        ),
    ];
    check_cases(resolver.addr(), &cases, CLEARING_COOKIE);
}

#[test]
fn cookie_prefix_applies_to_all_cookies() {
    let mut directory = test_directory().with_cookie_prefix("myapp_");
    directory.cookie_domain = Some("example.com".into());
    directory.cookie_secure = true;
    let resolver = start_resolver(bind_loopback(), directory).unwrap();
    let clearing_cookie =
        "myapp_session=; Path=/; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax";

    let cases = [
        case(
            "prefixed session",
            &[("Cookie", cookie("myapp_session", ALICE_SESSION))],
            valid(ALICE, ALICE_SESSION),
        ),
        case(
            "prefixed app_session",
            &[("Cookie", cookie("myapp_app_session", ALICE_APP_SESSION))],
            valid(ALICE, ALICE_APP_SESSION),
        ),
        case(
            "prefixed app_access_token",
            &[("Cookie", cookie("myapp_app_access_token", BOB_JWT_TOKEN))],
            valid(BOB, BOB_JWT_TOKEN),
        ),
        case(
            "unprefixed session ignored",
            &[session_cookie(ALICE_SESSION)],
            Expected::Nothing,
        ),
        case(
            "unprefixed app_session ignored",
            &[("Cookie", cookie("app_session", ALICE_APP_SESSION))],
            Expected::Nothing,
        ),
        case(
            "unprefixed app_access_token ignored",
            &[("Cookie", cookie("app_access_token", BOB_JWT_TOKEN))],
            Expected::Nothing,
        ),
        case(
            "prefixed expired session cleared with domain and secure",
            &[("Cookie", cookie("myapp_session", EXPIRED_SESSION))],
            invalid(true),
        ),
        case(
            "bearer unaffected by prefix",
            &[authorization(ALICE_OPAQUE_TOKEN)],
            valid(ALICE, ALICE_OPAQUE_TOKEN),
        ),
    ];
    check_cases(resolver.addr(), &cases, clearing_cookie);
}

#[test]
fn valid_session_exact_headers() {
    let resolver = start_test_resolver();
    let response = resolve(
        resolver.addr(),
        &[("Cookie", &cookie("session", ALICE_SESSION))],
    );

    // Header names as sent on the wire, in Go's canonical case.
    let expected = [
        ("X-Authgear-Session-Valid", "true"),
        ("X-Authgear-User-Id", ALICE),
        ("X-Authgear-User-Anonymous", "false"),
        ("X-Authgear-User-Verified", "true"),
        ("X-Authgear-User-Can-Reauthenticate", "true"),
        ("X-Authgear-Session-Amr", "pwd mfa"),
        ("X-Authgear-User-Roles", "admin,editor"),
        ("X-Authgear-Session-Authenticated-At", "1700000000"),
    ];
    let received: Vec<(&str, &str)> = response
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("X-Authgear-"))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(received, expected);
}

#[test]
fn session_without_roles_or_amr_headers() {
    let resolver = start_test_resolver();
    let response = resolve(
        resolver.addr(),
        &[("Cookie", &cookie("session", BOB_SESSION))],
    );

    assert_eq!(
        response.header("x-authgear-session-amr"),
        Some(""),
        "AMR present and empty"
    );
    assert_eq!(
        response.header("x-authgear-user-roles"),
        None,
        "roles absent"
    );
    assert_eq!(
        response.header("x-authgear-session-authenticated-at"),
        None,
        "authentication time absent"
    );
    assert_eq!(
        response.header("x-authgear-session-acr"),
        None,
        "ACR never sent"
    );
}

#[test]
fn bearer_kind_distinguishes_jwt() {
    let resolver = start_test_resolver();
    resolve(
        resolver.addr(),
        &[("Authorization", &bearer(BOB_JWT_TOKEN))],
    );
    resolve(
        resolver.addr(),
        &[("Authorization", &bearer(ALICE_OPAQUE_TOKEN))],
    );

    let records = resolver.recorded_requests();
    assert_eq!(
        records[0].matched,
        Some(CredentialKind::BearerJwt),
        "eyJ token"
    );
    assert_eq!(
        records[1].matched,
        Some(CredentialKind::BearerOpaque),
        "opaque token"
    );
}

#[test]
fn recorded_outcomes_name_contract_rows() {
    let resolver = start_test_resolver();
    let cases = [
        (None, Outcome::NoCredentials),
        (
            Some("app_session=nope".to_owned()),
            Outcome::InvalidCredentials,
        ),
        (Some("session=nope".to_owned()), Outcome::InvalidSession),
        (
            Some(cookie("session", DISABLED_SESSION)),
            Outcome::InactiveUser,
        ),
        (Some(cookie("session", ALICE_SESSION)), Outcome::Valid),
    ];

    for (cookie, _) in &cases {
        let headers: Vec<(&str, &str)> = cookie
            .iter()
            .map(|cookie| ("Cookie", cookie.as_str()))
            .collect();
        resolve(resolver.addr(), &headers);
    }
    let records = resolver.recorded_requests();
    for ((cookie, expected), record) in cases.iter().zip(&records) {
        assert_eq!(record.outcome, Some(*expected), "cookie {cookie:?}");
    }
}

#[test]
fn directory_replaced_at_run_time() {
    let resolver = start_test_resolver();
    let headers = [("Cookie", cookie("session", ALICE_SESSION))];
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let before = resolve(resolver.addr(), &headers);

    let mut directory: Directory = test_directory();
    directory.users.get_mut(ALICE).unwrap().status = authgear_standin::UserStatus::Disabled;
    resolver.set_directory(directory).unwrap();
    let after = resolve(resolver.addr(), &headers);

    assert_eq!(
        before.header("x-authgear-session-valid"),
        Some("true"),
        "before disabling"
    );
    assert_eq!(
        after.header("x-authgear-session-valid"),
        Some("false"),
        "after disabling"
    );
}

#[test]
fn invalid_replacement_directory_rejected() {
    let resolver = start_test_resolver();
    let directory =
        Directory::new().with_session("malformed", authgear_standin::Session::new(ALICE));
    assert!(resolver.set_directory(directory).is_err());
}
