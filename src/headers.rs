//! Request and response headers: removing client-sent `X-Authgear-*`
//! headers, adding the resolver's, and passing its `Set-Cookie` on.

use core::mem::size_of;

use nginx_sys::{
    ngx_hash_key, ngx_http_request_t, ngx_list_init, ngx_list_push, ngx_list_t, ngx_pnalloc,
    ngx_pool_t, ngx_str_t, ngx_table_elt_t, NGX_OK,
};

use crate::identity::{is_authgear_header, Identity};
use crate::subrequest::str_bytes;

/// Copies `bytes` into `pool`, as an `ngx_str_t`.
///
/// # Safety
/// `pool` must be a live pool.
unsafe fn pool_str(pool: *mut ngx_pool_t, bytes: &[u8]) -> Option<ngx_str_t> {
    if bytes.is_empty() {
        return Some(ngx_str_t {
            len: 0,
            data: core::ptr::null_mut(),
        });
    }
    let data = ngx_pnalloc(pool, bytes.len()).cast::<u8>();
    if data.is_null() {
        return None;
    }
    core::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
    Some(ngx_str_t {
        len: bytes.len(),
        data,
    })
}

/// Iterates over the elements of a header list, deleted ones included.
///
/// # Safety
/// `list` must be a live list of `ngx_table_elt_t` that is not modified while
/// the iterator is in use.
pub unsafe fn elements(list: &ngx_list_t) -> impl Iterator<Item = &ngx_table_elt_t> {
    let mut part = core::ptr::from_ref(&list.part);
    core::iter::from_fn(move || {
        while !part.is_null() {
            let elts = (*part).elts.cast::<ngx_table_elt_t>();
            let nelts = (*part).nelts;
            part = (*part).next;
            if nelts != 0 && !elts.is_null() {
                return Some(core::slice::from_raw_parts(elts, nelts));
            }
        }
        None
    })
    .flatten()
}

/// Removes every client-sent header whose name starts with `X-Authgear-`, in
/// any letter case and however many copies there are.
///
/// nginx's lists cannot delete elements, and other fields of `headers_in`
/// (`host`, `cookie`, ...) point at elements of the list, so the list is
/// rebuilt from copies instead of compacted in place. The old elements stay
/// valid in the pool for those pointers.
///
/// # Safety
/// `r` must be a live main request.
pub unsafe fn strip_client_headers(r: &mut ngx_http_request_t) -> Result<usize, ()> {
    let headers = &r.headers_in.headers;
    let total = elements(headers).count();
    let spoofed = elements(headers)
        .filter(|header| is_authgear_header(str_bytes(&header.key)))
        .count();
    if spoofed == 0 {
        return Ok(0);
    }

    let pool = r.pool;
    rebuild_without_identity(&mut r.headers_in.headers, pool, total - spoofed)?;
    Ok(spoofed)
}

/// Replaces `list` with a list of its own that contains copies of the elements
/// that are not `X-Authgear-*` headers.
///
/// # Safety
/// `list` must be a live header list and `pool` a live pool.
unsafe fn rebuild_without_identity(
    list: &mut ngx_list_t,
    pool: *mut ngx_pool_t,
    capacity: usize,
) -> Result<(), ()> {
    // The copy keeps the first part and the links to the others; `last`
    // is only used for pushing, which happens on the new list alone.
    let old: ngx_list_t = *list;
    if ngx_list_init(
        list,
        pool,
        capacity.max(1) + 8,
        size_of::<ngx_table_elt_t>(),
    ) != NGX_OK as isize
    {
        return Err(());
    }
    for header in elements(&old) {
        if is_authgear_header(str_bytes(&header.key)) {
            continue;
        }
        let copy = ngx_list_push(list).cast::<ngx_table_elt_t>();
        if copy.is_null() {
            return Err(());
        }
        *copy = *header;
    }
    Ok(())
}

/// Gives a subrequest a header list of its own. A subrequest starts with a
/// copy of the main request's `headers_in`, whose list shares its later
/// parts with the main request's: headers the main request adds afterwards,
/// the identity among them, would show up in the subrequest too.
///
/// # Safety
/// `sr` must be a live subrequest.
pub unsafe fn detach_headers(sr: &mut ngx_http_request_t) -> Result<(), ()> {
    let pool = sr.pool;
    let count = elements(&sr.headers_in.headers).count();
    rebuild_without_identity(&mut sr.headers_in.headers, pool, count)
}

/// Appends a header with `name` and `value` to `list`, with the hash and
/// lowercase key that the upstream modules look up.
///
/// # Safety
/// `list` must be a live header list allocated from `pool`.
unsafe fn push_header(
    list: &mut ngx_list_t,
    pool: *mut ngx_pool_t,
    name: &[u8],
    value: &[u8],
) -> Result<(), ()> {
    let key = pool_str(pool, name).ok_or(())?;
    let value = pool_str(pool, value).ok_or(())?;
    let lowcase = ngx_pnalloc(pool, name.len().max(1)).cast::<u8>();
    if lowcase.is_null() {
        return Err(());
    }
    for (i, byte) in name.iter().enumerate() {
        *lowcase.add(i) = byte.to_ascii_lowercase();
    }

    let header = ngx_list_push(list).cast::<ngx_table_elt_t>();
    if header.is_null() {
        return Err(());
    }
    header.write(ngx_table_elt_t {
        hash: ngx_hash_key(lowcase, name.len()).max(1),
        key,
        value,
        lowcase_key: lowcase,
        #[cfg(ngx_linked_headers)]
        next: core::ptr::null_mut(),
    });
    Ok(())
}

/// Adds every `X-Authgear-*` header of the answer to the request, so the
/// upstream modules (`proxy_pass`, `fastcgi_pass`, `uwsgi_pass`,
/// `grpc_pass`) forward them.
///
/// # Safety
/// `r` must be a live main request.
pub unsafe fn add_identity_headers(
    r: &mut ngx_http_request_t,
    identity: &Identity,
) -> Result<(), ()> {
    let pool = r.pool;
    for header in identity.headers() {
        push_header(&mut r.headers_in.headers, pool, &header.name, &header.value)?;
    }
    Ok(())
}

/// The request header that `authgear_resolve_failure_header` adds when the
/// request continues after a resolver failure, with no identity or with a
/// stale one. Its `X-Authgear-` prefix means a client cannot send it: client
/// copies are removed like the others.
pub const FAILURE_HEADER: &[u8] = b"X-Authgear-Resolve-Failed";

/// Marks the request for the upstream as one whose resolution failed.
///
/// # Safety
/// `r` must be a live main request.
pub unsafe fn add_failure_header(r: &mut ngx_http_request_t) -> Result<(), ()> {
    let pool = r.pool;
    push_header(&mut r.headers_in.headers, pool, FAILURE_HEADER, b"true")
}

/// Adds a header to the response and returns it.
///
/// # Safety
/// `r` must be a live request whose response header is not sent yet.
pub unsafe fn push_response_header(
    r: &mut ngx_http_request_t,
    name: &[u8],
    value: &[u8],
) -> Result<*mut ngx_table_elt_t, ()> {
    let pool = r.pool;
    push_header(&mut r.headers_out.headers, pool, name, value)?;
    let last = r.headers_out.headers.last;
    if last.is_null() || (*last).nelts == 0 {
        return Err(());
    }
    Ok((*last)
        .elts
        .cast::<ngx_table_elt_t>()
        .add((*last).nelts - 1))
}

/// Adds the resolver's `Set-Cookie` headers to the response for the client,
/// such as the one that clears a dead `session` cookie.
///
/// # Safety
/// `r` must be a live main request whose response header is not sent yet.
pub unsafe fn add_set_cookies(r: &mut ngx_http_request_t, identity: &Identity) -> Result<(), ()> {
    let pool = r.pool;
    for cookie in identity.set_cookies() {
        push_header(&mut r.headers_out.headers, pool, b"Set-Cookie", cookie)?;
    }
    Ok(())
}
