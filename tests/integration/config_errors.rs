//! Configuration errors, checked with `nginx -t`: each must print the message
//! nginx prints for its own directives, with the file and line.

use crate::support::*;

fn check_server(directives: &str) -> nginx::ConfigCheck {
    NginxBuilder::new()
        .http("upstream authgear_resolver {\n    server 127.0.0.1:9;\n}\n")
        .server(&resolver_location(""))
        .server(directives)
        .check()
}

/// Checks that `nginx -t` failed with `message` at the `occurrence`-th line
/// that contains `needle`.
fn assert_rejected(check: &nginx::ConfigCheck, message: &str, needle: &str, occurrence: usize) {
    let expected = check.emerg_line(message, check.line_of(needle, occurrence));
    assert!(!check.success, "nginx -t accepted:\n{}", check.conf);
    assert!(
        check.stderr.lines().any(|line| line == expected),
        "expected the line\n{expected}\nin the output of nginx -t:\n{}",
        check.stderr
    );
}

#[test]
fn valid_configuration_passes() {
    let check = check_server(
        "authgear_resolve /_authgear/resolve;\n\
         authgear_identity_headers on;\n\
         location / {\n\
         \x20   authgear_resolve off;\n\
         \x20   authgear_identity_headers off;\n\
         \x20   location /inner/ {\n\
         \x20       authgear_resolve /_authgear/resolve;\n\
         \x20   }\n\
         }\n",
    );

    assert!(check.success, "nginx -t rejected:\n{}", check.stderr);
    assert!(
        check.stderr.contains("test is successful"),
        "output:\n{}",
        check.stderr
    );
}

#[test]
fn resolve_at_http_level_passes() {
    let check = NginxBuilder::new()
        .http("authgear_resolve /_authgear/resolve;\nauthgear_identity_headers off;\n")
        .check();

    assert!(check.success, "nginx -t rejected:\n{}", check.stderr);
}

#[test]
fn resolve_missing_argument_rejected() {
    let check = check_server("location / {\n    authgear_resolve;\n}\n");

    assert_rejected(
        &check,
        "invalid number of arguments in \"authgear_resolve\" directive",
        "authgear_resolve;",
        1,
    );
}

#[test]
fn resolve_extra_argument_rejected() {
    let check = check_server("location / {\n    authgear_resolve /_authgear/resolve /other;\n}\n");

    assert_rejected(
        &check,
        "invalid number of arguments in \"authgear_resolve\" directive",
        "authgear_resolve /_authgear/resolve /other;",
        1,
    );
}

#[test]
fn resolve_duplicate_rejected() {
    let check = check_server(
        "location / {\n\
         \x20   authgear_resolve /_authgear/resolve;\n\
         \x20   authgear_resolve off;\n\
         }\n",
    );

    assert_rejected(
        &check,
        "\"authgear_resolve\" directive is duplicate",
        "authgear_resolve off;",
        1,
    );
}

#[test]
fn resolve_relative_uri_rejected() {
    let check = check_server("location / {\n    authgear_resolve resolve;\n}\n");

    assert_rejected(
        &check,
        "invalid URI \"resolve\" in \"authgear_resolve\" directive, it must start with \"/\" and contain no variables",
        "authgear_resolve resolve;",
        1,
    );
}

#[test]
fn resolve_absolute_url_rejected() {
    let check = check_server("location / {\n    authgear_resolve http://127.0.0.1:9/resolve;\n}\n");

    assert_rejected(
        &check,
        "invalid URI \"http://127.0.0.1:9/resolve\" in \"authgear_resolve\" directive, it must start with \"/\" and contain no variables",
        "authgear_resolve http://",
        1,
    );
}

#[test]
fn resolve_outside_http_rejected() {
    let check = NginxBuilder::new()
        .main("authgear_resolve /_authgear/resolve;")
        .check();

    assert_rejected(
        &check,
        "\"authgear_resolve\" directive is not allowed here",
        "authgear_resolve /_authgear/resolve;",
        1,
    );
}

#[test]
fn identity_headers_bad_value_rejected() {
    let check = check_server("location / {\n    authgear_identity_headers yes;\n}\n");

    assert_rejected(
        &check,
        "invalid value \"yes\" in \"authgear_identity_headers\" directive, it must be \"on\" or \"off\"",
        "authgear_identity_headers yes;",
        1,
    );
}

#[test]
fn identity_headers_missing_argument_rejected() {
    let check = check_server("location / {\n    authgear_identity_headers;\n}\n");

    assert_rejected(
        &check,
        "invalid number of arguments in \"authgear_identity_headers\" directive",
        "authgear_identity_headers;",
        1,
    );
}

#[test]
fn identity_headers_duplicate_rejected() {
    let check = check_server(
        "location / {\n\
         \x20   authgear_identity_headers on;\n\
         \x20   authgear_identity_headers off;\n\
         }\n",
    );

    assert_rejected(
        &check,
        "\"authgear_identity_headers\" directive is duplicate",
        "authgear_identity_headers off;",
        1,
    );
}
