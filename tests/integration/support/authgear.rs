//! The stand-in resolver and echo application, the users and credentials
//! they know, and the nginx configuration that connects them to the module.

use std::net::SocketAddr;

use authgear_standin::{
    start_echo, start_resolver, Directory, EchoHandle, EchoReport, ResolverHandle, Session, User,
    UserStatus,
};

use super::http1::Response;
use super::nginx::{bind_local, NginxBuilder};

/// The URI of the internal location that proxies to the resolver.
pub const RESOLVER_URI: &str = "/_authgear/resolve";

/// An active user with two roles, verified and able to reauthenticate.
pub const FULL_USER: &str = "7d3c6a41-2f8e-4b1a-9c55-0e6f3a8b2d17";
/// An active, verified user without roles.
pub const NO_ROLES_USER: &str = "c1e4b7a2-5d93-4f08-8a6e-3b2f9d0c4e61";
/// An anonymous user: not verified, cannot reauthenticate, no roles.
pub const ANONYMOUS_USER: &str = "9a0f2c6e-8b4d-4e17-b3a5-6c1d7e2f8a90";
/// An active user who has not verified an identity, with one role.
pub const UNVERIFIED_USER: &str = "4e8b1d3f-6a2c-4c79-9e0b-5f3a7c1d2b48";
/// A disabled user, whose credentials resolve as invalid.
pub const DISABLED_USER: &str = "b2d6f0a8-3c5e-4a91-8f7b-1e9c4a6d0f35";

/// Appends the 32-character secret to a session id, which gives a `session`
/// cookie value of the form Authgear issues.
macro_rules! session_value {
    ($id:literal) => {
        concat!($id, ".Ab3dE5gH7jK9mN1pQ3sT5vW7yZ0bC2dE")
    };
}

/// `session` cookie values.
pub const FULL_SESSION: &str = session_value!("sess-full");
pub const NO_ROLES_SESSION: &str = session_value!("sess-no-roles");
pub const ANONYMOUS_SESSION: &str = session_value!("sess-anonymous");
pub const UNVERIFIED_SESSION: &str = session_value!("sess-unverified");
pub const DISABLED_SESSION: &str = session_value!("sess-disabled");
/// A session of `FULL_USER` that has expired.
pub const EXPIRED_SESSION: &str = session_value!("sess-expired");
/// A well-formed value that the resolver does not know.
pub const UNKNOWN_SESSION: &str = session_value!("sess-unknown");
/// A value without the `<id>.<secret>` form.
pub const MALFORMED_SESSION: &str = "not-a-session-value";

/// An opaque bearer token of `FULL_USER`.
pub const FULL_BEARER: &str = "opaque-token-full-user-5v8Kq2Lm";
/// A JWT-shaped bearer token of `NO_ROLES_USER`.
pub const NO_ROLES_JWT: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJuby1yb2xlcyJ9.c2lnbmF0dXJl";
/// A bearer token that the resolver does not know.
pub const UNKNOWN_BEARER: &str = "opaque-token-nobody-issued";
/// An `app_session` cookie value of `UNVERIFIED_USER`.
pub const UNVERIFIED_APP_SESSION: &str = "app-session-unverified-9Rt3";
/// An `app_access_token` cookie value of `NO_ROLES_USER`.
pub const NO_ROLES_APP_ACCESS_TOKEN: &str = "access-token-no-roles-7Lm2";

/// The `Set-Cookie` value with which the resolver clears a dead `session` cookie.
pub const CLEARING_COOKIE: &str =
    "session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax";

/// The `X-Authgear-*` headers that the tests expose as variables, with a
/// header that a future Authgear version may add.
pub const EXPOSED_HEADERS: [&str; 9] = [
    "X-Authgear-Session-Valid",
    "X-Authgear-User-Id",
    "X-Authgear-User-Anonymous",
    "X-Authgear-User-Verified",
    "X-Authgear-User-Can-Reauthenticate",
    "X-Authgear-Session-Amr",
    "X-Authgear-User-Roles",
    "X-Authgear-Session-Authenticated-At",
    "X-Authgear-Future-Thing",
];

fn session(user: &str, amr: &[&str], authenticated_at: Option<u64>) -> Session {
    Session {
        amr: amr.iter().map(|method| (*method).to_owned()).collect(),
        authenticated_at,
        ..Session::new(user)
    }
}

/// Builds the directory of users and credentials that the tests use.
pub fn test_directory() -> Directory {
    let full_user = User {
        verified: true,
        can_reauthenticate: true,
        roles: vec!["admin".into(), "editor".into()],
        ..User::new()
    };
    let no_roles_user = User {
        verified: true,
        can_reauthenticate: true,
        ..User::new()
    };
    let anonymous_user = User {
        anonymous: true,
        ..User::new()
    };
    let unverified_user = User {
        can_reauthenticate: true,
        roles: vec!["viewer".into()],
        ..User::new()
    };
    let disabled_user = User {
        verified: true,
        roles: vec!["editor".into()],
        status: UserStatus::Disabled,
        ..User::new()
    };
    let expired = Session {
        expired: true,
        ..session(FULL_USER, &["pwd"], Some(1_700_000_000))
    };

    Directory::new()
        .with_user(FULL_USER, full_user)
        .with_user(NO_ROLES_USER, no_roles_user)
        .with_user(ANONYMOUS_USER, anonymous_user)
        .with_user(UNVERIFIED_USER, unverified_user)
        .with_user(DISABLED_USER, disabled_user)
        .with_session(
            FULL_SESSION,
            session(FULL_USER, &["pwd", "mfa"], Some(1_712_345_678)),
        )
        .with_session(
            NO_ROLES_SESSION,
            session(NO_ROLES_USER, &["pwd"], Some(1_712_300_000)),
        )
        .with_session(ANONYMOUS_SESSION, session(ANONYMOUS_USER, &[], None))
        .with_session(
            UNVERIFIED_SESSION,
            session(UNVERIFIED_USER, &["oauth"], Some(1_712_310_000)),
        )
        .with_session(
            DISABLED_SESSION,
            session(DISABLED_USER, &["pwd"], Some(1_712_320_000)),
        )
        .with_session(EXPIRED_SESSION, expired)
        .with_token(
            FULL_BEARER,
            session(FULL_USER, &["pwd", "mfa"], Some(1_712_345_678)),
        )
        .with_token(
            NO_ROLES_JWT,
            session(NO_ROLES_USER, &["oauth"], Some(1_712_340_000)),
        )
        .with_token(
            NO_ROLES_APP_ACCESS_TOKEN,
            session(NO_ROLES_USER, &["pwd"], Some(1_712_360_000)),
        )
        .with_app_session(
            UNVERIFIED_APP_SESSION,
            session(UNVERIFIED_USER, &["pwd"], Some(1_712_350_000)),
        )
}

/// Returns the `upstream` block of the resolver, as the comment in
/// `nginx-conf/authgear-resolver.conf` documents it.
pub fn resolver_upstream(addr: SocketAddr) -> String {
    format!(
        "upstream authgear_resolver {{\n\
         \x20   server {addr};\n\
         \x20   keepalive 16;\n\
         }}\n"
    )
}

/// Returns the internal location that proxies to the resolver: the directives of
/// `nginx-conf/authgear-resolver.conf` without its timeouts and buffer sizes,
/// plus `extra_directives`.
pub fn resolver_location(extra_directives: &str) -> String {
    format!(
        "location = {RESOLVER_URI} {{\n\
         \x20   internal;\n\
         \x20   proxy_pass http://authgear_resolver/resolve;\n\
         \x20   proxy_pass_request_body off;\n\
         \x20   proxy_set_header Content-Length \"\";\n\
         \x20   proxy_http_version 1.1;\n\
         \x20   proxy_set_header Connection \"\";\n\
         \x20   {extra_directives}\n\
         }}\n"
    )
}

/// Returns the `upstream` block of the echo application.
pub fn echo_upstream(addr: SocketAddr) -> String {
    format!("upstream echo_app {{\n    server {addr};\n}}\n")
}

/// Returns `$authgear_<name>` for an `X-Authgear-<Name>` header.
pub fn variable_name(header: &str) -> String {
    let suffix = &header["X-Authgear-".len()..];
    format!("authgear_{}", suffix.to_ascii_lowercase().replace('-', "_"))
}

/// Returns `add_header` lines that expose each of `EXPOSED_HEADERS` as a
/// response header `X-Var-<Name>` with the value of its variable.
///
/// nginx's `add_header` skips empty values, so a variable that is empty or
/// not found gives no response header.
pub fn expose_variables() -> String {
    EXPOSED_HEADERS
        .iter()
        .map(|header| {
            let suffix = &header["X-Authgear-".len()..];
            format!(
                "add_header X-Var-{suffix} ${} always;\n",
                variable_name(header)
            )
        })
        .collect()
}

/// Returns a location on `path` where the module resolves every request and
/// the echo application responds, with every exposed variable in the response.
pub fn protected_location(path: &str) -> String {
    format!(
        "location {path} {{\n\
         \x20   authgear_resolve {RESOLVER_URI};\n\
         \x20   proxy_pass http://echo_app;\n\
         {}\
         }}\n",
        expose_variables()
    )
}

/// Sorts header pairs and lowercases their names, for comparisons that
/// ignore order and case.
pub fn normalized(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Returns the `X-Authgear-*` headers that the echo application received,
/// normalized.
pub fn identity_headers(report: &EchoReport) -> Vec<(String, String)> {
    let pairs: Vec<(&str, &str)> = report
        .headers
        .iter()
        .filter(|(name, _)| name.to_ascii_lowercase().starts_with("x-authgear-"))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    normalized(&pairs)
}

/// Returns the variables exposed by `expose_variables` as `X-Authgear-*`
/// header pairs, normalized: `X-Var-User-Id: v` becomes
/// `("x-authgear-user-id", "v")`.
pub fn exposed_variables(response: &Response) -> Vec<(String, String)> {
    let pairs: Vec<(String, &str)> = response
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let suffix = name.strip_prefix("x-var-")?;
            Some((format!("x-authgear-{suffix}"), value.as_str()))
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(name, value)| (name.as_str(), *value))
        .collect();
    normalized(&borrowed)
}

/// The stand-in resolver with `test_directory` and the echo application,
/// each on an ephemeral port of 127.0.0.1.
pub struct Backends {
    pub resolver: ResolverHandle,
    pub echo: EchoHandle,
}

impl Backends {
    pub fn start() -> Self {
        Backends {
            resolver: start_resolver(bind_local(), test_directory())
                .expect("start the stand-in resolver"),
            echo: start_echo(bind_local()).expect("start the echo application"),
        }
    }

    /// Returns a configuration with the resolver and echo upstreams and the
    /// resolver location, to which a test adds its locations.
    pub fn nginx(&self) -> NginxBuilder {
        self.nginx_with_resolver(self.resolver.addr(), "")
    }

    /// Like `nginx`, with the resolver upstream at `resolver_addr` and
    /// `extra_directives` in the resolver location.
    pub fn nginx_with_resolver(
        &self,
        resolver_addr: SocketAddr,
        extra_directives: &str,
    ) -> NginxBuilder {
        NginxBuilder::new()
            .http(&resolver_upstream(resolver_addr))
            .http(&echo_upstream(self.echo.addr()))
            .server(&resolver_location(extra_directives))
    }
}
