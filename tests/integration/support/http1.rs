//! A raw HTTP/1.1 client over `TcpStream`.
//!
//! It sends header names exactly as given, in any letter case and as many
//! times as given, which an ordinary client library normalizes or refuses.
//! A connection stays open for several requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use authgear_standin::EchoReport;

/// Maximum time to wait for nginx's response.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP/1.1 request, written to the wire as given.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    /// Header lines in sending order, names in the case given.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn new(method: &str, target: &str) -> Self {
        RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// Appends a header line, even when one of the same name exists.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body. `to_bytes` adds `Content-Length` unless a
    /// `Content-Length` or `Transfer-Encoding` header is set.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(header, _)| header.eq_ignore_ascii_case(name))
    }

    /// Serializes the request. It adds `Host: localhost` when no `Host`
    /// header is set.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !self.has_header("host") {
            head.push_str("Host: localhost\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let framed = self.has_header("content-length") || self.has_header("transfer-encoding");
        if !self.body.is_empty() && !framed {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");

        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A response as read from the wire.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Header lines in received order, names in the case received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Returns the values of every header named `name`, compared without case.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Returns the value of the header named `name`, or `None` when it is
    /// absent. Panics when the response repeats it.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.header_values(name);
        assert!(values.len() <= 1, "header {name} repeated: {values:?}");
        values.first().copied()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses the body as the echo application's JSON report. Panics with
    /// the status and body when the response is not one.
    pub fn echo(&self) -> EchoReport {
        assert_eq!(
            self.status,
            200,
            "expected the echo application's 200, got {} with body {:?}",
            self.status,
            self.body_text()
        );
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "response is not an echo report ({error}): {:?}",
                self.body_text()
            )
        })
    }
}

/// One client connection, kept open across requests.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> Self {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|error| panic!("connect to {addr}: {error}"));
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set read timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Connection {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, request: &RawRequest) {
        self.reader
            .get_mut()
            .write_all(&request.to_bytes())
            .expect("write the request");
    }

    /// Reads one response. Set `head_request` for the response to a HEAD
    /// request, which has no body even when it carries `Content-Length`.
    pub fn read_response(&mut self, head_request: bool) -> Response {
        let status_line = self.read_line();
        let status = parse_status_line(&status_line);

        let mut headers = Vec::new();
        loop {
            let line = self.read_line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("malformed header line {line:?}"));
            headers.push((name.to_owned(), value.trim().to_owned()));
        }

        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            return response;
        }
        response.body = if response
            .header_values("transfer-encoding")
            .iter()
            .any(|value| value.eq_ignore_ascii_case("chunked"))
        {
            self.read_chunked_body()
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("numeric Content-Length");
            let mut body = vec![0; length];
            self.reader
                .read_exact(&mut body)
                .expect("read the response body");
            body
        } else {
            let mut body = Vec::new();
            self.reader
                .read_to_end(&mut body)
                .expect("read the body until close");
            body
        };
        response
    }

    /// Sends `request` and reads its response.
    pub fn round_trip(&mut self, request: &RawRequest) -> Response {
        self.send(request);
        self.read_response(request.method.eq_ignore_ascii_case("HEAD"))
    }

    /// Reads a line without its CRLF.
    fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("read a line of the response");
        assert!(
            !line.is_empty(),
            "connection closed before a complete response"
        );
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    fn read_chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let size_line = self.read_line();
            let size_text = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .unwrap_or_else(|_| panic!("malformed chunk size line {size_line:?}"));
            if size == 0 {
                // Trailer fields, if any, end with an empty line.
                while !self.read_line().is_empty() {}
                return body;
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader
                .read_exact(&mut body[start..])
                .expect("read a chunk");
            assert!(self.read_line().is_empty(), "chunk not followed by CRLF");
        }
    }
}

fn parse_status_line(line: &str) -> u16 {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    assert!(
        version.starts_with("HTTP/1."),
        "malformed status line {line:?}"
    );
    parts
        .next()
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("malformed status line {line:?}"))
}

/// Sends `request` on a new connection and returns the response.
pub fn send(addr: SocketAddr, request: &RawRequest) -> Response {
    Connection::open(addr).round_trip(request)
}
