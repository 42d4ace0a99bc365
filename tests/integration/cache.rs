//! The shared-memory cache of resolver answers (`authgear_cache_*`), tested
//! on nginx with two worker processes: lifetimes, key isolation, reloads,
//! floods, coalescing of concurrent misses, stale answers, background
//! refreshes and the capacity of a 1 MB zone.
//!
//! Every location exposes `$authgear_cache_status` as `X-Cache-Status` and
//! proxies to the echo application, whose report shows the identity the
//! upstream received.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use authgear_standin::{start_echo, start_resolver, Directory, Fault, Session, User};

use crate::support::http1::Response;
use crate::support::nginx::{bind_local, pick_free_port};
use crate::support::*;

/// The name of the cache zone in every configuration of this file.
const ZONE: &str = "authgear_test";

/// Maximum time for a reload to replace the worker processes.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum time for a background refresh to reach the resolver after the
/// response that triggered it.
const REFRESH_WAIT: Duration = Duration::from_secs(5);

/// The warning the module logs when it evicts live entries of `ZONE`.
const ZONE_FULL_WARNING: &str =
    "authgear cache zone \"authgear_test\" is full, evicting least recently used entries";

/// The warning the module logs when it serves a stale answer from `ZONE`
/// because the resolver returned 500.
const STALE_WARNING: &str = "authgear resolver returned unexpected status 500, \
     serving a stale answer from cache zone \"authgear_test\", resolver: \"/_authgear/resolve\"";

/// Returns an upstream block for the echo application with idle connections
/// kept open, so that thousands of requests do not use up the ephemeral ports.
fn keepalive_echo_upstream(echo: SocketAddr) -> String {
    format!(
        "upstream echo_keepalive {{\n\
         \x20   server {echo};\n\
         \x20   keepalive 16;\n\
         }}\n"
    )
}

/// Returns a location on `path` that resolves every request through the
/// cache zone `zone`, with `directives` added, and proxies to the echo
/// application.
fn cached_location_in(path: &str, zone: &str, directives: &str) -> String {
    format!(
        "location {path} {{\n\
         \x20   authgear_resolve {RESOLVER_URI};\n\
         \x20   authgear_cache {zone};\n\
         \x20   {directives}\n\
         \x20   proxy_pass http://echo_keepalive;\n\
         \x20   proxy_http_version 1.1;\n\
         \x20   proxy_set_header Connection \"\";\n\
         \x20   add_header X-Cache-Status $authgear_cache_status always;\n\
         \x20   add_header X-Worker-Pid $pid always;\n\
         }}\n"
    )
}

/// Returns a configuration with two worker processes, the zone `ZONE` of
/// `zone_size` and `location /` cached in it with `directives`.
fn cached_nginx(backends: &Backends, zone_size: &str, directives: &str) -> NginxBuilder {
    cached_nginx_without_zone(backends, directives)
        .http(&format!("authgear_cache_zone zone={ZONE}:{zone_size};"))
}

/// Like `cached_nginx`, without the `authgear_cache_zone` line, which the
/// caller adds.
fn cached_nginx_without_zone(backends: &Backends, directives: &str) -> NginxBuilder {
    backends
        .nginx()
        .worker_processes(2)
        .http(&keepalive_echo_upstream(backends.echo.addr()))
        .server(&cached_location_in("/", ZONE, directives))
}

/// Starts the stand-in resolver with `directory`, and the echo application.
fn backends_with(directory: Directory) -> Backends {
    Backends {
        resolver: start_resolver(bind_local(), directory).expect("start the stand-in resolver"),
        echo: start_echo(bind_local()).expect("start the echo application"),
    }
}

fn request_with(headers: &[(&str, &str)]) -> RawRequest {
    headers
        .iter()
        .fold(RawRequest::get("/"), |request, (name, value)| {
            request.header(name, value)
        })
}

fn session_request(session: &str) -> RawRequest {
    RawRequest::get("/").header("Cookie", &format!("session={session}"))
}

fn bearer_request(token: &str) -> RawRequest {
    RawRequest::get("/").header("Authorization", &format!("Bearer {token}"))
}

fn cache_status(response: &Response) -> Option<&str> {
    response.header("x-cache-status")
}

/// Returns the `X-Authgear-User-Id` that the echo application received, or
/// `None` when the response is not the echo application's 200 or carries
/// no user.
fn upstream_user(response: &Response) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    response
        .echo()
        .headers
        .into_iter()
        .find(|(name, _)| name == "x-authgear-user-id")
        .map(|(_, value)| value)
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
}

/// Waits until the resolver has received `expected` calls, for calls that a
/// background subrequest makes after the client got its response.
fn wait_for_calls(backends: &Backends, expected: usize) -> usize {
    let deadline = Instant::now() + REFRESH_WAIT;
    loop {
        let calls = backends.resolver.calls();
        if calls >= expected || Instant::now() >= deadline {
            return calls;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Returns the error log lines in which a worker process died from a signal.
fn crashed_workers(nginx: &Nginx) -> Vec<String> {
    nginx
        .error_log()
        .lines()
        .filter(|line| line.contains("exited on signal"))
        .map(str::to_owned)
        .collect()
}

/// Returns the pids of the worker processes that the master started and
/// that have not exited, read from the master's notices in the error log.
fn running_workers(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split_once("start worker process "))
        .map(|(_, pid)| pid.trim().to_owned())
        .filter(|pid| !log.contains(&format!("worker process {pid} exited")))
        .collect()
}

/// Reloads nginx as `nginx -s reload` does, by sending SIGHUP to the master
/// process, whose pid is in `nginx.pid` under `prefix`. Returns once as
/// many new worker processes have started as were running and the old ones
/// have exited, so that every later connection reaches a new worker.
///
/// Panics when that takes longer than `RELOAD_TIMEOUT`, which happens when
/// nginx rejects the new configuration and keeps the old workers.
fn reload(nginx: &Nginx, prefix: &Path) {
    let log = nginx.error_log();
    let old_workers = running_workers(&log);
    assert!(
        !old_workers.is_empty(),
        "no running worker found in the error log"
    );
    let started_before = log.matches("start worker process ").count();

    let pid_text = fs::read_to_string(prefix.join("nginx.pid")).expect("read nginx.pid");
    let pid: libc::pid_t = pid_text.trim().parse().expect("numeric pid in nginx.pid");
    // SAFETY: kill() has no memory-safety preconditions, and `pid` is the
    // nginx master that this test started.
    let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(sent, 0, "send SIGHUP to the nginx master {pid}");

    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let log = nginx.error_log();
        let started = log.matches("start worker process ").count() - started_before;
        let old_exited = old_workers
            .iter()
            .all(|worker| log.contains(&format!("worker process {worker} exited")));
        if started >= old_workers.len() && old_exited {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nginx did not replace the workers {old_workers:?} within {} s of SIGHUP \
             ({started} new workers started)",
            RELOAD_TIMEOUT.as_secs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hits_shared_across_workers() {
    const CLIENTS: usize = 8;
    const REQUESTS_PER_CLIENT: usize = 5;

    let backends = Backends::start();
    // With `reuseport` each worker has a listening socket of its own, and
    // the kernel spreads new connections over them by source port, so that
    // both workers get some of the 41 connections.
    let addr = SocketAddr::from(([127, 0, 0, 1], pick_free_port()));
    let _nginx = cached_nginx(&backends, "1m", "")
        .server(&format!("listen {addr} reuseport;"))
        .start();

    let first = http1::send(addr, &session_request(FULL_SESSION));
    assert_eq!(cache_status(&first), Some("MISS"), "first request");
    assert_eq!(
        upstream_user(&first).as_deref(),
        Some(FULL_USER),
        "first request"
    );

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            thread::spawn(move || {
                (0..REQUESTS_PER_CLIENT)
                    .map(|_| http1::send(addr, &session_request(FULL_SESSION)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let responses: Vec<Response> = clients
        .into_iter()
        .flat_map(|client| client.join().expect("client thread"))
        .collect();

    let statuses: Vec<Option<&str>> = responses.iter().map(cache_status).collect();
    assert!(
        statuses.iter().all(|status| *status == Some("HIT")),
        "statuses after the first request: {statuses:?}"
    );
    let users: Vec<Option<String>> = responses.iter().map(upstream_user).collect();
    assert!(
        users.iter().all(|user| user.as_deref() == Some(FULL_USER)),
        "users after the first request: {users:?}"
    );
    let pids: BTreeSet<&str> = responses
        .iter()
        .chain([&first])
        .filter_map(|response| response.header("x-worker-pid"))
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "worker processes that served requests: {pids:?}"
    );
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
}

/// Checks that an answer of one kind is a hit within its lifetime of 2 s
/// and expired after it, while an answer of another kind, with its default
/// lifetime of at least 30 s, is still a hit.
fn check_lifetime(
    kind: &str,
    request: RawRequest,
    expected_user: Option<&str>,
    other_request: RawRequest,
) {
    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", &format!("authgear_cache_valid {kind} 2s;")).start();
    let mut connection = Connection::open(nginx.addr());

    let miss = connection.round_trip(&request);
    let stored_at = Instant::now();
    assert_eq!(cache_status(&miss), Some("MISS"), "first {kind} request");
    assert_eq!(
        upstream_user(&miss).as_deref(),
        expected_user,
        "first {kind} request"
    );

    let hit = connection.round_trip(&request);
    assert_eq!(
        cache_status(&hit),
        Some("HIT"),
        "{kind} request within its lifetime"
    );
    assert_eq!(
        upstream_user(&hit).as_deref(),
        expected_user,
        "{kind} request within its lifetime"
    );
    assert_eq!(
        backends.resolver.calls(),
        1,
        "resolver calls within the lifetime"
    );

    let other = connection.round_trip(&other_request);
    assert_eq!(
        cache_status(&other),
        Some("MISS"),
        "request of another kind"
    );

    sleep_until(stored_at + Duration::from_millis(3500));

    let expired = connection.round_trip(&request);
    assert_eq!(
        cache_status(&expired),
        Some("EXPIRED"),
        "{kind} request after its lifetime"
    );
    assert_eq!(
        upstream_user(&expired).as_deref(),
        expected_user,
        "{kind} request after its lifetime"
    );
    assert_eq!(
        backends.resolver.calls(),
        3,
        "resolver calls after the lifetime"
    );

    let other = connection.round_trip(&other_request);
    assert_eq!(
        cache_status(&other),
        Some("HIT"),
        "request of another kind after the {kind} lifetime"
    );

    let stored_again = connection.round_trip(&request);
    assert_eq!(
        cache_status(&stored_again),
        Some("HIT"),
        "{kind} request after the expired entry was replaced"
    );
}

#[test]
fn valid_answer_expires_after_lifetime() {
    check_lifetime(
        "valid",
        session_request(FULL_SESSION),
        Some(FULL_USER),
        session_request(UNKNOWN_SESSION),
    );
}

#[test]
fn invalid_answer_expires_after_lifetime() {
    check_lifetime(
        "invalid",
        session_request(UNKNOWN_SESSION),
        None,
        session_request(FULL_SESSION),
    );
}

#[test]
fn empty_answer_expires_after_lifetime() {
    check_lifetime(
        "none",
        bearer_request(UNKNOWN_BEARER),
        None,
        session_request(FULL_SESSION),
    );
}

#[test]
fn resolver_error_not_cached() {
    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", "").start();
    // nginx closes the client connection after a 500, so every request
    // opens its own.
    let addr = nginx.addr();

    backends.resolver.set_fault(Fault::InternalErrorText);
    let first = http1::send(addr, &session_request(FULL_SESSION));
    assert_eq!(first.status, 500, "status while the resolver fails");
    let second = http1::send(addr, &session_request(FULL_SESSION));
    assert_eq!(
        second.status, 500,
        "status of the second request while the resolver fails"
    );
    assert_eq!(
        backends.resolver.calls(),
        2,
        "resolver calls while it fails"
    );

    backends.resolver.set_fault(Fault::None);
    let recovered = http1::send(addr, &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&recovered),
        Some("MISS"),
        "first request after recovery"
    );
    assert_eq!(
        upstream_user(&recovered).as_deref(),
        Some(FULL_USER),
        "first request after recovery"
    );
    let hit = http1::send(addr, &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&hit),
        Some("HIT"),
        "second request after recovery"
    );
    assert_eq!(
        backends.resolver.calls(),
        3,
        "resolver calls after recovery"
    );
}

/// A request and the user the upstream must receive for it.
struct KeyCase {
    name: &'static str,
    request: RawRequest,
    user: Option<&'static str>,
}

impl KeyCase {
    fn new(name: &'static str, headers: &[(&str, &str)], user: Option<&'static str>) -> Self {
        KeyCase {
            name,
            request: request_with(headers),
            user,
        }
    }
}

/// Sends every case twice, in two rounds. Each request of the first round
/// must miss, which shows that no two cases share a key, and each of the
/// second round must hit. Every response must carry the case's own user.
fn check_cases_isolated(nginx: &Nginx, backends: &Backends, cases: &[KeyCase]) {
    let mut connection = Connection::open(nginx.addr());
    for (round, expected_status) in [(1, "MISS"), (2, "HIT")] {
        for case in cases {
            let response = connection.round_trip(&case.request);
            assert_eq!(
                cache_status(&response),
                Some(expected_status),
                "round {round}: {}",
                case.name
            );
            assert_eq!(
                upstream_user(&response).as_deref(),
                case.user,
                "round {round}: {}",
                case.name
            );
        }
    }
    assert_eq!(backends.resolver.calls(), cases.len(), "resolver calls");
}

#[test]
fn key_separates_credential_forms() {
    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", "").start();

    let full_bearer = format!("Bearer {FULL_BEARER}");
    let jwt_bearer = format!("Bearer {NO_ROLES_JWT}");
    let unknown_bearer = format!("Bearer {UNKNOWN_BEARER}");
    let app_session = format!("app_session={UNVERIFIED_APP_SESSION}");
    let app_access_token = format!("app_access_token={NO_ROLES_APP_ACCESS_TOKEN}");
    let full_session = format!("session={FULL_SESSION}");
    let anonymous_session = format!("session={ANONYMOUS_SESSION}");
    let unknown_session = format!("session={UNKNOWN_SESSION}");
    let app_session_and_session =
        format!("app_session={UNVERIFIED_APP_SESSION}; session={FULL_SESSION}");
    let cases = [
        KeyCase::new("no credentials", &[], None),
        KeyCase::new(
            "opaque bearer token",
            &[("Authorization", &full_bearer)],
            Some(FULL_USER),
        ),
        KeyCase::new(
            "JWT bearer token",
            &[("Authorization", &jwt_bearer)],
            Some(NO_ROLES_USER),
        ),
        KeyCase::new(
            "unknown bearer token",
            &[("Authorization", &unknown_bearer)],
            None,
        ),
        KeyCase::new(
            "app_session cookie",
            &[("Cookie", &app_session)],
            Some(UNVERIFIED_USER),
        ),
        KeyCase::new(
            "app_access_token cookie",
            &[("Cookie", &app_access_token)],
            Some(NO_ROLES_USER),
        ),
        KeyCase::new(
            "session cookie",
            &[("Cookie", &full_session)],
            Some(FULL_USER),
        ),
        KeyCase::new(
            "session cookie of another user",
            &[("Cookie", &anonymous_session)],
            Some(ANONYMOUS_USER),
        ),
        KeyCase::new(
            "unknown session cookie",
            &[("Cookie", &unknown_session)],
            None,
        ),
        KeyCase::new(
            "session cookie and bearer token",
            &[("Cookie", &full_session), ("Authorization", &jwt_bearer)],
            Some(NO_ROLES_USER),
        ),
        KeyCase::new(
            "app_session and session cookies",
            &[("Cookie", &app_session_and_session)],
            Some(UNVERIFIED_USER),
        ),
    ];

    check_cases_isolated(&nginx, &backends, &cases);
}

/// Authgear's own nginx recipe keys on `$cookie_session|$http_authorization`,
/// which gives an app-cookie-only request the key of an anonymous one.
#[test]
fn app_cookie_after_anonymous_not_shared() {
    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", "").start();
    let mut connection = Connection::open(nginx.addr());

    let anonymous = connection.round_trip(&RawRequest::get("/"));
    assert_eq!(cache_status(&anonymous), Some("MISS"), "anonymous request");
    assert_eq!(upstream_user(&anonymous), None, "anonymous request");

    let app_session = connection.round_trip(
        &RawRequest::get("/").header("Cookie", &format!("app_session={UNVERIFIED_APP_SESSION}")),
    );
    assert_eq!(
        cache_status(&app_session),
        Some("MISS"),
        "app_session request"
    );
    assert_eq!(
        upstream_user(&app_session).as_deref(),
        Some(UNVERIFIED_USER),
        "app_session request"
    );

    let access_token = connection.round_trip(&RawRequest::get("/").header(
        "Cookie",
        &format!("app_access_token={NO_ROLES_APP_ACCESS_TOKEN}"),
    ));
    assert_eq!(
        cache_status(&access_token),
        Some("MISS"),
        "app_access_token request"
    );
    assert_eq!(
        upstream_user(&access_token).as_deref(),
        Some(NO_ROLES_USER),
        "app_access_token request"
    );
}

#[test]
fn anonymous_after_app_cookie_not_shared() {
    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", "").start();
    let mut connection = Connection::open(nginx.addr());

    let app_session = connection.round_trip(
        &RawRequest::get("/").header("Cookie", &format!("app_session={UNVERIFIED_APP_SESSION}")),
    );
    assert_eq!(
        upstream_user(&app_session).as_deref(),
        Some(UNVERIFIED_USER),
        "app_session request"
    );
    let access_token = connection.round_trip(&RawRequest::get("/").header(
        "Cookie",
        &format!("app_access_token={NO_ROLES_APP_ACCESS_TOKEN}"),
    ));
    assert_eq!(
        upstream_user(&access_token).as_deref(),
        Some(NO_ROLES_USER),
        "app_access_token request"
    );

    let anonymous = connection.round_trip(&RawRequest::get("/"));
    assert_eq!(cache_status(&anonymous), Some("MISS"), "anonymous request");
    assert_eq!(upstream_user(&anonymous), None, "anonymous request");
}

#[test]
fn key_covers_cookie_prefix() {
    let backends = backends_with(test_directory().with_cookie_prefix("myapp_"));
    let nginx = cached_nginx(&backends, "1m", "authgear_cookie_prefix myapp_;").start();

    let unprefixed_session = format!("session={FULL_SESSION}");
    let prefixed_session = format!("myapp_session={FULL_SESSION}");
    let prefixed_app_session = format!("myapp_app_session={UNVERIFIED_APP_SESSION}");
    let prefixed_access_token = format!("myapp_app_access_token={NO_ROLES_APP_ACCESS_TOKEN}");
    let cases = [
        KeyCase::new(
            "session cookie without the prefix",
            &[("Cookie", &unprefixed_session)],
            None,
        ),
        KeyCase::new(
            "prefixed session cookie",
            &[("Cookie", &prefixed_session)],
            Some(FULL_USER),
        ),
        KeyCase::new(
            "prefixed app_session cookie",
            &[("Cookie", &prefixed_app_session)],
            Some(UNVERIFIED_USER),
        ),
        KeyCase::new(
            "prefixed app_access_token cookie",
            &[("Cookie", &prefixed_access_token)],
            Some(NO_ROLES_USER),
        ),
    ];

    check_cases_isolated(&nginx, &backends, &cases);

    // The resolver ignores an unprefixed app cookie as well, so this request
    // may share the entry of the unprefixed session cookie but must not get
    // a user.
    let unprefixed_app_session = http1::send(
        nginx.addr(),
        &request_with(&[("Cookie", &format!("app_session={UNVERIFIED_APP_SESSION}"))]),
    );
    assert_eq!(
        upstream_user(&unprefixed_app_session),
        None,
        "app_session cookie without the prefix"
    );
}

/// One nginx in front of a multi-tenant resolver that serves only
/// `app1.example`: a request for `app2.example` with the same cookie gets
/// 404 from the resolver and must never get app1's cached identity.
#[test]
fn key_covers_host() {
    let mut directory = test_directory();
    directory.app_hosts = vec!["app1.example".to_owned()];
    let backends = backends_with(directory);
    let nginx = backends
        .nginx_with_resolver(backends.resolver.addr(), "proxy_set_header Host $host;")
        .worker_processes(2)
        .http(&format!("authgear_cache_zone zone={ZONE}:1m;"))
        .http(&keepalive_echo_upstream(backends.echo.addr()))
        .server(&cached_location_in("/", ZONE, ""))
        .start();
    // nginx closes the client connection after a 500, so every request
    // opens its own.
    let cookie = format!("session={FULL_SESSION}");

    let app1 = http1::send(
        nginx.addr(),
        &request_with(&[("Host", "app1.example"), ("Cookie", &cookie)]),
    );
    assert_eq!(cache_status(&app1), Some("MISS"), "first request for app1");
    assert_eq!(
        upstream_user(&app1).as_deref(),
        Some(FULL_USER),
        "first request for app1"
    );

    let app2 = http1::send(
        nginx.addr(),
        &request_with(&[("Host", "app2.example"), ("Cookie", &cookie)]),
    );
    assert_eq!(
        app2.status, 500,
        "status for app2, which the resolver does not serve"
    );

    let app1_again = http1::send(
        nginx.addr(),
        &request_with(&[("Host", "app1.example"), ("Cookie", &cookie)]),
    );
    assert_eq!(
        cache_status(&app1_again),
        Some("HIT"),
        "second request for app1"
    );
    assert_eq!(
        upstream_user(&app1_again).as_deref(),
        Some(FULL_USER),
        "second request for app1"
    );
    assert_eq!(backends.resolver.calls(), 2, "resolver calls");
}

/// `authgear_cache_key $cookie_session` makes every request with the same
/// `session` cookie share one entry, whatever other credentials it carries:
/// here a bearer token that the resolver would have preferred is ignored.
#[test]
fn custom_key_shares_entry_by_variable() {
    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", "authgear_cache_key $cookie_session;").start();
    let mut connection = Connection::open(nginx.addr());
    let full_session = format!("session={FULL_SESSION}");

    let first = connection.round_trip(&session_request(FULL_SESSION));
    assert_eq!(cache_status(&first), Some("MISS"), "session cookie alone");
    assert_eq!(
        upstream_user(&first).as_deref(),
        Some(FULL_USER),
        "session cookie alone"
    );

    let with_bearer = connection.round_trip(&request_with(&[
        ("Cookie", &full_session),
        ("Authorization", &format!("Bearer {NO_ROLES_JWT}")),
    ]));
    assert_eq!(
        cache_status(&with_bearer),
        Some("HIT"),
        "same session cookie with a bearer token"
    );
    assert_eq!(
        upstream_user(&with_bearer).as_deref(),
        Some(FULL_USER),
        "same session cookie with a bearer token gets the cached identity"
    );

    let other_session = connection.round_trip(&session_request(NO_ROLES_SESSION));
    assert_eq!(
        cache_status(&other_session),
        Some("MISS"),
        "another session cookie"
    );
    assert_eq!(
        upstream_user(&other_session).as_deref(),
        Some(NO_ROLES_USER),
        "another session cookie"
    );
    assert_eq!(backends.resolver.calls(), 2, "resolver calls");
}

/// Returns a configuration whose zone is declared in `cache-zone.conf`
/// under the prefix, which a test rewrites before a reload.
fn reloadable_nginx(backends: &Backends, zone_size: &str) -> NginxBuilder {
    let builder = cached_nginx_without_zone(backends, "");
    builder.write_file(
        "cache-zone.conf",
        &format!("authgear_cache_zone zone={ZONE}:{zone_size};\n"),
    );
    let include = format!("include {}/cache-zone.conf;", builder.prefix().display());
    builder.http(&include)
}

#[test]
fn entries_survive_reload() {
    let backends = Backends::start();
    let builder = reloadable_nginx(&backends, "1m");
    let prefix = builder.prefix().to_owned();
    let nginx = builder.start();

    let first = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&first),
        Some("MISS"),
        "request before the reload"
    );

    reload(&nginx, &prefix);

    let after = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&after),
        Some("HIT"),
        "request after the reload"
    );
    assert_eq!(
        upstream_user(&after).as_deref(),
        Some(FULL_USER),
        "request after the reload"
    );
    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
    assert_eq!(
        crashed_workers(&nginx),
        Vec::<String>::new(),
        "crashed workers"
    );
}

#[test]
fn resized_zone_works_after_reload() {
    let backends = Backends::start();
    let builder = reloadable_nginx(&backends, "1m");
    let prefix = builder.prefix().to_owned();
    let nginx = builder.start();

    let first = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&first),
        Some("MISS"),
        "request before the reload"
    );

    fs::write(
        prefix.join("cache-zone.conf"),
        format!("authgear_cache_zone zone={ZONE}:2m;\n"),
    )
    .expect("rewrite cache-zone.conf");
    reload(&nginx, &prefix);

    let miss = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&miss),
        Some("MISS"),
        "first request to the resized zone"
    );
    assert_eq!(
        upstream_user(&miss).as_deref(),
        Some(FULL_USER),
        "first request to the resized zone"
    );
    let hit = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&hit),
        Some("HIT"),
        "second request to the resized zone"
    );
    assert_eq!(backends.resolver.calls(), 2, "resolver calls");
    assert_eq!(
        crashed_workers(&nginx),
        Vec::<String>::new(),
        "crashed workers"
    );
}

/// What one client thread of the flood saw.
#[derive(Default)]
struct FloodTally {
    /// Bogus-token requests that did not get 200.
    failed: Vec<u16>,
    /// Bogus-token requests that reached the upstream with a user.
    bogus_with_user: usize,
    /// Cache statuses of the valid session's requests other than HIT.
    valid_not_hit: Vec<Option<String>>,
    /// Valid-session requests whose upstream user was not the session's.
    valid_wrong_user: Vec<Option<String>>,
}

/// 20,000 distinct unknown bearer tokens, which a client can make up at
/// will, go into a 128 KB zone that has room for fewer than 1,000 of them. A valid
/// session requested every 50 requests must stay cached throughout, because
/// empty answers are evicted before valid sessions.
#[test]
fn token_flood_keeps_valid_session_cached() {
    const THREADS: usize = 4;
    const REQUESTS_PER_THREAD: usize = 5000;
    const VALID_EVERY: usize = 50;

    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "128k", "authgear_cache_valid valid 10m;")
        .error_log_level("notice")
        .server("keepalive_requests 100000;")
        .start();

    let first = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&first),
        Some("MISS"),
        "first valid-session request"
    );

    let started = Instant::now();
    let addr = nginx.addr();
    let threads: Vec<_> = (0..THREADS)
        .map(|thread_index| {
            thread::spawn(move || {
                let mut connection = Connection::open(addr);
                let mut tally = FloodTally::default();
                for index in 0..REQUESTS_PER_THREAD {
                    if index % VALID_EVERY == 0 {
                        let response = connection.round_trip(&session_request(FULL_SESSION));
                        if cache_status(&response) != Some("HIT") {
                            tally
                                .valid_not_hit
                                .push(cache_status(&response).map(str::to_owned));
                        }
                        let user = upstream_user(&response);
                        if user.as_deref() != Some(FULL_USER) {
                            tally.valid_wrong_user.push(user);
                        }
                        continue;
                    }
                    let token = format!("bogus-{thread_index}-{index}-x9Qw");
                    let response = connection.round_trip(&bearer_request(&token));
                    if response.status != 200 {
                        tally.failed.push(response.status);
                    } else if upstream_user(&response).is_some() {
                        tally.bogus_with_user += 1;
                    }
                }
                tally
            })
        })
        .collect();
    let tallies: Vec<FloodTally> = threads
        .into_iter()
        .map(|thread| thread.join().expect("flood thread"))
        .collect();
    let elapsed = started.elapsed();
    eprintln!(
        "flood: {} requests in {:.1} s",
        THREADS * REQUESTS_PER_THREAD,
        elapsed.as_secs_f64()
    );

    let failed: Vec<u16> = tallies.iter().flat_map(|t| t.failed.clone()).collect();
    assert_eq!(
        failed,
        Vec::<u16>::new(),
        "statuses of failed bogus-token requests"
    );
    let bogus_with_user: usize = tallies.iter().map(|t| t.bogus_with_user).sum();
    assert_eq!(bogus_with_user, 0, "bogus-token requests that got a user");
    let valid_not_hit: Vec<Option<String>> = tallies
        .iter()
        .flat_map(|t| t.valid_not_hit.clone())
        .collect();
    assert_eq!(
        valid_not_hit,
        Vec::<Option<String>>::new(),
        "cache statuses of valid-session requests other than HIT"
    );
    let valid_wrong_user: Vec<Option<String>> = tallies
        .iter()
        .flat_map(|t| t.valid_wrong_user.clone())
        .collect();
    assert_eq!(
        valid_wrong_user,
        Vec::<Option<String>>::new(),
        "users of valid-session requests other than the session's"
    );

    let warnings: Vec<String> = nginx
        .error_log()
        .lines()
        .filter(|line| line.contains(ZONE_FULL_WARNING))
        .map(str::to_owned)
        .collect();
    // The module warns at most once a minute per zone.
    let allowed = 1 + elapsed.as_secs() as usize / 60;
    assert!(
        warnings.len() <= allowed,
        "{} zone-full warnings in {:.1} s: {warnings:#?}",
        warnings.len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(
        nginx.error_lines_containing(""),
        Vec::<String>::new(),
        "error log lines"
    );
    // 20,000 empty answers take about 2.5 MB, so the 128 KB zone was full.
    assert!(
        !warnings.is_empty(),
        "no \"{ZONE_FULL_WARNING}\" warning in the error log"
    );
}

#[test]
fn concurrent_misses_share_resolver_call() {
    const CLIENTS: usize = 50;

    let backends = Backends::start();
    backends
        .resolver
        .set_fault(Fault::Delay(Duration::from_millis(300)));
    let nginx = cached_nginx(&backends, "1m", "").start();

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let addr = nginx.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut connection = Connection::open(addr);
                barrier.wait();
                connection.round_trip(&session_request(FULL_SESSION))
            })
        })
        .collect();
    let responses: Vec<Response> = clients
        .into_iter()
        .map(|client| client.join().expect("client thread"))
        .collect();

    assert_eq!(backends.resolver.calls(), 1, "resolver calls");
    let users: Vec<Option<String>> = responses.iter().map(upstream_user).collect();
    let wrong: Vec<&Option<String>> = users
        .iter()
        .filter(|user| user.as_deref() != Some(FULL_USER))
        .collect();
    assert_eq!(
        wrong,
        Vec::<&Option<String>>::new(),
        "users other than the session's"
    );
    let misses = responses
        .iter()
        .filter(|response| cache_status(response) == Some("MISS"))
        .count();
    assert_eq!(misses, 1, "MISS responses");
}

/// With a 100 ms lock timeout and a resolver that takes 1 s, requests that
/// wait for the first one give up, call the resolver themselves and report
/// BYPASS.
#[test]
fn lock_timeout_falls_back_to_bypass() {
    const CLIENTS: usize = 5;

    let backends = Backends::start();
    backends
        .resolver
        .set_fault(Fault::Delay(Duration::from_secs(1)));
    let nginx = cached_nginx(&backends, "1m", "authgear_cache_lock_timeout 100ms;").start();

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let addr = nginx.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut connection = Connection::open(addr);
                barrier.wait();
                connection.round_trip(&session_request(FULL_SESSION))
            })
        })
        .collect();
    let responses: Vec<Response> = clients
        .into_iter()
        .map(|client| client.join().expect("client thread"))
        .collect();

    let mut statuses: Vec<Option<&str>> = responses.iter().map(cache_status).collect();
    statuses.sort();
    let mut expected = vec![Some("BYPASS"); CLIENTS - 1];
    expected.push(Some("MISS"));
    assert_eq!(statuses, expected, "cache statuses");
    let users: Vec<Option<String>> = responses.iter().map(upstream_user).collect();
    assert!(
        users.iter().all(|user| user.as_deref() == Some(FULL_USER)),
        "users: {users:?}"
    );
    assert_eq!(backends.resolver.calls(), CLIENTS, "resolver calls");

    backends.resolver.set_fault(Fault::None);
    let after = http1::send(nginx.addr(), &session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&after),
        Some("HIT"),
        "request after the lock released"
    );
}

/// An entry that expired less than `authgear_cache_use_stale` ago is served,
/// with a warning, when the resolver fails. An older one is not.
#[test]
fn stale_answer_served_within_window() {
    let backends = Backends::start();
    let nginx = cached_nginx(
        &backends,
        "1m",
        "authgear_cache_valid valid 1s; authgear_cache_use_stale 4s;",
    )
    .start();
    let mut connection = Connection::open(nginx.addr());

    let miss = connection.round_trip(&session_request(FULL_SESSION));
    let stored_at = Instant::now();
    assert_eq!(cache_status(&miss), Some("MISS"), "first request");

    backends.resolver.set_fault(Fault::InternalErrorText);
    // 1 s past the expiry, 3 s before the end of the window.
    sleep_until(stored_at + Duration::from_secs(2));
    for attempt in 1..=2 {
        let stale = connection.round_trip(&session_request(FULL_SESSION));
        assert_eq!(stale.status, 200, "status of stale request {attempt}");
        assert_eq!(
            cache_status(&stale),
            Some("STALE"),
            "stale request {attempt}"
        );
        assert_eq!(
            upstream_user(&stale).as_deref(),
            Some(FULL_USER),
            "stale request {attempt}"
        );
    }
    let warnings: Vec<String> = nginx
        .error_log()
        .lines()
        .filter(|line| line.contains("[warn]") && line.contains(STALE_WARNING))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 2, "stale-answer warnings: {warnings:#?}");

    // 1.5 s past the end of the window.
    sleep_until(stored_at + Duration::from_millis(6500));
    let too_old = connection.round_trip(&session_request(FULL_SESSION));
    assert_eq!(too_old.status, 500, "status past the stale window");
}

/// A user who keeps sending requests is never made to wait for the
/// resolver: hits in the last quarter of the entry's 4 s lifetime refresh it
/// in the background, and each refresh reaches the resolver as an extra call.
#[test]
fn background_refresh_keeps_user_hitting() {
    const RUN_FOR: Duration = Duration::from_secs(10);
    const INTERVAL: Duration = Duration::from_millis(100);

    let backends = Backends::start();
    let nginx = cached_nginx(&backends, "1m", "authgear_cache_valid valid 4s;").start();
    let mut connection = Connection::open(nginx.addr());

    let first = connection.round_trip(&session_request(FULL_SESSION));
    assert_eq!(cache_status(&first), Some("MISS"), "first request");

    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut wrong_users = Vec::new();
    while started.elapsed() < RUN_FOR {
        thread::sleep(INTERVAL);
        let response = connection.round_trip(&session_request(FULL_SESSION));
        statuses.push(cache_status(&response).map(str::to_owned));
        let user = upstream_user(&response);
        if user.as_deref() != Some(FULL_USER) {
            wrong_users.push(user);
        }
    }

    let unexpected: Vec<&Option<String>> = statuses
        .iter()
        .filter(|status| !matches!(status.as_deref(), Some("HIT") | Some("UPDATING")))
        .collect();
    assert_eq!(
        unexpected,
        Vec::<&Option<String>>::new(),
        "statuses other than HIT and UPDATING"
    );
    assert_eq!(
        wrong_users,
        Vec::<Option<String>>::new(),
        "users other than the session's"
    );
    let updating = statuses
        .iter()
        .filter(|status| status.as_deref() == Some("UPDATING"))
        .count();
    assert!(
        updating >= 2,
        "UPDATING responses in 2.5 lifetimes: {updating}"
    );
    assert_eq!(
        wait_for_calls(&backends, 1 + updating),
        1 + updating,
        "resolver calls: the first miss and one per background refresh"
    );
}

/// Walks one key after another through every value of
/// `$authgear_cache_status`, with 4 s lifetimes.
#[test]
fn cache_status_takes_every_value() {
    let backends = Backends::start();
    let nginx = cached_nginx(
        &backends,
        "1m",
        "authgear_cache_valid valid 4s; \
         authgear_cache_use_stale 1m; \
         authgear_cache_bypass $http_x_cache_bypass;",
    )
    .start();
    let mut connection = Connection::open(nginx.addr());
    let mut observed = BTreeSet::new();
    let mut step = |request: &RawRequest, expected: &str, name: &str| {
        let response = connection.round_trip(request);
        assert_eq!(cache_status(&response), Some(expected), "{name}");
        observed.insert(expected.to_owned());
        response
    };

    let updating_key = session_request(FULL_SESSION);
    let expiring_key = session_request(NO_ROLES_SESSION);
    let stale_key = session_request(UNVERIFIED_SESSION);
    let bypass_request = session_request(ANONYMOUS_SESSION).header("X-Cache-Bypass", "1");

    step(&updating_key, "MISS", "first request");
    let updating_stored_at = Instant::now();
    step(&updating_key, "HIT", "second request");
    step(&bypass_request, "BYPASS", "request with X-Cache-Bypass");
    step(
        &expiring_key,
        "MISS",
        "first request of the key that expires",
    );
    step(&stale_key, "MISS", "first request of the key served stale");
    let others_stored_at = Instant::now();

    // The last quarter of the lifetime is 3 s to 4 s after the store.
    sleep_until(updating_stored_at + Duration::from_millis(3250));
    step(
        &updating_key,
        "UPDATING",
        "request in the last quarter of the lifetime",
    );

    sleep_until(others_stored_at + Duration::from_secs(5));
    step(&expiring_key, "EXPIRED", "request after the lifetime");

    backends.resolver.set_fault(Fault::InternalErrorText);
    let stale = step(
        &stale_key,
        "STALE",
        "request after the lifetime while the resolver fails",
    );
    assert_eq!(
        upstream_user(&stale).as_deref(),
        Some(UNVERIFIED_USER),
        "stale identity"
    );

    let all: BTreeSet<String> = ["MISS", "HIT", "EXPIRED", "STALE", "UPDATING", "BYPASS"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(observed, all, "observed cache statuses");
}

#[test]
fn bypass_calls_resolver_despite_entry() {
    let backends = Backends::start();
    let nginx = cached_nginx(
        &backends,
        "1m",
        "authgear_cache_bypass $http_x_cache_bypass;",
    )
    .start();
    let mut connection = Connection::open(nginx.addr());

    let miss = connection.round_trip(&session_request(FULL_SESSION));
    assert_eq!(cache_status(&miss), Some("MISS"), "first request");
    let bypass =
        connection.round_trip(&session_request(FULL_SESSION).header("X-Cache-Bypass", "1"));
    assert_eq!(
        cache_status(&bypass),
        Some("BYPASS"),
        "request with X-Cache-Bypass"
    );
    assert_eq!(
        upstream_user(&bypass).as_deref(),
        Some(FULL_USER),
        "request with X-Cache-Bypass"
    );
    assert_eq!(backends.resolver.calls(), 2, "resolver calls");

    let hit = connection.round_trip(&session_request(FULL_SESSION));
    assert_eq!(
        cache_status(&hit),
        Some("HIT"),
        "request without X-Cache-Bypass"
    );
    assert_eq!(backends.resolver.calls(), 2, "resolver calls after the hit");
}

/// Returns the `session` cookie value of the `index`-th capacity session.
fn capacity_session(index: usize) -> String {
    format!("cap-{index:05}.Zq7Wm2Kx9Rt4Yb6Nc8Vd1Hf3Jg5Lp0Sa")
}

/// Returns the test directory plus `count` users, each with one session,
/// shaped like a typical identity: a UUID, two roles, AMR `pwd mfa` and an
/// authentication time.
fn capacity_directory(count: usize) -> Directory {
    (0..count).fold(test_directory(), |directory, index| {
        let user_id = format!("{index:08x}-5b2c-4d8e-9f10-{index:012x}");
        let user = User {
            verified: true,
            can_reauthenticate: true,
            roles: vec!["admin".into(), "editor".into()],
            ..User::new()
        };
        let session = Session {
            amr: vec!["pwd".into(), "mfa".into()],
            authenticated_at: Some(1_712_345_678),
            ..Session::new(user_id.clone())
        };
        directory
            .with_user(user_id, user)
            .with_session(capacity_session(index), session)
    })
}

/// Requests the capacity sessions of `indexes` in order on `connection` and
/// returns how many responses had the cache status `expected`.
fn count_statuses(
    connection: &mut Connection,
    path: &str,
    indexes: impl Iterator<Item = usize>,
    expected: &str,
) -> usize {
    indexes
        .filter(|&index| {
            let request = RawRequest::get(path)
                .header("Cookie", &format!("session={}", capacity_session(index)));
            cache_status(&connection.round_trip(&request)) == Some(expected)
        })
        .count()
}

/// Measures how many typical valid sessions fit in a 1 MB zone, and prints
/// the figure:
/// `cargo test --test integration cache::capacity -- --nocapture`.
///
/// The `/fill/` zone gets 3,000 sessions, which must all hit when requested
/// again, then 3,000 more, which overflow it. Requesting the sessions from
/// the newest back counts the hits until the first miss: that is how many
/// entries the full zone contained. A fresh `/probe/` zone then gets exactly
/// that many, which must all hit, and one more, which must evict the least
/// recently used.
#[test]
fn capacity_of_one_megabyte_zone() {
    const GUARANTEED: usize = 3000;
    const OVERFLOW: usize = 3000;
    const SESSIONS: usize = GUARANTEED + OVERFLOW;

    let backends = backends_with(capacity_directory(SESSIONS + 1));
    let lifetime = "authgear_cache_valid valid 10m;";
    let nginx = backends
        .nginx()
        .worker_processes(2)
        .error_log_level("notice")
        .server("keepalive_requests 100000;")
        .http("authgear_cache_zone zone=capacity_fill:1m;")
        .http("authgear_cache_zone zone=capacity_probe:1m;")
        .http(&keepalive_echo_upstream(backends.echo.addr()))
        .server(&cached_location_in("/fill/", "capacity_fill", lifetime))
        .server(&cached_location_in("/probe/", "capacity_probe", lifetime))
        .start();
    let mut connection = Connection::open(nginx.addr());

    let misses = count_statuses(&mut connection, "/fill/", 0..GUARANTEED, "MISS");
    assert_eq!(
        misses, GUARANTEED,
        "first requests of {GUARANTEED} sessions that missed"
    );
    let hits = count_statuses(&mut connection, "/fill/", 0..GUARANTEED, "HIT");
    assert_eq!(
        hits, GUARANTEED,
        "second requests of {GUARANTEED} sessions that hit"
    );

    count_statuses(&mut connection, "/fill/", GUARANTEED..SESSIONS, "MISS");
    let mut capacity = 0;
    for index in (0..SESSIONS).rev() {
        let request = RawRequest::get("/fill/")
            .header("Cookie", &format!("session={}", capacity_session(index)));
        if cache_status(&connection.round_trip(&request)) != Some("HIT") {
            break;
        }
        capacity += 1;
    }
    assert!(
        capacity < SESSIONS,
        "the 1 MB zone never filled up with {SESSIONS} sessions"
    );

    eprintln!(
        "capacity: {capacity} typical valid sessions fit in a 1 MB authgear cache zone \
         (UUID user id, roles admin,editor, AMR \"pwd mfa\", authentication time)"
    );

    let misses = count_statuses(&mut connection, "/probe/", 0..capacity, "MISS");
    assert_eq!(
        misses, capacity,
        "first requests of {capacity} sessions in a fresh zone that missed"
    );
    let hits = count_statuses(&mut connection, "/probe/", 0..capacity, "HIT");
    assert_eq!(
        hits, capacity,
        "second requests of {capacity} sessions in a fresh zone that hit"
    );
    let one_more = count_statuses(&mut connection, "/probe/", capacity..capacity + 1, "MISS");
    assert_eq!(one_more, 1, "session number {} missed", capacity + 1);
    let oldest = count_statuses(&mut connection, "/probe/", 0..1, "MISS");
    assert_eq!(
        oldest,
        1,
        "the least recently used session was evicted for session number {}",
        capacity + 1
    );
}
