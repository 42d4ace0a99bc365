//! The shared memory zone's lifecycle: declaration by `authgear_cache_zone`,
//! reference by `authgear_cache`, initialisation, and reuse across reloads.
//!
//! nginx owns the `ngx_shm_zone_t` and the mapping. The module keeps a
//! `Zone` in the configuration pool with raw pointers into the mapping and
//! no destructor, because on reload the old cycle's zones can be unmapped
//! before the old cycle's pool cleanups run.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_int_t, ngx_pcalloc, ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_alloc,
    ngx_slab_pool_t, ngx_str_t, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};

use super::store::{init_header, ZoneHeader, LAYOUT_MAGIC};
use crate::conf::ConfError;

/// The module's view of one zone.
#[repr(C)]
pub struct Zone {
    /// The zone name, in the configuration pool.
    pub name: ngx_str_t,
    /// Set when nginx initialises the zone, null before.
    pub shpool: *mut ngx_slab_pool_t,
    pub header: *mut ZoneHeader,
}

fn tag() -> *mut c_void {
    ptr::from_ref(crate::module()).cast_mut().cast()
}

/// Declares the zone `name` of `size` bytes.
///
/// # Safety
/// `cf` must be the configuration being parsed.
pub unsafe fn declare(
    cf: *mut ngx_conf_t,
    mut name: ngx_str_t,
    size: usize,
) -> Result<*mut ngx_shm_zone_t, ConfError> {
    let display = String::from_utf8_lossy(crate::subrequest::str_bytes(&name)).into_owned();
    let lossy = || display.clone();
    let shm_zone = ngx_shared_memory_add(cf, &mut name, size, tag());
    if shm_zone.is_null() {
        // nginx has logged why: the name is used by another module.
        return Err(ConfError::DuplicateZone(lossy()));
    }
    if !(*shm_zone).data.is_null() {
        return Err(ConfError::DuplicateZone(lossy()));
    }
    let zone = ngx_pcalloc((*cf).pool, size_of::<Zone>()).cast::<Zone>();
    if zone.is_null() {
        return Err(ConfError::DuplicateZone(lossy()));
    }
    (*zone).name = name;
    (*shm_zone).data = zone.cast();
    (*shm_zone).init = Some(init_zone);
    Ok(shm_zone)
}

/// Refers to the zone `name`, which may be declared later in the
/// configuration. nginx rejects the configuration if it never is.
///
/// # Safety
/// `cf` must be the configuration being parsed.
pub unsafe fn reference(cf: *mut ngx_conf_t, mut name: ngx_str_t) -> *mut ngx_shm_zone_t {
    ngx_shared_memory_add(cf, &mut name, 0, tag())
}

/// Returns the module's view of a zone once nginx has initialised it.
///
/// # Safety
/// `shm_zone` must be a zone this module declared, in the current cycle.
pub unsafe fn get<'a>(shm_zone: *mut ngx_shm_zone_t) -> Option<&'a Zone> {
    let zone = (*shm_zone).data.cast::<Zone>().as_ref()?;
    if zone.shpool.is_null() || zone.header.is_null() {
        return None;
    }
    Some(zone)
}

/// Initialises the zone when a cycle starts. `data` is the previous cycle's
/// `Zone` when nginx reuses the mapping, which it does when the name and the
/// size are unchanged, and null otherwise.
unsafe extern "C" fn init_zone(shm_zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    let zone = (*shm_zone).data.cast::<Zone>();
    let shpool = (*shm_zone).shm.addr.cast::<ngx_slab_pool_t>();
    if zone.is_null() || shpool.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    (*zone).shpool = shpool;
    let name = String::from_utf8_lossy(crate::subrequest::str_bytes(&(*zone).name)).into_owned();

    if !data.is_null() {
        (*zone).header = (*data.cast::<Zone>()).header;
        if (*zone).header.is_null() || (*(*zone).header).magic != LAYOUT_MAGIC {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                (*shm_zone).shm.log,
                "authgear cache zone \"{name}\" was created by an incompatible version \
                 of the module, rename the zone or restart nginx"
            );
            return NGX_ERROR as ngx_int_t;
        }
        return NGX_OK as ngx_int_t;
    }

    if (*shm_zone).shm.exists != 0 {
        (*zone).header = (*shpool).data.cast();
        return NGX_OK as ngx_int_t;
    }

    let header = ngx_slab_alloc(shpool, size_of::<ZoneHeader>()).cast::<ZoneHeader>();
    if header.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    init_header(header);
    (*shpool).data = header.cast();
    (*zone).header = header;

    // The slab allocator appends this to its own messages.
    let context = format!(" in authgear cache zone \"{name}\"\0");
    let log_ctx = ngx_slab_alloc(shpool, context.len()).cast::<u8>();
    if !log_ctx.is_null() {
        ptr::copy_nonoverlapping(context.as_ptr(), log_ctx, context.len());
        (*shpool).log_ctx = log_ctx;
    }
    // A full zone is handled by eviction, so the allocator's "no memory"
    // errors would only flood the log.
    (*shpool).set_log_nomem(0);
    NGX_OK as ngx_int_t
}
