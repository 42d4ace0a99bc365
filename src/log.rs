//! Logging macros that take any nginx object with a log and write messages in
//! nginx's own format.

use nginx_sys::{ngx_conf_t, ngx_http_request_t, ngx_log_t};

/// Anything that carries the `ngx_log_t` its messages should go to.
pub trait AsLogPtr {
    fn as_log_ptr(&self) -> *mut ngx_log_t;
}

impl AsLogPtr for *mut ngx_log_t {
    fn as_log_ptr(&self) -> *mut ngx_log_t {
        *self
    }
}

impl AsLogPtr for ngx_http_request_t {
    fn as_log_ptr(&self) -> *mut ngx_log_t {
        // SAFETY: every request nginx hands to a module has a live connection.
        unsafe { (*self.connection).log }
    }
}

impl AsLogPtr for ngx_conf_t {
    fn as_log_ptr(&self) -> *mut ngx_log_t {
        self.log
    }
}

impl<T: AsLogPtr> AsLogPtr for &T {
    fn as_log_ptr(&self) -> *mut ngx_log_t {
        T::as_log_ptr(self)
    }
}

impl<T: AsLogPtr> AsLogPtr for &mut T {
    fn as_log_ptr(&self) -> *mut ngx_log_t {
        T::as_log_ptr(self)
    }
}

pub fn as_log_ptr(object: impl AsLogPtr) -> *mut ngx_log_t {
    object.as_log_ptr()
}

macro_rules! ngx_error {
    ( $log:expr, $($arg:tt)+ ) => {{
        ngx::ngx_log_error!(nginx_sys::NGX_LOG_ERR, $crate::log::as_log_ptr(&$log), $($arg)+);
    }};
}

#[allow(unused_macros)]
macro_rules! ngx_warn {
    ( $log:expr, $($arg:tt)+ ) => {{
        ngx::ngx_log_error!(nginx_sys::NGX_LOG_WARN, $crate::log::as_log_ptr(&$log), $($arg)+);
    }};
}

#[allow(unused_macros)]
macro_rules! ngx_info {
    ( $log:expr, $($arg:tt)+ ) => {{
        ngx::ngx_log_error!(nginx_sys::NGX_LOG_INFO, $crate::log::as_log_ptr(&$log), $($arg)+);
    }};
}

macro_rules! ngx_debug {
    ( $log:expr, $($arg:tt)+ ) => {{
        ngx::ngx_log_debug!(
            mask: ngx::log::DebugMask::Http,
            $crate::log::as_log_ptr(&$log),
            $($arg)+
        );
    }};
}
