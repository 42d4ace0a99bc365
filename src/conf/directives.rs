//! The directive table and the handlers that parse each directive.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;

use nginx_sys::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_t, ngx_str_t, NGX_CONF_FLAG, NGX_CONF_TAKE1,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF,
    NGX_LOG_EMERG,
};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ngx_string;

use super::error::ConfError;
use super::resolve::{parse_resolve, ResolveArg};
use super::{LocationConf, Resolve};

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

/// The module's directive table, terminated by an empty entry.
pub struct Commands(pub [ngx_command_t; 3]);

// SAFETY: nginx reads the directive table while it parses configuration in
// the master process and never writes to it, so sharing it is sound.
unsafe impl Sync for Commands {}

pub static COMMANDS: Commands = Commands([
    ngx_command_t {
        name: ngx_string!("authgear_resolve"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as _,
        set: Some(set_resolve),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("authgear_identity_headers"),
        type_: (ANY_LEVEL | NGX_CONF_FLAG) as _,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: offset_of!(LocationConf, identity_headers),
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
]);

/// Returns the arguments of the directive being parsed, the name included.
///
/// # Safety
/// `cf` must be the configuration nginx passes to a directive handler.
unsafe fn directive_args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    (*(*cf).args).as_slice()
}

fn bytes(value: &ngx_str_t) -> &[u8] {
    if value.len == 0 || value.data.is_null() {
        return &[];
    }
    // SAFETY: nginx keeps `len` bytes at `data` for every parsed token.
    unsafe { core::slice::from_raw_parts(value.data, value.len) }
}

/// Logs `error` the way nginx logs a rejected directive and returns
/// `NGX_CONF_ERROR`.
fn reject(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, error: ConfError) -> *mut c_char {
    // SAFETY: nginx passes the command being parsed, whose name is static.
    let name = unsafe { bytes(&(*cmd).name) };
    let message = error.message(&String::from_utf8_lossy(name));
    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{message}");
    NGX_CONF_ERROR
}

extern "C" fn set_resolve(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes this module's location configuration, created by
    // `create_loc_conf`, for a directive registered at NGX_HTTP_LOC_CONF_OFFSET.
    let conf = unsafe { &mut *conf.cast::<LocationConf>() };
    if conf.resolve.is_some() {
        return reject(cf, cmd, ConfError::Duplicate);
    }

    // SAFETY: NGX_CONF_TAKE1 makes nginx check that there are two tokens.
    let Some(arg) = (unsafe { directive_args(cf) }).get(1) else {
        return NGX_CONF_ERROR;
    };
    conf.resolve = match parse_resolve(bytes(arg)) {
        Ok(ResolveArg::Off) => Some(Resolve::Off),
        Ok(ResolveArg::Uri(_)) => Some(Resolve::Uri(*arg)),
        Err(error) => return reject(cf, cmd, error),
    };
    NGX_CONF_OK
}
