//! The access-phase handler.
//!
//! It reads as a small state machine: no state yet, so remove client-sent
//! identity headers and issue the resolver subrequest; state but no answer
//! yet, so wait; an answer, so apply it or fail closed.

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, NGX_AGAIN, NGX_DECLINED, NGX_ERROR,
    NGX_HTTP_INTERNAL_SERVER_ERROR,
};

use crate::conf::LocationConf;
use crate::headers;
use crate::state::{self, Failure, Outcome, RequestState};
use crate::subrequest;

/// Runs in the access phase of every request.
pub extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes a live request to phase handlers.
    let r = unsafe { &mut *r };
    if !core::ptr::eq(r.main, r) {
        return NGX_DECLINED as ngx_int_t;
    }
    let Some(conf) = crate::location_conf(r) else {
        return NGX_DECLINED as ngx_int_t;
    };
    if conf.resolver_uri().is_none() {
        return NGX_DECLINED as ngx_int_t;
    }

    ngx_debug!(r, "authgear access handler");

    // SAFETY: `r` is a live main request, and no other reference to its state
    // exists while the handler runs.
    match unsafe { state::find(r) } {
        Some(state) => decide(r, conf, state),
        None => start(r, conf),
    }
}

/// Removes client-sent identity headers and issues the resolver subrequest.
fn start(r: &mut ngx_http_request_t, conf: &LocationConf) -> ngx_int_t {
    let Some(uri) = conf.resolver_uri() else {
        return NGX_DECLINED as ngx_int_t;
    };

    // SAFETY: `r` is a live main request.
    match unsafe { headers::strip_client_headers(r) } {
        Ok(0) => {}
        Ok(removed) => ngx_debug!(r, "authgear removed {removed} client-sent X-Authgear-* headers"),
        Err(()) => return NGX_ERROR as ngx_int_t,
    }

    // SAFETY: `r` is a live main request without state.
    let Some(state) = (unsafe { state::create(r) }) else {
        return NGX_ERROR as ngx_int_t;
    };

    // SAFETY: the state lives in the main request's pool, which outlives the
    // subrequest.
    if unsafe { subrequest::issue(r, uri, state::as_ptr(state)) }.is_err() {
        return NGX_ERROR as ngx_int_t;
    }

    ngx_debug!(r, "authgear resolver subrequest issued");
    NGX_AGAIN as ngx_int_t
}

/// Applies the resolver's answer once it has arrived.
fn decide(r: &mut ngx_http_request_t, conf: &LocationConf, state: &mut RequestState) -> ngx_int_t {
    match &state.outcome {
        Outcome::Pending => NGX_AGAIN as ngx_int_t,

        Outcome::Failed(failure) => {
            if !state.reported {
                state.reported = true;
                report_failure(r, conf, *failure);
            }
            NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
        }

        Outcome::Resolved(identity) => {
            if !state.applied {
                state.applied = true;
                ngx_debug!(
                    r,
                    "authgear identity: {} headers, {} cookies",
                    identity.headers().len(),
                    identity.set_cookies().len()
                );
                if conf.identity_headers() {
                    // SAFETY: `r` is a live main request.
                    if unsafe { headers::add_identity_headers(r, identity) }.is_err() {
                        return NGX_ERROR as ngx_int_t;
                    }
                }
                // SAFETY: the access phase runs before the response header is sent.
                if unsafe { headers::add_set_cookies(r, identity) }.is_err() {
                    return NGX_ERROR as ngx_int_t;
                }
            }
            NGX_DECLINED as ngx_int_t
        }
    }
}

/// Logs one error line that names what failed and the resolver URI, and no
/// credential.
fn report_failure(r: &ngx_http_request_t, conf: &LocationConf, failure: Failure) {
    let uri = conf
        .resolver_uri()
        // SAFETY: the URI points into the configuration pool.
        .map(|uri| String::from_utf8_lossy(unsafe { subrequest::str_bytes(uri) }).into_owned())
        .unwrap_or_default();
    let Failure { status, answered } = failure;
    match (answered, status) {
        (true, _) => ngx_error!(
            r,
            "authgear resolver returned unexpected status {status}, resolver: \"{uri}\""
        ),
        (false, 504) => ngx_error!(
            r,
            "authgear resolver timed out (504), resolver: \"{uri}\""
        ),
        (false, 0) => ngx_error!(
            r,
            "authgear resolver subrequest failed, resolver: \"{uri}\""
        ),
        (false, _) => ngx_error!(
            r,
            "authgear resolver request failed with status {status} before an answer arrived, resolver: \"{uri}\""
        ),
    }
}
