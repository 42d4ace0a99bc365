//! Regression tests for fixes to header removal, the cache, `satisfy any`,
//! directive parsing and policy booleans. Each test fails on the module as
//! it was before those fixes.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use authgear_standin::{start_echo, start_resolver, Directory, EchoReport, Fault};

use crate::support::http1::Response;
use crate::support::nginx::{bind_local, pick_free_port};
use crate::support::*;

/// The cache zone of the cache tests in this file.
const ZONE: &str = "review_fixes";

/// The `Accept` header a browser sends when it navigates to a page.
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

/// The module's default challenge.
const BEARER_CHALLENGE: &str = "Bearer realm=\"authgear\"";

/// Maximum time for a background subrequest to reach the resolver, and for
/// nginx to write an access log line, after the response.
const BACKGROUND_WAIT: Duration = Duration::from_secs(5);

/// Starts the stand-in resolver with `directory`, and the echo application.
fn backends_with(directory: Directory) -> Backends {
    Backends {
        resolver: start_resolver(bind_local(), directory).expect("start the stand-in resolver"),
        echo: start_echo(bind_local()).expect("start the echo application"),
    }
}

/// Returns an address on 127.0.0.1 where nothing listens.
fn closed_addr() -> SocketAddr {
    bind_local().local_addr().expect("local address")
}

fn session_request(path: &str, session: &str) -> RawRequest {
    RawRequest::get(path).header("Cookie", &format!("session={session}"))
}

/// Returns a browser navigation of `path`.
fn navigation(path: &str) -> RawRequest {
    RawRequest::get(path)
        .header("Accept", BROWSER_ACCEPT)
        .header("Sec-Fetch-Mode", "navigate")
        .header("Sec-Fetch-Dest", "document")
}

/// Returns a location on `path` that resolves every request, applies
/// `directives` and proxies to the echo application.
fn resolved_location(path: &str, directives: &str) -> String {
    format!(
        "location {path} {{\n\
         \x20   authgear_resolve {RESOLVER_URI};\n\
         \x20   proxy_pass http://echo_app;\n\
         {directives}\n\
         }}\n"
    )
}

/// Returns a location on `path` that resolves through the cache zone `ZONE`,
/// with `directives` added, and reports `$authgear_cache_status` as
/// `X-Cache-Status`.
fn cached_location(path: &str, directives: &str) -> String {
    resolved_location(
        path,
        &format!(
            "authgear_cache {ZONE};\n\
             {directives}\n\
             add_header X-Cache-Status $authgear_cache_status always;"
        ),
    )
}

fn zone_directive() -> String {
    format!("authgear_cache_zone zone={ZONE}:1m;")
}

fn cache_status(response: &Response) -> Option<&str> {
    response.header("x-cache-status")
}

/// Returns the `X-Authgear-User-Id` that the echo application received, or
/// `None` when the response is not the echo application's 200 or carries
/// no user.
fn upstream_user(response: &Response) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    response
        .echo()
        .header_values("x-authgear-user-id")
        .first()
        .map(|value| (*value).to_owned())
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
}

/// Waits up to `BACKGROUND_WAIT` until the resolver has recorded `count`
/// requests, and returns the recorded requests.
fn wait_for_recorded(backends: &Backends, count: usize) -> Vec<authgear_standin::RecordedRequest> {
    let deadline = Instant::now() + BACKGROUND_WAIT;
    loop {
        let recorded = backends.resolver.recorded_requests();
        if recorded.len() >= count || Instant::now() >= deadline {
            return recorded;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// Header removal with `underscores_in_headers on`.

/// Client headers that spell `X-Authgear-*` with underscores. With
/// `underscores_in_headers on`, nginx accepts them, and `$http_*`,
/// `fastcgi_pass` and `uwsgi_pass` read them as the dashed names.
const UNDERSCORED: [(&str, &str); 3] = [
    ("X_Authgear_User_Id", "spoofed-user"),
    ("x_authgear_session_valid", "true"),
    ("X_AUTHGEAR_USER_ROLES", "superuser"),
];

/// Returns the headers of `report` whose lowercase names start with
/// `x-authgear-` once each `_` reads as `-`.
fn identity_like_headers(report: &EchoReport) -> Vec<(String, String)> {
    report
        .headers
        .iter()
        .filter(|(name, _)| name.replace('_', "-").starts_with("x-authgear-"))
        .cloned()
        .collect()
}

#[test]
fn underscored_identity_headers_removed() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http("underscores_in_headers on;")
        .server(&resolved_location(
            "/",
            "add_header X-Http-User-Id \"[$http_x_authgear_user_id]\" always;",
        ))
        .start();
    let spoofed = |request: RawRequest| {
        UNDERSCORED.iter().fold(request, |request, (name, value)| {
            request.header(name, value)
        })
    };

    let anonymous = http1::send(nginx.addr(), &spoofed(RawRequest::get("/")));
    assert_eq!(
        identity_like_headers(&anonymous.echo()),
        Vec::<(String, String)>::new(),
        "identity headers at the upstream without credentials"
    );
    assert_eq!(
        anonymous.header("x-http-user-id"),
        Some("[]"),
        "$http_x_authgear_user_id without credentials"
    );

    let valid = http1::send(nginx.addr(), &spoofed(session_request("/", FULL_SESSION)));
    let report = valid.echo();
    let underscored: Vec<(String, String)> = identity_like_headers(&report)
        .into_iter()
        .filter(|(name, _)| name.contains('_'))
        .collect();
    assert_eq!(
        underscored,
        Vec::<(String, String)>::new(),
        "underscored identity headers at the upstream with a valid session"
    );
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
    assert_eq!(
        valid.header("x-http-user-id"),
        Some(format!("[{FULL_USER}]").as_str()),
        "$http_x_authgear_user_id with a valid session"
    );
}

// Cache keys without credentials.

/// Authgear prefixes its cookies with `myapp_`, but nginx has no
/// `authgear_cookie_prefix`: the key of `myapp_session` contains no credential
/// and equals the key of a request without credentials.
#[test]
fn valid_answer_for_uncovered_credential_not_cached() {
    let backends = backends_with(test_directory().with_cookie_prefix("myapp_"));
    let nginx = backends
        .nginx()
        .http(&zone_directive())
        .server(&cached_location("/", ""))
        .start();

    let prefixed = RawRequest::get("/").header("Cookie", &format!("myapp_session={FULL_SESSION}"));
    let first = http1::send(nginx.addr(), &prefixed);
    assert_eq!(
        upstream_user(&first).as_deref(),
        Some(FULL_USER),
        "user of the prefixed session cookie"
    );
    assert_eq!(
        cache_status(&first),
        Some("MISS"),
        "cache status of the prefixed session cookie"
    );

    let anonymous = http1::send(nginx.addr(), &RawRequest::get("/"));
    assert_eq!(
        upstream_user(&anonymous),
        None,
        "user of the request without credentials"
    );
    assert_eq!(
        cache_status(&anonymous),
        Some("MISS"),
        "cache status of the request without credentials"
    );

    let warnings: Vec<String> = nginx
        .error_log()
        .lines()
        .filter(|line| {
            line.contains("[warn]")
                && line.contains("not caching it")
                && line.contains("authgear_cookie_prefix")
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "uncovered-credential warnings: {warnings:#?}"
    );
}

// satisfy any.

/// Returns the `satisfy any` directives that admit `network` and deny every
/// other address.
fn satisfy_any_allowing(network: &str) -> String {
    format!("satisfy any;\nallow {network};\ndeny all;")
}

/// Under `satisfy any`, a resolver that cannot be reached must not give 500
/// before `allow` can let the request in.
#[test]
fn satisfy_any_allow_survives_resolver_failure() {
    let backends = Backends::start();
    let nginx = backends
        .nginx_with_resolver(closed_addr(), "")
        .server(&resolved_location(
            "/office/",
            &format!(
                "authgear_require session;\n{}",
                satisfy_any_allowing("127.0.0.1")
            ),
        ))
        .server(&resolved_location(
            "/remote/",
            &format!(
                "authgear_require session;\n{}",
                satisfy_any_allowing("10.0.0.0/8")
            ),
        ))
        .start();

    let allowed = http1::send(nginx.addr(), &session_request("/office/desk", FULL_SESSION));
    assert_eq!(
        allowed.status, 200,
        "status of a request from the allowed network"
    );
    assert_eq!(allowed.echo().uri, "/office/desk", "URI at the upstream");

    let denied = http1::send(nginx.addr(), &session_request("/remote/desk", FULL_SESSION));
    assert_eq!(
        denied.status, 500,
        "status of a request from outside the allowed network"
    );
    assert_eq!(backends.echo.requests(), 1, "requests at the upstream");
}

/// auth_basic's challenge and the module's both reach the browser, and a
/// login redirect does not hide the Basic challenge.
#[test]
fn satisfy_any_keeps_auth_basic_challenge() {
    let backends = Backends::start();
    let builder = backends.nginx();
    builder.write_file("htpasswd", "staff:{PLAIN}secret\n");
    let htpasswd = builder.prefix().join("htpasswd");
    let nginx = builder
        .server(&resolved_location(
            "/staff/",
            &format!(
                "authgear_require session;\n\
                 authgear_login_url /login;\n\
                 satisfy any;\n\
                 auth_basic \"staff\";\n\
                 auth_basic_user_file {};",
                htpasswd.display()
            ),
        ))
        .start();

    let denied = http1::send(nginx.addr(), &navigation("/staff/page"));
    assert_eq!(
        denied.status, 401,
        "status of a navigation without credentials"
    );
    let mut challenges = denied.header_values("www-authenticate");
    challenges.sort_unstable();
    assert_eq!(
        challenges,
        ["Basic realm=\"staff\"", BEARER_CHALLENGE],
        "WWW-Authenticate headers"
    );
    assert_eq!(denied.header("location"), None, "Location");

    let basic = navigation("/staff/page").header("Authorization", "Basic c3RhZmY6c2VjcmV0");
    let allowed = http1::send(nginx.addr(), &basic);
    assert_eq!(allowed.status, 200, "status with Basic credentials");
    assert_eq!(allowed.echo().uri, "/staff/page", "URI at the upstream");
}

#[test]
fn satisfy_any_decision_reports_denials() {
    let backends = Backends::start();
    let builder = backends.nginx();
    let access_log = builder.prefix().join("decisions.log");
    let policy = "authgear_require role=admin;\n\
                  add_header X-Decision $authgear_decision always;";
    let nginx = builder
        .http("log_format decisions '$status $authgear_decision';")
        .server(&format!("access_log {} decisions;", access_log.display()))
        .server(&resolved_location(
            "/office/",
            &format!("{policy}\n{}", satisfy_any_allowing("127.0.0.1")),
        ))
        .server(&resolved_location(
            "/remote/",
            &format!("{policy}\n{}", satisfy_any_allowing("10.0.0.0/8")),
        ))
        .start();

    let cases = [
        (
            "request without a session from outside the network",
            RawRequest::get("/remote/desk"),
            401,
            "unauthenticated",
        ),
        (
            "user without the role from outside the network",
            session_request("/remote/desk", NO_ROLES_SESSION),
            403,
            "forbidden",
        ),
        (
            "request without a session from the allowed network",
            RawRequest::get("/office/desk"),
            200,
            "allowed",
        ),
    ];
    for (case, request, status, decision) in &cases {
        let response = http1::send(nginx.addr(), request);
        assert_eq!(response.status, *status, "status of the {case}");
        assert_eq!(
            response.header("x-decision"),
            Some(*decision),
            "$authgear_decision in X-Decision for the {case}"
        );
    }

    let lines = nginx.wait_for_lines("decisions.log", cases.len(), BACKGROUND_WAIT);
    assert_eq!(lines.len(), cases.len(), "access log lines: {lines:#?}");
    for ((case, _, status, decision), line) in cases.iter().zip(&lines) {
        assert_eq!(
            line,
            &format!("{status} {decision}"),
            "access log line for the {case}"
        );
    }
}

// Background refresh.

/// A refresh subrequest starts from a copy of the main request's header
/// list. nginx allocates that list in parts of 20 headers, and the copy
/// shares every part after the first, so with more than 20 client headers
/// the identity headers that the main request adds land in the shared part.
#[test]
fn background_refresh_sends_no_identity() {
    const FILLER_HEADERS: usize = 24;

    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http(&zone_directive())
        .server(&cached_location(
            "/",
            "authgear_cache_valid valid 4s;\nauthgear_cache_background_update on;",
        ))
        .start();
    let request = (0..FILLER_HEADERS).fold(session_request("/", FULL_SESSION), |request, index| {
        request.header(&format!("X-Filler-{index}"), &format!("value-{index}"))
    });
    let mut connection = Connection::open(nginx.addr());

    let first = connection.round_trip(&request);
    let stored_at = Instant::now();
    assert_eq!(cache_status(&first), Some("MISS"), "first request");

    // The last quarter of the 4 s lifetime starts 3 s after the store.
    sleep_until(stored_at + Duration::from_millis(3300));
    let second = connection.round_trip(&request);
    assert_eq!(cache_status(&second), Some("UPDATING"), "second request");
    assert_eq!(
        upstream_user(&second).as_deref(),
        Some(FULL_USER),
        "user of the second request"
    );

    let recorded = wait_for_recorded(&backends, 2);
    assert_eq!(
        recorded.len(),
        2,
        "resolver requests: the first miss and the refresh"
    );
    let refresh = &recorded[1];
    assert_eq!(
        refresh.header_values("cookie"),
        [format!("session={FULL_SESSION}")],
        "Cookie of the refresh"
    );
    assert_eq!(
        refresh.header_values(&format!("x-filler-{}", FILLER_HEADERS - 1)),
        [format!("value-{}", FILLER_HEADERS - 1)],
        "last client header in the refresh"
    );
    let identity: Vec<&(String, String)> = refresh
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-authgear-"))
        .collect();
    assert_eq!(
        identity,
        Vec::<&(String, String)>::new(),
        "X-Authgear-* headers in the refresh"
    );
}

// Cache lock.

/// Location `/a/` holds the key's lock while its resolver call takes 1.5 s.
/// `/b/` shares the zone and the key but has `authgear_cache_lock off`, so it
/// calls the resolver, which responds at once, instead of waiting.
#[test]
fn cache_lock_off_ignores_other_lock() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http(&zone_directive())
        .server(&cached_location("/a/", "authgear_cache_lock on;"))
        .server(&cached_location("/b/", "authgear_cache_lock off;"))
        .start();
    let addr = nginx.addr();

    backends
        .resolver
        .set_fault(Fault::Delay(Duration::from_millis(1500)));
    let a_started = Instant::now();
    let a = thread::spawn(move || http1::send(addr, &session_request("/a/", FULL_SESSION)));

    // The stand-in reads the fault when a call arrives, so only the call of
    // `/a/` is slow once the fault is gone.
    let deadline = Instant::now() + BACKGROUND_WAIT;
    while backends.resolver.calls() < 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(backends.resolver.calls(), 1, "resolver calls of /a/");
    thread::sleep(Duration::from_millis(100));
    backends.resolver.set_fault(Fault::None);

    sleep_until(a_started + Duration::from_millis(200));
    let b_started = Instant::now();
    let b = http1::send(addr, &session_request("/b/", FULL_SESSION));
    let b_elapsed = b_started.elapsed();

    assert_eq!(upstream_user(&b).as_deref(), Some(FULL_USER), "user of /b/");
    assert!(
        b_elapsed < Duration::from_millis(800),
        "/b/ took {b_elapsed:?}, as if it waited for the lock of /a/"
    );
    let a = a.join().expect("client thread of /a/");
    assert_eq!(upstream_user(&a).as_deref(), Some(FULL_USER), "user of /a/");
    assert_eq!(backends.resolver.calls(), 2, "resolver calls");
}

// Directives.

#[test]
fn login_url_off_disables_inherited_url() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .server(
            "authgear_require session;\n\
             authgear_login_url /login;",
        )
        .server(&resolved_location(
            "/app/",
            &resolved_location("/app/api/", "authgear_login_url off;"),
        ))
        .start();

    let page = http1::send(nginx.addr(), &navigation("/app/page"));
    assert_eq!(
        page.status, 302,
        "status of a navigation with the inherited URL"
    );

    let api = http1::send(nginx.addr(), &navigation("/app/api/orders"));
    assert_eq!(api.status, 401, "status of a navigation with the URL off");
    assert_eq!(
        api.header("www-authenticate"),
        Some(BEARER_CHALLENGE),
        "WWW-Authenticate with the URL off"
    );
    assert_eq!(api.header("location"), None, "Location with the URL off");
}

/// Runs `nginx -t` on a server that declares a cache zone and contains
/// `location / { <directive> }`.
fn check_location(directive: &str) -> nginx::ConfigCheck {
    NginxBuilder::new()
        .http(&resolver_upstream(closed_addr()))
        .http(&zone_directive())
        .server(&resolver_location(""))
        .server(&format!("location / {{\n    {directive}\n}}\n"))
        .check()
}

#[test]
fn invalid_directive_values_rejected() {
    let cases = [
        (
            "authgear_login_url \"\";",
            "invalid value \"\" in \"authgear_login_url\" directive",
        ),
        (
            "authgear_login_redirect_param \"\";",
            "invalid value \"\" in \"authgear_login_redirect_param\" directive",
        ),
        (
            "authgear_cookie_prefix \"a b;\";",
            "invalid value \"a b;\" in \"authgear_cookie_prefix\" directive",
        ),
        (
            "authgear_cache_key \"\";",
            "invalid value \"\" in \"authgear_cache_key\" directive",
        ),
        (
            "authgear_resolve /_authgear/$host;",
            "invalid URI \"/_authgear/$host\" in \"authgear_resolve\" directive, \
             it must start with \"/\" and contain no variables",
        ),
    ];
    for (directive, message) in cases {
        let check = check_location(directive);
        let expected = check.emerg_line(message, check.line_of(directive, 1));
        assert!(!check.success, "nginx -t accepted {directive}");
        assert!(
            check.stderr.lines().any(|line| line == expected),
            "expected the line\n{expected}\nin the output of nginx -t for {directive}:\n{}",
            check.stderr
        );
    }

    // nginx merges locations once the whole http block is parsed, so the
    // line of this error is not the line of the directive.
    let check = check_location("authgear_cache nope;");
    let expected = format!(
        "nginx: [emerg] \"authgear_cache\" zone \"nope\" is unknown in {}:",
        check.conf_path.display()
    );
    assert!(!check.success, "nginx -t accepted an unknown zone");
    assert!(
        check.stderr.lines().any(|line| line.starts_with(&expected)),
        "expected a line starting with\n{expected}\nin the output of nginx -t:\n{}",
        check.stderr
    );
}

// Policy booleans.

/// Returns an nginx server on `listen` that proxies to the stand-in resolver
/// at `resolver` and replaces `X-Authgear-User-Anonymous` and
/// `X-Authgear-User-Verified` with `TRUE`. The stand-in sends both in
/// lowercase, and the module reads the first copy of a repeated header, so
/// `Fault::ExtraHeaders` or a user's extra headers cannot change them.
fn uppercase_boolean_relay(listen: SocketAddr, resolver: SocketAddr) -> String {
    format!(
        "server {{\n\
         \x20   listen {listen};\n\
         \x20   location / {{\n\
         \x20       proxy_pass http://{resolver};\n\
         \x20       proxy_hide_header X-Authgear-User-Anonymous;\n\
         \x20       proxy_hide_header X-Authgear-User-Verified;\n\
         \x20       add_header X-Authgear-User-Anonymous TRUE;\n\
         \x20       add_header X-Authgear-User-Verified TRUE;\n\
         \x20   }}\n\
         }}\n"
    )
}

#[test]
fn uppercase_true_booleans_hold() {
    let backends = Backends::start();
    let relay = SocketAddr::from(([127, 0, 0, 1], pick_free_port()));
    let nginx = backends
        .nginx_with_resolver(relay, "")
        .http(&uppercase_boolean_relay(relay, backends.resolver.addr()))
        .server(&resolved_location(
            "/members/",
            "authgear_require non_anonymous;",
        ))
        .server(&resolved_location(
            "/verified/",
            "authgear_require verified;",
        ))
        .start();

    let members = http1::send(nginx.addr(), &session_request("/members/", FULL_SESSION));
    assert_eq!(
        members.status, 403,
        "status of non_anonymous with X-Authgear-User-Anonymous: TRUE"
    );

    let verified = http1::send(
        nginx.addr(),
        &session_request("/verified/", UNVERIFIED_SESSION),
    );
    assert_eq!(
        verified.status, 200,
        "status of verified with X-Authgear-User-Verified: TRUE"
    );
    assert_eq!(
        verified.echo().header_values("x-authgear-user-verified"),
        ["TRUE"],
        "X-Authgear-User-Verified at the upstream"
    );
}
