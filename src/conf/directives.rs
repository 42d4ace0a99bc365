//! The directive table and the handlers that parse each directive.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;

use nginx_sys::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_str_slot,
    ngx_conf_t, ngx_flag_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_http_set_complex_value_slot, ngx_http_set_predicate_slot,
    ngx_msec_t, ngx_pcalloc, ngx_pnalloc, ngx_str_t, NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE1234, NGX_CONF_UNSET, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG,
};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ngx_string;

use super::cache::{parse_time, parse_valid, parse_zone};
use super::error::ConfError;
use super::resolve::{parse_failure, parse_resolve, ResolveArg};
use super::{CacheZone, LocationConf, Require, Resolve, UNSET_MSEC};
use crate::cache::zone;
use crate::policy::Policy;
use crate::subrequest::str_bytes;

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

/// The module's directive table, terminated by an empty entry.
pub struct Commands(pub [ngx_command_t; 19]);

// SAFETY: nginx reads the directive table while it parses configuration and
// never writes to it, so sharing it between threads is sound.
unsafe impl Sync for Commands {}

const fn command(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as _,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset,
        post: ptr::null_mut(),
    }
}

pub static COMMANDS: Commands = Commands([
    command(
        ngx_string!("authgear_resolve"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_resolve,
        0,
    ),
    command(
        ngx_string!("authgear_identity_headers"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        offset_of!(LocationConf, identity_headers),
    ),
    command(
        ngx_string!("authgear_resolve_failure"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_resolve_failure,
        0,
    ),
    command(
        ngx_string!("authgear_resolve_failure_header"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        offset_of!(LocationConf, resolve_failure_header),
    ),
    command(
        ngx_string!("authgear_cookie_prefix"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_cookie_prefix,
        offset_of!(LocationConf, cookie_prefix),
    ),
    command(
        ngx_string!("authgear_cache_zone"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        set_cache_zone,
        0,
    ),
    command(
        ngx_string!("authgear_cache"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_cache,
        0,
    ),
    command(
        ngx_string!("authgear_cache_valid"),
        ANY_LEVEL | NGX_CONF_TAKE1234,
        set_cache_valid,
        0,
    ),
    command(
        ngx_string!("authgear_cache_key"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_cache_key,
        offset_of!(LocationConf, cache_key),
    ),
    command(
        ngx_string!("authgear_cache_bypass"),
        ANY_LEVEL | NGX_CONF_1MORE,
        ngx_http_set_predicate_slot,
        offset_of!(LocationConf, cache_bypass),
    ),
    command(
        ngx_string!("authgear_cache_lock"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        offset_of!(LocationConf, cache_lock),
    ),
    command(
        ngx_string!("authgear_cache_lock_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, cache_lock_timeout),
    ),
    command(
        ngx_string!("authgear_cache_use_stale"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_cache_use_stale,
        0,
    ),
    command(
        ngx_string!("authgear_cache_background_update"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        offset_of!(LocationConf, cache_background_update),
    ),
    command(
        ngx_string!("authgear_require"),
        ANY_LEVEL | NGX_CONF_1MORE,
        set_require,
        0,
    ),
    command(
        ngx_string!("authgear_login_url"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_login_url,
        0,
    ),
    command(
        ngx_string!("authgear_login_redirect_param"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_token,
        offset_of!(LocationConf, login_redirect_param),
    ),
    command(
        ngx_string!("authgear_www_authenticate"),
        ANY_LEVEL | NGX_CONF_TAKE12,
        set_www_authenticate,
        0,
    ),
    ngx_command_t::empty(),
]);

/// Returns the arguments of the directive being parsed, the name excluded.
///
/// # Safety
/// `cf` must be the configuration nginx passes to a directive handler.
unsafe fn directive_args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    let args: &[ngx_str_t] = (*(*cf).args).as_slice();
    args.get(1..).unwrap_or_default()
}

/// Logs `error` the way nginx logs a rejected directive and returns
/// `NGX_CONF_ERROR`.
fn reject(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, error: ConfError) -> *mut c_char {
    // SAFETY: nginx passes the command being parsed, whose name is static.
    let name = unsafe { str_bytes(&(*cmd).name) };
    let message = error.message(&String::from_utf8_lossy(name));
    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{message}");
    NGX_CONF_ERROR
}

/// Returns this module's configuration of the block being parsed.
///
/// # Safety
/// `conf` must be what nginx passes to a directive registered at
/// NGX_HTTP_LOC_CONF_OFFSET: a `LocationConf` made by `create_loc_conf`.
unsafe fn location_conf<'a>(conf: *mut c_void) -> &'a mut LocationConf {
    &mut *conf.cast::<LocationConf>()
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

unsafe extern "C" fn set_resolve(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if conf.resolve.is_some() {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    conf.resolve = match parse_resolve(str_bytes(arg)) {
        Ok(ResolveArg::Off) => Some(Resolve::Off),
        Ok(ResolveArg::Uri(_)) => Some(Resolve::Uri(*arg)),
        Err(error) => return reject(cf, cmd, error),
    };
    NGX_CONF_OK
}

unsafe extern "C" fn set_cache_zone(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    let (name, size) = match parse_zone(str_bytes(arg)) {
        Ok(parsed) => parsed,
        Err(error) => return reject(cf, cmd, error),
    };
    // `name` is a suffix of the argument, which lives in the configuration pool.
    let name = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    match zone::declare(cf, name, size) {
        Ok(_) => NGX_CONF_OK,
        Err(error) => reject(cf, cmd, error),
    }
}

unsafe extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if conf.cache.is_some() {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    if str_bytes(arg) == b"off" {
        conf.cache = Some(CacheZone::Off);
        return NGX_CONF_OK;
    }
    let shm_zone = zone::reference(cf, *arg);
    if shm_zone.is_null() {
        return reject(cf, cmd, ConfError::UnknownZone(lossy(str_bytes(arg))));
    }
    conf.cache = Some(CacheZone::Zone(shm_zone));
    NGX_CONF_OK
}

unsafe extern "C" fn set_cache_valid(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    let args: Vec<&[u8]> = directive_args(cf)
        .iter()
        .map(|arg| str_bytes(arg))
        .collect();
    let (kinds, time) = match parse_valid(&args) {
        Ok(parsed) => parsed,
        Err(error) => return reject(cf, cmd, error),
    };
    let selected = [
        (kinds.valid, "valid"),
        (kinds.invalid, "invalid"),
        (kinds.none, "none"),
    ];
    for ((chosen, name), slot) in selected.into_iter().zip(conf.cache_valid.iter_mut()) {
        if !chosen {
            continue;
        }
        if *slot != UNSET_MSEC {
            return reject(cf, cmd, ConfError::DuplicateValue(name.to_string()));
        }
        *slot = time as ngx_msec_t;
    }
    NGX_CONF_OK
}

unsafe extern "C" fn set_cache_use_stale(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if conf.cache_use_stale != UNSET_MSEC {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    let value = str_bytes(arg);
    conf.cache_use_stale = if value == b"off" {
        0
    } else {
        match parse_time(value) {
            Some(ms) => ms as ngx_msec_t,
            None => return reject(cf, cmd, ConfError::InvalidTime(lossy(value))),
        }
    };
    NGX_CONF_OK
}

unsafe extern "C" fn set_require(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if conf.require.is_some() {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let args: Vec<&[u8]> = directive_args(cf)
        .iter()
        .map(|arg| str_bytes(arg))
        .collect();
    if args == [&b"off"[..]] {
        conf.require = Some(Require::Off);
        return NGX_CONF_OK;
    }
    match Policy::parse(&args) {
        Ok(policy) => {
            conf.require = Some(Require::Policy(std::sync::Arc::new(policy)));
            NGX_CONF_OK
        }
        Err(arg) => reject(cf, cmd, ConfError::InvalidValue(lossy(arg))),
    }
}

/// Compiles `value`, which may contain variables, in the configuration pool.
///
/// # Safety
/// `cf` must be the configuration being parsed and `value` must live in its
/// pool.
unsafe fn compile(cf: *mut ngx_conf_t, value: *mut ngx_str_t) -> *mut ngx_http_complex_value_t {
    let cv = ngx_pcalloc((*cf).pool, core::mem::size_of::<ngx_http_complex_value_t>())
        .cast::<ngx_http_complex_value_t>();
    if cv.is_null() {
        return cv;
    }
    let mut ccv: ngx_http_compile_complex_value_t = core::mem::zeroed();
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;
    if ngx_http_compile_complex_value(&mut ccv) != nginx_sys::NGX_OK as isize {
        return ptr::null_mut();
    }
    cv
}

/// The original absolute URL that the login redirect carries. `$http_host`
/// keeps a non-default port, which `$host` drops.
static ORIGINAL_URL: &[u8] = b"$scheme://$http_host$request_uri";

unsafe extern "C" fn set_login_url(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if conf.login_url_set != NGX_CONF_UNSET as ngx_flag_t {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    match str_bytes(arg) {
        b"off" => {
            conf.login_url_set = 0;
            return NGX_CONF_OK;
        }
        b"" => return reject(cf, cmd, ConfError::InvalidValue(String::new())),
        _ => conf.login_url_set = 1,
    }
    let mut value = *arg;
    conf.login_url = compile(cf, &mut value);
    if conf.login_url.is_null() {
        return NGX_CONF_ERROR;
    }

    let data = ngx_pnalloc((*cf).pool, ORIGINAL_URL.len()).cast::<u8>();
    if data.is_null() {
        return NGX_CONF_ERROR;
    }
    ptr::copy_nonoverlapping(ORIGINAL_URL.as_ptr(), data, ORIGINAL_URL.len());
    let mut original = ngx_str_t {
        len: ORIGINAL_URL.len(),
        data,
    };
    conf.original_url = compile(cf, &mut original);
    if conf.original_url.is_null() {
        return NGX_CONF_ERROR;
    }
    NGX_CONF_OK
}

/// Reports whether `value` can go inside a quoted string of a header.
fn is_quotable(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&byte| (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\')
}

unsafe extern "C" fn set_www_authenticate(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if !conf.www_authenticate.data.is_null() {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let args = directive_args(cf);
    let Some(scheme) = args.first().map(|arg| str_bytes(arg)) else {
        return NGX_CONF_ERROR;
    };
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(byte))
    {
        return reject(cf, cmd, ConfError::InvalidValue(lossy(scheme)));
    }
    let realm = args.get(1).map(|arg| str_bytes(arg)).unwrap_or(b"authgear");
    if !is_quotable(realm) {
        return reject(cf, cmd, ConfError::InvalidValue(lossy(realm)));
    }

    let value = [scheme, b" realm=\"", realm, b"\""].concat();
    let data = ngx_pnalloc((*cf).pool, value.len()).cast::<u8>();
    if data.is_null() {
        return NGX_CONF_ERROR;
    }
    ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
    conf.www_authenticate = ngx_str_t {
        len: value.len(),
        data,
    };
    NGX_CONF_OK
}

unsafe extern "C" fn set_resolve_failure(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let conf = location_conf(conf);
    if conf.resolve_failure.is_some() {
        return reject(cf, cmd, ConfError::Duplicate);
    }
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    match parse_failure(str_bytes(arg)) {
        Ok(failure) => {
            conf.resolve_failure = Some(failure);
            NGX_CONF_OK
        }
        Err(error) => reject(cf, cmd, error),
    }
}

/// Reports whether `value` is an HTTP token (RFC 9110), as cookie and
/// query parameter names must be here.
fn is_token(value: &[u8]) -> bool {
    value
        .iter()
        .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(byte))
}

/// Sets a string slot after checking that the value is a token, and not
/// empty unless `allow_empty`.
///
/// # Safety
/// The arguments must be what nginx passes to a directive handler.
unsafe fn set_token_slot(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
    allow_empty: bool,
) -> *mut c_char {
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    let value = str_bytes(arg);
    if (value.is_empty() && !allow_empty) || !is_token(value) {
        return reject(cf, cmd, ConfError::InvalidValue(lossy(value)));
    }
    ngx_conf_set_str_slot(cf, cmd, conf)
}

/// Sets a non-empty token, such as a query parameter name.
unsafe extern "C" fn set_token(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    set_token_slot(cf, cmd, conf, false)
}

/// Sets Authgear's cookie name prefix, which may be empty.
unsafe extern "C" fn set_cookie_prefix(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    set_token_slot(cf, cmd, conf, true)
}

/// Sets `authgear_cache_key`. An empty key would put every request in one
/// entry.
unsafe extern "C" fn set_cache_key(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let Some(arg) = directive_args(cf).first() else {
        return NGX_CONF_ERROR;
    };
    if arg.len == 0 {
        return reject(cf, cmd, ConfError::InvalidValue(String::new()));
    }
    ngx_http_set_complex_value_slot(cf, cmd, conf)
}
