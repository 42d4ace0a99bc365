//! The access-phase handler.
//!
//! It reads as a small state machine. With no state yet, it removes
//! client-sent identity headers and consults the cache or issues the
//! resolver subrequest. While the answer is pending, it waits. Once the
//! answer is there, it applies it or fails closed.

use nginx_sys::{
    ngx_add_timer, ngx_handle_read_event, ngx_handle_write_event, ngx_http_block_reading,
    ngx_http_core_run_phases, ngx_http_finalize_request, ngx_http_request_t, ngx_http_test_reading,
    ngx_int_t, ngx_msec_t, NGX_AGAIN, NGX_DECLINED, NGX_ERROR, NGX_HTTP_FORBIDDEN,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_OK,
};

use crate::cache::{self, Action};
use crate::conf::{LocationConf, ResolveFailure};
use crate::deny;
use crate::headers;
use crate::identity::Identity;
use crate::state::{self, AccessDecision, Cause, Failure, Outcome, RequestState};
use crate::subrequest::{self, Purpose};

const DECLINED: ngx_int_t = NGX_DECLINED as ngx_int_t;
const AGAIN: ngx_int_t = NGX_AGAIN as ngx_int_t;
const ERROR: ngx_int_t = NGX_ERROR as ngx_int_t;

/// Runs in the access phase of every request.
pub extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request to phase handlers.
    let r = unsafe { &mut *r };
    if !core::ptr::eq(r.main, r) {
        return DECLINED;
    }
    let Some(conf) = crate::location_conf(r) else {
        return DECLINED;
    };
    if conf.resolver_uri().is_none() && conf.policy().is_none() {
        return DECLINED;
    }

    ngx_debug!(r, "authgear access handler");

    // SAFETY: `r` is a live main request, and no other reference to its state
    // exists while the handler runs.
    match unsafe { state::find(r) } {
        Some(state) => decide(r, conf, state),
        None => start(r, conf),
    }
}

/// Removes client-sent identity headers, then consults the cache or calls
/// the resolver.
fn start(r: &mut ngx_http_request_t, conf: &LocationConf) -> ngx_int_t {
    // SAFETY: `r` is a live main request.
    match unsafe { headers::strip_client_headers(r) } {
        Ok(0) => {}
        Ok(removed) => ngx_debug!(
            r,
            "authgear removed {removed} client-sent X-Authgear-* headers"
        ),
        Err(()) => return ERROR,
    }

    // SAFETY: `r` is a live main request without state.
    let Some(state) = (unsafe { state::create(r) }) else {
        return ERROR;
    };

    if conf.resolver_uri().is_none() {
        // `authgear_require` without `authgear_resolve` (inherited, or with
        // `authgear_resolve off`) has no answer to check, so the request
        // counts as one without a session rather than passing unchecked.
        state.outcome = Outcome::Resolved(Identity::default());
        return apply(r, conf, state);
    }

    // SAFETY: `r` is a live main request.
    match unsafe { cache::begin(r, conf) } {
        Ok(Some(cache_request)) => {
            state.cache = Some(cache_request);
            consult_cache(r, conf, state)
        }
        Ok(None) => resolve(r, conf, state),
        Err(()) => {
            ngx_error!(r, "authgear failed to build the cache key");
            ERROR
        }
    }
}

/// Issues the resolver subrequest that the request waits for.
fn resolve(r: &mut ngx_http_request_t, conf: &LocationConf, state: &mut RequestState) -> ngx_int_t {
    let Some(uri) = conf.resolver_uri() else {
        return DECLINED;
    };
    state.outcome = Outcome::Pending;
    // SAFETY: the state lives in the main request's pool, which outlives the
    // subrequest.
    if unsafe { subrequest::issue(r, uri, state::as_ptr(state), Purpose::Answer) }.is_err() {
        return ERROR;
    }
    ngx_debug!(r, "authgear resolver subrequest issued");
    AGAIN
}

/// Looks the request up in the cache, and serves, resolves or waits.
fn consult_cache(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    state: &mut RequestState,
) -> ngx_int_t {
    let Some(cache_request) = state.cache.as_mut() else {
        return resolve(r, conf, state);
    };
    // SAFETY: the cache request belongs to this live request.
    let action = unsafe { cache::lookup(cache_request, conf) };
    if let Some(warning) = cache::take_warning(cache_request) {
        ngx_warn!(r, "{warning}");
    }
    ngx_debug!(r, "authgear cache lookup: {}", action.name());

    match action {
        Action::Serve { identity, refresh } => {
            if refresh {
                refresh_in_background(r, conf, state);
            }
            state.outcome = Outcome::Resolved(identity);
            decide(r, conf, state)
        }
        Action::Resolve => resolve(r, conf, state),
        Action::Wait(delay) => {
            state.outcome = Outcome::Waiting;
            // SAFETY: `r` is a live main request in its access phase.
            unsafe { wait(r, delay) };
            AGAIN
        }
    }
}

/// Issues a background subrequest that refreshes the request's cache entry.
fn refresh_in_background(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    state: &mut RequestState,
) {
    let Some(uri) = conf.resolver_uri() else {
        return;
    };
    // SAFETY: as in `resolve`; a background subrequest keeps the main
    // request alive until it ends.
    if unsafe { subrequest::issue(r, uri, state::as_ptr(state), Purpose::Refresh) }.is_err() {
        ngx_warn!(r, "authgear failed to start a background refresh");
        if let Some(cache_request) = state.cache.as_mut() {
            // SAFETY: the cache request belongs to this live request.
            unsafe { cache::release(cache_request) };
        }
        return;
    }
    ngx_debug!(r, "authgear background refresh issued");
}

/// Makes the request look at the cache again after `delay` ms, as
/// `limit_req` delays requests: through a timer on the connection's write
/// event.
///
/// # Safety
/// `r` must be a live main request in its access phase.
unsafe fn wait(r: &mut ngx_http_request_t, delay: u64) {
    r.read_event_handler = Some(ngx_http_test_reading);
    r.write_event_handler = Some(wake);
    let wev = (*r.connection).write;
    (*wev).set_delayed(1);
    ngx_add_timer(wev, delay as ngx_msec_t);
}

/// Runs the phases again once the wait timer has fired.
unsafe extern "C" fn wake(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the write event handler with a live request.
    let wev = (*(*r).connection).write;
    if (*wev).delayed() != 0 {
        // Woken by writability rather than by the timer: keep waiting.
        if ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        return;
    }
    if ngx_handle_read_event((*(*r).connection).read, 0) != NGX_OK as ngx_int_t {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        return;
    }
    (*r).read_event_handler = Some(ngx_http_block_reading);
    (*r).write_event_handler = Some(ngx_http_core_run_phases);
    ngx_http_core_run_phases(r);
}

/// Applies the resolver's answer once it has arrived.
fn decide(r: &mut ngx_http_request_t, conf: &LocationConf, state: &mut RequestState) -> ngx_int_t {
    match &state.outcome {
        Outcome::Pending => AGAIN,
        Outcome::Waiting => consult_cache(r, conf, state),
        Outcome::Failed(failure) => {
            let failure = *failure;
            state.resolve_failed = true;
            let stale = state
                .cache
                .as_mut()
                .and_then(|cache_request| cache::stale_identity(cache_request, conf));
            if let Some(identity) = stale {
                if !state.reported {
                    state.reported = true;
                    report_stale(r, conf, state, failure);
                }
                state.outcome = Outcome::Resolved(identity);
                return apply(r, conf, state);
            }
            if !state.reported {
                state.reported = true;
                report_failure(r, conf, failure);
            }
            match conf.resolve_failure() {
                ResolveFailure::Anonymous => {
                    state.outcome = Outcome::Resolved(Identity::default());
                    apply(r, conf, state)
                }
                ResolveFailure::Status(status) => {
                    if conf.policy().is_none() {
                        return status as ngx_int_t;
                    }
                    state.decision = Some(AccessDecision::ResolverError);
                    if deny::satisfy_any(r) {
                        // `allow` may still let the request in without an
                        // identity: the status waits for the end of the phase.
                        state.satisfy_any = true;
                        state.deferred_failure = Some(status as ngx_int_t);
                        return NGX_HTTP_FORBIDDEN as ngx_int_t;
                    }
                    status as ngx_int_t
                }
            }
        }
        Outcome::Resolved(_) => apply(r, conf, state),
    }
}

/// Puts the identity on the request and its cookies on the response, once.
/// Then applies the location's `authgear_require`, on every pass: an
/// internal redirect may lead to a location with another policy.
fn apply(r: &mut ngx_http_request_t, conf: &LocationConf, state: &mut RequestState) -> ngx_int_t {
    // The outcome moves out while the policy check updates the rest of the
    // state, and back in afterwards.
    let outcome = core::mem::replace(&mut state.outcome, Outcome::Pending);
    let rc = match &outcome {
        Outcome::Resolved(identity) => apply_identity(r, conf, state, identity),
        _ => ERROR,
    };
    state.outcome = outcome;
    rc
}

fn apply_identity(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    state: &mut RequestState,
    identity: &Identity,
) -> ngx_int_t {
    if !state.applied {
        state.applied = true;
        ngx_debug!(
            r,
            "authgear identity: {} headers, {} cookies",
            identity.headers().len(),
            identity.set_cookies().len()
        );
        if put_identity(r, conf, identity, state.resolve_failed).is_err() {
            return ERROR;
        }
    }
    // SAFETY: `r` is a live main request in its access phase.
    unsafe { deny::enforce(r, conf, state, identity) }.unwrap_or(DECLINED)
}

/// Runs last in the access phase, after every other access module, to send
/// a 401 or login redirect that `satisfy any` deferred.
pub extern "C" fn access_final_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request to phase handlers.
    let r = unsafe { &mut *r };
    if !core::ptr::eq(r.main, r) {
        return DECLINED;
    }
    let Some(conf) = crate::location_conf(r) else {
        return DECLINED;
    };
    if conf.resolver_uri().is_none() && conf.policy().is_none() {
        return DECLINED;
    }
    // SAFETY: `r` is a live main request, and no other reference to its
    // state exists while the handler runs.
    let Some(state) = (unsafe { state::find(r) }) else {
        return DECLINED;
    };
    // SAFETY: `r` is in its access phase.
    unsafe { deny::finish(r, conf, state) }.unwrap_or(DECLINED)
}

fn put_identity(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    identity: &Identity,
    failed: bool,
) -> Result<(), ()> {
    if conf.identity_headers() {
        // SAFETY: `r` is a live main request.
        unsafe { headers::add_identity_headers(r, identity) }?;
    }
    if failed && conf.resolve_failure_header() {
        // SAFETY: `r` is a live main request.
        unsafe { headers::add_failure_header(r) }?;
    }
    // SAFETY: the access phase runs before the response header is sent.
    unsafe { headers::add_set_cookies(r, identity) }
}

fn resolver_uri(conf: &LocationConf) -> String {
    conf.resolver_uri()
        // SAFETY: the URI points into the configuration pool.
        .map(|uri| String::from_utf8_lossy(unsafe { subrequest::str_bytes(uri) }).into_owned())
        .unwrap_or_default()
}

/// Describes a failure for a log line, without any credential.
fn describe(failure: Failure) -> String {
    let status = failure.status;
    match failure.cause {
        Cause::Status => format!("returned unexpected status {status}"),
        Cause::TimedOut => format!("timed out ({status})"),
        Cause::HeaderTooLarge(size) => format!(
            "sent an answer larger than proxy_buffer_size ({size} bytes), \
             raise proxy_buffer_size in the resolver location ({status})"
        ),
        Cause::NoAnswer if status == 0 => "subrequest failed".to_string(),
        Cause::NoAnswer => {
            format!("request failed with status {status} before an answer arrived")
        }
    }
}

/// Logs one error line that names what failed and the resolver URI.
fn report_failure(r: &ngx_http_request_t, conf: &LocationConf, failure: Failure) {
    ngx_error!(
        r,
        "authgear resolver {}, resolver: \"{}\"",
        describe(failure),
        resolver_uri(conf)
    );
}

/// Logs one warning line for an answer served stale.
fn report_stale(
    r: &ngx_http_request_t,
    conf: &LocationConf,
    state: &RequestState,
    failure: Failure,
) {
    let zone = state.cache.as_ref().map(cache::name).unwrap_or_default();
    ngx_warn!(
        r,
        "authgear resolver {}, serving a stale answer from cache zone \"{zone}\", resolver: \"{}\"",
        describe(failure),
        resolver_uri(conf)
    );
}
