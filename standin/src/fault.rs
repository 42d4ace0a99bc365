//! Misbehaviour that the stand-in resolver shows on demand.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// A failure mode of the resolver, set for every resolve request with
/// [`ResolverHandle::set_fault`](crate::ResolverHandle::set_fault) or for one
/// credential with [`Session::fault`](crate::Session::fault).
///
/// In JSON a fault is a string (`"internal_error_text"`, `"internal_error_json"`,
/// `"hangup"`, `"none"`) or an object with one key (`{"delay_ms": 250}`,
/// `{"status": 503}`, `{"extra_headers": [["X-Authgear-Foo", "bar"]]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Responds normally.
    #[default]
    None,
    /// Responds 500 with the body `internal error\n` in `text/plain; charset=utf-8`, as Go's
    /// `http.Error` writes it.
    InternalErrorText,
    /// Responds 500 with Authgear's JSON error body ([`INTERNAL_ERROR_JSON`]).
    InternalErrorJson,
    /// Waits this long, then responds normally. In JSON: `{"delay_ms": N}`.
    #[serde(rename = "delay_ms", with = "milliseconds")]
    Delay(Duration),
    /// Responds with this status (200 to 599) and an empty body, whatever the credentials.
    Status(u16),
    /// Closes the connection without sending a response.
    Hangup,
    /// Responds normally and appends these headers, in this order, after the resolver's own.
    /// Repeated names are sent as repeated header lines.
    ExtraHeaders(Vec<(String, String)>),
}

/// Body of [`Fault::InternalErrorJson`], shaped like the error bodies of Authgear's API.
/// NOTE: the shape comes from a description of Authgear, not from a running Authgear.
pub const INTERNAL_ERROR_JSON: &str = r#"{"error":{"name":"InternalError","reason":"UnexpectedError","message":"internal error","code":500}}"#;

/// Body of [`Fault::InternalErrorText`].
pub const INTERNAL_ERROR_TEXT: &str = "internal error\n";

impl Fault {
    /// Checks that a status is 200 to 599 and that extra headers are valid HTTP header
    /// names and values. The error names the offending value.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Fault::Status(status) if !(200..=599).contains(status) => Err(format!(
                "invalid fault status {status}: expected a final status from 200 to 599"
            )),
            Fault::ExtraHeaders(headers) => {
                for (name, value) in headers {
                    validate_header(name, value)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Returns whether the fault replaces the response instead of delaying or extending it.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(
            self,
            Fault::InternalErrorText | Fault::InternalErrorJson | Fault::Status(_) | Fault::Hangup
        )
    }
}

/// Checks that `name` and `value` can be sent as an HTTP header line.
pub(crate) fn validate_header(name: &str, value: &str) -> Result<(), String> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("invalid header name {name:?}"));
    }
    if HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "invalid value for header {name}: it contains a control character or a non-ASCII character"
        ));
    }
    Ok(())
}

/// Parses the `--fault` forms of the resolver binary: `none`, `internal_error_text`,
/// `internal_error_json`, `hangup`, `delay_ms=N`, `status=N`, `header=NAME:VALUE`, or any
/// fault in its JSON form (text starting with `{` or `"`).
impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fault = if text.starts_with('{') || text.starts_with('"') {
            serde_json::from_str(text)
                .map_err(|error| format!("invalid fault {text:?}: {error}"))?
        } else if let Some(milliseconds) = text.strip_prefix("delay_ms=") {
            let milliseconds = milliseconds.parse().map_err(|_| {
                format!("invalid delay {milliseconds:?}: expected milliseconds as an integer")
            })?;
            Fault::Delay(Duration::from_millis(milliseconds))
        } else if let Some(status) = text.strip_prefix("status=") {
            let status = status.parse().map_err(|_| {
                format!("invalid status {status:?}: expected an integer from 200 to 599")
            })?;
            Fault::Status(status)
        } else if let Some(header) = text.strip_prefix("header=") {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("invalid header {header:?}: expected NAME:VALUE"))?;
            Fault::ExtraHeaders(vec![(name.trim().to_owned(), value.trim().to_owned())])
        } else {
            match text {
                "none" => Fault::None,
                "internal_error_text" => Fault::InternalErrorText,
                "internal_error_json" => Fault::InternalErrorJson,
                "hangup" => Fault::Hangup,
                _ => {
                    return Err(format!(
                        "unknown fault {text:?}: expected none, internal_error_text, internal_error_json, \
                         hangup, delay_ms=N, status=N, header=NAME:VALUE or a JSON fault"
                    ))
                }
            }
        };
        fault.validate()?;
        Ok(fault)
    }
}

impl fmt::Display for Fault {
    /// Writes the fault in its JSON form.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        formatter.write_str(&json)
    }
}

/// Serde form of [`Fault::Delay`]: a whole number of milliseconds.
mod milliseconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let milliseconds = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        serializer.serialize_u64(milliseconds)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_parse() {
        let cases = [
            (r#""internal_error_text""#, Fault::InternalErrorText),
            (r#""internal_error_json""#, Fault::InternalErrorJson),
            (r#""hangup""#, Fault::Hangup),
            (r#""none""#, Fault::None),
            (
                r#"{"delay_ms": 250}"#,
                Fault::Delay(Duration::from_millis(250)),
            ),
            (r#"{"status": 503}"#, Fault::Status(503)),
            (
                r#"{"extra_headers": [["X-Authgear-Foo", "bar"]]}"#,
                Fault::ExtraHeaders(vec![("X-Authgear-Foo".into(), "bar".into())]),
            ),
        ];
        for (json, expected) in cases {
            let parsed: Fault = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, expected, "parsing {json}");
        }
    }

    #[test]
    fn json_form_round_trips() {
        let fault = Fault::Delay(Duration::from_millis(1500));
        assert_eq!(fault.to_string(), r#"{"delay_ms":1500}"#);
    }

    #[test]
    fn cli_forms_parse() {
        let cases = [
            ("internal_error_text", Fault::InternalErrorText),
            ("internal_error_json", Fault::InternalErrorJson),
            ("hangup", Fault::Hangup),
            ("none", Fault::None),
            ("delay_ms=40", Fault::Delay(Duration::from_millis(40))),
            ("status=502", Fault::Status(502)),
            (
                "header=X-Authgear-New: yes",
                Fault::ExtraHeaders(vec![("X-Authgear-New".into(), "yes".into())]),
            ),
            (r#"{"status": 401}"#, Fault::Status(401)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Fault>(), Ok(expected), "parsing {text}");
        }
    }

    #[test]
    fn invalid_cli_forms_rejected() {
        for text in [
            "slow",
            "delay_ms=soon",
            "status=99",
            "status=600",
            "header=NoColon",
            "header=Bad Name:x",
        ] {
            assert!(text.parse::<Fault>().is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn header_value_with_newline_rejected() {
        let fault = Fault::ExtraHeaders(vec![(
            "X-Authgear-A".into(),
            "one\r\nX-Injected: two".into(),
        )]);
        assert!(fault.validate().is_err());
    }
}
