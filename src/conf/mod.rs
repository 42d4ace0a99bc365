//! Directives, their parsing, and the merge of configuration levels.

pub mod cache;
#[cfg(not(test))]
mod directives;
mod error;
pub(crate) mod resolve;

pub use resolve::ResolveFailure;

use core::ptr;

use nginx_sys::{
    ngx_array_t, ngx_flag_t, ngx_http_complex_value_t, ngx_msec_t, ngx_shm_zone_t, ngx_str_t,
    NGX_CONF_UNSET,
};
use ngx::http::{Merge, MergeConfigError};

use std::sync::Arc;

use crate::cache::policy::Validity;
use crate::policy::Policy;

#[cfg(not(test))]
pub use directives::COMMANDS;
#[cfg(not(test))]
pub use error::ConfError;

const UNSET_FLAG: ngx_flag_t = NGX_CONF_UNSET as ngx_flag_t;
pub const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;
/// nginx's NGX_CONF_UNSET_PTR, which `ngx_http_set_predicate_slot` expects.
const UNSET_PREDICATES: *mut ngx_array_t = ptr::without_provenance_mut(usize::MAX);

const EMPTY_STR: ngx_str_t = ngx_str_t {
    len: 0,
    data: ptr::null_mut(),
};

/// The default of `authgear_resolve_failure`: fail closed, as auth_request does.
const DEFAULT_FAILURE_STATUS: u16 = 500;

/// The default of `authgear_login_redirect_param`.
const DEFAULT_REDIRECT_PARAM: &[u8] = b"redirect_uri";

/// The default of `authgear_www_authenticate`.
const DEFAULT_WWW_AUTHENTICATE: &[u8] = b"Bearer realm=\"authgear\"";

/// The default of `authgear_cache_lock_timeout`, as `proxy_cache_lock_timeout`.
const DEFAULT_LOCK_TIMEOUT: ngx_msec_t = 5000;

/// The effective `authgear_resolve` setting of a location.
#[derive(Debug, Clone, Copy)]
pub enum Resolve {
    Off,
    /// The URI of the internal location that proxies to the resolver. It
    /// points into the configuration pool, which outlives every request.
    Uri(ngx_str_t),
}

/// The effective `authgear_cache` setting of a location.
#[derive(Debug, Clone, Copy)]
pub enum CacheZone {
    Off,
    /// A zone owned by nginx's cycle.
    Zone(*mut ngx_shm_zone_t),
}

/// The effective `authgear_require` setting of a location.
#[derive(Debug, Clone)]
pub enum Require {
    Off,
    Policy(Arc<Policy>),
}

/// The module's configuration of one `http`, `server` or `location` block.
/// Fields left unset on one level take the value of the enclosing one.
#[derive(Debug)]
pub struct LocationConf {
    /// `authgear_resolve`.
    pub resolve: Option<Resolve>,
    /// `authgear_identity_headers`.
    pub identity_headers: ngx_flag_t,
    /// `authgear_resolve_failure`.
    pub resolve_failure: Option<ResolveFailure>,
    /// `authgear_resolve_failure_header`.
    pub resolve_failure_header: ngx_flag_t,
    /// `authgear_cookie_prefix`: the prefix of Authgear's cookie names.
    pub cookie_prefix: ngx_str_t,

    /// `authgear_cache`.
    pub cache: Option<CacheZone>,
    /// `authgear_cache_valid`, in ms for the valid, invalid and none kinds.
    pub cache_valid: [ngx_msec_t; 3],
    /// `authgear_cache_key`; null for the built-in key.
    pub cache_key: *mut ngx_http_complex_value_t,
    /// `authgear_cache_bypass`; null when not configured.
    pub cache_bypass: *mut ngx_array_t,
    /// `authgear_cache_lock`.
    pub cache_lock: ngx_flag_t,
    /// `authgear_cache_lock_timeout`.
    pub cache_lock_timeout: ngx_msec_t,
    /// `authgear_cache_use_stale`, 0 for `off`.
    pub cache_use_stale: ngx_msec_t,
    /// `authgear_cache_background_update`.
    pub cache_background_update: ngx_flag_t,

    /// `authgear_require`.
    pub require: Option<Require>,
    /// Whether `authgear_login_url` is set on this level: unset, `off` (0)
    /// or a URL (1).
    pub login_url_set: ngx_flag_t,
    /// `authgear_login_url`; null when unset or `off`.
    pub login_url: *mut ngx_http_complex_value_t,
    /// The original absolute URL of a request, compiled along with
    /// `authgear_login_url`.
    pub original_url: *mut ngx_http_complex_value_t,
    /// `authgear_login_redirect_param`.
    pub login_redirect_param: ngx_str_t,
    /// The `WWW-Authenticate` value that `authgear_www_authenticate` sets.
    pub www_authenticate: ngx_str_t,
}

impl Default for LocationConf {
    fn default() -> Self {
        LocationConf {
            resolve: None,
            identity_headers: UNSET_FLAG,
            resolve_failure: None,
            resolve_failure_header: UNSET_FLAG,
            cookie_prefix: EMPTY_STR,
            cache: None,
            cache_valid: [UNSET_MSEC; 3],
            cache_key: ptr::null_mut(),
            cache_bypass: UNSET_PREDICATES,
            cache_lock: UNSET_FLAG,
            cache_lock_timeout: UNSET_MSEC,
            cache_use_stale: UNSET_MSEC,
            cache_background_update: UNSET_FLAG,
            require: None,
            login_url_set: UNSET_FLAG,
            login_url: ptr::null_mut(),
            original_url: ptr::null_mut(),
            login_redirect_param: EMPTY_STR,
            www_authenticate: EMPTY_STR,
        }
    }
}

impl LocationConf {
    /// Returns the resolver URI when resolution is on in this location.
    pub fn resolver_uri(&self) -> Option<&ngx_str_t> {
        match &self.resolve {
            Some(Resolve::Uri(uri)) => Some(uri),
            _ => None,
        }
    }

    pub fn identity_headers(&self) -> bool {
        self.identity_headers != 0
    }

    pub fn resolve_failure(&self) -> ResolveFailure {
        self.resolve_failure
            .unwrap_or(ResolveFailure::Status(DEFAULT_FAILURE_STATUS))
    }

    pub fn resolve_failure_header(&self) -> bool {
        self.resolve_failure_header != 0
    }

    /// Returns the cache zone when caching is on in this location.
    pub fn cache_zone(&self) -> Option<*mut ngx_shm_zone_t> {
        match self.cache {
            Some(CacheZone::Zone(zone)) => Some(zone),
            _ => None,
        }
    }

    pub fn validity(&self) -> Validity {
        let [valid, invalid, none] = self.cache_valid.map(|ms| ms as u64);
        Validity {
            valid,
            invalid,
            none,
        }
    }

    pub fn cache_lock(&self) -> bool {
        self.cache_lock != 0
    }

    pub fn cache_lock_timeout(&self) -> u64 {
        self.cache_lock_timeout as u64
    }

    pub fn cache_use_stale(&self) -> u64 {
        self.cache_use_stale as u64
    }

    pub fn cache_background_update(&self) -> bool {
        self.cache_background_update != 0
    }

    /// Returns the policy when `authgear_require` is on in this location.
    pub fn policy(&self) -> Option<&Policy> {
        match &self.require {
            Some(Require::Policy(policy)) => Some(policy),
            _ => None,
        }
    }
}

fn static_str(value: &'static [u8]) -> ngx_str_t {
    ngx_str_t {
        len: value.len(),
        data: value.as_ptr().cast_mut(),
    }
}

fn merge_str(value: &mut ngx_str_t, prev: ngx_str_t, default: &'static [u8]) {
    if value.data.is_null() {
        *value = if prev.data.is_null() {
            static_str(default)
        } else {
            prev
        };
    }
}

fn merge_flag(value: &mut ngx_flag_t, prev: ngx_flag_t, default: bool) {
    if *value == UNSET_FLAG {
        *value = if prev == UNSET_FLAG {
            ngx_flag_t::from(default)
        } else {
            prev
        };
    }
}

fn merge_msec(value: &mut ngx_msec_t, prev: ngx_msec_t, default: ngx_msec_t) {
    if *value == UNSET_MSEC {
        *value = if prev == UNSET_MSEC { default } else { prev };
    }
}

fn merge_ptr<T>(value: &mut *mut T, prev: *mut T) {
    if value.is_null() {
        *value = prev;
    }
}

impl Merge for LocationConf {
    fn merge(&mut self, prev: &LocationConf) -> Result<(), MergeConfigError> {
        if self.resolve.is_none() {
            self.resolve = prev.resolve;
        }
        merge_flag(&mut self.identity_headers, prev.identity_headers, true);
        if self.resolve_failure.is_none() {
            self.resolve_failure = prev.resolve_failure;
        }
        merge_flag(
            &mut self.resolve_failure_header,
            prev.resolve_failure_header,
            false,
        );
        merge_str(&mut self.cookie_prefix, prev.cookie_prefix, b"");

        if self.cache.is_none() {
            self.cache = prev.cache;
        }
        let defaults = Validity::DEFAULT;
        let defaults = [defaults.valid, defaults.invalid, defaults.none];
        for ((value, prev), default) in self
            .cache_valid
            .iter_mut()
            .zip(prev.cache_valid)
            .zip(defaults)
        {
            merge_msec(value, prev, default as ngx_msec_t);
        }
        merge_ptr(&mut self.cache_key, prev.cache_key);
        if self.cache_bypass == UNSET_PREDICATES {
            self.cache_bypass = if prev.cache_bypass == UNSET_PREDICATES {
                ptr::null_mut()
            } else {
                prev.cache_bypass
            };
        }
        merge_flag(&mut self.cache_lock, prev.cache_lock, true);
        merge_msec(
            &mut self.cache_lock_timeout,
            prev.cache_lock_timeout,
            DEFAULT_LOCK_TIMEOUT,
        );
        merge_msec(&mut self.cache_use_stale, prev.cache_use_stale, 0);
        merge_flag(
            &mut self.cache_background_update,
            prev.cache_background_update,
            true,
        );

        if self.require.is_none() {
            self.require = prev.require.clone();
        }
        if self.login_url_set == UNSET_FLAG {
            self.login_url_set = prev.login_url_set;
            self.login_url = prev.login_url;
            self.original_url = prev.original_url;
        }
        merge_str(
            &mut self.login_redirect_param,
            prev.login_redirect_param,
            DEFAULT_REDIRECT_PARAM,
        );
        merge_str(
            &mut self.www_authenticate,
            prev.www_authenticate,
            DEFAULT_WWW_AUTHENTICATE,
        );
        Ok(())
    }
}
