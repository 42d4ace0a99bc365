//! An HTTP/2 client: the `curl` binary with `--http2-prior-knowledge`, which
//! speaks cleartext HTTP/2 from the first byte. An independent client keeps
//! the test honest about what nginx accepts on the wire.

use std::net::SocketAddr;
use std::process::Command;

use super::http1::Response;

/// Sends a GET request for `path` over cleartext HTTP/2 and returns the
/// response. `CURL` replaces the `curl` binary found on `PATH`.
///
/// Panics when curl fails or its response did not come over HTTP/2.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let curl = std::env::var("CURL").unwrap_or_else(|_| "curl".to_owned());
    let mut command = Command::new(&curl);
    command
        .args([
            "--silent",
            "--show-error",
            "--http2-prior-knowledge",
            "--include",
        ])
        .args(["--max-time", "10"]);
    for (name, value) in headers {
        command.arg("--header").arg(format!("{name}: {value}"));
    }
    command.arg(format!("http://{addr}{path}"));

    let output = command
        .output()
        .unwrap_or_else(|error| panic!("failed to run {curl}: {error}"));
    assert!(
        output.status.success(),
        "curl failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_included_response(&output.stdout)
}

/// Parses curl's `--include` output: the status line, headers, an empty line
/// and the body.
fn parse_included_response(output: &[u8]) -> Response {
    let separator = output
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of headers in curl output {:?}",
                String::from_utf8_lossy(output)
            )
        });
    let head = String::from_utf8_lossy(&output[..separator]).into_owned();
    let body = output[separator + 4..].to_vec();

    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/2 "),
        "response did not come over HTTP/2: {status_line:?}"
    );
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("malformed status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("malformed header line {line:?}"));
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();

    Response {
        status,
        headers,
        body,
    }
}
