//! Where `authgear_resolve` applies: inheritance from `server` into
//! locations, and `off` in a nested location.

use crate::support::*;

const CLIENT_USER_ID: &str = "client-chosen-id";

fn start_nested_app(backends: &Backends) -> Nginx {
    backends
        .nginx()
        .server(&format!(
            "location / {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   proxy_pass http://echo_app;\n\
             {expose}\
             \n\
             \x20   location /public/ {{\n\
             \x20       authgear_resolve off;\n\
             \x20       proxy_pass http://echo_app;\n\
             {expose}\
             \x20   }}\n\
             }}\n",
            expose = expose_variables()
        ))
        .start()
}

fn request_with_spoofed_id(path: &str) -> RawRequest {
    RawRequest::get(path)
        .header("Cookie", &format!("session={FULL_SESSION}"))
        .header("X-Authgear-User-Id", CLIENT_USER_ID)
        .header("x-authgear-user-roles", "client-role")
}

#[test]
fn nested_off_skips_resolver() {
    let backends = Backends::start();
    let nginx = start_nested_app(&backends);

    let response = http1::send(nginx.addr(), &request_with_spoofed_id("/public/logo.png"));

    assert_eq!(response.status, 200, "status");
    assert_eq!(backends.resolver.calls(), 0, "resolver calls");
    assert_eq!(exposed_variables(&response), Vec::new(), "variables");
}

#[test]
fn nested_off_keeps_client_headers() {
    let backends = Backends::start();
    let nginx = start_nested_app(&backends);

    let report = http1::send(nginx.addr(), &request_with_spoofed_id("/public/logo.png")).echo();

    assert_eq!(
        identity_headers(&report),
        normalized(&[
            ("X-Authgear-User-Id", CLIENT_USER_ID),
            ("X-Authgear-User-Roles", "client-role"),
        ]),
        "client-sent headers at the upstream"
    );
}

#[test]
fn outer_location_still_resolves() {
    let backends = Backends::start();
    let nginx = start_nested_app(&backends);

    let response = http1::send(nginx.addr(), &request_with_spoofed_id("/private/page"));
    let report = response.echo();

    assert_eq!(
        report.header_values("x-authgear-user-id"),
        [FULL_USER],
        "user id at the upstream"
    );
    assert_eq!(
        report.header_values("x-authgear-user-roles"),
        ["admin,editor"],
        "roles at the upstream"
    );
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
}

#[test]
fn server_level_directive_inherited() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(&format!("authgear_resolve {RESOLVER_URI};"))
        .server(&format!(
            "location / {{\n\
             \x20   proxy_pass http://echo_app;\n\
             {}\
             }}\n\
             location /health {{\n\
             \x20   authgear_resolve off;\n\
             \x20   proxy_pass http://echo_app;\n\
             }}\n",
            expose_variables()
        ))
        .start();

    let inherited = http1::send(nginx.addr(), &request_with_spoofed_id("/home"));
    let calls_after_inherited = backends.resolver.calls();
    let health = http1::send(nginx.addr(), &request_with_spoofed_id("/health")).echo();

    assert_eq!(
        inherited.header("x-var-user-id"),
        Some(FULL_USER),
        "$authgear_user_id with the inherited directive"
    );
    assert_eq!(
        calls_after_inherited, 1,
        "resolver calls for the inheriting location"
    );
    assert_eq!(
        health.header_values("x-authgear-user-id"),
        [CLIENT_USER_ID],
        "client header where off"
    );
    assert_eq!(
        backends.resolver.calls(),
        1,
        "resolver calls after the request where off"
    );
}

#[test]
fn resolver_location_rejects_clients() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(&format!("authgear_resolve {RESOLVER_URI};"))
        .server(&protected_location("/"))
        .start();

    // nginx responds 404 for an `internal` location in its find-config
    // phase, before the access phase, so the module never runs.
    let response = http1::send(nginx.addr(), &RawRequest::get(RESOLVER_URI));

    assert_eq!(response.status, 404, "status");
    assert_eq!(backends.resolver.calls(), 0, "resolver calls");
}
