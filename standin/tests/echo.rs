//! The echo application: JSON report fields, large bodies, chunked bodies and keepalive.

mod support;

use authgear_standin::{start_echo, EchoHandle, EchoReport};
use sha2::{Digest, Sha256};
use support::*;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn start_test_echo() -> EchoHandle {
    start_echo(bind_loopback()).expect("failed to start the echo application")
}

fn parse_report(response: &Response) -> EchoReport {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|error| panic!("invalid echo JSON {:?}: {error}", response.body_text()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Returns `length` bytes of a repeating pattern that is not all one value.
fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index % 251) as u8).collect()
}

#[test]
fn get_report_fields() {
    let echo = start_test_echo();
    let response = request(
        echo.addr(),
        "GET",
        "/some/path?q=1&r=two",
        &[("X-Custom", "Value")],
    );
    let report = parse_report(&response);

    assert_eq!(response.status, 200, "status");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "Content-Type"
    );
    assert_eq!(report.method, "GET", "method");
    assert_eq!(report.uri, "/some/path?q=1&r=two", "uri");
    assert_eq!(report.version, "HTTP/1.1", "version");
    assert_eq!(
        report.headers,
        vec![
            ("host".to_owned(), "127.0.0.1".to_owned()),
            ("x-custom".to_owned(), "Value".to_owned())
        ],
        "headers"
    );
    assert_eq!(report.body_length, 0, "body length");
    assert_eq!(report.body_sha256, EMPTY_SHA256, "body hash");
}

#[test]
fn every_method_and_path_answered() {
    let echo = start_test_echo();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        for path in ["/", "/resolve", "/a/b/c"] {
            let response = request(echo.addr(), method, path, &[]);
            assert_eq!(response.status, 200, "{method} {path}: status");
            assert_eq!(
                parse_report(&response).method,
                method,
                "{method} {path}: method"
            );
        }
    }
}

#[test]
fn small_body_hash() {
    let echo = start_test_echo();
    let response = Connection::open(echo.addr())
        .send("POST", "/", &[], b"abc")
        .unwrap();
    let report = parse_report(&response);

    assert_eq!(report.body_length, 3, "body length");
    assert_eq!(
        report.body_sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "SHA-256 of abc"
    );
}

#[test]
fn large_content_length_body() {
    let echo = start_test_echo();
    let body = pattern(6 * 1024 * 1024);
    let response = Connection::open(echo.addr())
        .send("PUT", "/upload", &[], &body)
        .unwrap();
    let report = parse_report(&response);

    assert_eq!(report.body_length, body.len() as u64, "body length");
    assert_eq!(report.body_sha256, sha256_hex(&body), "body hash");
}

#[test]
fn large_chunked_body() {
    let echo = start_test_echo();
    let body = pattern(3 * 1024 * 1024 + 17);
    let chunks: Vec<&[u8]> = body.chunks(64 * 1024 + 3).collect();
    let response = Connection::open(echo.addr())
        .send_chunked("POST", "/upload", &[], &chunks)
        .unwrap();
    let report = parse_report(&response);

    assert_eq!(report.body_length, body.len() as u64, "body length");
    assert_eq!(report.body_sha256, sha256_hex(&body), "body hash");
    assert_eq!(
        report.header_values("transfer-encoding"),
        vec!["chunked"],
        "Transfer-Encoding reported"
    );
}

#[test]
fn keepalive_reuses_one_connection() {
    let echo = start_test_echo();
    let mut connection = Connection::open(echo.addr());
    for round in 0..3 {
        let body = pattern(100_000 + round);
        let response = connection.send("POST", "/", &[], &body).unwrap();
        assert_eq!(
            parse_report(&response).body_length,
            body.len() as u64,
            "round {round}"
        );
    }

    assert_eq!(echo.connections(), 1, "connections");
    assert_eq!(echo.requests(), 3, "requests");
}

#[test]
fn repeated_headers_all_reported() {
    let echo = start_test_echo();
    let headers = [
        ("X-Authgear-User-Roles", "admin"),
        ("Accept", "*/*"),
        ("X-Authgear-User-Roles", "editor"),
    ];
    let report = parse_report(&request(echo.addr(), "GET", "/", &headers));

    assert_eq!(
        report.header_values("x-authgear-user-roles"),
        vec!["admin", "editor"],
        "repeated values in received order"
    );
    assert_eq!(report.header_values("accept"), vec!["*/*"], "other header");
    let names: Vec<&str> = report
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "host",
            "x-authgear-user-roles",
            "x-authgear-user-roles",
            "accept"
        ],
        "repeated names grouped at their first occurrence"
    );
}

#[test]
fn head_has_no_body() {
    let echo = start_test_echo();
    let mut connection = Connection::open(echo.addr());
    let head = connection.send("HEAD", "/", &[], b"").unwrap();
    let get = connection.send("GET", "/", &[], b"").unwrap();

    assert_eq!(head.status, 200, "HEAD status");
    assert_eq!(head.body, b"", "HEAD body");
    assert_eq!(
        parse_report(&get).method,
        "GET",
        "next response on the same connection"
    );
}

#[test]
fn reset_counters_starts_from_zero() {
    let echo = start_test_echo();
    request(echo.addr(), "GET", "/", &[]);
    echo.reset_counters();

    assert_eq!(echo.requests(), 0, "requests");
    assert_eq!(echo.connections(), 0, "connections");
}
