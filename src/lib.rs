//! ngx_http_authgear_module: resolves every request through Authgear's
//! resolver and hands the identity to the upstream.
//!
//! The pure logic (parsing resolver answers and directive arguments) lives
//! in modules without nginx calls and is unit-tested on its own. The modules
//! that call nginx reference symbols that only the nginx binary provides, so
//! unit-test builds leave them out.

// Unit-test builds leave the nginx-facing callers of the pure code out.
#![cfg_attr(test, allow(dead_code))]
// A panic in a phase handler aborts the worker process, and one inside the
// shared memory lock can hang the others: outside tests, the code has no
// operation that can panic on bad input.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[cfg(not(test))]
#[macro_use]
mod log;

mod cache;
mod conf;
mod identity;
mod policy;

#[cfg(test)]
mod properties;

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
