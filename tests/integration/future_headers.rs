//! Authgear adds `X-Authgear-*` headers over time. The module carries every
//! one it receives, as a variable and to the upstream, without a fixed list.

use authgear_standin::Fault;

use crate::support::*;

#[test]
fn future_header_becomes_variable() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::ExtraHeaders(vec![(
        "X-Authgear-Future-Thing".into(),
        "beta-42".into(),
    )]));
    let nginx = backends.nginx().server(&protected_location("/")).start();

    let response = http1::send(
        nginx.addr(),
        &RawRequest::get("/").header("Cookie", &format!("session={FULL_SESSION}")),
    );

    assert_eq!(
        response.header("x-var-future-thing"),
        Some("beta-42"),
        "$authgear_future_thing"
    );
    assert_eq!(
        response.echo().header_values("x-authgear-future-thing"),
        ["beta-42"],
        "header at the upstream"
    );
}

#[test]
fn future_header_without_session() {
    // A header that arrives without X-Authgear-Session-Valid still passes:
    // the module does not judge which headers belong to which outcome.
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::ExtraHeaders(vec![(
        "x-authgear-future-thing".into(),
        "anonymous-value".into(),
    )]));
    let nginx = backends.nginx().server(&protected_location("/")).start();

    let response = http1::send(nginx.addr(), &RawRequest::get("/"));

    assert_eq!(
        response.header("x-var-future-thing"),
        Some("anonymous-value"),
        "$authgear_future_thing"
    );
    assert_eq!(
        identity_headers(&response.echo()),
        normalized(&[("X-Authgear-Future-Thing", "anonymous-value")]),
        "identity headers at the upstream"
    );
}

#[test]
fn unrelated_resolver_headers_not_forwarded() {
    let backends = Backends::start();
    backends.resolver.set_fault(Fault::ExtraHeaders(vec![
        ("X-Request-Id".into(), "resolver-internal".into()),
        ("Cache-Control".into(), "no-store".into()),
    ]));
    let nginx = backends.nginx().server(&protected_location("/")).start();

    let response = http1::send(
        nginx.addr(),
        &RawRequest::get("/").header("Cookie", &format!("session={FULL_SESSION}")),
    );
    let report = response.echo();

    assert_eq!(
        report.header_values("x-request-id"),
        Vec::<&str>::new(),
        "X-Request-Id at the upstream"
    );
    assert_eq!(
        report.header_values("cache-control"),
        Vec::<&str>::new(),
        "Cache-Control at the upstream"
    );
    assert_eq!(
        response.header_values("x-request-id"),
        Vec::<&str>::new(),
        "X-Request-Id for the client"
    );
}
