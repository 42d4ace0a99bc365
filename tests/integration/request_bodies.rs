//! Request bodies pass to the upstream intact while the resolver subrequest
//! carries none.

use sha2::{Digest, Sha256};

use crate::support::*;

/// 2 MiB, above nginx's default `client_max_body_size` of 1m and above its
/// in-memory body buffer, so the body goes through a temporary file.
const LARGE_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Returns `length` bytes of a repeatable pseudo-random pattern, so that a
/// shifted or truncated copy has another hash.
fn pattern(length: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..length)
        .map(|_| {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Starts nginx with `client_max_body_size 4m` in the `/upload/` location
/// only, as a user who allows uploads there would write it.
fn start_upload_app(backends: &Backends) -> Nginx {
    start_upload_app_with(backends, "")
}

fn start_upload_app_with(backends: &Backends, resolver_directives: &str) -> Nginx {
    backends
        .nginx_with_resolver(backends.resolver.addr(), resolver_directives)
        .server(&format!(
            "location /upload/ {{\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   client_max_body_size 4m;\n\
             \x20   proxy_pass http://echo_app;\n\
             }}\n"
        ))
        .start()
}

fn upload(method: &str, body: &[u8]) -> RawRequest {
    RawRequest::new(method, "/upload/file.bin")
        .header("Cookie", &format!("session={FULL_SESSION}"))
        .header("Content-Type", "application/octet-stream")
        .body(body.to_vec())
}

#[test]
fn large_post_reaches_upstream_intact() {
    let backends = Backends::start();
    let nginx = start_upload_app(&backends);
    let body = pattern(LARGE_BODY_BYTES);

    let report = http1::send(nginx.addr(), &upload("POST", &body)).echo();

    assert_eq!(report.method, "POST");
    assert_eq!(
        report.body_length, LARGE_BODY_BYTES as u64,
        "body length at the upstream"
    );
    assert_eq!(
        report.body_sha256,
        sha256_hex(&body),
        "body hash at the upstream"
    );
    assert_eq!(
        report.header_values("x-authgear-user-id"),
        [FULL_USER],
        "identity at the upstream"
    );
}

#[test]
fn large_put_reaches_upstream_intact() {
    let backends = Backends::start();
    let nginx = start_upload_app(&backends);
    let body = pattern(LARGE_BODY_BYTES + 17);

    let report = http1::send(nginx.addr(), &upload("PUT", &body)).echo();

    assert_eq!(report.method, "PUT");
    assert_eq!(
        report.body_length,
        body.len() as u64,
        "body length at the upstream"
    );
    assert_eq!(
        report.body_sha256,
        sha256_hex(&body),
        "body hash at the upstream"
    );
    assert_eq!(
        report.header_values("x-authgear-user-id"),
        [FULL_USER],
        "identity at the upstream"
    );
}

#[test]
fn chunked_post_reaches_upstream_intact() {
    let backends = Backends::start();
    let nginx = start_upload_app(&backends);
    let body = pattern(300 * 1024);

    let mut chunked = Vec::new();
    for chunk in body.chunks(64 * 1024 + 3) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let request = upload("POST", &chunked).header("Transfer-Encoding", "chunked");

    let report = http1::send(nginx.addr(), &request).echo();

    assert_eq!(
        report.body_length,
        body.len() as u64,
        "body length at the upstream"
    );
    assert_eq!(
        report.body_sha256,
        sha256_hex(&body),
        "body hash at the upstream"
    );
}

#[test]
fn resolver_gets_no_request_body() {
    let backends = Backends::start();
    let nginx = start_upload_app(&backends);
    let body = pattern(LARGE_BODY_BYTES);

    let response = http1::send(nginx.addr(), &upload("POST", &body));
    assert_eq!(response.status, 200);

    let recorded = backends.resolver.recorded_requests();
    assert_eq!(recorded.len(), 1, "resolver requests");
    assert_eq!(recorded[0].method, "GET", "resolver request method");
    assert_eq!(
        recorded[0].header_values("content-length"),
        Vec::<&str>::new(),
        "Content-Length"
    );
    assert_eq!(
        recorded[0].header_values("transfer-encoding"),
        Vec::<&str>::new(),
        "Transfer-Encoding"
    );
}

#[test]
fn request_after_upload_on_same_connection() {
    let backends = Backends::start();
    let nginx = start_upload_app(&backends);
    let body = pattern(LARGE_BODY_BYTES);

    // The whole body must be consumed before the next request is parsed, or
    // the second request would be read from the middle of the first body.
    let mut connection = Connection::open(nginx.addr());
    let first = connection.round_trip(&upload("POST", &body)).echo();
    let second = connection
        .round_trip(
            &RawRequest::get("/upload/after")
                .header("Cookie", &format!("session={NO_ROLES_SESSION}")),
        )
        .echo();

    assert_eq!(first.body_sha256, sha256_hex(&body), "first body hash");
    assert_eq!(second.method, "GET", "second request method");
    assert_eq!(second.uri, "/upload/after", "second request URI");
    assert_eq!(
        second.header_values("x-authgear-user-id"),
        [NO_ROLES_USER],
        "second request identity"
    );
    assert_eq!(backends.resolver.calls(), 2, "resolver calls");
}

#[test]
fn large_post_passes_without_resolver_body_limit() {
    // The resolver subrequest copies the main request's Content-Length, and
    // nginx checks it against client_max_body_size of the resolver location
    // (1m by default) before the subrequest is proxied. With the limit lifted
    // there, the upload passes.
    let backends = Backends::start();
    let nginx = start_upload_app_with(&backends, "client_max_body_size 0;");
    let body = pattern(LARGE_BODY_BYTES);

    let report = http1::send(nginx.addr(), &upload("POST", &body)).echo();

    assert_eq!(
        report.body_sha256,
        sha256_hex(&body),
        "body hash at the upstream"
    );
}
