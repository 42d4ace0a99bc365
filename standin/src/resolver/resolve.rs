//! Resolves the credentials of a resolve request into the resolver's response headers.

use std::fmt;
use std::time::Duration;

use hyper::HeaderMap;

use super::credentials::{bearer_token, cookie, is_session_cookie_value};
use crate::directory::{Directory, Session, User, UserStatus};
use crate::fault::Fault;

/// Kind of credential a request presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// `Authorization: Bearer` with a token starting with `eyJ`, which Authgear checks as a
    /// JWT access token.
    BearerJwt,
    /// `Authorization: Bearer` with any other token, which Authgear checks as an opaque token.
    BearerOpaque,
    /// The `app_session` cookie.
    AppSessionCookie,
    /// The `app_access_token` cookie.
    AppAccessTokenCookie,
    /// The `session` cookie of the browser session.
    SessionCookie,
}

impl CredentialKind {
    /// Returns the name used in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::BearerJwt => "bearer-jwt",
            CredentialKind::BearerOpaque => "bearer-opaque",
            CredentialKind::AppSessionCookie => "app-session-cookie",
            CredentialKind::AppAccessTokenCookie => "app-access-token-cookie",
            CredentialKind::SessionCookie => "session-cookie",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Row of the resolver contract that a request fell into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// No credentials: no `X-Authgear-*` headers.
    NoCredentials,
    /// Only invalid bearer tokens or app cookies, and no `session` cookie: no
    /// `X-Authgear-*` headers, the same as no credentials.
    InvalidCredentials,
    /// A `session` cookie that is malformed, unknown or expired, and no valid credential
    /// before it: `X-Authgear-Session-Valid: false` and a cookie that clears `session`.
    InvalidSession,
    /// A valid credential of a disabled, deactivated or deleted user:
    /// `X-Authgear-Session-Valid: false`, plus the clearing cookie when a `session` cookie
    /// was sent.
    InactiveUser,
    /// A valid credential of an active user: the full header set.
    Valid,
}

impl Outcome {
    /// Returns the name used in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NoCredentials => "no-credentials",
            Outcome::InvalidCredentials => "invalid-credentials",
            Outcome::InvalidSession => "invalid-session",
            Outcome::InactiveUser => "inactive-user",
            Outcome::Valid => "valid",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Result of resolving one request's credentials against a directory.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Resolution {
    /// Credentials present, in the order they were checked.
    pub presented: Vec<CredentialKind>,
    /// The credential that decided the outcome: the first valid one, or the invalid
    /// `session` cookie.
    pub matched: Option<CredentialKind>,
    pub outcome: Outcome,
    /// Headers of the 200 response in sending order: `X-Authgear-*`, `Set-Cookie`, then the
    /// extra headers of credential faults.
    pub headers: Vec<(String, String)>,
    /// Sum of the delay faults of the credentials looked up.
    pub delay: Duration,
    /// A terminal fault of a credential looked up, which replaces the response.
    pub terminal_fault: Option<Fault>,
}

const SESSION_COOKIE: &str = "session";
const APP_SESSION_COOKIE: &str = "app_session";
const APP_ACCESS_TOKEN_COOKIE: &str = "app_access_token";

/// Resolves the credentials in `headers` in Authgear's order: bearer token, `app_session`
/// cookie, `app_access_token` cookie, `session` cookie. The first valid credential decides,
/// even when a later one belongs to another user. Invalid credentials fall through to the
/// next one.
pub(crate) fn resolve(directory: &Directory, headers: &HeaderMap) -> Resolution {
    let session_cookie_name = format!("{}{SESSION_COOKIE}", directory.cookie_prefix);
    let candidates = presented_credentials(directory, headers, &session_cookie_name);
    let session_cookie_sent = candidates
        .iter()
        .any(|(kind, _)| *kind == CredentialKind::SessionCookie);

    let mut resolution = Resolution {
        presented: candidates.iter().map(|(kind, _)| *kind).collect(),
        matched: None,
        outcome: Outcome::NoCredentials,
        headers: Vec::new(),
        delay: Duration::ZERO,
        terminal_fault: None,
    };

    let mut found = None;
    let mut fault_headers = Vec::new();
    for (kind, session) in &candidates {
        let Some(session) = session else { continue };
        match &session.fault {
            Some(Fault::Delay(delay)) => resolution.delay += *delay,
            Some(Fault::ExtraHeaders(extra)) => fault_headers.extend(extra.iter().cloned()),
            Some(fault) if fault.is_terminal() => {
                resolution.matched = Some(*kind);
                resolution.terminal_fault = Some(fault.clone());
                return resolution;
            }
            _ => {}
        }
        if !session.expired {
            found = Some((*kind, *session));
            break;
        }
    }

    let clearing_cookie =
        session_cookie_sent.then(|| clearing_cookie(directory, &session_cookie_name));
    if let Some((kind, session)) = found {
        resolution.matched = Some(kind);
        let user = directory
            .users
            .get(&session.user)
            .filter(|user| user.status == UserStatus::Active);
        if let Some(user) = user {
            resolution.outcome = Outcome::Valid;
            resolution.headers = valid_headers(session, user);
        } else {
            resolution.outcome = Outcome::InactiveUser;
            resolution.headers = invalid_headers(clearing_cookie);
        }
    } else if session_cookie_sent {
        resolution.matched = Some(CredentialKind::SessionCookie);
        resolution.outcome = Outcome::InvalidSession;
        resolution.headers = invalid_headers(clearing_cookie);
    } else if !candidates.is_empty() {
        resolution.outcome = Outcome::InvalidCredentials;
    }
    resolution.headers.append(&mut fault_headers);
    resolution
}

/// Returns the credentials present in `headers` in the order they are checked, each with
/// the directory entry it names, or `None` when it names no entry or is malformed.
fn presented_credentials<'a>(
    directory: &'a Directory,
    headers: &HeaderMap,
    session_cookie_name: &str,
) -> Vec<(CredentialKind, Option<&'a Session>)> {
    let prefix = &directory.cookie_prefix;
    let mut candidates = Vec::new();

    if let Some(token) = bearer_token(headers) {
        let kind = if token.starts_with("eyJ") {
            CredentialKind::BearerJwt
        } else {
            CredentialKind::BearerOpaque
        };
        candidates.push((kind, directory.tokens.get(token)));
    }
    if let Some(value) = cookie(headers, &format!("{prefix}{APP_SESSION_COOKIE}")) {
        candidates.push((
            CredentialKind::AppSessionCookie,
            directory.app_sessions.get(value),
        ));
    }
    if let Some(value) = cookie(headers, &format!("{prefix}{APP_ACCESS_TOKEN_COOKIE}")) {
        candidates.push((
            CredentialKind::AppAccessTokenCookie,
            directory.tokens.get(value),
        ));
    }
    if let Some(value) = cookie(headers, session_cookie_name) {
        // A malformed value is never looked up, so it is invalid like an unknown one.
        let session = if is_session_cookie_value(value) {
            directory.sessions.get(value)
        } else {
            None
        };
        candidates.push((CredentialKind::SessionCookie, session));
    }
    candidates
}

/// Returns the full header set of a valid response, then the user's extra headers.
fn valid_headers(session: &Session, user: &User) -> Vec<(String, String)> {
    let mut headers = vec![
        header("X-Authgear-Session-Valid", "true"),
        header("X-Authgear-User-Id", &session.user),
        header("X-Authgear-User-Anonymous", bool_text(user.anonymous)),
        header("X-Authgear-User-Verified", bool_text(user.verified)),
        header(
            "X-Authgear-User-Can-Reauthenticate",
            bool_text(user.can_reauthenticate),
        ),
        header("X-Authgear-Session-Amr", &session.amr.join(" ")),
    ];
    if !user.roles.is_empty() {
        headers.push(header("X-Authgear-User-Roles", &user.roles.join(",")));
    }
    if let Some(authenticated_at) = session.authenticated_at {
        headers.push(header(
            "X-Authgear-Session-Authenticated-At",
            &authenticated_at.to_string(),
        ));
    }
    headers.extend(
        user.extra_headers
            .iter()
            .map(|(name, value)| header(name, value)),
    );
    headers
}

/// Returns the headers of an invalid response: `X-Authgear-Session-Valid: false`, then the
/// cookie that clears `session` if one was sent.
fn invalid_headers(clearing_cookie: Option<String>) -> Vec<(String, String)> {
    let mut headers = vec![header("X-Authgear-Session-Valid", "false")];
    if let Some(cookie) = clearing_cookie {
        headers.push(header("Set-Cookie", &cookie));
    }
    headers
}

/// Returns the `Set-Cookie` value that clears the `session` cookie, with attributes in the
/// order Go's `http.Cookie.String` writes them.
pub(crate) fn clearing_cookie(directory: &Directory, name: &str) -> String {
    let mut cookie = format!("{name}=; Path=/");
    if let Some(domain) = &directory.cookie_domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    cookie.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly");
    if directory.cookie_secure {
        cookie.push_str("; Secure");
    }
    cookie.push_str("; SameSite=Lax");
    cookie
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn bool_text(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}
