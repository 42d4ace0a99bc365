//! Module registration: the statics nginx loads and the configuration hooks,
//! which delegate to the other modules.

use core::ffi::{c_char, c_void};
use core::ptr;

use nginx_sys::{
    ngx_array_push, ngx_conf_t, ngx_http_handler_pt, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_request_t, ngx_int_t, ngx_module_t,
    ngx_pcalloc, NGX_ERROR, NGX_HTTP_MODULE, NGX_LOG_EMERG, NGX_OK,
};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, NgxHttpCoreModule};

use crate::conf::{self, LocationConf};
use crate::{handler, variables};

/// The module type that the `ngx` crate's traits are implemented on.
struct AuthgearModule;

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(AuthgearModule::preconfiguration),
    postconfiguration: Some(AuthgearModule::postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_authgear_module);

/// The module descriptor. nginx writes its `index` and `ctx_index` while
/// loading the module, so it must be mutable.
#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_authgear_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(MODULE_CTX).cast_mut().cast(),
    commands: conf::COMMANDS.0.as_ptr().cast_mut(),
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

/// Returns the module descriptor.
pub(crate) fn module() -> &'static ngx_module_t {
    // SAFETY: nginx writes to the descriptor only while loading modules,
    // before any request or configuration callback runs.
    unsafe { &*ptr::addr_of!(ngx_http_authgear_module) }
}

/// Returns the module's configuration of the location that serves `r`.
pub(crate) fn location_conf(r: &ngx_http_request_t) -> Option<&'static LocationConf> {
    // SAFETY: `loc_conf` has a slot for every HTTP module, and the slot at
    // this module's `ctx_index` contains the `LocationConf` that
    // `create_loc_conf` made.
    unsafe {
        let conf = *r.loc_conf.add(module().ctx_index);
        conf.cast::<LocationConf>().as_ref()
    }
}

impl HttpModule for AuthgearModule {
    fn module() -> &'static ngx_module_t {
        module()
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        variables::register(cf)
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx passes a valid configuration to postconfiguration.
        let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(&*cf) else {
            return NGX_ERROR as ngx_int_t;
        };
        let Some(phase) = cmcf
            .phases
            .get_mut(ngx_http_phases_NGX_HTTP_ACCESS_PHASE as usize)
        else {
            return NGX_ERROR as ngx_int_t;
        };
        let handlers = &mut phase.handlers;

        // nginx runs a phase's handlers from the last pushed to the first.
        // The main handler goes last in the array, so it runs before the
        // other access modules, as auth_request's does.
        let slot = ngx_array_push(handlers).cast::<ngx_http_handler_pt>();
        if slot.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        *slot = Some(handler::access_handler);

        // The final handler goes first in the array, so it runs after every
        // other access module.
        let slot = ngx_array_push(handlers).cast::<ngx_http_handler_pt>();
        if slot.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        let first = handlers.elts.cast::<ngx_http_handler_pt>();
        ptr::copy(first, first.add(1), handlers.nelts - 1);
        *first = Some(handler::access_final_handler);
        NGX_OK as ngx_int_t
    }
}

unsafe impl HttpModuleLocationConf for AuthgearModule {
    type LocationConf = LocationConf;
}

/// Creates the module's configuration of one block in the configuration pool,
/// with a cleanup entry that drops it with the cycle.
unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    let pool = (*cf).pool;
    let cleanup = nginx_sys::ngx_pool_cleanup_add(pool, 0);
    if cleanup.is_null() {
        return ptr::null_mut();
    }
    let conf = ngx_pcalloc(pool, core::mem::size_of::<LocationConf>()).cast::<LocationConf>();
    if conf.is_null() {
        return ptr::null_mut();
    }
    conf.write(LocationConf::default());
    (*cleanup).handler = Some(drop_loc_conf);
    (*cleanup).data = conf.cast();
    conf.cast()
}

unsafe extern "C" fn drop_loc_conf(data: *mut c_void) {
    // SAFETY: `data` is the `LocationConf` that `create_loc_conf` wrote.
    ptr::drop_in_place(data.cast::<LocationConf>());
}

unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes two configurations that `create_loc_conf` made.
    let prev = &*prev.cast::<LocationConf>();
    let conf = &mut *conf.cast::<LocationConf>();
    if conf.merge(prev).is_err() {
        return NGX_CONF_ERROR;
    }

    // Every authgear_cache_zone is parsed by the time locations are merged,
    // so a zone without data was never declared. nginx would otherwise only
    // report a "zero size shared memory zone" without naming the directive.
    if let Some(shm_zone) = conf.cache_zone() {
        if (*shm_zone).data.is_null() {
            let name = String::from_utf8_lossy(crate::subrequest::str_bytes(&(*shm_zone).shm.name));
            ngx::ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"authgear_cache\" zone \"{name}\" is unknown"
            );
            return NGX_CONF_ERROR;
        }
    }

    NGX_CONF_OK
}
