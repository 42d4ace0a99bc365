//! nginx reuses its connection to the resolver across client requests when
//! the resolver location uses HTTP/1.1 and an upstream `keepalive` pool.

use crate::support::*;

const REQUESTS: usize = 12;

#[test]
fn resolver_connection_reused_across_requests() {
    let backends = Backends::start();
    // One worker process, so every request uses the same keepalive pool.
    let nginx = backends
        .nginx()
        .worker_processes(1)
        .server(&protected_location("/"))
        .start();

    let cookie = format!("session={FULL_SESSION}");
    for index in 0..REQUESTS {
        // A new client connection each time: reuse must not depend on the
        // client keeping its own connection open.
        let response = http1::send(
            nginx.addr(),
            &RawRequest::get(&format!("/item/{index}")).header("Cookie", &cookie),
        );
        assert_eq!(
            response.header("x-var-user-id"),
            Some(FULL_USER),
            "request {index}"
        );
    }

    assert_eq!(backends.resolver.calls(), REQUESTS, "resolver calls");
    assert_eq!(
        backends.resolver.connections(),
        1,
        "TCP connections to the resolver"
    );
}

#[test]
fn resolver_connection_reused_on_client_keepalive() {
    let backends = Backends::start();
    let nginx = backends.nginx().server(&protected_location("/")).start();

    let mut connection = Connection::open(nginx.addr());
    let sessions = [
        FULL_SESSION,
        NO_ROLES_SESSION,
        UNKNOWN_SESSION,
        ANONYMOUS_SESSION,
    ];
    let expected_users = [
        Some(FULL_USER),
        Some(NO_ROLES_USER),
        None,
        Some(ANONYMOUS_USER),
    ];
    for (session, expected_user) in sessions.iter().zip(expected_users) {
        let response = connection
            .round_trip(&RawRequest::get("/").header("Cookie", &format!("session={session}")));
        assert_eq!(
            response.header("x-var-user-id"),
            expected_user,
            "session {session}"
        );
    }

    assert_eq!(backends.resolver.calls(), sessions.len(), "resolver calls");
    assert_eq!(
        backends.resolver.connections(),
        1,
        "TCP connections to the resolver"
    );
}
