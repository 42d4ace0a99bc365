//! Routes, methods, HEAD, keepalive, counters and host checks of the resolver.

mod support;

use std::io::ErrorKind;

use authgear_standin::{start_resolver, CredentialKind, Directory};
use support::*;

#[test]
fn healthz_returns_ok() {
    let resolver = start_test_resolver();
    let response = request(resolver.addr(), "GET", "/healthz", &[]);

    assert_eq!(response.status, 200, "status");
    assert_eq!(response.body_text(), "OK", "body");
}

#[test]
fn healthz_head_has_no_body() {
    let resolver = start_test_resolver();
    let mut connection = Connection::open(resolver.addr());
    let head = connection.send("HEAD", "/healthz", &[], b"").unwrap();
    let after = connection.send("GET", "/healthz", &[], b"").unwrap();

    assert_eq!(head.status, 200, "HEAD status");
    assert_eq!(
        after.body_text(),
        "OK",
        "next response on the same connection"
    );
}

#[test]
fn healthz_not_counted_as_call() {
    let resolver = start_test_resolver();
    request(resolver.addr(), "GET", "/healthz", &[]);
    assert_eq!(resolver.calls(), 0);
}

#[test]
fn other_methods_get_405() {
    let resolver = start_test_resolver();
    for path in ["/resolve", "/_resolver/resolve", "/healthz"] {
        for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let response = request(resolver.addr(), method, path, &[]);
            assert_eq!(response.status, 405, "{method} {path}: status");
            assert_eq!(
                response.header("allow"),
                Some("GET, HEAD"),
                "{method} {path}: Allow"
            );
        }
    }
}

#[test]
fn post_with_valid_session_still_405() {
    let resolver = start_test_resolver();
    let response = Connection::open(resolver.addr())
        .send(
            "POST",
            "/resolve",
            &[("Cookie", &cookie("session", ALICE_SESSION))],
            b"{}",
        )
        .unwrap();

    assert_eq!(response.status, 405, "status");
    assert_eq!(
        response.authgear_headers(),
        vec![],
        "no X-Authgear-* headers"
    );
}

#[test]
fn unknown_paths_get_404() {
    let resolver = start_test_resolver();
    for path in [
        "/",
        "/resolve/",
        "/resolve/extra",
        "/RESOLVE",
        "/_resolver",
        "/_resolver/healthz",
    ] {
        let response = request(resolver.addr(), "GET", path, &[]);
        assert_eq!(response.status, 404, "{path}");
    }
}

#[test]
fn both_resolve_paths_answer_alike() {
    let resolver = start_test_resolver();
    let session = cookie("session", ALICE_SESSION);
    let direct = request(resolver.addr(), "GET", "/resolve", &[("Cookie", &session)]);
    let public = request(
        resolver.addr(),
        "GET",
        "/_resolver/resolve",
        &[("Cookie", &session)],
    );

    assert_eq!(
        direct.authgear_headers(),
        valid_headers(ALICE, ALICE_SESSION),
        "/resolve"
    );
    assert_eq!(
        public.authgear_headers(),
        valid_headers(ALICE, ALICE_SESSION),
        "/_resolver/resolve"
    );
}

#[test]
fn query_string_ignored() {
    let resolver = start_test_resolver();
    let target = format!("/resolve?session={ALICE_SESSION}&access_token={ALICE_OPAQUE_TOKEN}");
    let with_query = request(resolver.addr(), "GET", &target, &[]);
    let with_cookie_and_query = request(
        resolver.addr(),
        "GET",
        "/resolve?x=1",
        &[("Cookie", &cookie("session", BOB_SESSION))],
    );

    assert_eq!(
        with_query.authgear_headers(),
        vec![],
        "credentials in the query are not read"
    );
    assert_eq!(
        with_cookie_and_query.authgear_headers(),
        valid_headers(BOB, BOB_SESSION),
        "query does not stop resolution"
    );
}

#[test]
fn get_body_ignored() {
    let resolver = start_test_resolver();
    let body = format!("session={ALICE_SESSION}");
    let response = Connection::open(resolver.addr())
        .send(
            "GET",
            "/resolve",
            &[("Cookie", &cookie("session", BOB_SESSION))],
            body.as_bytes(),
        )
        .unwrap();

    assert_eq!(response.authgear_headers(), valid_headers(BOB, BOB_SESSION));
}

#[test]
fn head_matches_get_without_body() {
    let resolver = start_test_resolver();
    let cookies = [
        cookie("session", ALICE_SESSION),
        cookie("session", EXPIRED_SESSION),
        "theme=dark".to_owned(),
    ];
    for cookie in &cookies {
        let mut connection = Connection::open(resolver.addr());
        let head = connection
            .send("HEAD", "/resolve", &[("Cookie", cookie)], b"")
            .unwrap();
        let get = connection
            .send("GET", "/resolve", &[("Cookie", cookie)], b"")
            .unwrap();

        assert_eq!(head.status, 200, "{cookie}: HEAD status");
        assert_eq!(
            head.authgear_headers(),
            get.authgear_headers(),
            "{cookie}: X-Authgear-* headers"
        );
        assert_eq!(
            head.header_values("set-cookie"),
            get.header_values("set-cookie"),
            "{cookie}: Set-Cookie"
        );
        assert_eq!(
            head.header("content-type"),
            None,
            "{cookie}: no Content-Type"
        );
    }
}

#[test]
fn keepalive_reuses_one_connection() {
    let resolver = start_test_resolver();
    let session = cookie("session", ALICE_SESSION);
    let mut connection = Connection::open(resolver.addr());
    for round in 0..3 {
        let response = connection
            .send("GET", "/resolve", &[("Cookie", &session)], b"")
            .unwrap();
        assert_eq!(
            response.header("x-authgear-session-valid"),
            Some("true"),
            "round {round}"
        );
    }

    assert_eq!(resolver.connections(), 1, "connections");
    assert_eq!(resolver.calls(), 3, "calls");
}

#[test]
fn calls_count_every_resolve_request() {
    let resolver = start_test_resolver();
    request(resolver.addr(), "GET", "/resolve", &[]);
    request(resolver.addr(), "HEAD", "/_resolver/resolve", &[]);
    request(resolver.addr(), "POST", "/resolve", &[]);
    request(resolver.addr(), "GET", "/other", &[]);

    assert_eq!(resolver.calls(), 3, "calls");
    assert_eq!(resolver.connections(), 4, "connections");
}

#[test]
fn reset_counters_starts_from_zero() {
    let resolver = start_test_resolver();
    request(resolver.addr(), "GET", "/resolve", &[]);
    resolver.reset_counters();

    assert_eq!(resolver.calls(), 0, "calls");
    assert_eq!(resolver.connections(), 0, "connections");
    assert_eq!(resolver.recorded_requests(), vec![], "recorded requests");
}

#[test]
fn recorded_request_lists_headers_and_credentials() {
    let resolver = start_test_resolver();
    let cookies = format!("app_session={UNKNOWN_APP_SESSION}; session={ALICE_SESSION}");
    request(
        resolver.addr(),
        "GET",
        "/resolve?from=test",
        &[
            ("Authorization", &bearer(UNKNOWN_TOKEN)),
            ("Cookie", &cookies),
        ],
    );

    let records = resolver.recorded_requests();
    assert_eq!(records.len(), 1, "number of records");
    let record = &records[0];
    assert_eq!(record.method, "GET", "method");
    assert_eq!(record.uri, "/resolve?from=test", "uri");
    assert_eq!(record.status, Some(200), "status");
    assert_eq!(
        record.header_values("cookie"),
        vec![cookies.as_str()],
        "Cookie header"
    );
    assert_eq!(
        record.presented,
        vec![
            CredentialKind::BearerOpaque,
            CredentialKind::AppSessionCookie,
            CredentialKind::SessionCookie
        ],
        "presented credentials"
    );
    assert_eq!(
        record.matched,
        Some(CredentialKind::SessionCookie),
        "matched credential"
    );
}

#[test]
fn app_hosts_reject_other_hosts() {
    let mut directory = test_directory();
    directory.app_hosts = vec!["127.0.0.1".into()];
    let resolver = start_resolver(bind_loopback(), directory).unwrap();
    let session = cookie("session", ALICE_SESSION);

    // The test client always sends Host: 127.0.0.1 first, so a second Host header would be
    // ambiguous. Build the other request by hand instead.
    let served = request(resolver.addr(), "GET", "/resolve", &[("Cookie", &session)]);
    let mut connection = Connection::open(resolver.addr());
    connection
        .write_all(
            format!("GET /resolve HTTP/1.1\r\nHost: other.example\r\nCookie: {session}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let other = connection.read_response(false).unwrap();

    assert_eq!(
        served.header("x-authgear-session-valid"),
        Some("true"),
        "listed host"
    );
    assert_eq!(other.status, 404, "other host: status");
    assert_eq!(other.body_text(), "app not found\n", "other host: body");
}

#[test]
fn invalid_directory_rejected_at_start() {
    let directory =
        Directory::new().with_token("token", authgear_standin::Session::new("no-such-user"));
    let error = start_resolver(bind_loopback(), directory)
        .err()
        .expect("start must fail");
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
}

#[test]
fn shutdown_closes_open_connections() {
    let resolver = start_test_resolver();
    let addr = resolver.addr();
    let mut connection = Connection::open(addr);
    connection.send("GET", "/resolve", &[], b"").unwrap();
    resolver.shutdown();

    assert!(connection.is_closed_by_server(), "open connection closed");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listener closed"
    );
}
