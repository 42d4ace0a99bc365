//! The soak test: mixed traffic against nginx with two worker processes and
//! a cache zone, while nginx reloads its configuration every 10 s and the
//! resolver is stopped for 20 s in the middle of the run.
//!
//! It is ignored in ordinary test runs. `make soak` (scripts/soak.sh) runs
//! it for 5 minutes, and `.ci/run` for 30 seconds. The environment sets:
//!
//! - `SOAK_SECONDS`: the length of the run, 300 by default, at most 3600.
//! - `SOAK_CLIENTS`: HTTP/1.1 client threads, 6 by default. One more thread
//!   sends HTTP/2 requests with curl.
//! - `SOAK_DOWNTIME_SECONDS`: how long the resolver is stopped, 20 by
//!   default and at most a third of the run.
//! - `SOAK_RELOAD_SECONDS`: the interval between reloads, 10 by default.
//!
//! The traffic mixes valid sessions and bearer tokens, invalid and absent
//! sessions, bogus bearer tokens, POST bodies and HTTP/2, and half of the
//! requests carry spoofed `X-Authgear-*` headers. The echo application
//! returns the headers it received, so every response shows whether the
//! upstream saw the identity of the request's own credential.
//!
//! The test fails on a 5xx outside the resolver's downtime, on an upstream
//! request with another identity or a spoofed header, on a request that
//! failed twice at the transport level, on a crashed worker process, and
//! when a worker's private memory (its RSS without shared memory such as the
//! cache zone) grew by more than 10 %.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use authgear_standin::{start_echo, start_resolver, EchoReport, ResolverHandle};
use sha2::{Digest, Sha256};

use crate::support::nginx::bind_local;
use crate::support::*;

/// Upper bound of `SOAK_SECONDS`, so that a typo cannot start a run of days.
const MAX_SECONDS: u64 = 3600;

/// Maximum time for one request, after which it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Time after the resolver's restart during which failures still count as
/// part of the downtime: nginx may hold a request that started before.
const RECOVERY_GRACE: Duration = Duration::from_secs(2);

/// The largest POST body the clients send.
const MAX_BODY: usize = 64 * 1024;

/// Allowed growth of worker memory between the first and the last sample.
const MAX_RSS_GROWTH: f64 = 0.10;

/// How long after a reload a retry counts as caused by it in the report.
const RELOAD_AFTERMATH: Duration = Duration::from_secs(1);

/// The marker in every spoofed header value.
const SPOOF_MARKER: &str = "spoofed";

/// Reads a whole number from the environment variable `name`, or returns
/// `default` when it is unset.
fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().unwrap_or_else(|error| {
            panic!("invalid {name}={value:?}, expected a whole number: {error}")
        }),
        Err(_) => default,
    }
}

/// The settings of one run.
#[derive(Debug, Clone)]
struct Settings {
    duration: Duration,
    clients: usize,
    downtime: Duration,
    reload_interval: Duration,
}

impl Settings {
    fn from_env() -> Self {
        let seconds = env_number("SOAK_SECONDS", 300).clamp(10, MAX_SECONDS);
        let downtime = env_number("SOAK_DOWNTIME_SECONDS", 20).min(seconds / 3);
        let reload = env_number("SOAK_RELOAD_SECONDS", 10).max(1);
        let clients = env_number("SOAK_CLIENTS", 6).clamp(1, 64) as usize;
        Settings {
            duration: Duration::from_secs(seconds),
            clients,
            downtime: Duration::from_secs(downtime),
            reload_interval: Duration::from_secs(reload),
        }
    }

    /// Returns when the resolver stops, so that the downtime sits in the
    /// middle of the run.
    fn downtime_start(&self) -> Duration {
        (self.duration - self.downtime) / 2
    }
}

/// The credential a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Credential {
    Session(&'static str),
    Bearer(&'static str),
    /// A session cookie that the resolver rejects.
    InvalidSession(&'static str),
    Absent,
    /// A bearer token that the resolver never issued, new for every request.
    BogusBearer,
}

/// The credentials of the traffic, each with its share of requests.
const CREDENTIALS: [(Credential, u32); 10] = [
    (Credential::Session(FULL_SESSION), 20),
    (Credential::Session(NO_ROLES_SESSION), 10),
    (Credential::Session(UNVERIFIED_SESSION), 5),
    (Credential::Session(ANONYMOUS_SESSION), 5),
    (Credential::Bearer(FULL_BEARER), 10),
    (Credential::Bearer(NO_ROLES_JWT), 5),
    (Credential::InvalidSession(UNKNOWN_SESSION), 10),
    (Credential::InvalidSession(EXPIRED_SESSION), 5),
    (Credential::Absent, 15),
    (Credential::BogusBearer, 15),
];

impl Credential {
    /// Returns the name of the credential in the report.
    fn label(self) -> String {
        match self {
            Credential::Session(value) | Credential::InvalidSession(value) => {
                format!("session {}", value.split('.').next().unwrap_or(value))
            }
            Credential::Bearer(value) => format!("bearer {}", &value[..value.len().min(12)]),
            Credential::Absent => "absent".to_owned(),
            Credential::BogusBearer => "bogus bearer".to_owned(),
        }
    }

    /// Returns the request headers that carry the credential. `serial`
    /// makes each bogus token unique.
    fn headers(self, serial: u64) -> Vec<(String, String)> {
        match self {
            Credential::Session(value) | Credential::InvalidSession(value) => {
                vec![("Cookie".to_owned(), format!("theme=dark; session={value}"))]
            }
            Credential::Bearer(value) => {
                vec![("Authorization".to_owned(), format!("Bearer {value}"))]
            }
            Credential::Absent => Vec::new(),
            Credential::BogusBearer => vec![(
                "Authorization".to_owned(),
                format!("Bearer bogus-{serial:016x}"),
            )],
        }
    }
}

/// Returns `X-Authgear-*` headers with which a client passes itself off as
/// someone else.
fn spoofed_headers(serial: u64) -> Vec<(String, String)> {
    vec![
        (
            "X-Authgear-User-Id".to_owned(),
            format!("{SPOOF_MARKER}-{serial}"),
        ),
        (
            "x-authgear-user-roles".to_owned(),
            format!("{SPOOF_MARKER}-admin"),
        ),
        ("X-AUTHGEAR-SESSION-VALID".to_owned(), "true".to_owned()),
        (
            "X-Authgear-Future-Thing".to_owned(),
            SPOOF_MARKER.to_owned(),
        ),
    ]
}

/// A small xorshift generator: the traffic needs variety, not quality.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn credential(&mut self) -> Credential {
        let total: u32 = CREDENTIALS.iter().map(|(_, share)| share).sum();
        let mut pick = self.below(u64::from(total)) as u32;
        for (credential, share) in CREDENTIALS {
            if pick < share {
                return credential;
            }
            pick -= share;
        }
        Credential::Absent
    }
}

/// One planned request.
#[derive(Debug, Clone)]
struct Plan {
    credential: Credential,
    spoofed: bool,
    /// The POST body, or `None` for a GET.
    body: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    serial: u64,
}

impl Plan {
    fn new(random: &mut Random, serial: u64, max_body: usize) -> Self {
        let credential = random.credential();
        let spoofed = random.below(2) == 0;
        let body = (random.below(5) == 0).then(|| {
            let len = random.below(max_body as u64 + 1) as usize;
            (0..len)
                .map(|index| (index as u8).wrapping_mul(31))
                .collect()
        });
        let mut headers = credential.headers(serial);
        if spoofed {
            headers.extend(spoofed_headers(serial));
        }
        Plan {
            credential,
            spoofed,
            body,
            headers,
            serial,
        }
    }

    fn method(&self) -> &'static str {
        if self.body.is_some() {
            "POST"
        } else {
            "GET"
        }
    }

    fn target(&self) -> String {
        format!("/soak/{}?n={}", self.serial % 97, self.serial)
    }

    fn to_http1(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: localhost\r\n",
            self.method(),
            self.target()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = &self.body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_deref().unwrap_or_default());
        bytes
    }
}

/// A response as the soak clients read it.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// An HTTP/1.1 client that keeps its connection open and reports every
/// failure as an error instead of panicking.
struct Client {
    addr: SocketAddr,
    connection: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            connection: None,
        }
    }

    /// Sends a request, on a new connection when the last one failed or was
    /// closed.
    fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        if self.connection.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)?;
            stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
            stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let result = self.exchange(request);
        let keep = matches!(&result, Ok(response) if !response
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close")));
        if !keep {
            self.connection = None;
        }
        result
    }

    fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        let reader = self
            .connection
            .as_mut()
            .ok_or_else(|| io::Error::other("no connection"))?;
        reader.get_mut().write_all(request)?;

        let status_line = read_line(reader)?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| io::Error::other(format!("malformed status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line(reader)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| io::Error::other(format!("malformed header {line:?}")))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if response
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
        {
            response.body = read_chunked(reader)?;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| io::Error::other(format!("malformed Content-Length {length:?}")))?;
            response.body = vec![0; length];
            reader.read_exact(&mut response.body)?;
        }
        Ok(response)
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a complete response",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::other(format!("malformed chunk size {size_line:?}")))?;
        if size == 0 {
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

/// curl's exit status for an HTTP/2 stream that the server reset.
const CURL_HTTP2_STREAM_ERROR: i32 = 92;

/// Sends `plan` over cleartext HTTP/2 with curl.
///
/// nginx responds to a request that fails before its body is read, such as a
/// POST during the resolver's downtime, and then resets the stream with
/// `NO_ERROR` to stop the upload, as RFC 9113 section 8.1 allows. curl 7.88
/// then exits with status 92 and prints nothing. For a request with a body
/// that sets `early_reset`: the response was an error sent before the body
/// was read, whose status is unknown.
fn send_http2(addr: SocketAddr, plan: &Plan, early_reset: &mut bool) -> io::Result<Response> {
    let mut command = Command::new(std::env::var("CURL").unwrap_or_else(|_| "curl".to_owned()));
    command
        .args([
            "--silent",
            "--show-error",
            "--http2-prior-knowledge",
            "--include",
        ])
        .args(["--max-time", &REQUEST_TIMEOUT.as_secs().to_string()]);
    for (name, value) in &plan.headers {
        command.arg("--header").arg(format!("{name}: {value}"));
    }
    if plan.body.is_some() {
        command.args(["--data-binary", "@-"]);
        command.stdin(std::process::Stdio::piped());
    }
    command.arg(format!("http://{addr}{}", plan.target()));
    command.stdout(std::process::Stdio::piped());
    command.stderr(std::process::Stdio::piped());

    let mut child = command.spawn()?;
    if let (Some(body), Some(mut stdin)) = (&plan.body, child.stdin.take()) {
        stdin.write_all(body)?;
    }
    let output = child.wait_with_output()?;
    let failure = || {
        io::Error::other(format!(
            "curl failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    };
    if !output.status.success() {
        *early_reset = plan.body.is_some() && output.status.code() == Some(CURL_HTTP2_STREAM_ERROR);
        return Err(failure());
    }
    parse_curl_output(&output.stdout)
}

/// Parses curl's `--include` output: the status line, headers, an empty
/// line and the body.
fn parse_curl_output(stdout: &[u8]) -> io::Result<Response> {
    let separator = stdout
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no end of headers in curl's output"))?;
    let head = String::from_utf8_lossy(&stdout[..separator]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/2 ") {
        return Err(io::Error::other(format!(
            "the response did not come over HTTP/2: {status_line:?}"
        )));
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| io::Error::other(format!("malformed status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: stdout[separator + 4..].to_vec(),
    })
}

/// The counters of one client thread, merged at the end.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    http2: u64,
    posts: u64,
    spoofed: u64,
    by_status: BTreeMap<u16, u64>,
    by_credential: BTreeMap<String, u64>,
    cache: BTreeMap<String, u64>,
    /// When a request was sent once more after a transport error.
    retries: Vec<Duration>,
    /// HTTP/2 requests with a body whose stream nginx reset after an early
    /// error response, see `send_http2`: start and end.
    early_resets: Vec<(Duration, Duration)>,
    /// Requests that failed at the transport level, also after a retry:
    /// start, end and the error.
    transport_errors: Vec<(Duration, Duration, String)>,
    /// Responses with a 5xx status: start, end and status.
    server_errors: Vec<(Duration, Duration, u16)>,
    /// Requests whose upstream saw another identity, a spoofed header or
    /// another body.
    violations: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.http2 += other.http2;
        self.posts += other.posts;
        self.spoofed += other.spoofed;
        for (status, count) in other.by_status {
            *self.by_status.entry(status).or_default() += count;
        }
        for (label, count) in other.by_credential {
            *self.by_credential.entry(label).or_default() += count;
        }
        for (status, count) in other.cache {
            *self.cache.entry(status).or_default() += count;
        }
        self.retries.extend(other.retries);
        self.early_resets.extend(other.early_resets);
        self.transport_errors.extend(other.transport_errors);
        self.server_errors.extend(other.server_errors);
        self.violations.extend(other.violations);
    }

    /// Counts one response and checks what the upstream saw.
    fn record(
        &mut self,
        plan: &Plan,
        response: &Response,
        started: Duration,
        finished: Duration,
        expected: &BTreeMap<Credential, Vec<(String, String)>>,
    ) {
        *self.by_status.entry(response.status).or_default() += 1;
        if let Some(status) = response.header("x-cache-status") {
            *self.cache.entry(status.to_owned()).or_default() += 1;
        }
        if response.status >= 500 {
            self.server_errors
                .push((started, finished, response.status));
        }
        if response.status != 200 {
            return;
        }

        let report: EchoReport = match serde_json::from_slice(&response.body) {
            Ok(report) => report,
            Err(error) => {
                self.violations.push(format!(
                    "request {}: 200 without an echo report ({error})",
                    plan.serial
                ));
                return;
            }
        };
        let seen = identity_headers(&report);
        let expected_identity = expected.get(&plan.credential).cloned().unwrap_or_default();
        if seen != expected_identity {
            self.violations.push(format!(
                "request {} ({}): the upstream saw {seen:?}, expected {expected_identity:?}",
                plan.serial,
                plan.credential.label()
            ));
        }
        if report
            .headers
            .iter()
            .any(|(_, value)| value.contains(SPOOF_MARKER))
        {
            self.violations.push(format!(
                "request {} ({}): a spoofed header reached the upstream: {:?}",
                plan.serial,
                plan.credential.label(),
                report.headers
            ));
        }
        let body = plan.body.as_deref().unwrap_or_default();
        let digest: String = Sha256::digest(body)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        if report.body_length != body.len() as u64 || report.body_sha256 != digest {
            self.violations.push(format!(
                "request {}: the upstream got {} body bytes, {} were sent",
                plan.serial,
                report.body_length,
                body.len()
            ));
        }
    }
}

/// Sends requests until `stop` is set, over HTTP/1.1 or, with `http2`,
/// over HTTP/2 with curl.
fn run_client(
    id: u64,
    http2: bool,
    addrs: (SocketAddr, SocketAddr),
    origin: Instant,
    stop: Arc<AtomicBool>,
    expected: Arc<BTreeMap<Credential, Vec<(String, String)>>>,
) -> Tally {
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x1000_0000_01b3));
    let mut client = Client::new(addrs.0);
    let mut tally = Tally::default();
    let mut serial = id << 40;
    // Bounded by `stop`, which the main thread sets at the end of the run.
    while !stop.load(Ordering::Relaxed) {
        serial += 1;
        let plan = Plan::new(&mut random, serial, MAX_BODY);
        tally.requests += 1;
        tally.posts += u64::from(plan.body.is_some());
        tally.spoofed += u64::from(plan.spoofed);
        tally.http2 += u64::from(http2);
        *tally
            .by_credential
            .entry(plan.credential.label())
            .or_default() += 1;

        let started = origin.elapsed();
        let mut early_reset = false;
        let mut send = |early_reset: &mut bool| {
            if http2 {
                send_http2(addrs.1, &plan, early_reset)
            } else {
                client.send(&plan.to_http1())
            }
        };
        let mut result = send(&mut early_reset);
        // A connection that a worker closes while it shuts down after a
        // reload fails the request without a response: send it once more.
        if result.is_err() && !early_reset {
            tally.retries.push(origin.elapsed());
            result = send(&mut early_reset);
        }
        let finished = origin.elapsed();
        match result {
            Ok(response) => tally.record(&plan, &response, started, finished, &expected),
            Err(_) if early_reset => tally.early_resets.push((started, finished)),
            Err(error) => tally.transport_errors.push((
                started,
                finished,
                format!(
                    "{} {} ({}, {} body bytes): {error}",
                    if http2 { "HTTP/2" } else { "HTTP/1.1" },
                    plan.method(),
                    plan.credential.label(),
                    plan.body.as_ref().map_or(0, Vec::len)
                ),
            )),
        }
    }
    tally
}

/// The resident memory of one process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
struct Resident {
    /// `VmRSS`: every resident page.
    total: u64,
    /// `RssShmem`: resident pages of shared memory, such as the cache zone,
    /// which count once the process has touched them.
    shared: u64,
}

impl Resident {
    /// Returns the resident pages that belong to the process alone.
    fn private(self) -> u64 {
        self.total.saturating_sub(self.shared)
    }
}

/// Reads the resident memory of a process.
fn resident(pid: u32) -> Option<Resident> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Resident {
        total: field("VmRSS:")?,
        shared: field("RssShmem:").unwrap_or(0),
    })
}

/// Lists the worker processes of the master `master`: children whose title
/// is `nginx: worker process`, without those shutting down after a reload.
fn workers(master: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let parent = status
                .lines()
                .find_map(|line| line.strip_prefix("PPid:"))
                .and_then(|value| value.trim().parse::<u32>().ok());
            let title = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let title = String::from_utf8_lossy(&title);
            parent == Some(master) && title.trim_end_matches('\0') == "nginx: worker process"
        })
        .collect()
}

/// One memory sample: the worker with the most private memory, and the
/// master.
#[derive(Debug, Clone, Copy)]
struct MemorySample {
    at: Duration,
    worker: Resident,
    workers: usize,
    master: Resident,
}

fn sample_memory(master: u32, at: Duration) -> MemorySample {
    let pids = workers(master);
    MemorySample {
        at,
        worker: pids
            .iter()
            .filter_map(|pid| resident(*pid))
            .max_by_key(|memory| memory.private())
            .unwrap_or_default(),
        workers: pids.len(),
        master: resident(master).unwrap_or_default(),
    }
}

fn read_master_pid(prefix: &Path) -> u32 {
    let text = fs::read_to_string(prefix.join("nginx.pid")).expect("read nginx.pid");
    text.trim().parse().expect("a pid in nginx.pid")
}

fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: kill() has no memory-safety preconditions, and `pid` is the
    // master process of the nginx this test started.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        result,
        0,
        "kill({pid}, {signal}) failed: {}",
        io::Error::last_os_error()
    );
}

/// Returns the configuration: two worker processes, a 1 MB cache zone with
/// short lifetimes and a stale window, keepalive to both upstreams, and the
/// cache status in every response.
fn soak_nginx(resolver: SocketAddr, echo: SocketAddr) -> NginxBuilder {
    NginxBuilder::new()
        .worker_processes(2)
        .error_log_level("notice")
        .main("worker_shutdown_timeout 10s;")
        .http(&resolver_upstream(resolver))
        .http(&format!(
            "upstream soak_echo {{\n\
             \x20   server {echo};\n\
             \x20   keepalive 16;\n\
             }}\n"
        ))
        .http("authgear_cache_zone zone=soak:1m;")
        .http2_listener()
        .server(&resolver_location(
            "proxy_read_timeout 5s; proxy_connect_timeout 2s;",
        ))
        .server(&format!(
            "location /soak/ {{\n\
             \x20   access_log off;\n\
             \x20   authgear_resolve {RESOLVER_URI};\n\
             \x20   authgear_cache soak;\n\
             \x20   authgear_cache_valid valid 10s;\n\
             \x20   authgear_cache_valid invalid none 5s;\n\
             \x20   authgear_cache_use_stale 15s;\n\
             \x20   proxy_pass http://soak_echo;\n\
             \x20   proxy_http_version 1.1;\n\
             \x20   proxy_set_header Connection \"\";\n\
             \x20   add_header X-Cache-Status $authgear_cache_status always;\n\
             }}\n"
        ))
}

/// Sends one request per credential with the resolver up and no cache
/// entry yet, and returns the identity the upstream saw for each.
fn expected_identities(addr: SocketAddr) -> BTreeMap<Credential, Vec<(String, String)>> {
    let mut client = Client::new(addr);
    let mut expected = BTreeMap::new();
    for (credential, _) in CREDENTIALS {
        let plan = Plan {
            credential,
            spoofed: false,
            body: None,
            headers: credential.headers(0),
            serial: 0,
        };
        let response = client
            .send(&plan.to_http1())
            .unwrap_or_else(|error| panic!("baseline request for {credential:?}: {error}"));
        assert_eq!(response.status, 200, "baseline status for {credential:?}");
        let report: EchoReport =
            serde_json::from_slice(&response.body).expect("an echo report for the baseline");
        expected.insert(credential, identity_headers(&report));
    }
    expected
}

/// The outcome of a run, as printed and checked.
struct Report {
    settings: Settings,
    tally: Tally,
    downtime: (Duration, Duration),
    /// When each reload signal was sent.
    reload_times: Vec<Duration>,
    memory: Vec<MemorySample>,
    crashes: Vec<String>,
    alerts: usize,
}

impl Report {
    /// Reports whether a request that ran from `start` to `end` overlaps the
    /// resolver's downtime, with `RECOVERY_GRACE` after the restart.
    fn during_downtime(&self, start: Duration, end: Duration) -> bool {
        start <= self.downtime.1 + RECOVERY_GRACE && end >= self.downtime.0
    }

    fn server_errors_outside_downtime(&self) -> Vec<&(Duration, Duration, u16)> {
        self.tally
            .server_errors
            .iter()
            .filter(|(start, end, _)| !self.during_downtime(*start, *end))
            .collect()
    }

    fn early_resets_outside_downtime(&self) -> usize {
        self.tally
            .early_resets
            .iter()
            .filter(|(start, end)| !self.during_downtime(*start, *end))
            .count()
    }

    /// Returns the growth of a worker's memory from the first to the last
    /// sample, as a fraction: of the total RSS and of the private part.
    fn rss_growth(&self) -> Option<(f64, f64)> {
        let sampled = |sample: &&MemorySample| sample.worker.total > 0;
        let first = self.memory.iter().find(sampled)?.worker;
        let last = self.memory.iter().rev().find(sampled)?.worker;
        let growth = |last: u64, first: u64| last as f64 / first.max(1) as f64 - 1.0;
        Some((
            growth(last.total, first.total),
            growth(last.private(), first.private()),
        ))
    }

    fn render(&self) -> String {
        let tally = &self.tally;
        let seconds = self.settings.duration.as_secs_f64();
        let mut out = String::new();
        out.push_str(&format!(
            "soak: {:.0} s, {} HTTP/1.1 clients and 1 HTTP/2 client, reload every {} s, \
             resolver down from {:.1} s to {:.1} s\n",
            seconds,
            self.settings.clients,
            self.settings.reload_interval.as_secs(),
            self.downtime.0.as_secs_f64(),
            self.downtime.1.as_secs_f64(),
        ));
        out.push_str(&format!(
            "requests: {} ({:.0}/s), HTTP/2: {}, POST: {}, with spoofed headers: {}\n",
            tally.requests,
            tally.requests as f64 / seconds,
            tally.http2,
            tally.posts,
            tally.spoofed
        ));

        out.push_str("requests by credential:\n");
        for (label, count) in &tally.by_credential {
            out.push_str(&format!("  {label:<24} {count}\n"));
        }

        out.push_str("responses by status:\n");
        for (status, count) in &tally.by_status {
            out.push_str(&format!("  {status} {count}\n"));
        }

        let outside = self.server_errors_outside_downtime();
        out.push_str(&format!(
            "5xx: {} during the resolver's downtime, {} outside it\n",
            tally.server_errors.len() - outside.len(),
            outside.len()
        ));
        out.push_str(&format!(
            "HTTP/2 POSTs reset after an early error response: {} during the downtime, \
             {} outside it\n",
            tally.early_resets.len() - self.early_resets_outside_downtime(),
            self.early_resets_outside_downtime()
        ));
        let after_reload = tally
            .retries
            .iter()
            .filter(|retry| {
                self.reload_times
                    .iter()
                    .any(|reload| **retry >= *reload && **retry - *reload <= RELOAD_AFTERMATH)
            })
            .count();
        out.push_str(&format!(
            "transport errors after a retry: {}, retries on a new connection: {} \
             ({} of them within {} s after a reload)\n",
            tally.transport_errors.len(),
            tally.retries.len(),
            after_reload,
            RELOAD_AFTERMATH.as_secs()
        ));
        out.push_str(&format!(
            "upstream requests with another identity, a spoofed header or another body: {}\n",
            tally.violations.len()
        ));

        let cached: u64 = tally.cache.values().sum();
        let hits = tally.cache.get("HIT").copied().unwrap_or(0)
            + tally.cache.get("UPDATING").copied().unwrap_or(0);
        out.push_str(&format!(
            "cache: {:?}, hit ratio {:.1} % (HIT and UPDATING of {} responses)\n",
            tally.cache,
            100.0 * hits as f64 / cached.max(1) as f64,
            cached
        ));
        out.push_str(&format!(
            "reloads: {}, worker crashes: {}, [alert]/[crit]/[emerg] lines: {}\n",
            self.reload_times.len(),
            self.crashes.len(),
            self.alerts
        ));

        out.push_str(
            "memory before each reload, in KiB: RSS of the worker with the most private \
             memory (private + shared memory such as the cache zone), and the master's RSS\n",
        );
        for sample in &self.memory {
            out.push_str(&format!(
                "  {:>6.1} s  worker {:>6} = {:>6} + {:>5}  ({} workers)  master {:>6}\n",
                sample.at.as_secs_f64(),
                sample.worker.total,
                sample.worker.private(),
                sample.worker.shared,
                sample.workers,
                sample.master.total
            ));
        }

        if let Some((total, private)) = self.rss_growth() {
            out.push_str(&format!(
                "worker memory growth from the first to the last sample: RSS {:+.1} %, \
                 private {:+.1} %\n",
                total * 100.0,
                private * 100.0
            ));
        }

        for (start, end, status) in outside.iter().take(10) {
            out.push_str(&format!(
                "  5xx outside the downtime: {status} from {:.3} s to {:.3} s\n",
                start.as_secs_f64(),
                end.as_secs_f64()
            ));
        }
        for (start, _, error) in tally.transport_errors.iter().take(10) {
            out.push_str(&format!(
                "  transport error at {:.3} s: {error}\n",
                start.as_secs_f64()
            ));
        }
        for violation in tally.violations.iter().take(10) {
            out.push_str(&format!("  {violation}\n"));
        }
        for crash in self.crashes.iter().take(10) {
            out.push_str(&format!("  {crash}\n"));
        }
        out
    }
}

/// Writes the report to `SOAK_REPORT` when set.
fn write_report(text: &str) {
    if let Some(path) = std::env::var_os("SOAK_REPORT") {
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent() {
            let _ = fs::create_dir_all(parent);
        }
        fs::write(&path, text)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
    }
}

#[test]
#[ignore = "runs for minutes: `make soak`, or SOAK_SECONDS=30 with --ignored"]
fn soak() {
    let settings = Settings::from_env();
    let resolver_addr = bind_local().local_addr().expect("local address");
    let mut resolver: Option<ResolverHandle> = Some(
        start_resolver(
            std::net::TcpListener::bind(resolver_addr).expect("bind the resolver's port"),
            test_directory(),
        )
        .expect("start the stand-in resolver"),
    );
    let echo = start_echo(bind_local()).expect("start the echo application");
    let builder = soak_nginx(resolver_addr, echo.addr());
    let prefix = builder.prefix().to_owned();
    let nginx = builder.start();
    let master = read_master_pid(&prefix);

    let expected = Arc::new(expected_identities(nginx.addr()));
    assert_eq!(
        expected.get(&Credential::Absent),
        Some(&Vec::new()),
        "identity without credentials"
    );
    assert_eq!(
        expected.get(&Credential::BogusBearer),
        Some(&Vec::new()),
        "identity of a bogus bearer token"
    );

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let addrs = (nginx.addr(), nginx.http2_addr());
    let clients: Vec<thread::JoinHandle<Tally>> = (0..=settings.clients)
        .map(|id| {
            let stop = Arc::clone(&stop);
            let expected = Arc::clone(&expected);
            let http2 = id == settings.clients;
            thread::spawn(move || run_client(id as u64, http2, addrs, origin, stop, expected))
        })
        .collect();

    let downtime_start = settings.downtime_start();
    let downtime_end = downtime_start + settings.downtime;
    let mut downtime = (Duration::MAX, Duration::MAX);
    let mut memory = vec![];
    let mut reload_times = Vec::new();
    let mut next_reload = settings.reload_interval;
    let mut restart_error = None;

    // Bounded by the run's duration.
    while origin.elapsed() < settings.duration {
        let now = origin.elapsed();
        if now >= next_reload {
            memory.push(sample_memory(master, now));
            send_signal(master, libc::SIGHUP);
            reload_times.push(origin.elapsed());
            next_reload += settings.reload_interval;
        }
        if now >= downtime_start && downtime.0 == Duration::MAX {
            downtime.0 = now;
            if let Some(handle) = resolver.take() {
                handle.shutdown();
            }
        }
        if now >= downtime_end && resolver.is_none() {
            match std::net::TcpListener::bind(resolver_addr)
                .and_then(|listener| start_resolver(listener, test_directory()))
            {
                Ok(handle) => {
                    resolver = Some(handle);
                    downtime.1 = origin.elapsed();
                }
                Err(error) => {
                    // Retried on the next turn of the loop.
                    restart_error = Some(error.to_string());
                }
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for client in clients {
        tally.merge(client.join().expect("a client thread panicked"));
    }
    memory.push(sample_memory(master, origin.elapsed()));

    let log = nginx.error_log();
    let crashes: Vec<String> = log
        .lines()
        .filter(|line| line.contains("exited on signal"))
        .map(str::to_owned)
        .collect();
    let alerts = log
        .lines()
        .filter(|line| {
            ["[alert]", "[crit]", "[emerg]"]
                .iter()
                .any(|level| line.contains(level))
        })
        .count();

    let report = Report {
        settings: settings.clone(),
        tally,
        downtime,
        reload_times,
        memory,
        crashes,
        alerts,
    };
    let text = report.render();
    println!("{text}");
    write_report(&text);

    assert!(
        resolver.is_some(),
        "the resolver did not restart: {restart_error:?}"
    );
    assert!(report.tally.requests > 0, "no request was sent");
    assert_eq!(
        report.server_errors_outside_downtime().len(),
        0,
        "5xx responses outside the resolver's downtime"
    );
    assert_eq!(
        report.early_resets_outside_downtime(),
        0,
        "HTTP/2 requests answered early outside the resolver's downtime"
    );
    assert_eq!(
        report.tally.violations.len(),
        0,
        "upstream requests with another identity, a spoofed header or another body"
    );
    assert_eq!(
        report.tally.transport_errors.len(),
        0,
        "requests that failed at the transport level twice"
    );
    assert_eq!(report.crashes.len(), 0, "worker processes that crashed");
    // The cache zone's pages count in a worker's RSS once it touches them,
    // so RSS grows until the zone is full: the private part shows a leak.
    let (_, private_growth) = report.rss_growth().expect("memory samples of the workers");
    assert!(
        private_growth <= MAX_RSS_GROWTH,
        "worker private memory grew by {:.1} %, more than {:.0} %",
        private_growth * 100.0,
        MAX_RSS_GROWTH * 100.0
    );
}
