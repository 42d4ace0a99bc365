//! The per-request state of the module, kept where an internal redirect
//! cannot erase it.
//!
//! An internal redirect (`index`, `try_files`, `error_page`) zeroes every
//! module context of the request and runs the access phase again. The state
//! is therefore owned by a cleanup entry of the main request's pool, which
//! survives redirects, and the module context only caches a pointer to it.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_pool_cleanup_add, ngx_pool_cleanup_t, ngx_table_elt_t,
};

use crate::cache::CacheRequest;
use crate::identity::Identity;

/// The reason the resolver subrequest gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The resolver answered with a status other than 2xx.
    Status,
    /// No answer arrived within the resolver location's timeouts.
    TimedOut,
    /// The answer's headers did not fit in the resolver location's
    /// `proxy_buffer_size`, which has this many bytes.
    HeaderTooLarge(usize),
    /// No answer arrived: refused or broken connection, invalid answer.
    NoAnswer,
}

/// A failed resolver subrequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The status of the subrequest: the resolver's, or the one nginx set
    /// when no usable answer arrived (502, 504); 0 when there is none.
    pub status: usize,
    pub cause: Cause,
}

#[derive(Debug)]
pub enum Outcome {
    /// The subrequest is in flight.
    Pending,
    /// Another request is resolving the same cache key; this one looks
    /// again when its timer fires.
    Waiting,
    /// The resolver answered 2xx.
    Resolved(Identity),
    /// The resolver could not be reached or answered another status.
    Failed(Failure),
}

/// The value of `$authgear_decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDecision {
    Allowed,
    Unauthenticated,
    LoginRedirect,
    Forbidden,
    ResolverError,
}

impl AccessDecision {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            AccessDecision::Allowed => b"allowed",
            AccessDecision::Unauthenticated => b"unauthenticated",
            AccessDecision::LoginRedirect => b"login_redirect",
            AccessDecision::Forbidden => b"forbidden",
            AccessDecision::ResolverError => b"resolver_error",
        }
    }
}

/// The module's state for one client request.
#[derive(Debug)]
pub struct RequestState {
    pub outcome: Outcome,
    /// Whether the identity was already put on the request and the response,
    /// so that a second pass after an internal redirect does not repeat it.
    pub applied: bool,
    /// Whether the failure was already logged.
    pub reported: bool,
    /// The cache's part of the request, when the location uses a cache.
    pub cache: Option<CacheRequest>,
    /// The outcome of `authgear_require`, when the location has one.
    pub decision: Option<AccessDecision>,
    /// Under `satisfy any`, a 401 left for the end of the access phase;
    /// `true` when it becomes a login redirect.
    pub deferred_redirect: Option<bool>,
    /// Whether the resolver failed for this request.
    pub resolve_failed: bool,
    /// Whether the policy denied under `satisfy any`, where another access
    /// module may still have let the request in.
    pub satisfy_any: bool,
    /// Whether every access module denied that request, so the module's
    /// denial is final.
    pub satisfy_any_denied: bool,
    /// Under `satisfy any`, the status of a resolver failure, left for the
    /// end of the access phase.
    pub deferred_failure: Option<ngx_int_t>,
    /// The `WWW-Authenticate` header the module added, so that a second pass
    /// updates it instead of adding another.
    pub challenge: *mut ngx_table_elt_t,
}

impl RequestState {
    /// Returns the value of `$authgear_decision`. Under `satisfy any`, a
    /// denial that another access module overrode counts as allowed.
    pub fn decision(&self) -> Option<AccessDecision> {
        if self.satisfy_any && !self.satisfy_any_denied && self.decision.is_some() {
            return Some(AccessDecision::Allowed);
        }
        self.decision
    }

    pub fn identity(&self) -> Option<&Identity> {
        match &self.outcome {
            Outcome::Resolved(identity) => Some(identity),
            _ => None,
        }
    }
}

/// Drops the state when nginx destroys the request pool.
unsafe extern "C" fn drop_state(data: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the pointer `create` obtained from `Box::into_raw`,
        // and nginx runs each cleanup handler once.
        drop(Box::from_raw(data.cast::<RequestState>()));
    }
}

fn module_ctx_slot(r: &ngx_http_request_t) -> *mut *mut c_void {
    // SAFETY: nginx allocates `ctx` with one slot per HTTP module, and
    // `ctx_index` is set once the module is loaded.
    unsafe { r.ctx.add(crate::module().ctx_index) }
}

/// Finds the state of the main request of `r`, if the access handler has
/// created one.
///
/// # Safety
/// `r` must be a live request. The returned reference must not outlive it
/// and must not overlap another one from `find` or `create`.
pub unsafe fn find<'a>(r: &ngx_http_request_t) -> Option<&'a mut RequestState> {
    let main = &*r.main;
    let slot = module_ctx_slot(main);
    if !(*slot).is_null() {
        return Some(&mut *(*slot).cast::<RequestState>());
    }

    // After an internal redirect the module context is empty: look for the
    // cleanup entry, as ngx_http_realip_module does.
    let mut cleanup: *mut ngx_pool_cleanup_t = (*main.pool).cleanup;
    while !cleanup.is_null() {
        if (*cleanup).handler.is_some_and(|handler| {
            core::ptr::fn_addr_eq(handler, drop_state as unsafe extern "C" fn(*mut c_void))
        }) {
            let state = (*cleanup).data;
            *slot = state;
            return Some(&mut *state.cast::<RequestState>());
        }
        cleanup = (*cleanup).next;
    }
    None
}

/// Creates the state of the main request `r` in its pool. Returns `None`
/// when the pool is out of memory.
///
/// # Safety
/// `r` must be a live main request with no state yet.
pub unsafe fn create<'a>(r: &mut ngx_http_request_t) -> Option<&'a mut RequestState> {
    let cleanup = ngx_pool_cleanup_add(r.pool, 0);
    if cleanup.is_null() {
        return None;
    }
    let state = Box::into_raw(Box::new(RequestState {
        outcome: Outcome::Pending,
        applied: false,
        reported: false,
        cache: None,
        decision: None,
        deferred_redirect: None,
        resolve_failed: false,
        satisfy_any: false,
        satisfy_any_denied: false,
        deferred_failure: None,
        challenge: ptr::null_mut(),
    }));
    (*cleanup).handler = Some(drop_state);
    (*cleanup).data = state.cast();
    *module_ctx_slot(r) = state.cast();
    Some(&mut *state)
}

/// Returns a raw pointer to the state, for the subrequest's completion
/// handler.
pub fn as_ptr(state: &mut RequestState) -> *mut RequestState {
    ptr::from_mut(state)
}
