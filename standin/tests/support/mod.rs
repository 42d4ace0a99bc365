//! Shared test code: a minimal HTTP/1.1 client over `std::net::TcpStream`, and a
//! directory with one user, session and token for every row of the resolver contract.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use authgear_standin::{start_resolver, Directory, ResolverHandle, Session, User, UserStatus};

/// Time after which a test read gives up instead of hanging the test run.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names as sent on the wire, in received order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Returns the first value of the header named `name`, compared without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Returns every value of the header named `name`, compared without case.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Returns the `X-Authgear-*` headers in received order, names in lower case.
    pub fn authgear_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(name, _)| name.to_ascii_lowercase().starts_with("x-authgear-"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection, which can carry several requests (keepalive).
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|error| panic!("failed to connect to {addr}: {error}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Connection {
            reader: BufReader::new(stream),
        }
    }

    /// Sends a request with `Host: 127.0.0.1`, the given headers and, when `body` is not
    /// empty, a `Content-Length` body. Returns the parsed response.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.write_all(head.as_bytes())?;
        self.write_all(body)?;
        self.read_response(method == "HEAD")
    }

    /// Sends a request whose body is sent with `Transfer-Encoding: chunked`, one chunk per
    /// element of `chunks`.
    pub fn send_chunked(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        chunks: &[&[u8]],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.write_all(head.as_bytes())?;
        for chunk in chunks {
            self.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            self.write_all(chunk)?;
            self.write_all(b"\r\n")?;
        }
        self.write_all(b"0\r\n\r\n")?;
        self.read_response(false)
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Reads one response. Set `head_request` for the response to a HEAD request, which has
    /// no body whatever its headers state.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let status_line = self.read_line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| invalid_data(format!("invalid status line {status_line:?}")))?;

        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid_data(format!("invalid header line {line:?}")))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };

        if head_request || status == 204 || status == 304 {
            return Ok(response);
        }
        if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| invalid_data(format!("invalid Content-Length {length:?}")))?;
            response.body = vec![0; length];
            self.reader.read_exact(&mut response.body)?;
        } else if response
            .header("transfer-encoding")
            .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked_body()?;
        } else {
            self.reader.read_to_end(&mut response.body)?;
        }
        Ok(response)
    }

    /// Whether the server has closed the connection: a read returns end of file, or the
    /// connection was reset. Waits at most `READ_TIMEOUT`.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    fn read_chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = self.read_line()?;
            let size_text = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid_data(format!("invalid chunk size line {size_line:?}")))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..])?;
            self.read_line()?;
        }
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a complete response",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Sends one request on a new connection and returns the response, panicking on an I/O error.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    Connection::open(addr)
        .send(method, target, headers, b"")
        .unwrap_or_else(|error| panic!("{method} {target} failed: {error}"))
}

/// Sends `GET /resolve` with the given headers on a new connection.
pub fn resolve(addr: SocketAddr, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", "/resolve", headers)
}

pub fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("failed to bind 127.0.0.1:0")
}

/// Starts a resolver with [`test_directory`].
pub fn start_test_resolver() -> ResolverHandle {
    start_resolver(bind_loopback(), test_directory()).expect("failed to start the resolver")
}

/// Returns a `Cookie` header value for one cookie.
pub fn cookie(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub const ALICE: &str = "e5dbe728-bb22-4ab4-a079-991cff7b3f18";
pub const BOB: &str = "f99cab79-bf5c-4375-af37-9fe3a3a2fed0";
pub const ANONYMOUS: &str = "980bb8a8-b566-46e7-91ad-cd9ec9ea528b";
pub const UNVERIFIED: &str = "3212843f-3b63-459b-b74b-ad777fca0f13";
pub const DISABLED: &str = "2db3ba9c-930f-4de3-8345-4e0454d66418";
pub const DEACTIVATED: &str = "6c1e0f7a-52d4-4b8e-9e3a-7d2b8f90c4a1";
pub const DELETED: &str = "b4a7d2e9-0c3f-4f61-8d5b-1e9a6c7f2d30";

pub const ALICE_SESSION: &str =
    "7b07af95-a4ed-40d7-9a02-6403d6f9a023.KNXtfP1qQ0COpaXeoBOYorgMVPptdPK8";
pub const BOB_SESSION: &str =
    "57a5a157-90bf-40c0-919f-35df53f0964d.qpLDoHlCaQm6Ap63SDylCuuvlBVltymy";
pub const ANONYMOUS_SESSION: &str =
    "09d1178e-d60d-4837-8d40-76b41e8a9072.NgD7KAwjeLrIeGljsbOU0ukEVFOZGsfJ";
pub const UNVERIFIED_SESSION: &str =
    "8f80db07-95e9-4658-81f7-6da08f83a6de.124beK5yoUS85XlqvdRDGVHWZf7FJ2R5";
pub const DISABLED_SESSION: &str =
    "0a614fb7-b781-41ec-aab2-307624c1ad66.AQSE1bKscObHankqvjYvCNj43lhq06F9";
pub const EXPIRED_SESSION: &str =
    "d9cb5951-d039-43cb-a0fe-6bc9bf0b57f6.LsFx4otWtqLqtEYyjN5AmiZSH8EY53e4";
/// Well-formed but not in the directory.
pub const UNKNOWN_SESSION: &str =
    "1d3f5a7c-9e0b-4c2d-8f4a-6b8c0e2a4f6d.Zx8Cv7Bn6Ml5Kj4Hg3Fd2Sa1Qw9Er0Ty";

pub const ALICE_OPAQUE_TOKEN: &str = "yPhQwn0tNlmBqRBYWUu04wnJCo7XQ7K5k4Igt1hRaGj";
pub const BOB_JWT_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmOTljYWI3OS1iZjVjIn0.c2lnbmF0dXJl";
pub const EXPIRED_TOKEN: &str = "Hq2Wn8Lx4Rk7Tv1Yp5Zc9Bd3Gf6Jm0Ns";
pub const DISABLED_TOKEN: &str = "Dq8Lm2Xv6Rt0Yp4Kc7Bn1Zs5Gf9Jw3Ha";
pub const DEACTIVATED_TOKEN: &str = "Vk3Np7Xq1Lr5Tz9Bc2Gm6Jd0Hs4Fw8Ya";
pub const DELETED_TOKEN: &str = "Wb5Rn9Xk3Lp7Tq1Yc4Gz8Jm2Hd6Fs0Va";
pub const UNKNOWN_TOKEN: &str = "Ux0Zq3Lw7Rk1Tp5Yn9Bc2Gf6Jm4Hd8Sv";
pub const UNKNOWN_JWT_TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJub2JvZHkifQ.";

pub const ALICE_APP_SESSION: &str =
    "e54eb1b3-c062-4838-8441-f3ef56e9c790.q5Z1H4FrAsU3fJZC69lQFWhtGfHIV1Jn";
pub const EXPIRED_APP_SESSION: &str =
    "3c9e1a5f-7b2d-4e8a-9f0c-2d4b6a8e0c1f.Pk4Lm8Nq2Rs6Tv0Wx3Yz7Ab1Cd5Ef9Gh";
pub const UNKNOWN_APP_SESSION: &str =
    "5e7a9c1b-3d5f-4a7c-8e0b-4f6d8a0c2e3b.Jn5Kp9Lq3Mr7Ns1Ot4Pu8Qv2Rw6Sx0Ty";

/// Returns the directory behind most tests.
///
/// - Alice: verified, can reauthenticate, roles `admin,editor`. Her browser session and
///   app session have AMR `pwd mfa` and authenticated at 1700000000. Her opaque token has
///   AMR `pwd` and no known authentication time.
/// - Bob: verified, no roles. His session has no AMR and no authentication time. His JWT
///   token has AMR `pwd` and authenticated at 1700003600.
/// - Anonymous, unverified, disabled, deactivated and deleted users, one credential each.
/// - An expired session, token and app session, all of Alice.
pub fn test_directory() -> Directory {
    let alice = User {
        verified: true,
        can_reauthenticate: true,
        roles: vec!["admin".into(), "editor".into()],
        ..User::new()
    };
    let bob = User {
        verified: true,
        ..User::new()
    };
    let anonymous = User {
        anonymous: true,
        ..User::new()
    };
    let unverified = User {
        can_reauthenticate: true,
        roles: vec!["viewer".into()],
        ..User::new()
    };
    let with_status = |status| User {
        verified: true,
        status,
        ..User::new()
    };

    let alice_strong = Session {
        amr: vec!["pwd".into(), "mfa".into()],
        authenticated_at: Some(1_700_000_000),
        ..Session::new(ALICE)
    };
    let expired = |session: Session| Session {
        expired: true,
        ..session
    };

    Directory::new()
        .with_user(ALICE, alice)
        .with_user(BOB, bob)
        .with_user(ANONYMOUS, anonymous)
        .with_user(UNVERIFIED, unverified)
        .with_user(DISABLED, with_status(UserStatus::Disabled))
        .with_user(DEACTIVATED, with_status(UserStatus::Deactivated))
        .with_user(DELETED, with_status(UserStatus::Deleted))
        .with_session(ALICE_SESSION, alice_strong.clone())
        .with_session(BOB_SESSION, Session::new(BOB))
        .with_session(ANONYMOUS_SESSION, Session::new(ANONYMOUS))
        .with_session(UNVERIFIED_SESSION, Session::new(UNVERIFIED))
        .with_session(DISABLED_SESSION, Session::new(DISABLED))
        .with_session(EXPIRED_SESSION, expired(alice_strong.clone()))
        .with_token(
            ALICE_OPAQUE_TOKEN,
            Session {
                amr: vec!["pwd".into()],
                ..Session::new(ALICE)
            },
        )
        .with_token(
            BOB_JWT_TOKEN,
            Session {
                amr: vec!["pwd".into()],
                authenticated_at: Some(1_700_003_600),
                ..Session::new(BOB)
            },
        )
        .with_token(EXPIRED_TOKEN, expired(Session::new(ALICE)))
        .with_token(DISABLED_TOKEN, Session::new(DISABLED))
        .with_token(DEACTIVATED_TOKEN, Session::new(DEACTIVATED))
        .with_token(DELETED_TOKEN, Session::new(DELETED))
        .with_app_session(ALICE_APP_SESSION, alice_strong.clone())
        .with_app_session(EXPIRED_APP_SESSION, expired(alice_strong))
}

/// Returns the `X-Authgear-*` headers of a valid response for `user` and its session, in the
/// order the resolver sends them, names in lower case.
pub fn valid_headers(user: &str, session: &str) -> Vec<(String, String)> {
    let directory = test_directory();
    let user_record = &directory.users[user];
    let session_record = directory
        .sessions
        .get(session)
        .or_else(|| directory.tokens.get(session))
        .or_else(|| directory.app_sessions.get(session))
        .expect("session of the test directory");

    let flag = |value: bool| value.to_string();
    let mut headers = vec![
        ("x-authgear-session-valid".to_owned(), "true".to_owned()),
        ("x-authgear-user-id".to_owned(), user.to_owned()),
        (
            "x-authgear-user-anonymous".to_owned(),
            flag(user_record.anonymous),
        ),
        (
            "x-authgear-user-verified".to_owned(),
            flag(user_record.verified),
        ),
        (
            "x-authgear-user-can-reauthenticate".to_owned(),
            flag(user_record.can_reauthenticate),
        ),
        (
            "x-authgear-session-amr".to_owned(),
            session_record.amr.join(" "),
        ),
    ];
    if !user_record.roles.is_empty() {
        headers.push((
            "x-authgear-user-roles".to_owned(),
            user_record.roles.join(","),
        ));
    }
    if let Some(authenticated_at) = session_record.authenticated_at {
        headers.push((
            "x-authgear-session-authenticated-at".to_owned(),
            authenticated_at.to_string(),
        ));
    }
    headers
}

/// Returns the `X-Authgear-*` headers of an invalid response.
pub fn invalid_headers() -> Vec<(String, String)> {
    vec![("x-authgear-session-valid".to_owned(), "false".to_owned())]
}

/// The cookie that clears `session` with no prefix, domain or `Secure`.
pub const CLEARING_COOKIE: &str =
    "session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax";
