//! The resolver subrequest: issuing it and collecting its answer.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use nginx_sys::{
    ngx_http_post_subrequest_t, ngx_http_request_body_t, ngx_http_request_t, ngx_http_subrequest,
    ngx_int_t, ngx_list_t, ngx_pcalloc, ngx_str_t, ngx_table_elt_t, NGX_HTTP_SUBREQUEST_BACKGROUND,
    NGX_HTTP_SUBREQUEST_WAITED, NGX_OK,
};

use crate::cache;

use crate::identity::Identity;
use crate::state::{Cause, Failure, Outcome, RequestState};

type PostHandler =
    unsafe extern "C" fn(*mut ngx_http_request_t, *mut c_void, ngx_int_t) -> ngx_int_t;

/// The purpose of a resolver subrequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The request waits for the answer: `subrequest_done` records the
    /// outcome in the state and nginx runs the access phase again.
    Answer,
    /// The request goes on with a cached answer while a background
    /// subrequest refreshes the cache entry.
    Refresh,
}

/// Issues a header-only GET subrequest to `uri`. The subrequest inherits the
/// client's request headers, so the resolver sees its cookies and
/// `Authorization`.
///
/// # Safety
/// `r` must be a live main request and `state` its state, which lives in the
/// same pool and so outlives the subrequest.
pub unsafe fn issue(
    r: &mut ngx_http_request_t,
    uri: &ngx_str_t,
    state: *mut RequestState,
    purpose: Purpose,
) -> Result<(), ()> {
    // nginx keeps the pointer to the post-subrequest structure until the
    // subrequest ends, so it must live in the request pool.
    let post = ngx_pcalloc(r.pool, size_of::<ngx_http_post_subrequest_t>())
        .cast::<ngx_http_post_subrequest_t>();
    if post.is_null() {
        return Err(());
    }
    let (handler, flags): (_, u32) = match purpose {
        Purpose::Answer => (subrequest_done as PostHandler, NGX_HTTP_SUBREQUEST_WAITED),
        Purpose::Refresh => (refresh_done as PostHandler, NGX_HTTP_SUBREQUEST_BACKGROUND),
    };
    (*post).handler = Some(handler);
    (*post).data = state.cast();

    let mut sr: *mut ngx_http_request_t = ptr::null_mut();
    let rc = ngx_http_subrequest(
        r,
        ptr::from_ref(uri).cast_mut(),
        ptr::null_mut(),
        &mut sr,
        post,
        flags as _,
    );
    if rc != NGX_OK as ngx_int_t || sr.is_null() {
        return Err(());
    }

    // An empty request body keeps the upstream module from reading the
    // client's body, and from closing a body file that the main request has
    // already read, when it proxies the subrequest.
    let body = ngx_pcalloc(r.pool, size_of::<ngx_http_request_body_t>());
    if body.is_null() {
        return Err(());
    }
    (*sr).request_body = body.cast();
    (*sr).set_header_only(1);

    // The subrequest starts with a copy of the client's `headers_in`. Its
    // body length would be checked against the resolver location's
    // client_max_body_size and fail a large upload with 413, although no
    // body is sent to the resolver.
    (*sr).headers_in.content_length_n = -1;
    (*sr).headers_in.set_chunked(0);

    // A background refresh runs after the main request has added the
    // identity to its own header list.
    if purpose == Purpose::Refresh {
        crate::headers::detach_headers(&mut *sr)?;
    }
    Ok(())
}

/// Iterates over the name and value of every element of a header list.
///
/// # Safety
/// `list` must be a live list of `ngx_table_elt_t`.
pub unsafe fn header_pairs(list: &ngx_list_t) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    let mut part = ptr::from_ref(&list.part);
    core::iter::from_fn(move || {
        while !part.is_null() {
            let elts = (*part).elts.cast::<ngx_table_elt_t>();
            let nelts = (*part).nelts;
            let headers = if nelts == 0 || elts.is_null() {
                &[][..]
            } else {
                core::slice::from_raw_parts(elts, nelts)
            };
            part = (*part).next;
            if !headers.is_empty() {
                return Some(headers);
            }
        }
        None
    })
    .flatten()
    .filter(|header| header.hash != 0)
    .map(|header| (str_bytes(&header.key), str_bytes(&header.value)))
}

/// Views an `ngx_str_t` as bytes.
///
/// # Safety
/// `value` must describe `len` readable bytes that outlive the result.
pub unsafe fn str_bytes(value: &ngx_str_t) -> &[u8] {
    if value.len == 0 || value.data.is_null() {
        &[]
    } else {
        core::slice::from_raw_parts(value.data, value.len)
    }
}

/// Reads the outcome of a finished resolver subrequest.
///
/// # Safety
/// `sr` must be a live subrequest.
unsafe fn outcome(sr: &ngx_http_request_t, rc: ngx_int_t) -> Outcome {
    let status = match sr.headers_out.status {
        0 if rc > 0 => rc as usize,
        status => status,
    };
    let upstream = sr.upstream;

    ngx_debug!(
        sr,
        "authgear resolver subrequest done, status: {status}, rc: {rc}"
    );

    if !(200..300).contains(&status) {
        let cause = failure_cause(sr, status);
        return Outcome::Failed(Failure { status, cause });
    }
    // Read the answer as the resolver sent it, before any proxy_hide_header.
    let headers = if upstream.is_null() {
        &sr.headers_out.headers
    } else {
        &(*upstream).headers_in.headers
    };
    Outcome::Resolved(Identity::from_response_headers(header_pairs(headers)))
}

/// Tells why a subrequest ended with `status`. The upstream module records
/// the resolver's status as soon as it parses the status line, so the
/// resolver's own answer is the one whose status is the final one.
///
/// # Safety
/// `sr` must be a live subrequest.
unsafe fn failure_cause(sr: &ngx_http_request_t, status: usize) -> Cause {
    let Some(upstream) = sr.upstream.as_ref() else {
        return Cause::NoAnswer;
    };
    if upstream.headers_in.status_n != 0 && upstream.headers_in.status_n == status {
        return Cause::Status;
    }
    let buffer = &upstream.buffer;
    if !buffer.start.is_null() && buffer.last == buffer.end {
        return Cause::HeaderTooLarge(buffer.end.offset_from(buffer.start).unsigned_abs());
    }
    if status == 504 {
        return Cause::TimedOut;
    }
    Cause::NoAnswer
}

/// Stores a fresh answer in the cache, or releases the key's lock after a
/// failure so that waiting requests stop waiting.
///
/// # Safety
/// `sr` must be a live subrequest of the request that owns `state`.
unsafe fn update_cache(sr: &ngx_http_request_t, state: &mut RequestState, outcome: &Outcome) {
    let Some(cache_request) = state.cache.as_mut() else {
        return;
    };
    match outcome {
        Outcome::Resolved(identity) => {
            if let Some(warning) = cache::store(cache_request, identity) {
                ngx_warn!(sr, "{warning}");
            }
        }
        _ => cache::release(cache_request),
    }
}

/// Records the outcome of the resolver subrequest that the request waits
/// for. nginx may call it more than once for one subrequest (first with the
/// status, then after sending an error response), and the last call wins.
unsafe extern "C" fn subrequest_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    if sr.is_null() || data.is_null() {
        return rc;
    }
    // SAFETY: `data` is the state `issue` registered; it lives in the main
    // request's pool, which outlives the subrequest.
    let state = &mut *data.cast::<RequestState>();
    let sr = &*sr;
    let outcome = outcome(sr, rc);
    update_cache(sr, state, &outcome);
    state.outcome = outcome;
    rc
}

/// Stores the answer of a background refresh. The request itself already
/// went on with the cached answer, so its outcome is left alone.
unsafe extern "C" fn refresh_done(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    if sr.is_null() || data.is_null() {
        return rc;
    }
    // SAFETY: as in `subrequest_done`.
    let state = &mut *data.cast::<RequestState>();
    let sr = &*sr;
    let outcome = outcome(sr, rc);
    if let Outcome::Failed(Failure { status, .. }) = outcome {
        ngx_warn!(
            sr,
            "authgear background refresh failed with status {status}"
        );
    }
    update_cache(sr, state, &outcome);
    rc
}
