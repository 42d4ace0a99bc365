//! Each outcome of the resolver contract: the `X-Authgear-*` headers that
//! reach the upstream, the `$authgear_*` variables, and the resolver's
//! `Set-Cookie` in the client's response.

use crate::support::*;

fn start_app(backends: &Backends) -> Nginx {
    backends.nginx().server(&protected_location("/")).start()
}

/// Sends a GET with `request_headers` and checks the upstream's identity
/// headers, the variables and the client's `Set-Cookie` headers against
/// `expected_identity` and `expected_set_cookies`.
fn check_outcome(
    request_headers: &[(&str, &str)],
    expected_identity: &[(&str, &str)],
    expected_set_cookies: &[&str],
) {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let mut request = RawRequest::get("/orders?page=2");
    for (name, value) in request_headers {
        request = request.header(name, value);
    }
    let response = http1::send(nginx.addr(), &request);

    let expected_headers = normalized(expected_identity);
    // add_header skips empty values, so an empty AMR has no exposed variable.
    let expected_variables: Vec<(String, String)> = expected_headers
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .cloned()
        .collect();

    assert_eq!(
        response.status,
        200,
        "status, body {:?}",
        response.body_text()
    );
    assert_eq!(
        identity_headers(&response.echo()),
        expected_headers,
        "X-Authgear-* headers the upstream received"
    );
    assert_eq!(
        exposed_variables(&response),
        expected_variables,
        "$authgear_* variables"
    );
    assert_eq!(
        response.header_values("set-cookie"),
        expected_set_cookies,
        "Set-Cookie headers"
    );
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
}

fn session_cookie(value: &str) -> String {
    format!("theme=dark; session={value}")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn valid_session_forwards_full_identity() {
    check_outcome(
        &[("Cookie", &session_cookie(FULL_SESSION))],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", FULL_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "true"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "pwd mfa"),
            ("X-Authgear-User-Roles", "admin,editor"),
            ("X-Authgear-Session-Authenticated-At", "1712345678"),
        ],
        &[],
    );
}

#[test]
fn user_without_roles_gets_no_roles_header() {
    check_outcome(
        &[("Cookie", &session_cookie(NO_ROLES_SESSION))],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", NO_ROLES_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "true"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "pwd"),
            ("X-Authgear-Session-Authenticated-At", "1712300000"),
        ],
        &[],
    );
}

#[test]
fn anonymous_user_has_empty_amr() {
    check_outcome(
        &[("Cookie", &session_cookie(ANONYMOUS_SESSION))],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", ANONYMOUS_USER),
            ("X-Authgear-User-Anonymous", "true"),
            ("X-Authgear-User-Verified", "false"),
            ("X-Authgear-User-Can-Reauthenticate", "false"),
            ("X-Authgear-Session-Amr", ""),
        ],
        &[],
    );
}

#[test]
fn unverified_user_reports_verified_false() {
    check_outcome(
        &[("Cookie", &session_cookie(UNVERIFIED_SESSION))],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", UNVERIFIED_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "false"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "oauth"),
            ("X-Authgear-User-Roles", "viewer"),
            ("X-Authgear-Session-Authenticated-At", "1712310000"),
        ],
        &[],
    );
}

#[test]
fn disabled_user_resolves_as_invalid() {
    check_outcome(
        &[("Cookie", &session_cookie(DISABLED_SESSION))],
        &[("X-Authgear-Session-Valid", "false")],
        &[CLEARING_COOKIE],
    );
}

#[test]
fn unknown_session_cookie_is_cleared() {
    check_outcome(
        &[("Cookie", &session_cookie(UNKNOWN_SESSION))],
        &[("X-Authgear-Session-Valid", "false")],
        &[CLEARING_COOKIE],
    );
}

#[test]
fn expired_session_cookie_is_cleared() {
    check_outcome(
        &[("Cookie", &session_cookie(EXPIRED_SESSION))],
        &[("X-Authgear-Session-Valid", "false")],
        &[CLEARING_COOKIE],
    );
}

#[test]
fn malformed_session_cookie_is_cleared() {
    check_outcome(
        &[("Cookie", &session_cookie(MALFORMED_SESSION))],
        &[("X-Authgear-Session-Valid", "false")],
        &[CLEARING_COOKIE],
    );
}

#[test]
fn unknown_bearer_counts_as_no_credentials() {
    check_outcome(&[("Authorization", &bearer(UNKNOWN_BEARER))], &[], &[]);
}

#[test]
fn no_credentials_add_no_headers() {
    check_outcome(&[("Cookie", "theme=dark")], &[], &[]);
}

#[test]
fn opaque_bearer_token_resolves() {
    check_outcome(
        &[("Authorization", &bearer(FULL_BEARER))],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", FULL_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "true"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "pwd mfa"),
            ("X-Authgear-User-Roles", "admin,editor"),
            ("X-Authgear-Session-Authenticated-At", "1712345678"),
        ],
        &[],
    );
}

#[test]
fn app_session_cookie_resolves() {
    check_outcome(
        &[("Cookie", &format!("app_session={UNVERIFIED_APP_SESSION}"))],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", UNVERIFIED_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "false"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "pwd"),
            ("X-Authgear-User-Roles", "viewer"),
            ("X-Authgear-Session-Authenticated-At", "1712350000"),
        ],
        &[],
    );
}

#[test]
fn app_access_token_cookie_resolves() {
    check_outcome(
        &[(
            "Cookie",
            &format!("app_access_token={NO_ROLES_APP_ACCESS_TOKEN}"),
        )],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", NO_ROLES_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "true"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "pwd"),
            ("X-Authgear-Session-Authenticated-At", "1712360000"),
        ],
        &[],
    );
}

#[test]
fn bearer_wins_over_session_cookie() {
    check_outcome(
        &[
            ("Cookie", &session_cookie(FULL_SESSION)),
            ("Authorization", &bearer(NO_ROLES_JWT)),
        ],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", NO_ROLES_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "true"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "oauth"),
            ("X-Authgear-Session-Authenticated-At", "1712340000"),
        ],
        &[],
    );
}

#[test]
fn unknown_bearer_falls_back_to_session_cookie() {
    check_outcome(
        &[
            ("Authorization", &bearer(UNKNOWN_BEARER)),
            ("Cookie", &session_cookie(NO_ROLES_SESSION)),
        ],
        &[
            ("X-Authgear-Session-Valid", "true"),
            ("X-Authgear-User-Id", NO_ROLES_USER),
            ("X-Authgear-User-Anonymous", "false"),
            ("X-Authgear-User-Verified", "true"),
            ("X-Authgear-User-Can-Reauthenticate", "true"),
            ("X-Authgear-Session-Amr", "pwd"),
            ("X-Authgear-Session-Authenticated-At", "1712300000"),
        ],
        &[],
    );
}

#[test]
fn credentials_reach_resolver_not_query() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let request = RawRequest::get("/orders?token=query-secret")
        .header("Cookie", &session_cookie(FULL_SESSION))
        .header("Authorization", &bearer(FULL_BEARER));
    let response = http1::send(nginx.addr(), &request);
    assert_eq!(response.status, 200);

    let recorded = backends.resolver.recorded_requests();
    assert_eq!(recorded.len(), 1, "resolver requests");
    let resolve = &recorded[0];
    assert_eq!(resolve.method, "GET", "resolver request method");
    assert_eq!(resolve.uri, "/resolve", "resolver request target");
    assert_eq!(
        resolve.header_values("cookie"),
        [session_cookie(FULL_SESSION)],
        "Cookie"
    );
    assert_eq!(
        resolve.header_values("authorization"),
        [bearer(FULL_BEARER)],
        "Authorization"
    );
    assert_eq!(
        resolve.header_values("content-length"),
        Vec::<&str>::new(),
        "Content-Length"
    );
}

#[test]
fn roles_variable_drives_map() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http(
            "map $authgear_user_roles $authgear_is_admin {\n\
             \x20   ~(^|,)admin(,|$) yes;\n\
             \x20   default no;\n\
             }\n",
        )
        .server(
            "location / {\n\
             \x20   authgear_resolve /_authgear/resolve;\n\
             \x20   proxy_pass http://echo_app;\n\
             \x20   add_header X-Is-Admin $authgear_is_admin always;\n\
             }\n",
        )
        .start();

    let cases = [
        ("admin and editor", Some(FULL_SESSION), "yes"),
        ("no roles", Some(NO_ROLES_SESSION), "no"),
        ("viewer", Some(UNVERIFIED_SESSION), "no"),
        ("no credentials", None, "no"),
    ];
    for (case, session, expected) in cases {
        let mut request = RawRequest::get("/");
        if let Some(session) = session {
            request = request.header("Cookie", &session_cookie(session));
        }
        let response = http1::send(nginx.addr(), &request);
        assert_eq!(response.header("x-is-admin"), Some(expected), "case {case}");
    }
}

#[test]
fn access_log_tells_missing_from_empty() {
    let backends = Backends::start();
    let builder = backends.nginx();
    let log_path = builder.prefix().join("identity.log");
    let nginx = builder
        .http(
            "log_format identity 'user=$authgear_user_id roles=$authgear_user_roles \
             amr=\"$authgear_session_amr\" valid=$authgear_session_valid';\n",
        )
        .server(&format!(
            "location / {{\n\
             \x20   authgear_resolve /_authgear/resolve;\n\
             \x20   proxy_pass http://echo_app;\n\
             \x20   access_log {} identity;\n\
             }}\n",
            log_path.display()
        ))
        .start();

    let anonymous = RawRequest::get("/").header("Cookie", &session_cookie(ANONYMOUS_SESSION));
    assert_eq!(http1::send(nginx.addr(), &anonymous).status, 200);
    let lines = nginx.wait_for_lines("identity.log", 1, std::time::Duration::from_secs(5));
    assert_eq!(
        lines,
        [format!("user={ANONYMOUS_USER} roles=- amr=\"\" valid=true")],
        "nginx logs a variable that is not found as \"-\" and an empty one as nothing"
    );

    let no_credentials = RawRequest::get("/");
    assert_eq!(http1::send(nginx.addr(), &no_credentials).status, 200);
    let lines = nginx.wait_for_lines("identity.log", 2, std::time::Duration::from_secs(5));
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("user=- roles=- amr=\"-\" valid=-")
    );
}

#[test]
fn variables_read_before_access_not_cached() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(&format!(
            "location / {{\n\
             \x20   set $before_access \"[$authgear_user_id]\";\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   proxy_pass http://echo_app;\n\
             \x20   add_header X-Before-Access $before_access always;\n\
             \x20   add_header X-After-Access \"[$authgear_user_id]\" always;\n\
             }}\n"
        ))
        .start();

    let request = RawRequest::get("/").header("Cookie", &session_cookie(FULL_SESSION));
    let response = http1::send(nginx.addr(), &request);

    // `set` runs in the rewrite phase, before the module calls the resolver.
    assert_eq!(
        response.header("x-before-access"),
        Some("[]"),
        "value in the rewrite phase"
    );
    assert_eq!(
        response.header("x-after-access"),
        Some(format!("[{FULL_USER}]").as_str()),
        "value after the access phase"
    );
}
