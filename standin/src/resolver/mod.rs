//! The stand-in Authgear resolver: routes, faults, counters and the handle that controls it.
//!
//! Routes, as Authgear's resolver server has them:
//! - `GET` and `HEAD` on `/resolve` and `/_resolver/resolve` resolve the request's
//!   credentials and respond 200 with `X-Authgear-*` headers. Other methods get 405.
//! - `GET` and `HEAD` on `/healthz` respond 200 `OK`.
//! - Any other path gets 404.
//!
//! The request body, query string and original URI are never read.

mod credentials;
mod resolve;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, ALLOW, HOST};
use hyper::{Method, Request};

pub(crate) use credentials::is_session_cookie_value;
pub use resolve::{CredentialKind, Outcome};

use crate::directory::{Directory, DirectoryError};
use crate::fault::{Fault, INTERNAL_ERROR_JSON, INTERNAL_ERROR_TEXT};
use crate::server::{response, BackgroundServer, HandlerResult, Hangup, ServerConfig};

/// Maximum number of requests kept for [`ResolverHandle::recorded_requests`]. Older ones
/// are dropped first.
pub const RECORDED_REQUESTS_MAX: usize = 1000;

/// Settings of [`start_resolver_with`].
#[derive(Clone, Debug, Default)]
pub struct ResolverOptions {
    /// Fault applied to every resolve request from the start.
    pub fault: Fault,
    /// Whether to log one line per request, and connection errors, to stderr.
    pub log_requests: bool,
}

/// A request the resolver received, as [`ResolverHandle::recorded_requests`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Request target as received, query included.
    pub uri: String,
    /// Header names in lower case and values decoded as UTF-8 with invalid bytes replaced.
    /// Repeated names are grouped at their first occurrence.
    pub headers: Vec<(String, String)>,
    /// Response status, or `None` when the connection was closed without a response.
    pub status: Option<u16>,
    /// Credentials present, in the order the resolver checked them. Empty outside the
    /// resolve routes.
    pub presented: Vec<CredentialKind>,
    /// Credential that decided the outcome or triggered a credential fault.
    pub matched: Option<CredentialKind>,
    /// Contract row of a 200 response, or `None` when a fault, the method or the host
    /// decided the response.
    pub outcome: Option<Outcome>,
}

impl RecordedRequest {
    /// Returns the values of the headers named `name`, compared without case.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

struct ResolverState {
    directory: RwLock<Arc<Directory>>,
    fault: Mutex<Fault>,
    calls: AtomicUsize,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    log_requests: bool,
}

/// A running stand-in resolver. Dropping it stops the server.
pub struct ResolverHandle {
    server: BackgroundServer,
    state: Arc<ResolverState>,
}

/// Starts the resolver on an already bound listener, on a background thread with its own
/// tokio runtime, without logging.
///
/// Fails with [`io::ErrorKind::InvalidInput`] when the directory is invalid, and with the
/// underlying error when the listener or the runtime cannot be set up.
pub fn start_resolver(
    listener: std::net::TcpListener,
    directory: Directory,
) -> io::Result<ResolverHandle> {
    start_resolver_with(listener, directory, ResolverOptions::default())
}

/// Starts the resolver like [`start_resolver`], with an initial fault and optional logging.
pub fn start_resolver_with(
    listener: std::net::TcpListener,
    directory: Directory,
    options: ResolverOptions,
) -> io::Result<ResolverHandle> {
    directory.validate()?;
    options
        .fault
        .validate()
        .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;

    let state = Arc::new(ResolverState {
        directory: RwLock::new(Arc::new(directory)),
        fault: Mutex::new(options.fault),
        calls: AtomicUsize::new(0),
        recorded: Mutex::new(VecDeque::new()),
        log_requests: options.log_requests,
    });
    let config = ServerConfig {
        name: "authgear-standin-resolver",
        title_case_headers: true,
        log_errors: options.log_requests,
    };
    let handler_state = Arc::clone(&state);
    let server = BackgroundServer::start(listener, config, move |request| {
        handle(Arc::clone(&handler_state), request)
    })?;
    Ok(ResolverHandle { server, state })
}

impl ResolverHandle {
    /// Returns the address the resolver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns `http://<addr>/resolve`.
    pub fn resolve_url(&self) -> String {
        format!("http://{}/resolve", self.addr())
    }

    /// Returns the number of requests on `/resolve` and `/_resolver/resolve`, whatever their
    /// method or response, since the start or the last [`reset_counters`](Self::reset_counters).
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Returns the number of TCP connections accepted since the start or the last
    /// [`reset_counters`](Self::reset_counters).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Replaces the fault applied to every resolve request. `Fault::None` ends it.
    ///
    /// # Panics
    ///
    /// Panics when the fault is invalid (see [`Fault::validate`]), because that is a bug in
    /// the calling test.
    pub fn set_fault(&self, fault: Fault) {
        if let Err(message) = fault.validate() {
            panic!("set_fault: {message}");
        }
        *lock(&self.state.fault) = fault;
    }

    /// Returns the fault currently applied to every resolve request.
    pub fn fault(&self) -> Fault {
        lock(&self.state.fault).clone()
    }

    /// Replaces the directory for the requests that start resolving from now on, for example
    /// to disable a user or revoke a session mid-test.
    pub fn set_directory(&self, directory: Directory) -> Result<(), DirectoryError> {
        directory.validate()?;
        let mut current = self
            .state
            .directory
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(directory);
        Ok(())
    }

    /// Returns the directory in use.
    pub fn directory(&self) -> Arc<Directory> {
        current_directory(&self.state)
    }

    /// Returns the last [`RECORDED_REQUESTS_MAX`] requests on any path, oldest first.
    pub fn recorded_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.recorded).iter().cloned().collect()
    }

    /// Sets [`calls`](Self::calls) and [`connections`](Self::connections) to zero and
    /// clears the recorded requests.
    pub fn reset_counters(&self) {
        self.state.calls.store(0, Ordering::SeqCst);
        self.server.reset_connections();
        lock(&self.state.recorded).clear();
    }

    /// Stops the resolver and closes its open connections. Dropping the handle does the same.
    pub fn shutdown(mut self) {
        self.server.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn current_directory(state: &ResolverState) -> Arc<Directory> {
    let directory = state
        .directory
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(&directory)
}

/// Response to one request, with the credential details for its log line and record.
struct RouteResult {
    response: HandlerResult,
    presented: Vec<CredentialKind>,
    matched: Option<CredentialKind>,
    outcome: Option<Outcome>,
}

impl RouteResult {
    fn plain(status: u16, body: &'static str) -> Self {
        RouteResult::from_response(Ok(response(
            status,
            Some("text/plain; charset=utf-8"),
            body,
        )))
    }

    fn from_response(response: HandlerResult) -> Self {
        RouteResult {
            response,
            presented: Vec::new(),
            matched: None,
            outcome: None,
        }
    }
}

async fn handle(state: Arc<ResolverState>, request: Request<Incoming>) -> HandlerResult {
    let routed = match request.uri().path() {
        "/resolve" | "/_resolver/resolve" => {
            state.calls.fetch_add(1, Ordering::SeqCst);
            resolve_request(&state, &request).await
        }
        "/healthz" if is_get_or_head(request.method()) => RouteResult::plain(200, "OK"),
        "/healthz" => method_not_allowed(),
        _ => RouteResult::plain(404, "404 page not found\n"),
    };

    let status = routed
        .response
        .as_ref()
        .ok()
        .map(|response| response.status().as_u16());
    if state.log_requests {
        log_request(&request, status, &routed);
    }
    record_request(&state, &request, status, &routed);
    routed.response
}

async fn resolve_request(state: &ResolverState, request: &Request<Incoming>) -> RouteResult {
    if !is_get_or_head(request.method()) {
        return method_not_allowed();
    }
    if !is_served_host(&current_directory(state), request) {
        return RouteResult::plain(404, "app not found\n");
    }

    let global_fault = lock(&state.fault).clone();
    let global_headers = match global_fault {
        Fault::Delay(delay) => {
            sleep(delay).await;
            Vec::new()
        }
        Fault::ExtraHeaders(headers) => headers,
        Fault::None => Vec::new(),
        terminal => return RouteResult::from_response(fault_response(&terminal)),
    };

    let directory = current_directory(state);
    let resolution = resolve::resolve(&directory, request.headers());
    sleep(resolution.delay).await;
    if let Some(fault) = &resolution.terminal_fault {
        return RouteResult {
            response: fault_response(fault),
            presented: resolution.presented,
            matched: resolution.matched,
            outcome: None,
        };
    }

    // A 200 has an empty body, Content-Length: 0 and no Content-Type, like Authgear's.
    let mut ok = response(200, None, Bytes::new());
    let headers = ok.headers_mut();
    for (name, value) in resolution.headers.iter().chain(global_headers.iter()) {
        // Directory::validate and Fault::validate have checked every name and value.
        let name = HeaderName::from_bytes(name.as_bytes()).expect("validated header name");
        let value = HeaderValue::from_str(value).expect("validated header value");
        headers.append(name, value);
    }
    RouteResult {
        response: Ok(ok),
        presented: resolution.presented,
        matched: resolution.matched,
        outcome: Some(resolution.outcome),
    }
}

fn is_get_or_head(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn method_not_allowed() -> RouteResult {
    let mut routed = RouteResult::plain(405, "405 method not allowed\n");
    if let Ok(response) = &mut routed.response {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    routed
}

/// Returns whether the request's `Host` is one of the directory's `app_hosts`, or the directory
/// serves any host because the list is empty. `X-Forwarded-Host` is not read.
fn is_served_host(directory: &Directory, request: &Request<Incoming>) -> bool {
    if directory.app_hosts.is_empty() {
        return true;
    }
    let host = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok());
    host.is_some_and(|host| {
        directory
            .app_hosts
            .iter()
            .any(|served| served.eq_ignore_ascii_case(host))
    })
}

fn fault_response(fault: &Fault) -> HandlerResult {
    match fault {
        Fault::InternalErrorText => {
            let mut text = response(500, Some("text/plain; charset=utf-8"), INTERNAL_ERROR_TEXT);
            text.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            Ok(text)
        }
        Fault::InternalErrorJson => {
            Ok(response(500, Some("application/json"), INTERNAL_ERROR_JSON))
        }
        Fault::Status(status) => Ok(response(*status, None, Bytes::new())),
        Fault::Hangup => Err(Hangup),
        Fault::None | Fault::Delay(_) | Fault::ExtraHeaders(_) => {
            unreachable!("fault_response is only called with a terminal fault, not {fault}")
        }
    }
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Logs method, path, status and credential kinds. Credential values and the query string
/// are left out because they can contain secrets.
fn log_request(request: &Request<Incoming>, status: Option<u16>, routed: &RouteResult) {
    let status = status.map_or_else(
        || "closed-without-response".to_owned(),
        |status| status.to_string(),
    );
    let mut line = format!(
        "resolver: {} {} {status}",
        request.method(),
        request.uri().path()
    );
    if let Some(outcome) = routed.outcome {
        line.push_str(&format!(" outcome={outcome}"));
    }
    if let Some(matched) = routed.matched {
        line.push_str(&format!(" credential={matched}"));
    }
    if !routed.presented.is_empty() {
        let presented: Vec<&str> = routed.presented.iter().map(|kind| kind.as_str()).collect();
        line.push_str(&format!(" presented={}", presented.join(",")));
    }
    eprintln!("{line}");
}

fn record_request(
    state: &ResolverState,
    request: &Request<Incoming>,
    status: Option<u16>,
    routed: &RouteResult,
) {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let record = RecordedRequest {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers,
        status,
        presented: routed.presented.clone(),
        matched: routed.matched,
        outcome: routed.outcome,
    };

    let mut recorded = lock(&state.recorded);
    if recorded.len() == RECORDED_REQUESTS_MAX {
        recorded.pop_front();
    }
    recorded.push_back(record);
}
