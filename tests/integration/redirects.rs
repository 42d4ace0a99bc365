//! Internal redirects (`index`, `try_files`, `error_page`) run the access
//! phase again. The module must not call the resolver a second time, must
//! not add the identity headers or `Set-Cookie` twice, and the variables must
//! keep their values.

use crate::support::*;

/// Starts nginx with four locations that redirect internally to a location
/// that proxies to the echo application.
///
/// - `/docs/` has an `index` file, so `/docs/` redirects to `/docs/index.html`.
/// - `/files/` uses `try_files $uri @app`, and no file exists there.
/// - `/missing/` serves a 404 that `error_page` redirects to `/fallback`.
/// - `/plain/` redirects the same way to `/unprotected`, which has no
///   `authgear_resolve` of its own.
fn start_redirecting_app(backends: &Backends) -> Nginx {
    let builder = backends.nginx();
    builder.write_file("www/docs/index.html", "<p>docs</p>\n");
    let www = builder.prefix().join("www");
    let www = www.display();
    let protected_body = format!(
        "\x20   authgear_resolve {RESOLVER_URI};\n\
         \x20   proxy_pass http://echo_app;\n\
         {}",
        expose_variables()
    );
    builder
        .server(&format!(
            "location /docs/ {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   root {www};\n\
             \x20   index index.html;\n\
             }}\n\
             location = /docs/index.html {{\n\
             {protected_body}\
             }}\n\
             location /files/ {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   root {www};\n\
             \x20   try_files $uri @app;\n\
             }}\n\
             location @app {{\n\
             {protected_body}\
             }}\n\
             location /missing/ {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   root {www};\n\
             \x20   error_page 404 = /fallback;\n\
             }}\n\
             location = /fallback {{\n\
             {protected_body}\
             }}\n\
             location /plain/ {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   root {www};\n\
             \x20   error_page 404 = /unprotected;\n\
             }}\n\
             location = /unprotected {{\n\
             \x20   proxy_pass http://echo_app;\n\
             {}\
             }}\n",
            expose_variables()
        ))
        .start()
}

fn full_identity() -> Vec<(String, String)> {
    normalized(&[
        ("X-Authgear-Session-Valid", "true"),
        ("X-Authgear-User-Id", FULL_USER),
        ("X-Authgear-User-Anonymous", "false"),
        ("X-Authgear-User-Verified", "true"),
        ("X-Authgear-User-Can-Reauthenticate", "true"),
        ("X-Authgear-Session-Amr", "pwd mfa"),
        ("X-Authgear-User-Roles", "admin,editor"),
        ("X-Authgear-Session-Authenticated-At", "1712345678"),
    ])
}

/// Requests `path` with a valid session and checks the upstream URI, the
/// identity after the redirect and the number of resolver calls.
fn check_redirect(path: &str, expected_upstream_uri: &str) {
    let backends = Backends::start();
    let nginx = start_redirecting_app(&backends);

    let request = RawRequest::get(path).header("Cookie", &format!("session={FULL_SESSION}"));
    let response = http1::send(nginx.addr(), &request);
    let report = response.echo();

    assert_eq!(report.uri, expected_upstream_uri, "URI at the upstream");
    assert_eq!(
        identity_headers(&report),
        full_identity(),
        "identity headers, one copy each"
    );
    assert_eq!(
        exposed_variables(&response),
        full_identity(),
        "variables after the redirect"
    );
    assert_eq!(
        backends.resolver.calls(),
        1,
        "resolver calls for one client request"
    );
}

#[test]
fn index_redirect_resolves_once() {
    check_redirect("/docs/", "/docs/index.html");
}

#[test]
fn try_files_redirect_resolves_once() {
    check_redirect("/files/report.pdf", "/files/report.pdf");
}

#[test]
fn error_page_redirect_resolves_once() {
    check_redirect("/missing/page", "/fallback");
}

#[test]
fn redirect_to_unprotected_location_keeps_identity() {
    check_redirect("/plain/page", "/unprotected");
}

#[test]
fn redirect_sets_clearing_cookie_once() {
    let backends = Backends::start();
    let nginx = start_redirecting_app(&backends);

    let request =
        RawRequest::get("/missing/page").header("Cookie", &format!("session={EXPIRED_SESSION}"));
    let response = http1::send(nginx.addr(), &request);

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
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
}

#[test]
fn redirects_resolve_once_per_request_on_keepalive() {
    let backends = Backends::start();
    let nginx = start_redirecting_app(&backends);

    let mut connection = Connection::open(nginx.addr());
    let paths = ["/docs/", "/files/a", "/missing/b", "/plain/c"];
    for (index, path) in paths.iter().enumerate() {
        let request =
            RawRequest::get(path).header("Cookie", &format!("session={NO_ROLES_SESSION}"));
        let response = connection.round_trip(&request);
        assert_eq!(
            response.header("x-var-user-id"),
            Some(NO_ROLES_USER),
            "path {path}"
        );
        assert_eq!(
            backends.resolver.calls(),
            index + 1,
            "resolver calls after {path}"
        );
    }
}
