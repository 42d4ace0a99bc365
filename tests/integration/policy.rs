//! `authgear_require` against the real nginx: which users each condition
//! lets in, the 401, login redirect or 403 that the others get, and how the
//! policy works with `error_page`, `satisfy any`, the cache, nested
//! locations, the error log and `$authgear_decision`.

use std::time::Duration;

use authgear_standin::Fault;

use crate::support::http1::Response;
use crate::support::*;

/// The `Accept` header a browser sends when it navigates to a page.
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

/// The error log, at level `info`, that the logging tests read.
const POLICY_LOG: &str = "policy-error.log";

/// How long a test waits for nginx to write a log line. nginx writes error
/// log lines before the response and access log lines right after it, so the
/// wait is a safety margin only.
const LOG_WAIT: Duration = Duration::from_secs(3);

/// The credential a client sends, if any.
#[derive(Clone, Copy, Debug)]
enum Credential {
    Absent,
    SessionCookie(&'static str),
    Bearer(&'static str),
}

impl Credential {
    fn add_to(self, request: RawRequest) -> RawRequest {
        match self {
            Credential::Absent => request,
            Credential::SessionCookie(value) => {
                request.header("Cookie", &format!("theme=dark; session={value}"))
            }
            Credential::Bearer(token) => {
                request.header("Authorization", &format!("Bearer {token}"))
            }
        }
    }
}

/// Returns a GET of `path` with `credential`, without `Accept`, as an API
/// client sends it.
fn api_get(path: &str, credential: Credential) -> RawRequest {
    credential.add_to(RawRequest::get(path))
}

/// Returns a browser navigation of `target` on `host` with `credential`.
fn navigation(method: &str, target: &str, host: &str, credential: Credential) -> RawRequest {
    let request = RawRequest::new(method, target)
        .header("Host", host)
        .header("Accept", BROWSER_ACCEPT)
        .header("Sec-Fetch-Mode", "navigate")
        .header("Sec-Fetch-Dest", "document");
    credential.add_to(request)
}

/// Returns a location on `path` that resolves every request, proxies to the
/// echo application and reports `$authgear_decision` as `X-Decision`, with
/// `directives` added.
fn guarded_location(path: &str, directives: &str) -> String {
    format!(
        "location {path} {{\n\
         \x20   authgear_resolve {RESOLVER_URI};\n\
         \x20   proxy_pass http://echo_app;\n\
         \x20   add_header X-Decision $authgear_decision always;\n\
         {directives}\n\
         }}\n"
    )
}

/// Returns the address of `nginx` for a `Host` header. Its port is never 80,
/// so the return URL of a login redirect must keep it.
fn host_of(nginx: &Nginx) -> String {
    nginx.addr().to_string()
}

/// Checks that `response` is a 401 with the default challenge and no
/// login redirect.
fn assert_challenge(response: &Response, case: &str) {
    assert_eq!(response.status, 401, "status for {case}");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"authgear\""),
        "WWW-Authenticate for {case}"
    );
    assert_eq!(response.header("location"), None, "Location for {case}");
}

// Users against conditions.

/// The condition sets of the user table. Each is served by the location
/// `/require/<slug>`.
const CONDITION_SETS: [(&str, &str); 8] = [
    ("session", "session"),
    ("non-anonymous", "non_anonymous"),
    ("verified", "verified"),
    ("admin", "role=admin"),
    ("owner-or-editor", "role=owner|editor"),
    ("mfa", "amr=mfa"),
    ("admin-mfa-verified", "role=admin amr=mfa verified"),
    ("non-anonymous-verified", "non_anonymous verified"),
];

fn start_condition_table(backends: &Backends) -> Nginx {
    let locations: String = CONDITION_SETS
        .iter()
        .map(|(slug, conditions)| {
            guarded_location(
                &format!("= /require/{slug}"),
                &format!("authgear_require {conditions};"),
            )
        })
        .collect();
    backends.nginx().server(&locations).start()
}

#[test]
fn users_against_conditions() {
    let backends = Backends::start();
    let nginx = start_condition_table(&backends);

    // The columns follow CONDITION_SETS.
    let rows: [(&str, Credential, [u16; 8]); 9] = [
        (
            "the user with roles admin,editor and AMR pwd mfa",
            Credential::SessionCookie(FULL_SESSION),
            [200, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "the same user with a bearer token",
            Credential::Bearer(FULL_BEARER),
            [200, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "a verified user without roles, AMR pwd",
            Credential::SessionCookie(NO_ROLES_SESSION),
            [200, 200, 200, 403, 403, 403, 403, 200],
        ),
        (
            "an anonymous user",
            Credential::SessionCookie(ANONYMOUS_SESSION),
            [200, 403, 403, 403, 403, 403, 403, 403],
        ),
        (
            "an unverified user with role viewer, AMR oauth",
            Credential::SessionCookie(UNVERIFIED_SESSION),
            [200, 200, 403, 403, 403, 403, 403, 403],
        ),
        (
            "an unknown session cookie",
            Credential::SessionCookie(UNKNOWN_SESSION),
            [401; 8],
        ),
        (
            "a disabled user",
            Credential::SessionCookie(DISABLED_SESSION),
            [401; 8],
        ),
        ("no credentials", Credential::Absent, [401; 8]),
        (
            "an unknown bearer token",
            Credential::Bearer(UNKNOWN_BEARER),
            [401; 8],
        ),
    ];

    for (user, credential, expected_statuses) in rows {
        for ((slug, conditions), expected) in CONDITION_SETS.iter().zip(expected_statuses) {
            let request = api_get(&format!("/require/{slug}"), credential);
            let response = http1::send(nginx.addr(), &request);
            assert_eq!(
                response.status, expected,
                "status for {user} under `authgear_require {conditions}`"
            );
        }
    }
}

#[test]
fn allowed_request_reaches_upstream_with_identity() {
    let backends = Backends::start();
    let nginx = start_condition_table(&backends);

    let request = api_get(
        "/require/admin-mfa-verified",
        Credential::SessionCookie(FULL_SESSION),
    );
    let report = http1::send(nginx.addr(), &request).echo();

    assert_eq!(
        report.uri, "/require/admin-mfa-verified",
        "URI at the upstream"
    );
    assert_eq!(
        report.header_values("x-authgear-user-id"),
        [FULL_USER],
        "user id at the upstream"
    );
}

#[test]
fn denied_request_never_reaches_upstream() {
    let backends = Backends::start();
    let nginx = start_condition_table(&backends);

    let forbidden = http1::send(
        nginx.addr(),
        &api_get(
            "/require/admin",
            Credential::SessionCookie(NO_ROLES_SESSION),
        ),
    );
    let unauthenticated = http1::send(nginx.addr(), &api_get("/require/admin", Credential::Absent));

    assert_eq!(forbidden.status, 403, "status without the role");
    assert_eq!(unauthenticated.status, 401, "status without a session");
    assert_eq!(backends.echo.requests(), 0, "requests at the upstream");
}

// The login redirect.

/// Starts nginx with three locations that require a session and one that
/// requires the role admin, all with a login URL:
///
/// - `/app/` and `/admin/` redirect to `$scheme://$http_host/login`.
/// - `/relative/` redirects to `/login?client=web` with the parameter `next`.
///   It turns `absolute_redirect` off, which would otherwise make nginx
///   prepend the scheme and host to the relative `Location`.
fn start_login_app(backends: &Backends) -> Nginx {
    let login = "authgear_login_url $scheme://$http_host/login;";
    backends
        .nginx()
        .server(&guarded_location(
            "/app/",
            &format!("authgear_require session;\n{login}"),
        ))
        .server(&guarded_location(
            "/admin/",
            &format!("authgear_require role=admin;\n{login}"),
        ))
        .server(&guarded_location(
            "/relative/",
            "authgear_require session;\n\
             authgear_login_url /login?client=web;\n\
             authgear_login_redirect_param next;\n\
             absolute_redirect off;",
        ))
        .start()
}

/// A request target with a query string, an encoded space and a `+`. The
/// return URL must percent-encode each reserved character in it, the `%` of
/// `%20` included.
const APP_TARGET: &str = "/app/orders?page=2&sort=name%20asc&tag=a+b";

/// Returns the `Location` of a login redirect for `APP_TARGET` on `host`.
fn app_login_location(host: &str) -> String {
    let encoded_host = host.replace(':', "%3A");
    format!(
        "http://{host}/login?redirect_uri=http%3A%2F%2F{encoded_host}\
         %2Fapp%2Forders%3Fpage%3D2%26sort%3Dname%2520asc%26tag%3Da%2Bb"
    )
}

#[test]
fn navigation_redirects_to_login() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);
    let host = host_of(&nginx);

    let request = navigation("GET", APP_TARGET, &host, Credential::Absent);
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 302, "status");
    assert_eq!(
        response.header("location"),
        Some(app_login_location(&host).as_str()),
        "Location"
    );
    assert_eq!(
        response.header("www-authenticate"),
        None,
        "WWW-Authenticate of a redirect"
    );
}

#[test]
fn head_navigation_redirects_to_login() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);
    let host = host_of(&nginx);

    let request = navigation("HEAD", APP_TARGET, &host, Credential::Absent);
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 302, "status");
    assert_eq!(
        response.header("location"),
        Some(app_login_location(&host).as_str()),
        "Location"
    );
}

#[test]
fn navigation_without_fetch_metadata_redirects() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);
    let host = host_of(&nginx);

    // A browser too old to send Sec-Fetch-Mode.
    let request = RawRequest::get(APP_TARGET)
        .header("Host", &host)
        .header("Accept", BROWSER_ACCEPT);
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 302, "status");
    assert_eq!(
        response.header("location"),
        Some(app_login_location(&host).as_str()),
        "Location"
    );
}

#[test]
fn invalid_session_navigation_redirects() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);
    let host = host_of(&nginx);

    let request = navigation(
        "GET",
        APP_TARGET,
        &host,
        Credential::SessionCookie(EXPIRED_SESSION),
    );
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 302, "status");
    assert_eq!(
        response.header("location"),
        Some(app_login_location(&host).as_str()),
        "Location"
    );
    assert_eq!(
        response.header_values("set-cookie"),
        [CLEARING_COOKIE],
        "Set-Cookie that clears the expired session"
    );
}

#[test]
fn login_url_with_query_appends_parameter() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);
    let host = host_of(&nginx);
    let encoded_host = host.replace(':', "%3A");

    let request = navigation("GET", "/relative/page", &host, Credential::Absent);
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 302, "status");
    assert_eq!(
        response.header("location"),
        Some(
            format!("/login?client=web&next=http%3A%2F%2F{encoded_host}%2Frelative%2Fpage")
                .as_str()
        ),
        "Location"
    );
}

#[test]
fn fetch_request_gets_401() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);

    // fetch() from a page: Sec-Fetch-Mode wins even over an Accept that
    // prefers HTML.
    for accept in ["*/*", "text/html"] {
        let request = RawRequest::get(APP_TARGET)
            .header("Host", &host_of(&nginx))
            .header("Accept", accept)
            .header("Sec-Fetch-Mode", "cors")
            .header("Sec-Fetch-Dest", "empty");
        let response = http1::send(nginx.addr(), &request);

        assert_challenge(&response, &format!("fetch with Accept {accept:?}"));
    }
}

#[test]
fn xhr_request_gets_401() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);

    let request = RawRequest::get(APP_TARGET)
        .header("Host", &host_of(&nginx))
        .header("Accept", BROWSER_ACCEPT)
        .header("X-Requested-With", "XMLHttpRequest");
    let response = http1::send(nginx.addr(), &request);

    assert_challenge(&response, "XMLHttpRequest");
}

#[test]
fn json_first_request_gets_401() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);

    let request = RawRequest::get(APP_TARGET)
        .header("Host", &host_of(&nginx))
        .header("Accept", "application/json, text/html;q=0.9");
    let response = http1::send(nginx.addr(), &request);

    assert_challenge(&response, "Accept that prefers JSON");
}

#[test]
fn request_without_accept_gets_401() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);

    let request = RawRequest::get(APP_TARGET).header("Host", &host_of(&nginx));
    let response = http1::send(nginx.addr(), &request);

    assert_challenge(&response, "request without Accept");
}

#[test]
fn post_navigation_gets_401() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);

    // A form submission is a navigation, but a redirect cannot repeat it.
    let request = navigation("POST", "/app/orders", &host_of(&nginx), Credential::Absent)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(b"item=42&quantity=1".to_vec());
    let response = http1::send(nginx.addr(), &request);

    assert_challenge(&response, "POST navigation");
}

#[test]
fn forbidden_navigation_not_redirected() {
    let backends = Backends::start();
    let nginx = start_login_app(&backends);

    let request = navigation(
        "GET",
        "/admin/settings",
        &host_of(&nginx),
        Credential::SessionCookie(NO_ROLES_SESSION),
    );
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 403, "status");
    assert_eq!(response.header("location"), None, "Location");
    assert_eq!(
        response.header("www-authenticate"),
        None,
        "WWW-Authenticate"
    );
}

// error_page.

/// Starts nginx where `/members/` sends a 401 to the named location `@login`,
/// which proxies to the echo application as `/login/start`, and `/staff/`
/// responds 403 with the page `/denied.html`.
fn start_error_page_app(backends: &Backends) -> Nginx {
    let builder = backends.nginx();
    builder.write_file("www/denied.html", "<p>staff only</p>\n");
    let www = builder.prefix().join("www");
    builder
        .server(&guarded_location(
            "/members/",
            "authgear_require session;\nerror_page 401 = @login;",
        ))
        .server(
            "location @login {\n\
             \x20   rewrite ^ /login/start break;\n\
             \x20   proxy_pass http://echo_app;\n\
             }\n",
        )
        .server(&guarded_location(
            "/staff/",
            "authgear_require role=admin;\nerror_page 403 /denied.html;",
        ))
        .server(&format!(
            "location = /denied.html {{\n\
             \x20   internal;\n\
             \x20   root {};\n\
             }}\n",
            www.display()
        ))
        .start()
}

#[test]
fn error_page_401_named_location_serves_login() {
    let backends = Backends::start();
    let nginx = start_error_page_app(&backends);

    let response = http1::send(nginx.addr(), &api_get("/members/home", Credential::Absent));

    assert_eq!(
        response.echo().uri,
        "/login/start",
        "URI at the upstream of @login"
    );
}

#[test]
fn error_page_401_skipped_for_valid_session() {
    let backends = Backends::start();
    let nginx = start_error_page_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/members/home", Credential::SessionCookie(NO_ROLES_SESSION)),
    );

    assert_eq!(response.echo().uri, "/members/home", "URI at the upstream");
}

#[test]
fn error_page_403_serves_custom_page() {
    let backends = Backends::start();
    let nginx = start_error_page_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get(
            "/staff/reports",
            Credential::SessionCookie(NO_ROLES_SESSION),
        ),
    );

    assert_eq!(response.status, 403, "status");
    assert_eq!(response.body_text(), "<p>staff only</p>\n", "body");
    assert_eq!(backends.echo.requests(), 0, "requests at the upstream");
}

#[test]
fn error_page_to_guarded_page_sends_one_challenge() {
    let backends = Backends::start();
    let builder = backends.nginx();
    builder.write_file("www/unauthorized.html", "<p>please sign in</p>\n");
    let www = builder.prefix().join("www");
    // The 401 page inherits the server's policy, so it is denied as well and
    // nginx sends its own 401 page. The access phase runs twice.
    let nginx = builder
        .server(&format!(
            "authgear_resolve {RESOLVER_URI};\n\
             authgear_require session;\n\
             error_page 401 /unauthorized.html;\n\
             location / {{\n\
             \x20   proxy_pass http://echo_app;\n\
             }}\n\
             location = /unauthorized.html {{\n\
             \x20   root {};\n\
             }}\n",
            www.display()
        ))
        .start();

    let response = http1::send(nginx.addr(), &api_get("/account", Credential::Absent));

    assert_eq!(response.status, 401, "status");
    assert_eq!(
        response.header_values("www-authenticate"),
        ["Bearer realm=\"authgear\""],
        "WWW-Authenticate headers"
    );
}

// satisfy any.

/// Starts nginx with two locations that require the role admin under
/// `satisfy any`: `/office/` also admits 127.0.0.1, where the tests connect
/// from, and `/remote/` admits only 10.0.0.0/8.
fn start_satisfy_any_app(backends: &Backends) -> Nginx {
    let policy = "authgear_require role=admin;\n\
                  authgear_login_url $scheme://$http_host/login;\n\
                  satisfy any;";
    backends
        .nginx()
        .server(&guarded_location(
            "/office/",
            &format!("{policy}\nallow 127.0.0.1;\ndeny all;"),
        ))
        .server(&guarded_location(
            "/remote/",
            &format!("{policy}\nallow 10.0.0.0/8;\ndeny all;"),
        ))
        .start()
}

#[test]
fn satisfy_any_allowed_network_needs_no_session() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);

    let response = http1::send(nginx.addr(), &api_get("/office/desk", Credential::Absent));

    assert_eq!(response.echo().uri, "/office/desk", "URI at the upstream");
    assert_eq!(
        response.header("www-authenticate"),
        None,
        "WWW-Authenticate"
    );
}

#[test]
fn satisfy_any_allowed_network_overrides_forbidden() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/office/desk", Credential::SessionCookie(NO_ROLES_SESSION)),
    );

    assert_eq!(response.echo().uri, "/office/desk", "URI at the upstream");
}

#[test]
fn satisfy_any_allowed_network_navigation_not_redirected() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);

    let request = navigation("GET", "/office/desk", &host_of(&nginx), Credential::Absent);
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.echo().uri, "/office/desk", "URI at the upstream");
}

#[test]
fn satisfy_any_other_network_gets_401() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);

    let response = http1::send(nginx.addr(), &api_get("/remote/desk", Credential::Absent));

    assert_challenge(&response, "request from outside the allowed network");
    assert_eq!(backends.echo.requests(), 0, "requests at the upstream");
}

#[test]
fn satisfy_any_other_network_navigation_redirects() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);
    let host = host_of(&nginx);
    let encoded_host = host.replace(':', "%3A");

    let request = navigation("GET", "/remote/desk", &host, Credential::Absent);
    let response = http1::send(nginx.addr(), &request);

    assert_eq!(response.status, 302, "status");
    assert_eq!(
        response.header("location"),
        Some(
            format!("http://{host}/login?redirect_uri=http%3A%2F%2F{encoded_host}%2Fremote%2Fdesk")
                .as_str()
        ),
        "Location"
    );
}

#[test]
fn satisfy_any_other_network_forbidden_gets_403() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/remote/desk", Credential::SessionCookie(NO_ROLES_SESSION)),
    );

    assert_eq!(response.status, 403, "status");
    assert_eq!(
        response.header("www-authenticate"),
        None,
        "WWW-Authenticate"
    );
}

#[test]
fn satisfy_any_other_network_admits_role() {
    let backends = Backends::start();
    let nginx = start_satisfy_any_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/remote/desk", Credential::SessionCookie(FULL_SESSION)),
    );

    assert_eq!(response.echo().uri, "/remote/desk", "URI at the upstream");
}

// The cache.

fn start_cached_app(backends: &Backends) -> Nginx {
    backends
        .nginx()
        .http("authgear_cache_zone zone=policy:1m;")
        .server(&guarded_location(
            "/cached/",
            "authgear_cache policy;\n\
             authgear_require role=admin;\n\
             add_header X-Cache-Status $authgear_cache_status always;",
        ))
        .start()
}

/// Sends `request` twice and checks that both responses have
/// `expected_status`, that the second is a cache hit and that only the first
/// called the resolver.
fn check_cached_denial(request: &RawRequest, expected_status: u16) {
    let backends = Backends::start();
    let nginx = start_cached_app(&backends);

    let first = http1::send(nginx.addr(), request);
    let calls_after_first = backends.resolver.calls();
    let second = http1::send(nginx.addr(), request);

    assert_eq!(first.status, expected_status, "status of the first request");
    assert_eq!(
        calls_after_first, 1,
        "resolver calls after the first request"
    );
    assert_eq!(
        second.status, expected_status,
        "status of the cached answer"
    );
    assert_eq!(
        second.header("x-cache-status"),
        Some("HIT"),
        "cache status of the second request"
    );
    assert_eq!(
        backends.resolver.calls(),
        1,
        "resolver calls after the second request"
    );
    assert_eq!(backends.echo.requests(), 0, "requests at the upstream");
}

#[test]
fn cached_session_without_role_gets_403() {
    check_cached_denial(
        &api_get("/cached/page", Credential::SessionCookie(NO_ROLES_SESSION)),
        403,
    );
}

#[test]
fn cached_invalid_session_gets_401() {
    check_cached_denial(
        &api_get("/cached/page", Credential::SessionCookie(UNKNOWN_SESSION)),
        401,
    );
}

#[test]
fn cached_answer_without_credentials_gets_401() {
    check_cached_denial(&api_get("/cached/page", Credential::Absent), 401);
}

#[test]
fn cached_session_with_role_allowed() {
    let backends = Backends::start();
    let nginx = start_cached_app(&backends);
    let request = api_get("/cached/page", Credential::SessionCookie(FULL_SESSION));

    let first = http1::send(nginx.addr(), &request);
    let second = http1::send(nginx.addr(), &request);

    assert_eq!(first.status, 200, "status of the first request");
    assert_eq!(second.status, 200, "status of the cached answer");
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
}

// Inheritance and `authgear_require off`.

/// Starts nginx with `authgear_resolve` and `authgear_require session` at
/// server level, inherited by `/` and `/admin/`. `/admin/` replaces the
/// policy with `role=admin`, and `/public/`, nested in `/`, turns it off.
fn start_inheriting_app(backends: &Backends) -> Nginx {
    backends
        .nginx()
        .server(&format!(
            "authgear_resolve {RESOLVER_URI};\n\
             authgear_require session;\n\
             location / {{\n\
             \x20   proxy_pass http://echo_app;\n\
             \x20   add_header X-Decision $authgear_decision always;\n\
             \x20   location /public/ {{\n\
             \x20       authgear_require off;\n\
             \x20       proxy_pass http://echo_app;\n\
             \x20       add_header X-Decision $authgear_decision always;\n\
             \x20   }}\n\
             }}\n\
             location /admin/ {{\n\
             \x20   authgear_require role=admin;\n\
             \x20   proxy_pass http://echo_app;\n\
             }}\n"
        ))
        .start()
}

#[test]
fn server_require_inherited_by_location() {
    let backends = Backends::start();
    let nginx = start_inheriting_app(&backends);

    let anonymous = http1::send(nginx.addr(), &api_get("/home", Credential::Absent));
    let signed_in = http1::send(
        nginx.addr(),
        &api_get("/home", Credential::SessionCookie(ANONYMOUS_SESSION)),
    );

    assert_eq!(anonymous.status, 401, "status without a session");
    assert_eq!(signed_in.status, 200, "status with a session");
}

#[test]
fn nested_require_off_allows_without_session() {
    let backends = Backends::start();
    let nginx = start_inheriting_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/public/logo.png", Credential::Absent),
    );

    assert_eq!(
        response.echo().uri,
        "/public/logo.png",
        "URI at the upstream"
    );
    assert_eq!(
        response.header("x-decision"),
        None,
        "$authgear_decision without a policy"
    );
}

#[test]
fn nested_require_off_still_resolves() {
    let backends = Backends::start();
    let nginx = start_inheriting_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/public/logo.png", Credential::SessionCookie(FULL_SESSION)),
    );

    assert_eq!(
        response.echo().header_values("x-authgear-user-id"),
        [FULL_USER],
        "user id at the upstream"
    );
}

#[test]
fn location_require_replaces_server_require() {
    let backends = Backends::start();
    let nginx = start_inheriting_app(&backends);

    let without_role = http1::send(
        nginx.addr(),
        &api_get("/admin/users", Credential::SessionCookie(NO_ROLES_SESSION)),
    );
    let with_role = http1::send(
        nginx.addr(),
        &api_get("/admin/users", Credential::SessionCookie(FULL_SESSION)),
    );

    assert_eq!(without_role.status, 403, "status without the role");
    assert_eq!(with_role.status, 200, "status with the role");
}

#[test]
fn http_require_inherited_by_location() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http("authgear_require verified;")
        .server(&guarded_location("/", ""))
        .start();

    let unverified = http1::send(
        nginx.addr(),
        &api_get("/page", Credential::SessionCookie(UNVERIFIED_SESSION)),
    );
    let verified = http1::send(
        nginx.addr(),
        &api_get("/page", Credential::SessionCookie(NO_ROLES_SESSION)),
    );

    assert_eq!(unverified.status, 403, "status of the unverified user");
    assert_eq!(verified.status, 200, "status of the verified user");
}

/// A policy in a location that never calls the resolver cannot be checked,
/// so nginx must either reject the configuration or deny the request.
#[test]
fn require_without_resolve_fails_closed() {
    let backends = Backends::start();
    let location = "location / {\n\
                    \x20   authgear_require session;\n\
                    \x20   proxy_pass http://echo_app;\n\
                    }\n";
    if !backends.nginx().server(location).check().success {
        return;
    }
    let nginx = backends.nginx().server(location).start();

    let response = http1::send(nginx.addr(), &api_get("/account", Credential::Absent));

    assert_eq!(
        backends.echo.requests(),
        0,
        "requests at the upstream without a session (status {})",
        response.status
    );
}

// WWW-Authenticate.

#[test]
fn custom_www_authenticate_sets_scheme_and_realm() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(&guarded_location(
            "/",
            "authgear_require session;\nauthgear_www_authenticate Cookie \"my app\";",
        ))
        .start();

    let response = http1::send(nginx.addr(), &api_get("/page", Credential::Absent));

    assert_eq!(response.status, 401, "status");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Cookie realm=\"my app\""),
        "WWW-Authenticate"
    );
}

#[test]
fn www_authenticate_scheme_alone_keeps_default_realm() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server("authgear_www_authenticate Session;")
        .server(&guarded_location("/", "authgear_require session;"))
        .start();

    let response = http1::send(nginx.addr(), &api_get("/page", Credential::Absent));

    assert_eq!(response.status, 401, "status");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Session realm=\"authgear\""),
        "WWW-Authenticate inherited from the server"
    );
}

#[test]
fn invalid_session_401_clears_cookie() {
    let backends = Backends::start();
    let nginx = start_condition_table(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get(
            "/require/session",
            Credential::SessionCookie(EXPIRED_SESSION),
        ),
    );

    assert_challenge(&response, "expired session");
    assert_eq!(
        response.header_values("set-cookie"),
        [CLEARING_COOKIE],
        "Set-Cookie that clears the expired session"
    );
}

// The error log.

/// Starts nginx with a server-level error log at level `info` and three
/// locations that require a session, `role=owner|editor`, and
/// `role=viewer|owner verified`.
fn start_logging_app(backends: &Backends) -> Nginx {
    let builder = backends.nginx();
    let log = builder.prefix().join(POLICY_LOG);
    builder
        .server(&format!("error_log {} info;", log.display()))
        .server(&guarded_location("/session/", "authgear_require session;"))
        .server(&guarded_location(
            "/editors/",
            "authgear_require role=owner|editor;",
        ))
        .server(&guarded_location(
            "/viewers/",
            "authgear_require role=viewer|owner verified;",
        ))
        .start()
}

/// Returns the lines of the policy log that report a denial.
fn denial_lines(nginx: &Nginx) -> Vec<String> {
    nginx
        .wait_for_lines(POLICY_LOG, 1, LOG_WAIT)
        .into_iter()
        .filter(|line| line.contains("authgear access denied"))
        .collect()
}

#[test]
fn denial_logs_no_valid_session() {
    let backends = Backends::start();
    let nginx = start_logging_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/session/page", Credential::SessionCookie(UNKNOWN_SESSION)),
    );

    assert_eq!(response.status, 401, "status");
    let lines = denial_lines(&nginx);
    assert_eq!(lines.len(), 1, "denial lines: {lines:#?}");
    assert!(lines[0].contains("[info]"), "log level of {:?}", lines[0]);
    assert!(
        lines[0].contains("authgear access denied: no valid session"),
        "message of {:?}",
        lines[0]
    );
}

#[test]
fn denial_logs_unmet_condition_and_user() {
    let backends = Backends::start();
    let nginx = start_logging_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/editors/page", Credential::SessionCookie(NO_ROLES_SESSION)),
    );

    assert_eq!(response.status, 403, "status");
    let lines = denial_lines(&nginx);
    assert_eq!(lines.len(), 1, "denial lines: {lines:#?}");
    assert!(lines[0].contains("[info]"), "log level of {:?}", lines[0]);
    let expected = format!(
        "authgear access denied: condition \"role=owner|editor\" not met, user: \"{NO_ROLES_USER}\""
    );
    assert!(
        lines[0].contains(&expected),
        "expected {expected:?} in {:?}",
        lines[0]
    );
}

#[test]
fn denial_log_names_failing_condition() {
    let backends = Backends::start();
    let nginx = start_logging_app(&backends);

    // The user has the role viewer, so only `verified` fails.
    let response = http1::send(
        nginx.addr(),
        &api_get(
            "/viewers/page",
            Credential::SessionCookie(UNVERIFIED_SESSION),
        ),
    );

    assert_eq!(response.status, 403, "status");
    let lines = denial_lines(&nginx);
    assert_eq!(lines.len(), 1, "denial lines: {lines:#?}");
    let expected = format!(
        "authgear access denied: condition \"verified\" not met, user: \"{UNVERIFIED_USER}\""
    );
    assert!(
        lines[0].contains(&expected),
        "expected {expected:?} in {:?}",
        lines[0]
    );
}

#[test]
fn allowed_request_logs_no_denial() {
    let backends = Backends::start();
    let nginx = start_logging_app(&backends);

    let response = http1::send(
        nginx.addr(),
        &api_get("/editors/page", Credential::SessionCookie(FULL_SESSION)),
    );

    assert_eq!(response.status, 200, "status");
    assert_eq!(denial_lines(&nginx), Vec::<String>::new(), "denial lines");
}

#[test]
fn denial_log_contains_no_credentials() {
    let backends = Backends::start();
    let nginx = start_logging_app(&backends);

    let requests = [
        api_get("/session/page", Credential::SessionCookie(UNKNOWN_SESSION)),
        api_get("/session/page", Credential::Bearer(UNKNOWN_BEARER)),
        api_get("/editors/page", Credential::SessionCookie(NO_ROLES_SESSION)),
        api_get("/viewers/page", Credential::Bearer(NO_ROLES_JWT)),
    ];
    for request in &requests {
        http1::send(nginx.addr(), request);
    }

    let lines = denial_lines(&nginx);
    assert_eq!(lines.len(), requests.len(), "denial lines: {lines:#?}");
    let log = nginx.wait_for_lines(POLICY_LOG, 1, LOG_WAIT).join("\n");
    let session_secret = NO_ROLES_SESSION
        .split_once('.')
        .map_or(NO_ROLES_SESSION, |(_, secret)| secret);
    for secret in [
        UNKNOWN_SESSION,
        NO_ROLES_SESSION,
        session_secret,
        UNKNOWN_BEARER,
        NO_ROLES_JWT,
    ] {
        assert!(
            !log.contains(secret),
            "the policy log contains the credential {secret:?}:\n{log}"
        );
    }
}

// $authgear_decision.

/// Starts nginx with `/guarded/`, which requires the role admin and has a
/// login URL, and `/open/`, which resolves without a policy. Both report
/// `$authgear_decision` in `X-Decision` and in the access log `decisions.log`
/// as `<status> <decision>`.
fn start_decision_app(backends: &Backends) -> Nginx {
    let builder = backends.nginx();
    let access_log = builder.prefix().join("decisions.log");
    builder
        .http("log_format decisions '$status $authgear_decision';")
        .server(&format!("access_log {} decisions;", access_log.display()))
        .server(&guarded_location(
            "/guarded/",
            "authgear_require role=admin;\nauthgear_login_url /login;",
        ))
        .server(&guarded_location("/open/", ""))
        .start()
}

/// Returns the requests of the decision tests, their expected status and
/// expected `$authgear_decision`, in the order the tests send them. A
/// resolver error comes last because the test breaks the resolver for it.
fn decision_cases(host: &str) -> Vec<(&'static str, RawRequest, u16, Option<&'static str>)> {
    vec![
        (
            "user with the role",
            api_get("/guarded/", Credential::SessionCookie(FULL_SESSION)),
            200,
            Some("allowed"),
        ),
        (
            "API request without a session",
            api_get("/guarded/", Credential::Absent),
            401,
            Some("unauthenticated"),
        ),
        (
            "navigation without a session",
            navigation("GET", "/guarded/", host, Credential::Absent),
            302,
            Some("login_redirect"),
        ),
        (
            "user without the role",
            api_get("/guarded/", Credential::SessionCookie(NO_ROLES_SESSION)),
            403,
            Some("forbidden"),
        ),
        (
            "location without a policy",
            api_get("/open/", Credential::SessionCookie(FULL_SESSION)),
            200,
            None,
        ),
        (
            "failing resolver",
            api_get("/guarded/", Credential::SessionCookie(FULL_SESSION)),
            500,
            Some("resolver_error"),
        ),
    ]
}

#[test]
fn decision_variable_in_response_header() {
    let backends = Backends::start();
    let nginx = start_decision_app(&backends);
    let cases = decision_cases(&host_of(&nginx));
    let last = cases.len() - 1;

    for (index, (case, request, status, decision)) in cases.into_iter().enumerate() {
        if index == last {
            backends.resolver.set_fault(Fault::InternalErrorText);
        }
        let response = http1::send(nginx.addr(), &request);

        assert_eq!(response.status, status, "status for the {case}");
        assert_eq!(
            response.header("x-decision"),
            decision,
            "$authgear_decision for the {case}"
        );
    }
}

#[test]
fn decision_variable_in_access_log() {
    let backends = Backends::start();
    let nginx = start_decision_app(&backends);
    let cases = decision_cases(&host_of(&nginx));
    let last = cases.len() - 1;

    for (index, (_, request, _, _)) in cases.iter().enumerate() {
        if index == last {
            backends.resolver.set_fault(Fault::InternalErrorText);
        }
        http1::send(nginx.addr(), request);
    }

    let lines = nginx.wait_for_lines("decisions.log", cases.len(), LOG_WAIT);
    assert_eq!(lines.len(), cases.len(), "access log lines: {lines:#?}");
    for ((case, _, status, decision), line) in cases.iter().zip(&lines) {
        // nginx logs a variable that is not found as "-".
        let expected = format!("{status} {}", decision.unwrap_or("-"));
        assert_eq!(line, &expected, "access log line for the {case}");
    }
}

// Configuration errors.

fn check_server(directives: &str) -> nginx::ConfigCheck {
    NginxBuilder::new()
        .http("upstream authgear_resolver {\n    server 127.0.0.1:9;\n}\n")
        .server(&resolver_location(""))
        .server(directives)
        .check()
}

/// Checks that `nginx -t` failed with `message` at the first line that
/// contains `needle`.
fn assert_rejected(check: &nginx::ConfigCheck, message: &str, needle: &str) {
    let expected = check.emerg_line(message, check.line_of(needle, 1));
    assert!(!check.success, "nginx -t accepted:\n{}", check.conf);
    assert!(
        check.stderr.lines().any(|line| line == expected),
        "expected the line\n{expected}\nin the output of nginx -t:\n{}",
        check.stderr
    );
}

#[test]
fn policy_configuration_passes() {
    let check = NginxBuilder::new()
        .http(
            "upstream authgear_resolver {\n    server 127.0.0.1:9;\n}\n\
             authgear_require session;\n\
             authgear_www_authenticate Bearer \"example app\";",
        )
        .server(&resolver_location(""))
        .server(
            "authgear_resolve /_authgear/resolve;\n\
             authgear_login_url https://$host/login?client=web;\n\
             authgear_login_redirect_param return_to;\n\
             location / {\n\
             \x20   authgear_require non_anonymous verified role=admin|editor amr=mfa;\n\
             \x20   location /public/ {\n\
             \x20       authgear_require off;\n\
             \x20   }\n\
             }\n",
        )
        .check();

    assert!(check.success, "nginx -t rejected:\n{}", check.stderr);
}

#[test]
fn require_unknown_condition_rejected() {
    let check = check_server("location / {\n    authgear_require session admin;\n}\n");

    assert_rejected(
        &check,
        "invalid value \"admin\" in \"authgear_require\" directive",
        "authgear_require session admin;",
    );
}

#[test]
fn require_malformed_conditions_rejected() {
    for condition in [
        "role=",
        "role=admin,editor",
        "role=admin||editor",
        "amr=",
        "Session",
    ] {
        let check = check_server(&format!(
            "location / {{\n    authgear_require session {condition};\n}}\n"
        ));

        assert_rejected(
            &check,
            &format!("invalid value \"{condition}\" in \"authgear_require\" directive"),
            "authgear_require session",
        );
    }
}

#[test]
fn require_off_with_condition_rejected() {
    let check = check_server("location / {\n    authgear_require off session;\n}\n");

    assert_rejected(
        &check,
        "invalid value \"off\" in \"authgear_require\" directive",
        "authgear_require off session;",
    );
}

#[test]
fn require_duplicate_rejected() {
    let check = check_server(
        "location / {\n\
         \x20   authgear_require session;\n\
         \x20   authgear_require verified;\n\
         }\n",
    );

    assert_rejected(
        &check,
        "\"authgear_require\" directive is duplicate",
        "authgear_require verified;",
    );
}

#[test]
fn require_missing_argument_rejected() {
    let check = check_server("location / {\n    authgear_require;\n}\n");

    assert_rejected(
        &check,
        "invalid number of arguments in \"authgear_require\" directive",
        "authgear_require;",
    );
}

#[test]
fn www_authenticate_invalid_scheme_rejected() {
    let check = check_server("location / {\n    authgear_www_authenticate \"Bearer token\";\n}\n");

    assert_rejected(
        &check,
        "invalid value \"Bearer token\" in \"authgear_www_authenticate\" directive",
        "authgear_www_authenticate",
    );
}

#[test]
fn www_authenticate_invalid_realm_rejected() {
    let check =
        check_server("location / {\n    authgear_www_authenticate Bearer 'my \"app\"';\n}\n");

    assert_rejected(
        &check,
        "invalid value \"my \"app\"\" in \"authgear_www_authenticate\" directive",
        "authgear_www_authenticate",
    );
}

#[test]
fn www_authenticate_duplicate_rejected() {
    let check = check_server(
        "location / {\n\
         \x20   authgear_www_authenticate Bearer;\n\
         \x20   authgear_www_authenticate Cookie;\n\
         }\n",
    );

    assert_rejected(
        &check,
        "\"authgear_www_authenticate\" directive is duplicate",
        "authgear_www_authenticate Cookie;",
    );
}

#[test]
fn login_url_duplicate_rejected() {
    let check = check_server(
        "location / {\n\
         \x20   authgear_login_url /login;\n\
         \x20   authgear_login_url /signin;\n\
         }\n",
    );

    assert_rejected(
        &check,
        "\"authgear_login_url\" directive is duplicate",
        "authgear_login_url /signin;",
    );
}

#[test]
fn login_url_unknown_variable_rejected() {
    let check =
        check_server("location / {\n    authgear_login_url /login?app=$no_such_variable;\n}\n");

    // nginx reports unknown variables after parsing, without a file and line.
    let expected = "nginx: [emerg] unknown \"no_such_variable\" variable";
    assert!(!check.success, "nginx -t accepted:\n{}", check.conf);
    assert!(
        check.stderr.lines().any(|line| line == expected),
        "expected the line\n{expected}\nin the output of nginx -t:\n{}",
        check.stderr
    );
}
