//! Access policy: the conditions of `authgear_require` and their evaluation
//! against a resolved identity.
//!
//! This module is pure logic and is unit-tested without nginx.

pub mod login;

use crate::identity::{Identity, Session};

/// One condition of `authgear_require`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `session`: a valid session.
    Session,
    /// `non_anonymous`: the user is not an anonymous user.
    NonAnonymous,
    /// `verified`: the user is verified.
    Verified,
    /// `role=A|B`: the user has at least one of these roles.
    Role(Vec<Vec<u8>>),
    /// `amr=VALUE`: the session's authentication methods include VALUE.
    Amr(Vec<u8>),
}

impl Condition {
    /// Parses one argument of `authgear_require`.
    pub fn parse(arg: &[u8]) -> Option<Condition> {
        match arg {
            b"session" => return Some(Condition::Session),
            b"non_anonymous" => return Some(Condition::NonAnonymous),
            b"verified" => return Some(Condition::Verified),
            _ => {}
        }
        if let Some(roles) = arg.strip_prefix(b"role=") {
            let roles: Vec<Vec<u8>> = roles
                .split(|&byte| byte == b'|')
                .map(<[u8]>::to_vec)
                .collect();
            if roles
                .iter()
                .any(|role| role.is_empty() || role.contains(&b','))
            {
                return None;
            }
            return Some(Condition::Role(roles));
        }
        if let Some(method) = arg.strip_prefix(b"amr=") {
            if method.is_empty() || method.contains(&b' ') {
                return None;
            }
            return Some(Condition::Amr(method.to_vec()));
        }
        None
    }

    /// Checks the condition against the identity of a valid session.
    fn holds(&self, identity: &Identity) -> bool {
        // Booleans compare in any letter case, as `X-Authgear-Session-Valid`
        // does, so that `TRUE` cannot pass as false.
        let flag = |suffix: &[u8]| {
            identity
                .variable(suffix)
                .is_some_and(|value| value.eq_ignore_ascii_case(b"true"))
        };
        match self {
            Condition::Session => true,
            // An absent boolean reads as false, as in Authgear's own consumer.
            Condition::NonAnonymous => !flag(b"user_anonymous"),
            Condition::Verified => flag(b"user_verified"),
            Condition::Role(wanted) => {
                let roles = identity.variable(b"user_roles").unwrap_or_default();
                roles
                    .split(|&byte| byte == b',')
                    .any(|role| wanted.iter().any(|name| name.as_slice() == role))
            }
            Condition::Amr(wanted) => {
                let methods = identity.variable(b"session_amr").unwrap_or_default();
                methods
                    .split(|&byte| byte == b' ')
                    .any(|method| method == wanted.as_slice())
            }
        }
    }
}

impl core::fmt::Display for Condition {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Condition::Session => f.write_str("session"),
            Condition::NonAnonymous => f.write_str("non_anonymous"),
            Condition::Verified => f.write_str("verified"),
            Condition::Role(roles) => {
                let roles: Vec<_> = roles
                    .iter()
                    .map(|role| String::from_utf8_lossy(role))
                    .collect();
                write!(f, "role={}", roles.join("|"))
            }
            Condition::Amr(method) => write!(f, "amr={}", String::from_utf8_lossy(method)),
        }
    }
}

/// The conditions of one `authgear_require`, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    conditions: Vec<Condition>,
}

/// The outcome of a policy check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No session, an invalid session, or an answer without session headers.
    Unauthenticated,
    /// A valid session that misses this condition.
    Forbidden(Condition),
}

impl Policy {
    /// Parses the arguments of `authgear_require`. Returns the first
    /// argument that is not a condition on failure.
    pub fn parse<'a>(args: &[&'a [u8]]) -> Result<Policy, &'a [u8]> {
        let mut conditions = Vec::with_capacity(args.len());
        for arg in args {
            conditions.push(Condition::parse(arg).ok_or(*arg)?);
        }
        Ok(Policy { conditions })
    }

    pub fn evaluate(&self, identity: &Identity) -> Decision {
        if identity.session() != Session::Valid {
            return Decision::Unauthenticated;
        }
        match self
            .conditions
            .iter()
            .find(|condition| !condition.holds(identity))
        {
            Some(condition) => Decision::Forbidden(condition.clone()),
            None => Decision::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Header;

    fn identity(headers: &[(&str, &str)]) -> Identity {
        Identity::from_parts(
            headers
                .iter()
                .map(|(name, value)| Header {
                    name: format!("X-Authgear-{name}").into_bytes(),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
            Vec::new(),
        )
    }

    fn policy(args: &[&str]) -> Policy {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        Policy::parse(&args).expect("valid policy")
    }

    #[test]
    fn condition_parse_accepts_each_form() {
        assert_eq!(Condition::parse(b"session"), Some(Condition::Session));
        assert_eq!(
            Condition::parse(b"non_anonymous"),
            Some(Condition::NonAnonymous)
        );
        assert_eq!(Condition::parse(b"verified"), Some(Condition::Verified));
        assert_eq!(
            Condition::parse(b"role=admin|editor"),
            Some(Condition::Role(vec![b"admin".to_vec(), b"editor".to_vec()]))
        );
        assert_eq!(
            Condition::parse(b"amr=mfa"),
            Some(Condition::Amr(b"mfa".to_vec()))
        );
    }

    #[test]
    fn condition_parse_rejects_malformed() {
        for arg in [
            "",
            "sessions",
            "role=",
            "role=a||b",
            "role=a,b",
            "amr=",
            "amr=a b",
            "Role=a",
        ] {
            assert_eq!(Condition::parse(arg.as_bytes()), None, "argument {arg:?}");
        }
    }

    #[test]
    fn policy_parse_reports_bad_argument() {
        let args: Vec<&[u8]> = vec![b"session", b"admin"];
        assert_eq!(Policy::parse(&args), Err(&b"admin"[..]));
    }

    #[test]
    fn condition_displays_as_configured() {
        for arg in [
            "session",
            "non_anonymous",
            "verified",
            "role=a|b",
            "amr=mfa",
        ] {
            let condition = Condition::parse(arg.as_bytes()).expect("condition");
            assert_eq!(condition.to_string(), arg);
        }
    }

    /// Users against conditions against the expected decision.
    #[test]
    fn evaluate_users_against_conditions() {
        let admin = identity(&[
            ("Session-Valid", "true"),
            ("User-Anonymous", "false"),
            ("User-Verified", "true"),
            ("User-Roles", "admin,editor"),
            ("Session-Amr", "pwd mfa"),
        ]);
        let plain = identity(&[
            ("Session-Valid", "true"),
            ("User-Anonymous", "false"),
            ("User-Verified", "false"),
            ("Session-Amr", ""),
        ]);
        let anonymous = identity(&[("Session-Valid", "true"), ("User-Anonymous", "true")]);
        let invalid = identity(&[("Session-Valid", "false")]);
        let none = identity(&[]);

        let allow = Decision::Allow;
        let unauthenticated = Decision::Unauthenticated;
        let forbidden =
            |arg: &str| Decision::Forbidden(Condition::parse(arg.as_bytes()).expect("condition"));

        let cases: Vec<(&str, &Identity, &[&str], Decision)> = vec![
            ("admin", &admin, &["session"], allow.clone()),
            (
                "admin",
                &admin,
                &["role=admin", "amr=mfa", "verified"],
                allow.clone(),
            ),
            ("admin", &admin, &["role=owner|editor"], allow.clone()),
            ("admin", &admin, &["role=edit"], forbidden("role=edit")),
            ("admin", &admin, &["amr=otp"], forbidden("amr=otp")),
            (
                "plain",
                &plain,
                &["session", "non_anonymous"],
                allow.clone(),
            ),
            ("plain", &plain, &["verified"], forbidden("verified")),
            ("plain", &plain, &["role=admin"], forbidden("role=admin")),
            ("plain", &plain, &["amr=mfa"], forbidden("amr=mfa")),
            ("anonymous", &anonymous, &["session"], allow.clone()),
            (
                "anonymous",
                &anonymous,
                &["non_anonymous"],
                forbidden("non_anonymous"),
            ),
            (
                "anonymous",
                &anonymous,
                &["verified"],
                forbidden("verified"),
            ),
            ("invalid", &invalid, &["session"], unauthenticated.clone()),
            (
                "invalid",
                &invalid,
                &["role=admin"],
                unauthenticated.clone(),
            ),
            ("none", &none, &["session"], unauthenticated.clone()),
            ("none", &none, &["non_anonymous"], unauthenticated.clone()),
        ];
        for (user, identity, conditions, expected) in cases {
            assert_eq!(
                policy(conditions).evaluate(identity),
                expected,
                "user {user} with conditions {conditions:?}"
            );
        }
    }

    #[test]
    fn booleans_ignore_letter_case() {
        let user = identity(&[
            ("Session-Valid", "true"),
            ("User-Anonymous", "TRUE"),
            ("User-Verified", "True"),
        ]);
        assert_eq!(
            policy(&["non_anonymous"]).evaluate(&user),
            Decision::Forbidden(Condition::NonAnonymous)
        );
        assert_eq!(policy(&["verified"]).evaluate(&user), Decision::Allow);
    }

    #[test]
    fn roles_match_whole_names_only() {
        let user = identity(&[("Session-Valid", "true"), ("User-Roles", "superadmin")]);
        assert_eq!(
            policy(&["role=admin"]).evaluate(&user),
            Decision::Forbidden(Condition::Role(vec![b"admin".to_vec()]))
        );
    }
}
