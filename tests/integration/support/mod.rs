//! Test support: nginx processes, HTTP clients, and the stand-in resolver and
//! echo application with the users and credentials the tests use.

pub mod authgear;
pub mod http1;
pub mod http2;
pub mod nginx;

pub use authgear::*;
pub use http1::{Connection, RawRequest};
pub use nginx::{Nginx, NginxBuilder};
