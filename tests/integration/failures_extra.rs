//! The configurable failure outcome (`authgear_resolve_failure`,
//! `authgear_resolve_failure_header`, `$authgear_resolve_failed`) for every
//! way the resolver can fail, the resolver location of the shipped
//! `nginx-conf/authgear-resolver.conf` with large responses, and stale cache
//! entries, which come before the configured outcome.
//!
//! Every protected location exposes `$authgear_resolve_failed` as the
//! response header `X-Resolve-Failed` and writes it to the access log
//! `failed.log` as `<status> <value>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use authgear_standin::{start_echo, start_resolver, Fault, Session, User};

use crate::support::nginx::bind_local;
use crate::support::*;

/// The status that the tests configure for a failed resolve, to tell it
/// from nginx's own 500 and 502.
const FAILURE_STATUS: u16 = 503;

/// The `proxy_read_timeout` of the tests with a hung resolver.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the hung resolver waits before it responds: far past
/// `READ_TIMEOUT`, so that only the timeout can end the request.
const HUNG_DELAY: Duration = Duration::from_secs(10);

/// How long the module's error line may take to appear after the response.
const LOG_WAIT: Duration = Duration::from_secs(3);

/// The header the module adds to the upstream request when it continues
/// after a failure and `authgear_resolve_failure_header` is on.
const FAILURE_HEADER: &str = "X-Authgear-Resolve-Failed";

/// `X-Authgear-*` headers a client sends to pass itself off as someone, the
/// failure marker among them. The module must remove every one.
const SPOOFED_HEADERS: [(&str, &str); 4] = [
    ("X-Authgear-User-Id", "spoofed-user"),
    ("x-authgear-user-roles", "admin"),
    ("X-AUTHGEAR-SESSION-VALID", "true"),
    ("X-Authgear-Resolve-Failed", "spoofed"),
];

/// How one test makes the resolver fail.
#[derive(Clone, Debug)]
enum Failure {
    /// Nothing listens on the resolver's port.
    Refused,
    /// The resolver responds 500 `internal error`.
    InternalError,
    /// The resolver responds with this status.
    Status(u16),
    /// The resolver closes the connection without a response.
    Hangup,
    /// The resolver responds after `HUNG_DELAY`, past `READ_TIMEOUT`.
    Hung,
}

impl Failure {
    const ALL: [Failure; 6] = [
        Failure::Refused,
        Failure::InternalError,
        Failure::Status(502),
        Failure::Status(503),
        Failure::Hangup,
        Failure::Hung,
    ];

    /// Returns the module's error line for this failure.
    fn log_message(&self) -> String {
        let cause = match self {
            Failure::Refused | Failure::Hangup => {
                "request failed with status 502 before an answer arrived".to_owned()
            }
            Failure::InternalError => "returned unexpected status 500".to_owned(),
            Failure::Status(status) => format!("returned unexpected status {status}"),
            Failure::Hung => "timed out (504)".to_owned(),
        };
        format!("authgear resolver {cause}, resolver: \"{RESOLVER_URI}\"")
    }
}

/// Returns the request of a signed-in user who also sends `SPOOFED_HEADERS`.
fn spoofing_request() -> RawRequest {
    SPOOFED_HEADERS.iter().fold(
        RawRequest::get("/app/page").header("Cookie", &format!("session={FULL_SESSION}")),
        |request, (name, value)| request.header(name, value),
    )
}

/// Returns a location on `/app/` that resolves through `RESOLVER_URI` with
/// `directives`, proxies to the echo application, and exposes
/// `$authgear_resolve_failed` and the identity variables.
fn app_location(directives: &str) -> String {
    format!(
        "location /app/ {{\n\
         \x20   authgear_resolve {RESOLVER_URI};\n\
         \x20   {directives}\n\
         \x20   proxy_pass http://echo_app;\n\
         \x20   add_header X-Resolve-Failed $authgear_resolve_failed always;\n\
         \x20   access_log failed.log resolve_failed;\n\
         {}\
         }}\n",
        expose_variables()
    )
}

/// The `log_format` that `app_location` writes `failed.log` with.
const LOG_FORMAT: &str = "log_format resolve_failed '$status $authgear_resolve_failed';";

/// Starts nginx in front of `backends`, with the resolver failing in the
/// way `failure` names and `directives` in the protected location.
fn start_failing(backends: &Backends, failure: &Failure, directives: &str) -> Nginx {
    let mut resolver_addr = backends.resolver.addr();
    let mut resolver_directives = String::new();
    match failure {
        Failure::Refused => {
            // Bind and release a port so that nothing listens on it.
            resolver_addr = bind_local().local_addr().expect("local address");
        }
        Failure::InternalError => backends.resolver.set_fault(Fault::InternalErrorText),
        Failure::Status(status) => backends.resolver.set_fault(Fault::Status(*status)),
        Failure::Hangup => backends.resolver.set_fault(Fault::Hangup),
        Failure::Hung => {
            backends.resolver.set_fault(Fault::Delay(HUNG_DELAY));
            resolver_directives = format!("proxy_read_timeout {}s;", READ_TIMEOUT.as_secs());
        }
    }
    backends
        .nginx_with_resolver(resolver_addr, &resolver_directives)
        .http(LOG_FORMAT)
        .server(&app_location(directives))
        .start()
}

/// Waits for the module's error lines that contain `message` and returns them.
fn module_error_lines(nginx: &Nginx, message: &str) -> Vec<String> {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let lines = nginx.error_lines_containing(message);
        if !lines.is_empty() || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Returns the access log lines of `app_location`, `<status> <value>`,
/// once there are `count` of them.
fn access_log_lines(nginx: &Nginx, count: usize) -> Vec<String> {
    nginx.wait_for_lines("failed.log", count, LOG_WAIT)
}

/// Checks how long a request to a failing resolver took: a hung resolver
/// must end the request within `READ_TIMEOUT` plus one second.
fn check_elapsed(failure: &Failure, elapsed: Duration) {
    if let Failure::Hung = failure {
        assert!(
            elapsed >= READ_TIMEOUT,
            "{failure:?}: the request ended after {elapsed:?}, before proxy_read_timeout"
        );
        assert!(
            elapsed < READ_TIMEOUT + Duration::from_secs(1),
            "{failure:?}: the request took {elapsed:?}, more than proxy_read_timeout + 1 s"
        );
    }
}

#[test]
fn configured_status_for_each_failure() {
    for failure in Failure::ALL {
        let backends = Backends::start();
        let nginx = start_failing(
            &backends,
            &failure,
            &format!("authgear_resolve_failure {FAILURE_STATUS};"),
        );

        let started = Instant::now();
        let response = http1::send(nginx.addr(), &spoofing_request());
        let elapsed = started.elapsed();

        assert_eq!(response.status, FAILURE_STATUS, "{failure:?}: status");
        assert_eq!(
            response.header("x-resolve-failed"),
            Some("1"),
            "{failure:?}: $authgear_resolve_failed in the response"
        );
        assert_eq!(
            backends.echo.requests(),
            0,
            "{failure:?}: upstream requests"
        );
        check_elapsed(&failure, elapsed);

        let lines = module_error_lines(&nginx, &failure.log_message());
        assert_eq!(lines.len(), 1, "{failure:?}: module error lines {lines:#?}");
        assert_eq!(
            access_log_lines(&nginx, 1),
            vec![format!("{FAILURE_STATUS} 1")],
            "{failure:?}: access log"
        );
    }
}

/// With `anonymous` and the failure header off, a failed resolve reaches
/// the upstream with no `X-Authgear-*` header at all.
#[test]
fn anonymous_continues_without_identity() {
    for failure in Failure::ALL {
        let backends = Backends::start();
        let nginx = start_failing(&backends, &failure, "authgear_resolve_failure anonymous;");

        let started = Instant::now();
        let response = http1::send(nginx.addr(), &spoofing_request());
        let elapsed = started.elapsed();

        assert_eq!(response.status, 200, "{failure:?}: status");
        assert_eq!(
            identity_headers(&response.echo()),
            Vec::new(),
            "{failure:?}: X-Authgear-* headers at the upstream"
        );
        assert_eq!(
            exposed_variables(&response),
            Vec::new(),
            "{failure:?}: identity variables"
        );
        assert_eq!(
            response.header("x-resolve-failed"),
            Some("1"),
            "{failure:?}: $authgear_resolve_failed in the response"
        );
        check_elapsed(&failure, elapsed);

        let lines = module_error_lines(&nginx, &failure.log_message());
        assert_eq!(lines.len(), 1, "{failure:?}: module error lines {lines:#?}");
        assert_eq!(
            access_log_lines(&nginx, 1),
            vec!["200 1".to_owned()],
            "{failure:?}: access log"
        );
    }
}

/// With `anonymous` and the failure header on, the upstream gets the
/// module's `X-Authgear-Resolve-Failed: true` once, and no client copy.
#[test]
fn anonymous_with_failure_header() {
    for failure in Failure::ALL {
        let backends = Backends::start();
        let nginx = start_failing(
            &backends,
            &failure,
            "authgear_resolve_failure anonymous; authgear_resolve_failure_header on;",
        );

        let response = http1::send(nginx.addr(), &spoofing_request());

        assert_eq!(response.status, 200, "{failure:?}: status");
        assert_eq!(
            identity_headers(&response.echo()),
            normalized(&[(FAILURE_HEADER, "true")]),
            "{failure:?}: X-Authgear-* headers at the upstream"
        );
        assert_eq!(
            response.header("x-resolve-failed"),
            Some("1"),
            "{failure:?}: $authgear_resolve_failed in the response"
        );
    }
}

/// The failure header marks only failed resolves: a resolved request carries
/// the identity, no marker, and `$authgear_resolve_failed` is `0`.
#[test]
fn failure_header_absent_when_resolved() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http(LOG_FORMAT)
        .server(&app_location(
            "authgear_resolve_failure anonymous; authgear_resolve_failure_header on;",
        ))
        .start();

    let response = http1::send(nginx.addr(), &spoofing_request());

    let report = response.echo();
    assert_eq!(
        report.header_values(FAILURE_HEADER),
        Vec::<&str>::new(),
        "failure header at the upstream"
    );
    assert_eq!(
        report.header_values("X-Authgear-User-Id"),
        vec![FULL_USER],
        "user id at the upstream"
    );
    assert_eq!(
        report.header_values("X-Authgear-User-Roles"),
        vec!["admin,editor"],
        "roles at the upstream"
    );
    assert_eq!(
        response.header("x-resolve-failed"),
        Some("0"),
        "$authgear_resolve_failed in the response"
    );
    assert_eq!(
        access_log_lines(&nginx, 1),
        vec!["200 0".to_owned()],
        "access log"
    );
}

/// The failure header is off by default, also for a failed resolve.
#[test]
fn failure_header_off_by_default() {
    let backends = Backends::start();
    let nginx = start_failing(
        &backends,
        &Failure::InternalError,
        "authgear_resolve_failure anonymous;",
    );

    let report = http1::send(nginx.addr(), &spoofing_request()).echo();

    assert_eq!(
        report.header_values(FAILURE_HEADER),
        Vec::<&str>::new(),
        "failure header at the upstream"
    );
}

/// Returns the path of the shipped resolver snippet,
/// `nginx-conf/authgear-resolver.conf`.
fn resolver_snippet() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nginx-conf/authgear-resolver.conf")
}

/// Reads the value of `proxy_buffer_size` in the shipped snippet, in bytes.
fn snippet_buffer_size() -> usize {
    let path = resolver_snippet();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
    let value = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("proxy_buffer_size "))
        .and_then(|rest| rest.strip_suffix(';'))
        .unwrap_or_else(|| panic!("no proxy_buffer_size line in {}", path.display()))
        .trim();
    let (digits, factor) = match value.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1024),
        None => (value, 1),
    };
    digits.parse::<usize>().unwrap_or_else(|error| {
        panic!("proxy_buffer_size {value:?} in the snippet is not a size in bytes or k: {error}")
    }) * factor
}

/// Starts nginx whose resolver location is the shipped snippet, included
/// as it is, with `directives` in the protected location.
fn start_with_snippet(resolver: SocketAddr, echo: SocketAddr, directives: &str) -> Nginx {
    NginxBuilder::new()
        .http(&resolver_upstream(resolver))
        .http(&echo_upstream(echo))
        .http(LOG_FORMAT)
        .server(&format!("include {};", resolver_snippet().display()))
        .server(&app_location(directives))
        .start()
}

/// A user with 6 KB of roles, and the session cookie that resolves to them.
const MANY_ROLES_USER: &str = "5c2e8f14-7a3b-4d69-8e01-2b9f6c4d7a35";
const MANY_ROLES_SESSION: &str = "sess-many-roles.Zx8cV6bN4mQ2wE0rT9yU7iO5pA3sD1fG";

/// Returns 615 role names, which take 6 KB joined by commas, as a large
/// organisation's fine-grained roles may add up to.
fn many_roles() -> Vec<String> {
    (0..615).map(|index| format!("role-{index:04}")).collect()
}

/// Starts the stand-in resolver with `test_directory` and the user of
/// `many_roles`, and the echo application.
fn start_many_roles_backends() -> Backends {
    let directory = test_directory()
        .with_user(
            MANY_ROLES_USER,
            User {
                verified: true,
                roles: many_roles(),
                ..User::new()
            },
        )
        .with_session(MANY_ROLES_SESSION, Session::new(MANY_ROLES_USER));
    Backends {
        resolver: start_resolver(bind_local(), directory).expect("start the stand-in resolver"),
        echo: start_echo(bind_local()).expect("start the echo application"),
    }
}

fn many_roles_request() -> RawRequest {
    RawRequest::get("/app/").header("Cookie", &format!("session={MANY_ROLES_SESSION}"))
}

#[test]
fn large_roles_fit_shipped_snippet() {
    let joined = many_roles().join(",");
    assert!(
        joined.len() >= 6 * 1024,
        "roles take {} bytes",
        joined.len()
    );
    let backends = start_many_roles_backends();
    let nginx = start_with_snippet(
        backends.resolver.addr(),
        backends.echo.addr(),
        &format!("authgear_resolve_failure {FAILURE_STATUS};"),
    );

    let response = http1::send(nginx.addr(), &many_roles_request());

    assert_eq!(response.status, 200, "status with 6 KB of roles");
    let report = response.echo();
    assert_eq!(
        report.header_values("X-Authgear-User-Roles"),
        vec![joined.as_str()],
        "roles at the upstream"
    );
    assert_eq!(
        report.header_values("X-Authgear-User-Id"),
        vec![MANY_ROLES_USER],
        "user id at the upstream"
    );
    assert_eq!(
        response.header("x-var-user-roles"),
        Some(joined.as_str()),
        "$authgear_user_roles"
    );
    assert_eq!(
        nginx.error_lines_containing("authgear"),
        Vec::<String>::new(),
        "module error lines"
    );
}

/// The same 6 KB of roles do not fit nginx's default `proxy_buffer_size`
/// of one memory page, which is why the snippet raises it.
#[test]
fn large_roles_exceed_default_buffer() {
    let backends = start_many_roles_backends();
    let nginx = backends
        .nginx()
        .http(LOG_FORMAT)
        .server(&app_location(&format!(
            "authgear_resolve_failure {FAILURE_STATUS};"
        )))
        .start();

    let response = http1::send(nginx.addr(), &many_roles_request());

    assert_eq!(
        response.status, FAILURE_STATUS,
        "status with the default buffer"
    );
    let lines = module_error_lines(
        &nginx,
        "authgear resolver sent an answer larger than proxy_buffer_size",
    );
    assert_eq!(lines.len(), 1, "module error lines {lines:#?}");
}

/// A resolver response of 40 KB does not fit the snippet's buffer: the
/// request gets the configured status and the error line names the setting
/// to raise. The next request with a normal response goes through.
#[test]
fn oversized_answer_fails_cleanly() {
    let buffer_size = snippet_buffer_size();
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::ExtraHeaders(vec![(
        "X-Authgear-Huge".to_owned(),
        "h".repeat(40 * 1024),
    )]));
    let nginx = start_with_snippet(
        backends.resolver.addr(),
        backends.echo.addr(),
        &format!("authgear_resolve_failure {FAILURE_STATUS};"),
    );

    let failed = http1::send(nginx.addr(), &spoofing_request());

    assert_eq!(failed.status, FAILURE_STATUS, "status with a 40 KB answer");
    assert_eq!(
        failed.header("x-resolve-failed"),
        Some("1"),
        "$authgear_resolve_failed"
    );
    assert_eq!(backends.echo.requests(), 0, "upstream requests");
    let message = format!(
        "authgear resolver sent an answer larger than proxy_buffer_size ({buffer_size} bytes), \
         raise proxy_buffer_size in the resolver location (502), resolver: \"{RESOLVER_URI}\""
    );
    let lines = module_error_lines(&nginx, &message);
    assert_eq!(lines.len(), 1, "module error lines {lines:#?}");
    assert_eq!(
        nginx
            .error_lines_containing("upstream sent too big header")
            .len(),
        1,
        "nginx's own error line"
    );

    backends.resolver.set_fault(Fault::None);
    let recovered = http1::send(nginx.addr(), &spoofing_request());
    assert_eq!(
        recovered.echo().header_values("X-Authgear-User-Id"),
        vec![FULL_USER],
        "user id once the answer is small again"
    );
    assert!(
        !nginx.error_log().contains("exited on signal"),
        "a worker process crashed"
    );
}

/// With a cache and `authgear_cache_use_stale`, a failed resolve serves
/// the expired entry before the configured status applies, and the
/// upstream learns that the resolver failed.
#[test]
fn stale_entry_comes_before_failure_outcome() {
    let backends = Backends::start();
    let nginx = backends
        .nginx()
        .http("authgear_cache_zone zone=failures_extra:1m;")
        .http(LOG_FORMAT)
        .server(&app_location(&format!(
            "authgear_cache failures_extra;\n\
             authgear_cache_valid 1s;\n\
             authgear_cache_use_stale 1m;\n\
             authgear_resolve_failure {FAILURE_STATUS};\n\
             authgear_resolve_failure_header on;\n\
             add_header X-Cache-Status $authgear_cache_status always;"
        )))
        .start();
    let mut connection = Connection::open(nginx.addr());
    let session_request =
        |session: &str| RawRequest::get("/app/").header("Cookie", &format!("session={session}"));

    let fresh = connection.round_trip(&session_request(FULL_SESSION));
    assert_eq!(
        fresh.header("x-cache-status"),
        Some("MISS"),
        "first request"
    );
    assert_eq!(fresh.header("x-resolve-failed"), Some("0"), "first request");

    backends.resolver.set_fault(Fault::InternalErrorText);
    std::thread::sleep(Duration::from_millis(1500));

    let stale = connection.round_trip(&spoofing_request());
    assert_eq!(stale.status, 200, "status of the stale answer");
    assert_eq!(
        stale.header("x-cache-status"),
        Some("STALE"),
        "cache status"
    );
    assert_eq!(
        stale.header("x-resolve-failed"),
        Some("1"),
        "$authgear_resolve_failed"
    );
    let report = stale.echo();
    assert_eq!(
        report.header_values("X-Authgear-User-Id"),
        vec![FULL_USER],
        "user id of the stale answer"
    );
    assert_eq!(
        report.header_values(FAILURE_HEADER),
        vec!["true"],
        "failure header at the upstream"
    );
    assert_eq!(
        report.header_values("X-Authgear-User-Roles"),
        vec!["admin,editor"],
        "roles of the stale answer, not the client's"
    );

    // A key without an entry gets the configured status.
    let uncached = connection.round_trip(&session_request(NO_ROLES_SESSION));
    assert_eq!(
        uncached.status, FAILURE_STATUS,
        "status without a stale entry"
    );
    assert_eq!(
        uncached.header("x-cache-status"),
        Some("MISS"),
        "cache status without an entry"
    );
}
