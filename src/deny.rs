//! Enforcement of `authgear_require`: the 401 with `WWW-Authenticate`, the
//! login redirect for browser navigations, and the 403.

use nginx_sys::{
    ngx_http_complex_value, ngx_http_request_t, ngx_int_t, ngx_pnalloc, ngx_str_t, ngx_table_elt_t,
    NGX_ERROR, NGX_HTTP_FORBIDDEN, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_MOVED_TEMPORARILY,
    NGX_HTTP_SATISFY_ANY, NGX_HTTP_UNAUTHORIZED, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use crate::conf::LocationConf;
use crate::headers::{self, elements};
use crate::identity::Identity;
use crate::policy::login::{is_navigation, login_location, RequestKind};
use crate::policy::{Condition, Decision};
use crate::state::{AccessDecision, RequestState};
use crate::subrequest::str_bytes;

/// Returns the value of the first request header named `name` (lowercase).
///
/// # Safety
/// `r` must be a live request.
unsafe fn request_header<'a>(r: &'a ngx_http_request_t, name: &[u8]) -> Option<&'a [u8]> {
    elements(&r.headers_in.headers)
        .find(|header| {
            header.hash != 0
                && !header.lowcase_key.is_null()
                && core::slice::from_raw_parts(header.lowcase_key, header.key.len) == name
        })
        .map(|header| str_bytes(&header.value))
}

/// Reports whether `r` is a browser navigation that should be redirected to
/// the login page rather than get a 401.
///
/// # Safety
/// `r` must be a live request.
unsafe fn is_browser_navigation(r: &ngx_http_request_t) -> bool {
    let kind = RequestKind {
        method_is_get_or_head: r.method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize != 0,
        sec_fetch_mode: request_header(r, b"sec-fetch-mode"),
        accept: request_header(r, b"accept"),
        x_requested_with: request_header(r, b"x-requested-with"),
    };
    is_navigation(&kind)
}

pub fn satisfy_any(r: &ngx_http_request_t) -> bool {
    NgxHttpCoreModule::location_conf(r)
        .is_some_and(|clcf| clcf.satisfy == NGX_HTTP_SATISFY_ANY as usize)
}

/// Evaluates a complex value of the configuration.
///
/// # Safety
/// `r` must be a live request and `cv` a value compiled for its configuration.
unsafe fn evaluate(
    r: &mut ngx_http_request_t,
    cv: *mut nginx_sys::ngx_http_complex_value_t,
) -> Option<Vec<u8>> {
    let mut value = ngx_str_t {
        len: 0,
        data: core::ptr::null_mut(),
    };
    if cv.is_null() || ngx_http_complex_value(r, cv, &mut value) != NGX_OK as isize {
        return None;
    }
    Some(str_bytes(&value).to_vec())
}

/// Answers a request without a valid session: a 302 to the login page for a
/// browser navigation when `authgear_login_url` is set, a 401 with
/// `WWW-Authenticate` otherwise.
///
/// # Safety
/// `r` must be a live main request whose response header is not sent yet.
unsafe fn unauthenticated(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    state: &mut RequestState,
    redirect: bool,
) -> ngx_int_t {
    // Under `satisfy any`, another access module such as auth_basic may
    // have asked for its own challenge: the browser must see it, so the
    // 401 is kept and the module's challenge is added next to it.
    let other_challenge = !r.headers_out.www_authenticate.is_null()
        && !core::ptr::eq(r.headers_out.www_authenticate, state.challenge)
        && (*r.headers_out.www_authenticate).hash != 0;
    if redirect && !other_challenge {
        let login_url = evaluate(r, conf.login_url);
        let original = evaluate(r, conf.original_url);
        let (Some(login_url), Some(original)) = (login_url, original) else {
            return NGX_ERROR as ngx_int_t;
        };
        let location = login_location(&login_url, str_bytes(&conf.login_redirect_param), &original);
        let Ok(header) = set_response_header(r, r.headers_out.location, b"Location", &location)
        else {
            return NGX_ERROR as ngx_int_t;
        };
        r.headers_out.location = header;
        state.decision = Some(AccessDecision::LoginRedirect);
        return NGX_HTTP_MOVED_TEMPORARILY as ngx_int_t;
    }

    let challenge = str_bytes(&conf.www_authenticate).to_vec();
    let Ok(header) = set_response_header(r, state.challenge, b"WWW-Authenticate", &challenge)
    else {
        return NGX_ERROR as ngx_int_t;
    };
    state.challenge = header;
    if r.headers_out.www_authenticate.is_null() {
        r.headers_out.www_authenticate = header;
    }
    state.decision = Some(AccessDecision::Unauthenticated);
    NGX_HTTP_UNAUTHORIZED as ngx_int_t
}

/// Sets a response header that the module sets at most once: an earlier
/// pass of the access phase, before an internal redirect to a location that
/// denies again, may have added it already.
///
/// # Safety
/// `r` must be a live request whose response header is not sent yet, and
/// `existing` null or one of its response headers.
unsafe fn set_response_header(
    r: &mut ngx_http_request_t,
    existing: *mut ngx_table_elt_t,
    name: &[u8],
    value: &[u8],
) -> Result<*mut ngx_table_elt_t, ()> {
    if existing.is_null() || (*existing).hash == 0 {
        return headers::push_response_header(r, name, value);
    }
    let data = ngx_pnalloc(r.pool, value.len().max(1)).cast::<u8>();
    if data.is_null() {
        return Err(());
    }
    core::ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
    (*existing).value = ngx_str_t {
        len: value.len(),
        data,
    };
    Ok(existing)
}

fn user_id(identity: &Identity) -> String {
    String::from_utf8_lossy(identity.variable(b"user_id").unwrap_or_default()).into_owned()
}

/// Applies the location's `authgear_require` to the resolved identity.
/// Returns `None` when the location has no policy.
///
/// # Safety
/// `r` must be a live main request in its access phase.
pub unsafe fn enforce(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    state: &mut RequestState,
    identity: &Identity,
) -> Option<ngx_int_t> {
    let policy = conf.policy()?;
    let rc = match policy.evaluate(identity) {
        Decision::Allow => {
            state.decision = Some(AccessDecision::Allowed);
            NGX_OK as ngx_int_t
        }
        Decision::Unauthenticated => {
            ngx_info!(r, "authgear access denied: no valid session");
            let redirect = !conf.login_url.is_null() && is_browser_navigation(r);
            if satisfy_any(r) {
                // Another access module may still let the request in: the
                // response is decided by `finish` at the end of the phase.
                state.deferred_redirect = Some(redirect);
                state.satisfy_any = true;
                state.decision = Some(AccessDecision::Unauthenticated);
                NGX_HTTP_UNAUTHORIZED as ngx_int_t
            } else {
                unauthenticated(r, conf, state, redirect)
            }
        }
        Decision::Forbidden(condition) => {
            log_forbidden(r, &condition, identity);
            state.satisfy_any = satisfy_any(r);
            state.decision = Some(AccessDecision::Forbidden);
            NGX_HTTP_FORBIDDEN as ngx_int_t
        }
    };
    Some(rc)
}

fn log_forbidden(r: &ngx_http_request_t, condition: &Condition, identity: &Identity) {
    ngx_info!(
        r,
        "authgear access denied: condition \"{condition}\" not met, user: \"{}\"",
        user_id(identity)
    );
}

/// Sends the deferred 401, login redirect or resolver failure status once
/// every access module has denied a request under `satisfy any`.
///
/// # Safety
/// `r` must be a live main request in its access phase.
pub unsafe fn finish(
    r: &mut ngx_http_request_t,
    conf: &LocationConf,
    state: &mut RequestState,
) -> Option<ngx_int_t> {
    if !state.satisfy_any || r.access_code == 0 {
        return None;
    }
    // Every access module has denied: the module's denial is final.
    state.satisfy_any_denied = true;
    if let Some(status) = state.deferred_failure.take() {
        return Some(status);
    }
    let redirect = state.deferred_redirect.take()?;
    if r.access_code != NGX_HTTP_UNAUTHORIZED as usize {
        return None;
    }
    Some(unauthenticated(r, conf, state, redirect))
}
