//! Users, sessions and tokens that the stand-in resolver looks up, built in code or loaded
//! from a JSON file.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fault::{validate_header, Fault};

/// Users, the credentials that resolve to them, and the cookie settings of one Authgear app.
///
/// Every field has a default, so a JSON file lists only what it needs. Unknown keys are
/// rejected, so that a misspelt key fails to load instead of being ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Directory {
    /// Prefix of the `session`, `app_session` and `app_access_token` cookie names, as
    /// Authgear's `http.cookie_prefix`. Empty by default.
    pub cookie_prefix: String,
    /// `Domain` attribute of the cookie that clears an invalid `session` cookie.
    pub cookie_domain: Option<String>,
    /// Whether the cookie that clears an invalid `session` cookie carries `Secure`.
    pub cookie_secure: bool,
    /// `Host` header values served, as in a multi-tenant deployment, compared without case
    /// and with the port. Other hosts get 404 `app not found`. Empty means a single-app
    /// deployment, which ignores `Host`.
    pub app_hosts: Vec<String>,
    /// Users by user id.
    pub users: BTreeMap<String, User>,
    /// Browser sessions, keyed by the whole `session` cookie value `<session id>.<secret>`,
    /// where the secret is 32 ASCII letters or digits.
    pub sessions: BTreeMap<String, Session>,
    /// Access tokens, keyed by token, looked up for `Authorization: Bearer` and for the
    /// `app_access_token` cookie.
    pub tokens: BTreeMap<String, Session>,
    /// App sessions, keyed by the `app_session` cookie value.
    pub app_sessions: BTreeMap<String, Session>,
}

/// An Authgear user as the resolver reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    /// Value of `X-Authgear-User-Anonymous`.
    pub anonymous: bool,
    /// Value of `X-Authgear-User-Verified`.
    pub verified: bool,
    /// Value of `X-Authgear-User-Can-Reauthenticate`.
    pub can_reauthenticate: bool,
    /// Role keys, sent joined by `,` in `X-Authgear-User-Roles`. An empty list omits the header.
    pub roles: Vec<String>,
    /// Account status. Any status but `active` makes valid credentials resolve as invalid.
    pub status: UserStatus,
    /// Headers appended to this user's valid responses, after the standard ones. Tests use them
    /// to simulate a header that a later Authgear version adds.
    pub extra_headers: BTreeMap<String, String>,
}

/// Account status of a [`User`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    Disabled,
    Deactivated,
    /// A deleted user: the resolver treats credentials that point to it as if the user record
    /// were gone.
    Deleted,
}

/// Session behind a credential: a browser session, an access token or an app session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Id of the [`User`] the session belongs to. It must be a key of [`Directory::users`].
    pub user: String,
    /// Authentication methods, sent joined by one space in `X-Authgear-Session-Amr`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Authentication time in Unix seconds, sent as `X-Authgear-Session-Authenticated-At`.
    /// `None` omits the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_at: Option<u64>,
    /// Whether the credential has expired, which makes it invalid.
    #[serde(default)]
    pub expired: bool,
    /// Failure shown whenever resolution looks this credential up, expired or not. A delay
    /// or extra headers apply and resolution goes on. Other faults end the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// Failure to load or validate a [`Directory`].
#[derive(Debug)]
pub enum DirectoryError {
    /// The file could not be read.
    Read { path: PathBuf, source: io::Error },
    /// The file is not valid JSON of the directory format.
    Parse {
        path: Option<PathBuf>,
        source: serde_json::Error,
    },
    /// The content parsed but breaks a rule of the format.
    Invalid(String),
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::Read { path, source } => {
                write!(
                    formatter,
                    "failed to read directory file {}: {source}",
                    path.display()
                )
            }
            DirectoryError::Parse {
                path: Some(path),
                source,
            } => {
                write!(
                    formatter,
                    "invalid directory file {}: {source}",
                    path.display()
                )
            }
            DirectoryError::Parse { path: None, source } => {
                write!(formatter, "invalid directory JSON: {source}")
            }
            DirectoryError::Invalid(message) => write!(formatter, "invalid directory: {message}"),
        }
    }
}

impl std::error::Error for DirectoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirectoryError::Read { source, .. } => Some(source),
            DirectoryError::Parse { source, .. } => Some(source),
            DirectoryError::Invalid(_) => None,
        }
    }
}

impl From<DirectoryError> for io::Error {
    fn from(error: DirectoryError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

impl Directory {
    /// Returns an empty directory with default cookie settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads, parses and validates a directory JSON file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: path.to_owned(),
            source,
        })?;
        let directory: Directory =
            serde_json::from_str(&text).map_err(|source| DirectoryError::Parse {
                path: Some(path.to_owned()),
                source,
            })?;
        directory.validate()?;
        Ok(directory)
    }

    /// Parses and validates a directory from JSON text.
    pub fn from_json(text: &str) -> Result<Self, DirectoryError> {
        let directory: Directory = serde_json::from_str(text)
            .map_err(|source| DirectoryError::Parse { path: None, source })?;
        directory.validate()?;
        Ok(directory)
    }

    /// Serializes the directory to pretty-printed JSON in the file format.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a directory always serializes")
    }

    /// Sets the cookie name prefix.
    pub fn with_cookie_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.cookie_prefix = prefix.into();
        self
    }

    /// Adds or replaces a user.
    pub fn with_user(mut self, id: impl Into<String>, user: User) -> Self {
        self.users.insert(id.into(), user);
        self
    }

    /// Adds or replaces a browser session under its `session` cookie value.
    pub fn with_session(mut self, cookie_value: impl Into<String>, session: Session) -> Self {
        self.sessions.insert(cookie_value.into(), session);
        self
    }

    /// Adds or replaces an access token.
    pub fn with_token(mut self, token: impl Into<String>, session: Session) -> Self {
        self.tokens.insert(token.into(), session);
        self
    }

    /// Adds or replaces an app session under its `app_session` cookie value.
    pub fn with_app_session(mut self, cookie_value: impl Into<String>, session: Session) -> Self {
        self.app_sessions.insert(cookie_value.into(), session);
        self
    }

    /// Checks the rules that parsing cannot: every value sent in a header is a valid header
    /// value, cookie names and session cookie values have the right form, and every session
    /// points to a known user. The error names the offending entry.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        self.validate_cookie_settings()?;
        for (id, user) in &self.users {
            validate_user(id, user).map_err(DirectoryError::Invalid)?;
        }

        for (value, session) in &self.sessions {
            if !crate::resolver::is_session_cookie_value(value) {
                return Err(DirectoryError::Invalid(format!(
                    "session key {value:?} is not of the form <session id>.<32 letters or digits>"
                )));
            }
            self.validate_session("sessions", value, session)?;
        }
        for (token, session) in &self.tokens {
            self.validate_session("tokens", token, session)?;
        }
        for (value, session) in &self.app_sessions {
            self.validate_session("app_sessions", value, session)?;
        }
        Ok(())
    }

    fn validate_cookie_settings(&self) -> Result<(), DirectoryError> {
        if !self.cookie_prefix.chars().all(is_cookie_name_char) {
            return Err(DirectoryError::Invalid(format!(
                "cookie_prefix {:?} contains a character that is not allowed in a cookie name",
                self.cookie_prefix
            )));
        }
        if let Some(domain) = &self.cookie_domain {
            if domain.is_empty()
                || !domain
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
            {
                return Err(DirectoryError::Invalid(format!(
                    "cookie_domain {domain:?} must be a non-empty domain name"
                )));
            }
        }
        for host in &self.app_hosts {
            if host.is_empty() || !host.chars().all(|c| c.is_ascii_graphic()) {
                return Err(DirectoryError::Invalid(format!(
                    "app_hosts entry {host:?} must be a non-empty host"
                )));
            }
        }
        Ok(())
    }

    fn validate_session(
        &self,
        table: &str,
        key: &str,
        session: &Session,
    ) -> Result<(), DirectoryError> {
        let invalid =
            |reason: String| DirectoryError::Invalid(format!("{table} entry {key:?}: {reason}"));

        if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid(
                "a credential must be non-empty printable ASCII without spaces".to_owned(),
            ));
        }
        if !self.users.contains_key(&session.user) {
            return Err(invalid(format!(
                "user {:?} is not in users (use status \"deleted\" for a deleted user)",
                session.user
            )));
        }
        for method in &session.amr {
            if method.is_empty() || !method.chars().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(format!(
                    "amr value {method:?} must be non-empty printable ASCII without spaces"
                )));
            }
        }
        if let Some(fault) = &session.fault {
            fault.validate().map_err(invalid)?;
        }
        Ok(())
    }
}

fn validate_user(id: &str, user: &User) -> Result<(), String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "user id {id:?} must be non-empty printable ASCII without spaces"
        ));
    }
    for role in &user.roles {
        if role.is_empty() || role.contains(',') || !role.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "user {id}: role {role:?} must be non-empty printable ASCII without spaces or commas"
            ));
        }
    }
    for (name, value) in &user.extra_headers {
        validate_header(name, value)
            .map_err(|message| format!("user {id}: extra_headers: {message}"))?;
    }
    Ok(())
}

/// Returns whether `c` may appear in a cookie name, which RFC 6265 defines as an HTTP token.
fn is_cookie_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

impl User {
    /// Returns an active user that is not anonymous, with every other flag false and no roles.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Session {
    /// Returns an unexpired session of `user` with no AMR, no authentication time and no fault.
    pub fn new(user: impl Into<String>) -> Self {
        Session {
            user: user.into(),
            amr: Vec::new(),
            authenticated_at: None,
            expired: false,
            fault: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_ID: &str = "0b6d1ac3-6a47-4c55-9f2c-2f0a4b7e8d11";
    const SESSION_VALUE: &str =
        "5f0c2a9e-1c4b-4d7e-8a63-0e9b2f4c7d18.Q3vN8xLp2RtY7kWm4ZbH9sJd6FgC1aEu";

    fn directory_with_session(key: &str) -> Directory {
        Directory::new()
            .with_user(USER_ID, User::new())
            .with_session(key, Session::new(USER_ID))
    }

    #[test]
    fn demo_file_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/demo-directory.json");
        let directory = Directory::load(path).unwrap();
        assert!(!directory.users.is_empty());
    }

    #[test]
    fn json_round_trips() {
        let directory = directory_with_session(SESSION_VALUE);
        let parsed = Directory::from_json(&directory.to_json()).unwrap();
        assert_eq!(parsed, directory);
    }

    #[test]
    fn empty_json_is_empty_directory() {
        assert_eq!(Directory::from_json("{}").unwrap(), Directory::new());
    }

    #[test]
    fn unknown_key_rejected() {
        let error = Directory::from_json(r#"{"cookie_prefx": "a_"}"#).unwrap_err();
        assert!(error.to_string().contains("cookie_prefx"), "{error}");
    }

    #[test]
    fn malformed_session_key_rejected() {
        let keys = [
            "no-dot-here",
            "abc.short",
            "abc.Q3vN8xLp2RtY7kWm4ZbH9sJd6FgC1aE!",
            ".Q3vN8xLp2RtY7kWm4ZbH9sJd6FgC1aEu",
        ];
        for key in keys {
            let result = directory_with_session(key).validate();
            assert!(result.is_err(), "{key} was accepted");
        }
    }

    #[test]
    fn session_of_unknown_user_rejected() {
        let directory = Directory::new().with_token("token", Session::new("missing-user"));
        let error = directory.validate().unwrap_err();
        assert!(error.to_string().contains("missing-user"), "{error}");
    }

    #[test]
    fn role_with_comma_rejected() {
        let user = User {
            roles: vec!["a,b".into()],
            ..User::new()
        };
        assert!(Directory::new()
            .with_user(USER_ID, user)
            .validate()
            .is_err());
    }

    #[test]
    fn amr_with_space_rejected() {
        let session = Session {
            amr: vec!["pwd mfa".into()],
            ..Session::new(USER_ID)
        };
        let directory = Directory::new()
            .with_user(USER_ID, User::new())
            .with_token("t", session);
        assert!(directory.validate().is_err());
    }

    #[test]
    fn invalid_cookie_prefix_rejected() {
        assert!(Directory::new()
            .with_cookie_prefix("my app;")
            .validate()
            .is_err());
    }

    #[test]
    fn invalid_extra_header_rejected() {
        let mut user = User::new();
        user.extra_headers.insert("X Bad".into(), "v".into());
        assert!(Directory::new()
            .with_user(USER_ID, user)
            .validate()
            .is_err());
    }
}
