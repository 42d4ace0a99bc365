//! Integration tests of `ngx_http_authgear_module`: the real nginx binary with
//! the module loaded, between a stand-in Authgear resolver and an echo
//! application that reports what it received.
//!
//! All modules link into one test binary to keep link time down. Every test
//! starts its own servers on ephemeral ports of 127.0.0.1, so tests run in
//! parallel.

mod support;

mod cache;
mod config_errors;
mod failures;
mod failures_extra;
mod future_headers;
mod http2_requests;
mod outcomes;
mod policy;
mod redirects;
mod request_bodies;
mod resolver_keepalive;
mod review_fixes;
mod scope;
mod soak;
mod spoofing;
