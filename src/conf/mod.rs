//! Directives, their parsing, and the merge of configuration levels.

#[cfg(not(test))]
mod directives;
mod error;
mod resolve;

use nginx_sys::{ngx_flag_t, ngx_str_t, NGX_CONF_UNSET};
use ngx::http::{Merge, MergeConfigError};

#[cfg(not(test))]
pub use directives::COMMANDS;

/// The effective `authgear_resolve` setting of a location.
#[derive(Debug, Clone, Copy)]
pub enum Resolve {
    Off,
    /// The URI of the internal location that proxies to the resolver. It
    /// points into the configuration pool, which outlives every request.
    Uri(ngx_str_t),
}

/// The module's configuration of one `http`, `server` or `location` block.
#[derive(Debug)]
pub struct LocationConf {
    /// `authgear_resolve`; `None` until set on this level or merged.
    pub resolve: Option<Resolve>,
    /// `authgear_identity_headers`: whether the resolver's headers are added
    /// to the request for the upstream.
    pub identity_headers: ngx_flag_t,
}

impl Default for LocationConf {
    fn default() -> Self {
        LocationConf {
            resolve: None,
            identity_headers: NGX_CONF_UNSET as ngx_flag_t,
        }
    }
}

impl LocationConf {
    /// Returns the resolver URI when resolution is on in this location.
    pub fn resolver_uri(&self) -> Option<&ngx_str_t> {
        match &self.resolve {
            Some(Resolve::Uri(uri)) => Some(uri),
            _ => None,
        }
    }

    pub fn identity_headers(&self) -> bool {
        self.identity_headers != 0
    }
}

fn merge_flag(value: &mut ngx_flag_t, prev: ngx_flag_t, default: bool) {
    if *value == NGX_CONF_UNSET as ngx_flag_t {
        *value = if prev == NGX_CONF_UNSET as ngx_flag_t {
            ngx_flag_t::from(default)
        } else {
            prev
        };
    }
}

impl Merge for LocationConf {
    fn merge(&mut self, prev: &LocationConf) -> Result<(), MergeConfigError> {
        if self.resolve.is_none() {
            self.resolve = prev.resolve;
        }
        merge_flag(&mut self.identity_headers, prev.identity_headers, true);
        Ok(())
    }
}
