//! The two binaries, run as child processes on 127.0.0.1 with a free port.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};

use support::*;

const RESOLVER: &str = env!("CARGO_BIN_EXE_authgear-standin-resolver");
const ECHO: &str = env!("CARGO_BIN_EXE_echo-app");
const DEMO_DIRECTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo-directory.json");

/// Demo session of the user with roles `admin,editor`.
const DEMO_SESSION: &str = "7b07af95-a4ed-40d7-9a02-6403d6f9a023.KNXtfP1qQ0COpaXeoBOYorgMVPptdPK8";
const DEMO_USER: &str = "e5dbe728-bb22-4ab4-a079-991cff7b3f18";

/// A running binary. Dropping it kills the process.
struct Running {
    child: Child,
    stderr: BufReader<ChildStderr>,
    addr: SocketAddr,
}

impl Running {
    /// Starts `program` and reads its address from the `listening on <addr>` line it logs first.
    fn start(program: &str, arguments: &[&str]) -> Running {
        let mut child = Command::new(program)
            .args(arguments)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {program}: {error}"));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first_line = String::new();
        stderr.read_line(&mut first_line).unwrap();
        let addr = first_line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in the first log line {first_line:?}"));
        Running {
            child,
            stderr,
            addr,
        }
    }

    /// Kills the process and returns the rest of its log.
    fn stop(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut log = String::new();
        self.stderr.read_to_string(&mut log).unwrap();
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn resolver_serves_demo_directory() {
    let resolver = Running::start(
        RESOLVER,
        &["--listen", "127.0.0.1:0", "--directory", DEMO_DIRECTORY],
    );
    let session = cookie("session", DEMO_SESSION);
    let valid = resolve(resolver.addr, &[("Cookie", &session)]);
    let health = request(resolver.addr, "GET", "/healthz", &[]);
    let log = resolver.stop();

    assert_eq!(
        valid.header("x-authgear-user-id"),
        Some(DEMO_USER),
        "user id"
    );
    assert_eq!(
        valid.header("x-authgear-user-roles"),
        Some("admin,editor"),
        "roles"
    );
    assert_eq!(health.body_text(), "OK", "healthz");
    assert!(
        log.contains("resolver: GET /resolve 200 outcome=valid credential=session-cookie"),
        "request log line missing from {log:?}"
    );
    assert!(
        !log.contains("KNXtfP1qQ0COpaXeoBOYorgMVPptdPK8"),
        "log contains the session secret"
    );
}

#[test]
fn resolver_fault_flag() {
    let resolver = Running::start(
        RESOLVER,
        &[
            "--listen",
            "127.0.0.1:0",
            "--directory",
            DEMO_DIRECTORY,
            "--fault",
            "internal_error_json",
        ],
    );
    let response = resolve(resolver.addr, &[]);
    assert_eq!(response.status, 500);
}

#[test]
fn resolver_rejects_bad_arguments() {
    let cases: [&[&str]; 4] = [
        &["--listen", "127.0.0.1:0"],
        &["--directory", "/nonexistent/directory.json"],
        &["--directory", DEMO_DIRECTORY, "--fault", "sometimes"],
        &["--directory", DEMO_DIRECTORY, "--port", "1"],
    ];
    for arguments in cases {
        let output = Command::new(RESOLVER).args(arguments).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: exit status");
    }
}

#[test]
fn help_exits_zero() {
    for program in [RESOLVER, ECHO] {
        let output = Command::new(program).arg("--help").output().unwrap();
        assert!(output.status.success(), "{program}: exit status");
        assert!(
            String::from_utf8_lossy(&output.stdout).starts_with("Usage:"),
            "{program}: usage on stdout"
        );
    }
}

#[test]
fn echo_app_reports_request() {
    let echo = Running::start(ECHO, &["--listen", "127.0.0.1:0"]);
    let response = Connection::open(echo.addr)
        .send("POST", "/submit", &[], b"abc")
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let log = echo.stop();

    assert_eq!(report["method"], "POST", "method");
    assert_eq!(report["body_length"], 3, "body length");
    assert!(
        log.contains("echo-app: POST /submit 200 body_length=3"),
        "request log line missing from {log:?}"
    );
}
