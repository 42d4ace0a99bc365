//! The `$authgear_*` variables: one for each `X-Authgear-*` header of the
//! resolver's answer.

use nginx_sys::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_str_t, NGX_ERROR, NGX_HTTP_VAR_NOCACHEABLE, NGX_HTTP_VAR_PREFIX, NGX_OK,
};
use ngx::ngx_string;

use crate::identity::VARIABLE_PREFIX;
use crate::state::{self, AccessDecision, Outcome, RequestState};
use crate::subrequest::str_bytes;

/// Registers `$authgear_cache_status`, `$authgear_decision`,
/// `$authgear_resolve_failed` and the `$authgear_` prefix variable.
/// nginx looks exact names up before prefixes, so a resolver header named
/// `X-Authgear-Cache-Status` would not shadow the cache status.
///
/// The values are not cacheable: a variable read before the access phase,
/// in a `rewrite` for example, must not keep its empty value afterwards.
///
/// # Safety
/// `cf` must be the configuration nginx passes to `preconfiguration`.
pub unsafe fn register(cf: *mut ngx_conf_t) -> ngx_int_t {
    let mut name: ngx_str_t = ngx_string!("authgear_cache_status");
    let variable = ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as _);
    if variable.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    (*variable).get_handler = Some(get_cache_status);

    let mut name: ngx_str_t = ngx_string!("authgear_decision");
    let variable = ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as _);
    if variable.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    (*variable).get_handler = Some(get_decision);

    let mut name: ngx_str_t = ngx_string!("authgear_resolve_failed");
    let variable = ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as _);
    if variable.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    (*variable).get_handler = Some(get_resolve_failed);

    let mut name: ngx_str_t = ngx_string!("authgear_");
    let variable = ngx_http_add_variable(
        cf,
        &mut name,
        (NGX_HTTP_VAR_PREFIX | NGX_HTTP_VAR_NOCACHEABLE) as _,
    );
    if variable.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    (*variable).get_handler = Some(get_identity_variable);
    NGX_OK as ngx_int_t
}

/// Evaluates `$authgear_<name>` from the resolver's answer for the main
/// request. A header the resolver did not send gives a not-found value.
unsafe extern "C" fn get_identity_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    if r.is_null() || v.is_null() || data == 0 {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: for prefix variables nginx passes the address of the full
    // variable name as `data`.
    let name = str_bytes(&*(data as *const ngx_str_t));
    let suffix = name.get(VARIABLE_PREFIX.len()..).unwrap_or_default();

    // SAFETY: `r` is live while its variables are evaluated, and the state
    // outlives it because both live in the main request's pool.
    let value = state::find(&*r)
        .and_then(|state| state.identity())
        .and_then(|identity| identity.variable(suffix));

    set_value(&mut *v, value);
    NGX_OK as ngx_int_t
}

/// Evaluates a variable that `value` reads from the request's state.
///
/// # Safety
/// `r` and `v` must be what nginx passes to a variable handler.
unsafe fn state_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    value: impl FnOnce(&RequestState) -> Option<&'static [u8]>,
) -> ngx_int_t {
    if r.is_null() || v.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: as in `get_identity_variable`.
    let value = state::find(&*r).and_then(|state| value(state));
    set_value(&mut *v, value);
    NGX_OK as ngx_int_t
}

/// Evaluates `$authgear_cache_status`: not found when the location uses no
/// cache or the request has not reached the access phase.
unsafe extern "C" fn get_cache_status(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    state_variable(r, v, |state| {
        state
            .cache
            .as_ref()
            .map(|cache_request| cache_request.status.as_bytes())
    })
}

/// Evaluates `$authgear_decision`: not found when the location has no
/// `authgear_require` or the request has not reached the access phase.
unsafe extern "C" fn get_decision(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    state_variable(r, v, |state| state.decision().map(AccessDecision::as_bytes))
}

/// Evaluates `$authgear_resolve_failed`: `1` when the resolver failed for
/// the request, `0` when it answered, not found before the access phase or
/// where the module is off.
unsafe extern "C" fn get_resolve_failed(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    state_variable(r, v, |state| match state.outcome {
        Outcome::Pending | Outcome::Waiting => None,
        _ if state.resolve_failed => Some(&b"1"[..]),
        _ => Some(&b"0"[..]),
    })
}

/// Fills a variable value from bytes that outlive the request, or marks it
/// not found.
fn set_value(v: &mut ngx_http_variable_value_t, value: Option<&[u8]>) {
    match value {
        Some(value) => {
            v.set_len(value.len() as u32);
            v.set_valid(1);
            v.set_no_cacheable(0);
            v.set_not_found(0);
            v.data = value.as_ptr().cast_mut();
        }
        None => v.set_not_found(1),
    }
}
