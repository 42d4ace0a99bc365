//! The shared-memory cache of resolver answers, seen from a request: key
//! building, lookups, coalescing of concurrent misses, stores and stale
//! answers.
//!
//! `key`, `entry` and `policy` are pure logic. `store` and `zone` work on
//! shared memory, and this file joins them to the request.

pub mod entry;
pub mod key;
pub mod policy;
#[cfg(not(test))]
pub mod store;
#[cfg(not(test))]
pub mod zone;

#[cfg(not(test))]
mod request;

#[cfg(not(test))]
pub use request::*;

/// The value of `$authgear_cache_status`, in the spirit of
/// `$upstream_cache_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// No entry: the resolver was called and its answer stored.
    Miss,
    /// A fresh entry was used and the resolver was not called.
    Hit,
    /// The entry had expired: the resolver was called and its answer stored.
    Expired,
    /// The resolver failed and an expired entry was used instead.
    Stale,
    /// A fresh entry was used and refreshed by a background subrequest.
    Updating,
    /// The cache was not read: `authgear_cache_bypass` matched, or another
    /// request held the key's lock for longer than `authgear_cache_lock_timeout`.
    Bypass,
}

impl CacheStatus {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            CacheStatus::Miss => b"MISS",
            CacheStatus::Hit => b"HIT",
            CacheStatus::Expired => b"EXPIRED",
            CacheStatus::Stale => b"STALE",
            CacheStatus::Updating => b"UPDATING",
            CacheStatus::Bypass => b"BYPASS",
        }
    }
}
