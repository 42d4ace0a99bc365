//! Requests that arrive over cleartext HTTP/2. nginx keeps HTTP/2 request
//! headers in the same list as HTTP/1.1 ones, with lowercase names.

use crate::support::*;

fn start_app(backends: &Backends) -> Nginx {
    backends
        .nginx()
        .http2_listener()
        .server(&protected_location("/"))
        .start()
}

#[test]
fn http2_request_forwards_identity() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let cookie = format!("session={FULL_SESSION}");
    let response = http2::get(
        nginx.http2_addr(),
        "/dashboard",
        &[("cookie", &cookie), ("x-authgear-user-roles", "superuser")],
    );

    let expected = normalized(&[
        ("X-Authgear-Session-Valid", "true"),
        ("X-Authgear-User-Id", FULL_USER),
        ("X-Authgear-User-Anonymous", "false"),
        ("X-Authgear-User-Verified", "true"),
        ("X-Authgear-User-Can-Reauthenticate", "true"),
        ("X-Authgear-Session-Amr", "pwd mfa"),
        ("X-Authgear-User-Roles", "admin,editor"),
        ("X-Authgear-Session-Authenticated-At", "1712345678"),
    ]);
    assert_eq!(
        identity_headers(&response.echo()),
        expected,
        "identity headers at the upstream"
    );
    assert_eq!(exposed_variables(&response), expected, "variables");
}

#[test]
fn http2_invalid_session_clears_cookie() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let cookie = format!("session={EXPIRED_SESSION}");
    let response = http2::get(nginx.http2_addr(), "/", &[("cookie", &cookie)]);

    assert_eq!(
        response.header_values("set-cookie"),
        [CLEARING_COOKIE],
        "Set-Cookie"
    );
    assert_eq!(
        identity_headers(&response.echo()),
        normalized(&[("X-Authgear-Session-Valid", "false")]),
        "identity headers at the upstream"
    );
}

#[test]
fn http2_bearer_token_resolves() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let authorization = format!("Bearer {NO_ROLES_JWT}");
    let response = http2::get(
        nginx.http2_addr(),
        "/",
        &[("authorization", &authorization)],
    );

    assert_eq!(
        response.header("x-var-user-id"),
        Some(NO_ROLES_USER),
        "$authgear_user_id"
    );
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
}
