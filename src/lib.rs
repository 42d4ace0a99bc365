//! ngx_http_authgear_module: resolves every request through Authgear's
//! resolver and hands the identity to the upstream.
//!
//! The pure logic (parsing resolver answers and directive arguments) lives
//! in modules without nginx calls and is unit-tested on its own. The modules
//! that call nginx reference symbols that only the nginx binary provides, so
//! unit-test builds leave them out.

// Unit-test builds leave the nginx-facing callers of the pure code out.
#![cfg_attr(test, allow(dead_code))]

#[cfg(not(test))]
#[macro_use]
mod log;

mod cache;
mod conf;
mod identity;
mod policy;

#[cfg(not(test))]
mod deny;
#[cfg(not(test))]
mod handler;
#[cfg(not(test))]
mod headers;
#[cfg(not(test))]
mod module;
#[cfg(not(test))]
mod state;
#[cfg(not(test))]
mod subrequest;
#[cfg(not(test))]
mod variables;

#[cfg(not(test))]
pub use module::ngx_http_authgear_module;
#[cfg(not(test))]
pub(crate) use module::{location_conf, module};
