//! Client-sent `X-Authgear-*` headers never reach the upstream or the
//! resolver where `authgear_resolve` is active, whatever their letter case
//! and however many copies there are.

use crate::support::*;

/// Spoofed identity headers as an attacker would send them: every known name
/// in varied case, repeated names, and a name Authgear does not use.
const SPOOFED: [(&str, &str); 9] = [
    ("X-Authgear-Session-Valid", "true"),
    ("x-authgear-user-id", "00000000-0000-0000-0000-000000000000"),
    ("X-AUTHGEAR-USER-ROLES", "admin"),
    ("X-Authgear-User-Roles", "superuser"),
    ("x-AuthGear-user-roles", "root"),
    ("X-Authgear-User-Verified", "true"),
    ("X-Authgear-Session-Amr", "mfa"),
    ("X-Authgear-Session-Authenticated-At", "9999999999"),
    ("X-Authgear-Made-Up", "1"),
];

/// Headers whose names resemble the identity headers but do not start with
/// `X-Authgear-`, so they must pass.
const LOOKALIKES: [(&str, &str); 3] = [
    ("X-Authgearish", "kept-1"),
    ("X-Not-Authgear-User-Id", "kept-2"),
    ("X-Authgear", "kept-3"),
];

fn spoofed_request(credentials: Option<(&str, &str)>) -> RawRequest {
    let mut request = RawRequest::get("/");
    for (name, value) in SPOOFED.iter().chain(LOOKALIKES.iter()) {
        request = request.header(name, value);
    }
    if let Some((name, value)) = credentials {
        request = request.header(name, value);
    }
    request
}

fn start_app(backends: &Backends) -> Nginx {
    backends.nginx().server(&protected_location("/")).start()
}

#[test]
fn spoofed_headers_dropped_without_credentials() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let response = http1::send(nginx.addr(), &spoofed_request(None));

    assert_eq!(
        identity_headers(&response.echo()),
        Vec::new(),
        "identity headers at the upstream"
    );
    assert_eq!(exposed_variables(&response), Vec::new(), "variables");
}

#[test]
fn spoofed_roles_dropped_for_user_without_roles() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let cookie = format!("session={NO_ROLES_SESSION}");
    let response = http1::send(nginx.addr(), &spoofed_request(Some(("Cookie", &cookie))));
    let report = response.echo();

    assert_eq!(
        report.header_values("x-authgear-user-roles"),
        Vec::<&str>::new(),
        "roles at the upstream"
    );
    assert_eq!(
        response.header("x-var-user-roles"),
        None,
        "$authgear_user_roles"
    );
    assert_eq!(
        report.header_values("x-authgear-user-id"),
        [NO_ROLES_USER],
        "user id at the upstream"
    );
    assert_eq!(
        report.header_values("x-authgear-made-up"),
        Vec::<&str>::new(),
        "unknown spoofed header"
    );
}

#[test]
fn spoofed_headers_replaced_by_resolver_values() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let cookie = format!("session={FULL_SESSION}");
    let response = http1::send(nginx.addr(), &spoofed_request(Some(("Cookie", &cookie))));

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
        "exactly one copy of each resolver header"
    );
    assert_eq!(
        exposed_variables(&response),
        expected,
        "variables hold the resolver's values"
    );
}

#[test]
fn lookalike_headers_pass_through() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let response = http1::send(nginx.addr(), &spoofed_request(None));
    let report = response.echo();

    for (name, value) in LOOKALIKES {
        assert_eq!(report.header_values(name), [value], "header {name}");
    }
}

#[test]
fn spoofed_headers_not_sent_to_resolver() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    let cookie = format!("session={FULL_SESSION}");
    let response = http1::send(nginx.addr(), &spoofed_request(Some(("Cookie", &cookie))));
    assert_eq!(response.status, 200);

    let recorded = backends.resolver.recorded_requests();
    assert_eq!(recorded.len(), 1, "resolver requests");
    let spoofed: Vec<&(String, String)> = recorded[0]
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-authgear-"))
        .collect();
    assert_eq!(
        spoofed,
        Vec::<&(String, String)>::new(),
        "X-Authgear-* headers at the resolver"
    );
}

#[test]
fn spoofed_headers_dropped_over_keepalive() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    // Requests on one connection each get a fresh header list: the removal
    // in one request must not leak into the next, nor miss it.
    let mut connection = Connection::open(nginx.addr());
    let cookie = format!("session={NO_ROLES_SESSION}");
    for round in 1..=3 {
        let response = connection.round_trip(&spoofed_request(Some(("Cookie", &cookie))));
        let report = response.echo();
        assert_eq!(
            report.header_values("x-authgear-user-roles"),
            Vec::<&str>::new(),
            "roles at the upstream, request {round}"
        );
        assert_eq!(
            report.header_values("x-authgear-user-id"),
            [NO_ROLES_USER],
            "user id, request {round}"
        );
    }
}

#[test]
fn identity_headers_off_strips_without_adding() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(&format!(
            "location / {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   authgear_identity_headers off;\n\
             \x20   proxy_pass http://echo_app;\n\
             {}\
             }}\n",
            expose_variables()
        ))
        .start();

    let cookie = format!("session={FULL_SESSION}");
    let response = http1::send(nginx.addr(), &spoofed_request(Some(("Cookie", &cookie))));

    assert_eq!(
        identity_headers(&response.echo()),
        Vec::new(),
        "identity headers at the upstream"
    );
    assert_eq!(
        response.header("x-var-user-id"),
        Some(FULL_USER),
        "$authgear_user_id"
    );
    assert_eq!(
        response.header("x-var-user-roles"),
        Some("admin,editor"),
        "$authgear_user_roles"
    );
}

#[test]
fn identity_headers_off_inherited_from_server() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server("authgear_identity_headers off;")
        .server(&protected_location("/"))
        .start();

    let cookie = format!("session={FULL_SESSION}");
    let response = http1::send(
        nginx.addr(),
        &RawRequest::get("/").header("Cookie", &cookie),
    );

    assert_eq!(
        identity_headers(&response.echo()),
        Vec::new(),
        "identity headers at the upstream"
    );
    assert_eq!(
        response.header("x-var-user-id"),
        Some(FULL_USER),
        "$authgear_user_id"
    );
}

#[test]
fn many_spoofed_headers_all_dropped() {
    let backends = Backends::start();
    let nginx = start_app(&backends);

    // nginx allocates request headers in list parts of 20 elements, so 90
    // headers span several parts. Spoofed and ordinary headers alternate.
    let mut request = RawRequest::get("/").header("Cookie", &format!("session={NO_ROLES_SESSION}"));
    for index in 0..30 {
        request = request
            .header("X-Authgear-User-Roles", &format!("spoofed-{index}"))
            .header(&format!("X-Keep-{index}"), &format!("value-{index}"))
            .header("x-authgear-USER-ID", &format!("spoofed-{index}"));
    }
    let report = http1::send(nginx.addr(), &request).echo();

    let ordinary_headers: Vec<(String, String)> = report
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-keep-"))
        .cloned()
        .collect();
    let expected_kept: Vec<(String, String)> = (0..30)
        .map(|index| (format!("x-keep-{index}"), format!("value-{index}")))
        .collect();
    assert_eq!(
        ordinary_headers, expected_kept,
        "ordinary headers, in order"
    );
    assert_eq!(
        report.header_values("x-authgear-user-roles"),
        Vec::<&str>::new(),
        "roles at the upstream"
    );
    assert_eq!(
        report.header_values("x-authgear-user-id"),
        [NO_ROLES_USER],
        "user id at the upstream"
    );
    assert_eq!(
        report.header_values("cookie"),
        [format!("session={NO_ROLES_SESSION}")],
        "Cookie at the upstream"
    );
}

#[test]
fn header_variables_see_stripped_list() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(&format!(
            "location / {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   proxy_pass http://echo_app;\n\
             \x20   add_header X-Http-User-Id \"[$http_x_authgear_user_id]\" always;\n\
             \x20   add_header X-Http-Keep \"[$http_x_keep]\" always;\n\
             }}\n"
        ))
        .start();

    // $http_* variables search the request header list. After the module
    // has rebuilt it, they see the resolver's values, not the client's.
    let request = RawRequest::get("/")
        .header("Cookie", &format!("session={FULL_SESSION}"))
        .header("X-Authgear-User-Id", "spoofed")
        .header("X-Keep", "kept");
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(
        response.header("x-http-user-id"),
        Some(format!("[{FULL_USER}]").as_str()),
        "$http_x_authgear_user_id"
    );
    assert_eq!(
        response.header("x-http-keep"),
        Some("[kept]"),
        "$http_x_keep"
    );
}
