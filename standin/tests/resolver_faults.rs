//! Faults set at run time for every request and faults attached to one credential.

mod support;

use std::time::{Duration, Instant};

use authgear_standin::fault::{INTERNAL_ERROR_JSON, INTERNAL_ERROR_TEXT};
use authgear_standin::{
    start_resolver, start_resolver_with, Fault, ResolverOptions, Session, User,
};
use support::*;

const DELAY: Duration = Duration::from_millis(300);

fn alice_session_cookie() -> String {
    cookie("session", ALICE_SESSION)
}

#[test]
fn internal_error_text_fault() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::InternalErrorText);
    let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);

    assert_eq!(response.status, 500, "status");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "Content-Type"
    );
    assert_eq!(response.body_text(), INTERNAL_ERROR_TEXT, "body");
    assert_eq!(
        response.authgear_headers(),
        vec![],
        "no X-Authgear-* headers"
    );
}

#[test]
fn internal_error_json_fault() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::InternalErrorJson);
    let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON body");

    assert_eq!(response.status, 500, "status");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "Content-Type"
    );
    assert_eq!(body["error"]["name"], "InternalError", "error name");
    assert_eq!(body["error"]["reason"], "UnexpectedError", "error reason");
    assert_eq!(body["error"]["code"], 500, "error code");
    assert_eq!(response.body_text(), INTERNAL_ERROR_JSON, "exact body");
}

#[test]
fn status_fault() {
    let resolver = start_test_resolver();
    for status in [401, 403, 502, 503] {
        resolver.set_fault(Fault::Status(status));
        let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);
        assert_eq!(response.status, status, "status {status}");
        assert_eq!(response.body, b"", "status {status}: body");
    }
}

#[test]
fn delay_fault_then_normal_answer() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::Delay(DELAY));
    let started = Instant::now();
    let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);
    let elapsed = started.elapsed();

    assert!(
        elapsed >= DELAY,
        "responded after {elapsed:?}, before the delay"
    );
    assert_eq!(
        response.authgear_headers(),
        valid_headers(ALICE, ALICE_SESSION),
        "response"
    );
}

#[test]
fn delayed_request_does_not_block_others() {
    let resolver = start_test_resolver();
    let addr = resolver.addr();
    resolver.set_fault(Fault::Delay(Duration::from_secs(2)));
    let slow = std::thread::spawn(move || resolve(addr, &[]));
    // Give the slow request time to start its delay before the fault is lifted.
    std::thread::sleep(Duration::from_millis(200));
    resolver.set_fault(Fault::None);

    let started = Instant::now();
    resolve(addr, &[]);
    let fast = started.elapsed();
    slow.join().unwrap();

    assert!(
        fast < Duration::from_secs(1),
        "second request took {fast:?}"
    );
}

#[test]
fn hangup_fault_closes_without_response() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::Hangup);
    let mut connection = Connection::open(resolver.addr());
    connection
        .write_all(b"GET /resolve HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();

    assert!(
        connection.is_closed_by_server(),
        "connection closed with no response bytes"
    );
    assert_eq!(
        resolver.recorded_requests()[0].status,
        None,
        "recorded as closed"
    );
}

#[test]
fn extra_headers_fault_appends_headers() {
    let resolver = start_test_resolver();
    let extra = vec![
        ("X-Authgear-Session-Future".to_owned(), "yes".to_owned()),
        ("X-Authgear-Session-Future".to_owned(), "twice".to_owned()),
    ];
    resolver.set_fault(Fault::ExtraHeaders(extra));
    let valid = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);
    let anonymous = resolve(resolver.addr(), &[]);

    let mut expected = valid_headers(ALICE, ALICE_SESSION);
    expected.push(("x-authgear-session-future".into(), "yes".into()));
    expected.push(("x-authgear-session-future".into(), "twice".into()));
    assert_eq!(valid.authgear_headers(), expected, "valid response");
    assert_eq!(
        anonymous.header_values("x-authgear-session-future"),
        vec!["yes", "twice"],
        "response without credentials"
    );
}

#[test]
fn large_roles_header_sent_whole() {
    let roles: Vec<String> = (0..3000).map(|index| format!("role-{index:05}")).collect();
    let user = User {
        roles: roles.clone(),
        ..User::new()
    };
    let directory = test_directory().with_user(ALICE, user);
    let resolver = start_resolver(bind_loopback(), directory).unwrap();
    let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);

    let header = response.header("x-authgear-user-roles").unwrap_or_default();
    assert_eq!(header.len(), roles.join(",").len(), "header length");
    assert_eq!(header, roles.join(","), "header value");
}

#[test]
fn fault_none_restores_answers() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::InternalErrorText);
    resolver.set_fault(Fault::None);
    let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);

    assert_eq!(resolver.fault(), Fault::None, "current fault");
    assert_eq!(response.status, 200, "status");
}

#[test]
fn fault_spares_healthz() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::InternalErrorText);
    let response = request(resolver.addr(), "GET", "/healthz", &[]);
    assert_eq!(response.status, 200);
}

#[test]
fn head_internal_error_has_no_body() {
    let resolver = start_test_resolver();
    resolver.set_fault(Fault::InternalErrorText);
    let mut connection = Connection::open(resolver.addr());
    let head = connection.send("HEAD", "/resolve", &[], b"").unwrap();
    resolver.set_fault(Fault::None);
    let next = connection.send("GET", "/resolve", &[], b"").unwrap();

    assert_eq!(head.status, 500, "HEAD status");
    assert_eq!(next.status, 200, "next response on the same connection");
}

#[test]
fn initial_fault_from_options() {
    let options = ResolverOptions {
        fault: Fault::Status(503),
        log_requests: false,
    };
    let resolver = start_resolver_with(bind_loopback(), test_directory(), options).unwrap();
    assert_eq!(resolve(resolver.addr(), &[]).status, 503);
}

#[test]
#[should_panic(expected = "invalid fault status")]
fn invalid_fault_panics() {
    start_test_resolver().set_fault(Fault::Status(42));
}

/// Returns the test directory with `fault` attached to Alice's session and opaque token.
fn directory_with_credential_fault(fault: Fault) -> authgear_standin::Directory {
    let mut directory = test_directory();
    directory.sessions.get_mut(ALICE_SESSION).unwrap().fault = Some(fault.clone());
    directory.tokens.get_mut(ALICE_OPAQUE_TOKEN).unwrap().fault = Some(fault);
    directory
}

#[test]
fn credential_internal_error_faults() {
    let cases = [
        (Fault::InternalErrorText, "text/plain; charset=utf-8"),
        (Fault::InternalErrorJson, "application/json"),
    ];
    for (fault, content_type) in cases {
        let resolver = start_resolver(
            bind_loopback(),
            directory_with_credential_fault(fault.clone()),
        )
        .unwrap();
        let faulty = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);
        let healthy = resolve(
            resolver.addr(),
            &[("Cookie", &cookie("session", BOB_SESSION))],
        );

        assert_eq!(faulty.status, 500, "{fault}: status");
        assert_eq!(
            faulty.header("content-type"),
            Some(content_type),
            "{fault}: Content-Type"
        );
        assert_eq!(healthy.status, 200, "{fault}: other credentials unaffected");
    }
}

#[test]
fn credential_delay_then_valid() {
    let resolver = start_resolver(
        bind_loopback(),
        directory_with_credential_fault(Fault::Delay(DELAY)),
    )
    .unwrap();
    let started = Instant::now();
    let response = resolve(
        resolver.addr(),
        &[("Authorization", &bearer(ALICE_OPAQUE_TOKEN))],
    );
    let elapsed = started.elapsed();

    assert!(
        elapsed >= DELAY,
        "responded after {elapsed:?}, before the delay"
    );
    assert_eq!(
        response.authgear_headers(),
        valid_headers(ALICE, ALICE_OPAQUE_TOKEN),
        "response"
    );
}

#[test]
fn expired_credential_fault_still_fires() {
    let mut directory = test_directory();
    directory.tokens.get_mut(EXPIRED_TOKEN).unwrap().fault = Some(Fault::Delay(DELAY));
    let resolver = start_resolver(bind_loopback(), directory).unwrap();
    let started = Instant::now();
    let response = resolve(
        resolver.addr(),
        &[
            ("Authorization", &bearer(EXPIRED_TOKEN)),
            ("Cookie", &cookie("session", BOB_SESSION)),
        ],
    );
    let elapsed = started.elapsed();

    assert!(
        elapsed >= DELAY,
        "responded after {elapsed:?}, before the delay"
    );
    assert_eq!(
        response.authgear_headers(),
        valid_headers(BOB, BOB_SESSION),
        "fell through to session"
    );
}

#[test]
fn credential_fault_skipped_when_not_reached() {
    let resolver = start_resolver(
        bind_loopback(),
        directory_with_credential_fault(Fault::Hangup),
    )
    .unwrap();
    let response = resolve(
        resolver.addr(),
        &[
            ("Authorization", &bearer(BOB_JWT_TOKEN)),
            ("Cookie", &alice_session_cookie()),
        ],
    );
    assert_eq!(
        response.authgear_headers(),
        valid_headers(BOB, BOB_JWT_TOKEN)
    );
}

#[test]
fn credential_hangup_fault() {
    let resolver = start_resolver(
        bind_loopback(),
        directory_with_credential_fault(Fault::Hangup),
    )
    .unwrap();
    let mut connection = Connection::open(resolver.addr());
    let request = format!(
        "GET /resolve HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ALICE_OPAQUE_TOKEN}\r\n\r\n"
    );
    connection.write_all(request.as_bytes()).unwrap();
    assert!(connection.is_closed_by_server());
}

#[test]
fn credential_extra_headers_fault() {
    let fault = Fault::ExtraHeaders(vec![("X-Authgear-Future".into(), "1".into())]);
    let resolver = start_resolver(bind_loopback(), directory_with_credential_fault(fault)).unwrap();
    let response = resolve(resolver.addr(), &[("Cookie", &alice_session_cookie())]);

    let mut expected = valid_headers(ALICE, ALICE_SESSION);
    expected.push(("x-authgear-future".into(), "1".into()));
    assert_eq!(response.authgear_headers(), expected);
}

#[test]
fn user_extra_headers_follow_standard_ones() {
    let mut directory = test_directory();
    directory
        .users
        .get_mut(BOB)
        .unwrap()
        .extra_headers
        .insert("X-Authgear-User-Tier".into(), "gold".into());
    let resolver = start_resolver(bind_loopback(), directory).unwrap();
    let valid = resolve(
        resolver.addr(),
        &[("Cookie", &cookie("session", BOB_SESSION))],
    );

    let mut expected = valid_headers(BOB, BOB_SESSION);
    expected.push(("x-authgear-user-tier".into(), "gold".into()));
    assert_eq!(valid.authgear_headers(), expected);
}

#[test]
fn credential_fault_from_json_directory() {
    let json = format!(
        r#"{{
            "users": {{"{BOB}": {{"verified": true}}}},
            "tokens": {{
                "slow-token": {{"user": "{BOB}", "fault": {{"delay_ms": 300}}}},
                "broken-token": {{"user": "{BOB}", "fault": "internal_error_json"}}
            }}
        }}"#
    );
    let directory = authgear_standin::Directory::from_json(&json).unwrap();
    let resolver = start_resolver(bind_loopback(), directory).unwrap();
    let started = Instant::now();
    let slow = resolve(resolver.addr(), &[("Authorization", "Bearer slow-token")]);
    let elapsed = started.elapsed();
    let broken = resolve(resolver.addr(), &[("Authorization", "Bearer broken-token")]);

    assert!(elapsed >= DELAY, "slow token responded after {elapsed:?}");
    assert_eq!(
        slow.header("x-authgear-user-id"),
        Some(BOB),
        "slow token response"
    );
    assert_eq!(broken.status, 500, "broken token status");
}

#[test]
fn session_constructor_defaults() {
    let session = Session::new(ALICE);
    assert_eq!(session.fault, None, "fault");
    assert!(!session.expired, "expired");
}
