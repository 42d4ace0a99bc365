//! Cache decisions that need no shared memory: how long each kind of answer
//! is kept, which entries go first when the zone is full, and when an entry
//! is refreshed early or served stale.

use crate::identity::Session;

/// What a cache entry holds, which decides its lifetime and its eviction rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A valid session.
    Valid = 1,
    /// `X-Authgear-Session-Valid: false`.
    Invalid = 2,
    /// An answer without session headers.
    None = 3,
    /// No answer yet: a placeholder that marks a resolver call in flight.
    Pending = 4,
}

impl Kind {
    pub fn of(session: Session) -> Kind {
        match session {
            Session::Valid => Kind::Valid,
            Session::Invalid => Kind::Invalid,
            Session::None => Kind::None,
        }
    }

    pub fn from_u8(value: u8) -> Option<Kind> {
        match value {
            1 => Some(Kind::Valid),
            2 => Some(Kind::Invalid),
            3 => Some(Kind::None),
            4 => Some(Kind::Pending),
            _ => None,
        }
    }

    /// Reports whether entries of this kind are evicted only after every
    /// other entry. A flood of bogus tokens produces `None` answers, so it
    /// cannot push out valid sessions while other entries remain.
    pub fn is_protected(self) -> bool {
        self == Kind::Valid
    }
}

/// How long each kind of answer stays fresh, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub valid: u64,
    pub invalid: u64,
    pub none: u64,
}

impl Validity {
    /// The defaults. A valid session is kept for 1 minute: logout, revocation,
    /// disabling a user and role changes stay invisible for at most that
    /// long, a tenth of the 10 minutes of Authgear's own nginx example.
    /// Invalid and empty answers are kept for 30 seconds: they only change
    /// when the client sends new credentials, which make a new key, and a
    /// short lifetime frees the room a flood of bogus tokens takes.
    pub const DEFAULT: Validity = Validity {
        valid: 60_000,
        invalid: 30_000,
        none: 30_000,
    };

    pub fn for_kind(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Valid => self.valid,
            Kind::Invalid => self.invalid,
            Kind::None => self.none,
            Kind::Pending => 0,
        }
    }
}

/// Reports whether a fresh entry is in the last quarter of its lifetime,
/// where a hit triggers a background refresh.
pub fn refresh_due(now: u64, expires: u64, lifetime: u64) -> bool {
    now < expires && expires - now <= lifetime / 4
}

/// Reports whether an entry that expired at `expires` may still be served
/// when the resolver fails, `stale_for` milliseconds past its expiry at most.
pub fn may_serve_stale(now: u64, expires: u64, stale_for: u64) -> bool {
    stale_for > 0 && now >= expires && now - expires <= stale_for
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_round_trips_through_u8() {
        for kind in [Kind::Valid, Kind::Invalid, Kind::None, Kind::Pending] {
            assert_eq!(Kind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(5), None);
    }

    #[test]
    fn only_valid_sessions_are_protected() {
        assert!(Kind::Valid.is_protected());
        assert!(!Kind::Invalid.is_protected());
        assert!(!Kind::None.is_protected());
        assert!(!Kind::Pending.is_protected());
    }

    #[test]
    fn refresh_due_in_last_quarter() {
        let lifetime = 60_000;
        let expires = 100_000;
        assert!(!refresh_due(40_000, expires, lifetime));
        assert!(!refresh_due(84_999, expires, lifetime));
        assert!(refresh_due(85_000, expires, lifetime));
        assert!(refresh_due(99_999, expires, lifetime));
        assert!(!refresh_due(100_000, expires, lifetime));
    }

    #[test]
    fn stale_window_is_capped() {
        assert!(!may_serve_stale(100, 100, 0));
        assert!(!may_serve_stale(99, 100, 50));
        assert!(may_serve_stale(100, 100, 50));
        assert!(may_serve_stale(150, 100, 50));
        assert!(!may_serve_stale(151, 100, 50));
    }

    #[test]
    fn validity_by_kind() {
        let validity = Validity {
            valid: 1,
            invalid: 2,
            none: 3,
        };
        assert_eq!(validity.for_kind(Kind::Valid), 1);
        assert_eq!(validity.for_kind(Kind::Invalid), 2);
        assert_eq!(validity.for_kind(Kind::None), 3);
        assert_eq!(validity.for_kind(Kind::Pending), 0);
    }
}
