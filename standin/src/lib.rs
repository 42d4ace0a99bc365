//! Stand-ins for an Authgear resolver and for an upstream application, to test
//! `ngx_http_authgear_module` without an Authgear deployment.
//!
//! - [`start_resolver`] serves Authgear's resolver contract: `GET /resolve` responds 200
//!   with `X-Authgear-*` headers that describe the request's credentials, looked up in a
//!   [`Directory`]. [`Fault`]s make it fail, stall or add headers on demand.
//! - [`start_echo`] serves an application that responds to every request with a JSON
//!   description of it ([`EchoReport`]), so a test can see what nginx forwarded.
//!
//! Both run on a background thread with their own tokio runtime and stop when their handle
//! is dropped. The `authgear-standin-resolver` and `echo-app` binaries run the same servers
//! from the command line.

#[doc(hidden)]
pub mod cli;
pub mod directory;
pub mod echo;
pub mod fault;
pub mod resolver;
mod server;

pub use directory::{Directory, DirectoryError, Session, User, UserStatus};
pub use echo::{start_echo, start_echo_with, EchoHandle, EchoOptions, EchoReport};
pub use fault::Fault;
pub use resolver::{
    start_resolver, start_resolver_with, CredentialKind, Outcome, RecordedRequest, ResolverHandle,
    ResolverOptions,
};
