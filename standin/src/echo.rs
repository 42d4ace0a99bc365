//! The echo application: an upstream that describes every request it receives as JSON.
//!
//! Every method on every path gets a 200 `application/json` response of one line:
//! `{"method": ..., "uri": ..., "version": ..., "headers": [[name, value], ...],
//! "body_length": N, "body_sha256": "<hex>"}`. The body is streamed through SHA-256 and
//! never held in memory, so bodies of any size work, sent with `Content-Length` or chunked.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Version};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::server::{response, BackgroundServer, HandlerResult, ServerConfig};

/// Settings of [`start_echo_with`].
#[derive(Clone, Debug, Default)]
pub struct EchoOptions {
    /// Whether to log one line per request, and connection errors, to stderr.
    pub log_requests: bool,
}

/// JSON body of every echo response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EchoReport {
    pub method: String,
    /// Request target as received, query included.
    pub uri: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Header names in lower case and values decoded as UTF-8 with invalid bytes replaced.
    ///
    /// NOTE: the order is the order of first occurrence of each name, with repeated names
    /// grouped there, because hyper's `HeaderMap` stores headers that way. Headers with
    /// different names keep their received order.
    pub headers: Vec<(String, String)>,
    pub body_length: u64,
    /// SHA-256 of the body in lower-case hex.
    pub body_sha256: String,
}

impl EchoReport {
    /// Returns the values of the headers named `name`, compared without case.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

struct EchoState {
    requests: AtomicUsize,
    log_requests: bool,
}

/// A running echo application. Dropping it stops the server.
pub struct EchoHandle {
    server: BackgroundServer,
    state: Arc<EchoState>,
}

/// Starts the echo application on an already bound listener, on a background thread with
/// its own tokio runtime, without logging.
pub fn start_echo(listener: std::net::TcpListener) -> io::Result<EchoHandle> {
    start_echo_with(listener, EchoOptions::default())
}

/// Starts the echo application like [`start_echo`], with optional logging.
pub fn start_echo_with(
    listener: std::net::TcpListener,
    options: EchoOptions,
) -> io::Result<EchoHandle> {
    let state = Arc::new(EchoState {
        requests: AtomicUsize::new(0),
        log_requests: options.log_requests,
    });
    let config = ServerConfig {
        name: "echo-app",
        title_case_headers: false,
        log_errors: options.log_requests,
    };
    let handler_state = Arc::clone(&state);
    let server = BackgroundServer::start(listener, config, move |request| {
        handle(Arc::clone(&handler_state), request)
    })?;
    Ok(EchoHandle { server, state })
}

impl EchoHandle {
    /// Returns the address the application listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Returns the number of requests received since the start or the last
    /// [`reset_counters`](Self::reset_counters), counted when they arrive.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Returns the number of TCP connections accepted since the start or the last
    /// [`reset_counters`](Self::reset_counters).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Sets [`requests`](Self::requests) and [`connections`](Self::connections) to zero.
    pub fn reset_counters(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
        self.server.reset_connections();
    }

    /// Stops the application and closes its open connections. Dropping the handle does the
    /// same.
    pub fn shutdown(mut self) {
        self.server.stop();
    }
}

async fn handle(state: Arc<EchoState>, request: Request<Incoming>) -> HandlerResult {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, mut body) = request.into_parts();

    let mut hasher = Sha256::new();
    let mut body_length: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    body_length += data.len() as u64;
                }
            }
            Err(error) => {
                if state.log_requests {
                    eprintln!(
                        "echo-app: {} {} 400 failed to read body: {error}",
                        parts.method,
                        parts.uri.path()
                    );
                }
                let message = format!("failed to read the request body: {error}\n");
                return Ok(response(400, Some("text/plain; charset=utf-8"), message));
            }
        }
    }

    let report = EchoReport {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: version_text(parts.version).to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body_length,
        body_sha256: to_hex(&hasher.finalize()),
    };
    let mut json = serde_json::to_string(&report).expect("an echo report always serializes");
    json.push('\n');

    if state.log_requests {
        eprintln!(
            "echo-app: {} {} 200 body_length={body_length}",
            report.method,
            parts.uri.path()
        );
    }
    Ok(response(200, Some("application/json"), Bytes::from(json)))
}

fn version_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
