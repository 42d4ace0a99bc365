//! The cache as the access handler uses it.

use core::sync::atomic::{AtomicU64, Ordering};

use nginx_sys::{
    ngx_http_complex_value, ngx_http_request_t, ngx_http_test_predicates, ngx_shm_zone_t,
    ngx_str_t, NGX_DECLINED, NGX_OK,
};

use super::entry::{decode, encode};
use super::key::{custom_key, default_key, has_credentials, KeyDigest, KeyParts};
use super::policy::{may_serve_stale, Kind, Validity};
use super::store::{Locked, Lookup};
use super::zone;
use super::CacheStatus;
use crate::conf::LocationConf;
use crate::identity::Identity;
use crate::subrequest::str_bytes;

/// The first and the longest pause between two looks at a locked key, in ms.
const FIRST_WAIT: u64 = 2;
const MAX_WAIT: u64 = 50;

/// The room reserved for an entry's data before the zone is locked, so that
/// a typical lookup does not allocate inside the critical section.
const TYPICAL_ENTRY: usize = 512;

/// An expired entry kept for serving stale if the resolver fails.
#[derive(Debug)]
pub struct Stale {
    pub data: Vec<u8>,
    pub expires: u64,
}

/// The cache's state for one client request.
#[derive(Debug)]
pub struct CacheRequest {
    pub shm_zone: *mut ngx_shm_zone_t,
    pub digest: KeyDigest,
    /// Whether the key covers a credential; see `has_credentials`.
    pub credentials: bool,
    pub status: CacheStatus,
    /// This request holds the key's lock and must store or release it.
    pub locked: bool,
    /// The resolver's answer is to be stored.
    pub store: bool,
    pub validity: Validity,
    pub stale: Option<Stale>,
    /// When waiting for another request's answer gives up, in ms.
    pub wait_deadline: Option<u64>,
    pub wait_step: u64,
    /// A warning that a lookup left for the handler to log.
    pub warning: Option<String>,
}

/// The access handler's next step after a lookup.
#[derive(Debug)]
pub enum Action {
    /// Use this identity. With `refresh`, also refresh the entry in the
    /// background.
    Serve { identity: Identity, refresh: bool },
    /// Call the resolver.
    Resolve,
    /// Look again after this many milliseconds.
    Wait(u64),
}

impl Action {
    /// Names the action for debug logs, without the identity.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Serve { refresh: false, .. } => "serve",
            Action::Serve { refresh: true, .. } => "serve and refresh",
            Action::Resolve => "resolve",
            Action::Wait(_) => "wait",
        }
    }
}

/// Returns nginx's monotonic clock in milliseconds.
pub fn now() -> u64 {
    // SAFETY: nginx updates `ngx_current_msec` only from the thread that
    // runs the event loop, which is this one.
    unsafe { nginx_sys::ngx_current_msec as u64 }
}

fn zone_name(shm_zone: *mut ngx_shm_zone_t) -> String {
    // SAFETY: the zone belongs to the running cycle.
    match unsafe { (*shm_zone).data.cast::<zone::Zone>().as_ref() } {
        // SAFETY: the name lives in the configuration pool.
        Some(zone) => String::from_utf8_lossy(unsafe { str_bytes(&zone.name) }).into_owned(),
        None => String::new(),
    }
}

/// Builds the cache key of `r`, and reports whether the key covers any
/// credential. Returns `None` when a variable in `authgear_cache_key` fails
/// to evaluate.
///
/// # Safety
/// `r` must be a live main request.
unsafe fn build_key(r: &mut ngx_http_request_t, conf: &LocationConf) -> Option<(KeyDigest, bool)> {
    let resolver = conf
        .resolver_uri()
        .map(|uri| str_bytes(uri))
        .unwrap_or_default();

    if let Some(cv) = conf.cache_key.as_mut() {
        let mut value = ngx_str_t {
            len: 0,
            data: core::ptr::null_mut(),
        };
        if ngx_http_complex_value(r, cv, &mut value) != NGX_OK as isize {
            return None;
        }
        let value = str_bytes(&value);
        return Some((custom_key(resolver, value), !value.is_empty()));
    }

    let parts = KeyParts {
        resolver,
        host: str_bytes(&r.headers_in.server),
        authorization: r
            .headers_in
            .authorization
            .as_ref()
            .map(|header| str_bytes(&header.value)),
        cookie_headers: cookie_headers(r),
        cookie_prefix: str_bytes(&conf.cookie_prefix),
    };
    Some((default_key(&parts), has_credentials(&parts)))
}

/// Returns the values of the request's `Cookie` headers, in request order.
///
/// # Safety
/// `r` must be a live request.
#[cfg(ngx_linked_headers)]
unsafe fn cookie_headers(r: &ngx_http_request_t) -> Vec<&[u8]> {
    let mut values = Vec::new();
    let mut cookie = r.headers_in.cookie;
    while let Some(header) = cookie.as_ref() {
        values.push(str_bytes(&header.value));
        cookie = header.next;
    }
    values
}

/// Returns the values of the request's `Cookie` headers, in request order.
/// Before 1.23.0, nginx collects them in an array of header pointers.
///
/// # Safety
/// `r` must be a live request.
#[cfg(not(ngx_linked_headers))]
unsafe fn cookie_headers(r: &ngx_http_request_t) -> Vec<&[u8]> {
    let cookies = &r.headers_in.cookies;
    if cookies.nelts == 0 || cookies.elts.is_null() {
        return Vec::new();
    }
    let headers = core::slice::from_raw_parts(
        cookies.elts.cast::<*mut nginx_sys::ngx_table_elt_t>(),
        cookies.nelts,
    );
    headers
        .iter()
        .filter_map(|header| header.as_ref())
        .map(|header| str_bytes(&header.value))
        .collect()
}

/// Starts the cache's part of a request: builds the key, or marks the
/// request `BYPASS` when `authgear_cache_bypass` matches. Returns `Err` when
/// the key cannot be built.
///
/// # Safety
/// `r` must be a live main request.
pub unsafe fn begin(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
) -> Result<Option<CacheRequest>, ()> {
    let Some(shm_zone) = conf.cache_zone() else {
        return Ok(None);
    };
    if zone::get(shm_zone).is_none() {
        return Ok(None);
    }
    let (digest, credentials) = build_key(r, conf).ok_or(())?;

    let mut status = CacheStatus::Miss;
    if !conf.cache_bypass.is_null() {
        match ngx_http_test_predicates(r, conf.cache_bypass) {
            rc if rc == NGX_DECLINED as isize => status = CacheStatus::Bypass,
            rc if rc == NGX_OK as isize => {}
            _ => return Err(()),
        }
    }

    Ok(Some(CacheRequest {
        shm_zone,
        digest,
        credentials,
        status,
        locked: false,
        store: true,
        validity: conf.validity(),
        stale: None,
        wait_deadline: None,
        wait_step: FIRST_WAIT,
        warning: None,
    }))
}

/// Looks the request's key up and decides what to do.
///
/// # Safety
/// The cache request must belong to a live request of the current cycle.
pub unsafe fn lookup(cache: &mut CacheRequest, conf: &LocationConf) -> Action {
    if cache.status == CacheStatus::Bypass {
        return Action::Resolve;
    }
    let Some(zone) = zone::get(cache.shm_zone) else {
        cache.store = false;
        return Action::Resolve;
    };

    let now = now();
    // A request that waited out `authgear_cache_lock_timeout` never takes the
    // key's lock over, even when the lock it waited for has just expired.
    let waited_out = cache.wait_deadline.is_some_and(|deadline| now >= deadline);
    let lock_for = (conf.cache_lock() && !waited_out).then_some(conf.cache_lock_timeout());
    let buffer = Vec::with_capacity(TYPICAL_ENTRY);
    let (result, warn_full) = {
        let mut locked = Locked::lock(zone.shpool, zone.header);
        let result = locked.lookup(
            &cache.digest,
            now,
            lock_for,
            conf.cache_background_update(),
            conf.cache_lock_timeout(),
            buffer,
        );
        (result, locked.warn_full())
    };
    if warn_full {
        cache.warning = Some(full_warning(cache.shm_zone));
    }

    if waited_out && !matches!(result, Lookup::Fresh { .. }) {
        // Like proxy_cache_lock_timeout: call the resolver and keep its
        // answer out of the cache.
        cache.status = CacheStatus::Bypass;
        cache.store = false;
        if let Lookup::Expired { data, expires, .. } = result {
            cache.stale = Some(Stale { data, expires });
        }
        return Action::Resolve;
    }

    match result {
        Lookup::Fresh { data, refresh, .. } => match decode(&data) {
            Ok(identity) => {
                cache.status = if refresh {
                    CacheStatus::Updating
                } else {
                    CacheStatus::Hit
                };
                cache.locked = refresh;
                Action::Serve { identity, refresh }
            }
            Err(_) => {
                cache.status = CacheStatus::Miss;
                Action::Resolve
            }
        },
        Lookup::Expired {
            data,
            expires,
            locked,
        } => {
            cache.status = CacheStatus::Expired;
            cache.locked = locked;
            cache.stale = Some(Stale { data, expires });
            Action::Resolve
        }
        Lookup::Miss { locked } => {
            cache.status = CacheStatus::Miss;
            cache.locked = locked;
            Action::Resolve
        }
        Lookup::Wait => {
            let deadline = *cache
                .wait_deadline
                .get_or_insert(now + conf.cache_lock_timeout());
            let step = cache.wait_step.min(deadline - now).max(1);
            cache.wait_step = (cache.wait_step * 2).min(MAX_WAIT);
            Action::Wait(step)
        }
    }
}

fn full_warning(shm_zone: *mut ngx_shm_zone_t) -> String {
    format!(
        "authgear cache zone \"{}\" is full, evicting least recently used entries",
        zone_name(shm_zone)
    )
}

/// Stores the resolver's answer, which also releases the key's lock.
/// Returns a warning to log when the zone is full.
///
/// # Safety
/// The cache request must belong to a live request of the current cycle.
pub unsafe fn store(cache: &mut CacheRequest, identity: &Identity) -> Option<String> {
    let zone = zone::get(cache.shm_zone)?;
    if !cache.store {
        return None;
    }
    let kind = Kind::of(identity.session());
    if kind == Kind::Valid && !cache.credentials {
        // Storing it would hand this session to every request without
        // credentials.
        release(cache);
        cache.store = false;
        return uncovered_credential_warning(cache.shm_zone);
    }
    let data = encode(identity);
    let warn_full = {
        let mut locked = Locked::lock(zone.shpool, zone.header);
        locked.store(
            &cache.digest,
            kind,
            &data,
            cache.validity.for_kind(kind),
            now(),
        );
        locked.warn_full()
    };
    cache.locked = false;
    cache.store = false;
    warn_full.then(|| full_warning(cache.shm_zone))
}

/// When the last warning about an uncovered credential was logged by this
/// worker process, on nginx's monotonic clock in ms.
static LAST_UNCOVERED_WARNING: AtomicU64 = AtomicU64::new(0);

/// Returns the warning about a valid session answered for a key without
/// credentials, at most once a minute per worker process.
fn uncovered_credential_warning(shm_zone: *mut ngx_shm_zone_t) -> Option<String> {
    let now = now().max(1);
    let last = LAST_UNCOVERED_WARNING.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < 60_000 {
        return None;
    }
    LAST_UNCOVERED_WARNING.store(now, Ordering::Relaxed);
    Some(format!(
        "authgear resolver answered a valid session for a request whose cache key \
         has no credential, not caching it in zone \"{}\": set authgear_cookie_prefix \
         to Authgear's cookie prefix, or make authgear_cache_key cover the credential",
        zone_name(shm_zone)
    ))
}

/// Returns the "zone is full" warning that a lookup left, once.
pub fn take_warning(cache: &mut CacheRequest) -> Option<String> {
    cache.warning.take()
}

/// Releases the key's lock after the resolver failed.
///
/// # Safety
/// The cache request must belong to a live request of the current cycle.
pub unsafe fn release(cache: &mut CacheRequest) {
    if !cache.locked {
        return;
    }
    cache.locked = false;
    if let Some(zone) = zone::get(cache.shm_zone) {
        let mut locked = Locked::lock(zone.shpool, zone.header);
        locked.release(&cache.digest);
    }
}

/// Returns the stale identity to serve after a resolver failure, if the
/// location allows it and the entry expired recently enough.
pub fn stale_identity(cache: &mut CacheRequest, conf: &LocationConf) -> Option<Identity> {
    let stale = cache.stale.as_ref()?;
    if !may_serve_stale(now(), stale.expires, conf.cache_use_stale()) {
        return None;
    }
    let identity = decode(&stale.data).ok()?;
    cache.status = CacheStatus::Stale;
    Some(identity)
}

/// Returns the zone name for log lines.
pub fn name(cache: &CacheRequest) -> String {
    zone_name(cache.shm_zone)
}
