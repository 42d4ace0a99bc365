//! The module fails closed: a resolver that errs, cannot be reached or does
//! not respond in time gives the client 500, and the error log gets exactly
//! one line that names the cause and the resolver URI but no credential.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use authgear_standin::Fault;

use crate::support::*;

/// How long a failing request waits for the module's error log line. nginx
/// writes it before the response, so the wait is a safety margin only.
const LOG_WAIT: Duration = Duration::from_secs(3);

/// The prefix of every error line the module logs for a failed resolve.
const MODULE_LOG_PREFIX: &str = "authgear resolver ";

fn credentials_request() -> RawRequest {
    RawRequest::get("/account?page=1")
        .header(
            "Cookie",
            &format!("session={FULL_SESSION}; app_session={UNVERIFIED_APP_SESSION}"),
        )
        .header("Authorization", &format!("Bearer {FULL_BEARER}"))
}

/// Credential values that must not appear in the module's log line.
fn secrets() -> [&'static str; 4] {
    [
        FULL_SESSION,
        // The secret part alone, in case the id were cut off.
        FULL_SESSION
            .split_once('.')
            .map(|(_, secret)| secret)
            .unwrap_or(FULL_SESSION),
        UNVERIFIED_APP_SESSION,
        FULL_BEARER,
    ]
}

/// Waits for the module's error lines and returns them.
fn module_error_lines(nginx: &Nginx) -> Vec<String> {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let lines = nginx.error_lines_containing(MODULE_LOG_PREFIX);
        if !lines.is_empty() || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a request with credentials and checks that the client gets 500, the
/// upstream gets nothing, and the error log gets exactly one module line
/// that contains `expected_message` and no credential.
fn check_fails_closed(backends: &Backends, nginx: &Nginx, expected_message: &str) {
    let response = http1::send(nginx.addr(), &credentials_request());

    assert_eq!(response.status, 500, "status for the client");
    assert_eq!(
        backends.echo.requests(),
        0,
        "requests that reached the upstream"
    );

    let lines = module_error_lines(nginx);
    assert_eq!(lines.len(), 1, "module error lines: {lines:#?}");
    let line = &lines[0];
    assert!(line.contains("[error]"), "log level of {line:?}");
    assert!(
        line.contains(expected_message),
        "expected {expected_message:?} in the log line {line:?}"
    );
    for secret in secrets() {
        assert!(
            !line.contains(secret),
            "the log line {line:?} contains the credential {secret:?}"
        );
    }
}

fn start_app(backends: &Backends, resolver_addr: SocketAddr, resolver_directives: &str) -> Nginx {
    backends
        .nginx_with_resolver(resolver_addr, resolver_directives)
        .server(&protected_location("/"))
        .start()
}

fn unexpected_status_message(status: u16) -> String {
    format!("authgear resolver returned unexpected status {status}, resolver: \"{RESOLVER_URI}\"")
}

#[test]
fn resolver_text_error_fails_closed() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::InternalErrorText);
    let nginx = start_app(&backends, backends.resolver.addr(), "");

    check_fails_closed(&backends, &nginx, &unexpected_status_message(500));
}

#[test]
fn resolver_json_error_fails_closed() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::InternalErrorJson);
    let nginx = start_app(&backends, backends.resolver.addr(), "");

    check_fails_closed(&backends, &nginx, &unexpected_status_message(500));
}

#[test]
fn resolver_error_statuses_fail_closed() {
    for status in [302, 401, 403, 404, 405, 502, 503] {
        let backends = Backends::start();
        backends.resolver.set_fault(Fault::Status(status));
        let nginx = start_app(&backends, backends.resolver.addr(), "");

        check_fails_closed(&backends, &nginx, &unexpected_status_message(status));
    }
}

#[test]
fn resolver_no_content_lets_request_through() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::Status(204));
    let nginx = start_app(&backends, backends.resolver.addr(), "");

    let response = http1::send(nginx.addr(), &credentials_request());

    assert_eq!(
        identity_headers(&response.echo()),
        Vec::new(),
        "identity headers at the upstream"
    );
    assert_eq!(
        nginx.error_lines_containing(MODULE_LOG_PREFIX),
        Vec::<String>::new(),
        "module error lines"
    );
}

#[test]
fn refused_connection_fails_closed() {
    let backends = Backends::start();
    // Bind and release a port so that nothing listens on it.
    let closed_addr = crate::support::nginx::bind_local()
        .local_addr()
        .expect("local address");
    let nginx = start_app(&backends, closed_addr, "");

    check_fails_closed(
        &backends,
        &nginx,
        &format!("authgear resolver request failed with status 502 before an answer arrived, resolver: \"{RESOLVER_URI}\""),
    );
    assert_eq!(
        backends.resolver.calls(),
        0,
        "calls at the running resolver"
    );
}

#[test]
fn resolver_hangup_fails_closed() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::Hangup);
    let nginx = start_app(&backends, backends.resolver.addr(), "");

    check_fails_closed(
        &backends,
        &nginx,
        &format!("authgear resolver request failed with status 502 before an answer arrived, resolver: \"{RESOLVER_URI}\""),
    );
}

#[test]
fn resolver_timeout_fails_closed() {
    let backends = Backends::start();
    backends
        .resolver
        .set_fault(Fault::Delay(Duration::from_millis(1500)));
    let nginx = start_app(
        &backends,
        backends.resolver.addr(),
        "proxy_read_timeout 300ms;",
    );

    let started = Instant::now();
    check_fails_closed(
        &backends,
        &nginx,
        &format!("authgear resolver timed out (504), resolver: \"{RESOLVER_URI}\""),
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the client waited {:?}, longer than proxy_read_timeout allows",
        started.elapsed()
    );
}

#[test]
fn resolver_recovers_after_failure() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::InternalErrorText);
    let nginx = start_app(&backends, backends.resolver.addr(), "");

    let failed = http1::send(nginx.addr(), &credentials_request());
    backends.resolver.set_fault(Fault::None);
    let recovered = http1::send(nginx.addr(), &credentials_request());

    assert_eq!(failed.status, 500, "status while the resolver fails");
    assert_eq!(
        recovered.header("x-var-user-id"),
        Some(FULL_USER),
        "identity once it answers again"
    );
}
