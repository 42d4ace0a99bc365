#!/usr/bin/env bash
# Runs the local demo: the stand-in Authgear resolver, the echo application and
# the vendored nginx with ngx_http_authgear_module, all on 127.0.0.1.
#
#   scripts/demo.sh           start all three, print curl commands to try, and
#                             stop all three on Ctrl-C
#   scripts/demo.sh --check   start all three, send those requests, check the
#                             responses, stop, and exit non-zero on any failure
#
# Environment:
#   DEMO_NGINX_PORT      nginx port (default 8080)
#   DEMO_RESOLVER_PORT   stand-in resolver port (default 3001)
#   DEMO_APP_PORT        echo application port (default 3002)
#   DEMO_RUN_DIR         directory for the rendered configuration and the logs
#                        (default build/demo/run), emptied at each start if
#                        an earlier demo run created it
#   DEMO_NGINX_BINARY    nginx to run (default: the nginx that cargo built the
#                        module against, because nginx loads only modules built
#                        for its own version)
#   DEMO_START_TIMEOUT   seconds to wait for each server to listen (default 30)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX_PORT=${DEMO_NGINX_PORT:-8080}
RESOLVER_PORT=${DEMO_RESOLVER_PORT:-3001}
APP_PORT=${DEMO_APP_PORT:-3002}
RUN_DIR=${DEMO_RUN_DIR:-$ROOT/build/demo/run}
START_TIMEOUT=${DEMO_START_TIMEOUT:-30}
DIRECTORY_FILE=$ROOT/standin/demo-directory.json
RUN_DIR_MARKER=.authgear-demo-run

# Demo credentials from standin/demo-directory.json. The valid session belongs
# to user e5dbe728-... with roles admin and editor, signed in with password
# and MFA. The second session of that user is marked expired.
VALID_SESSION=7b07af95-a4ed-40d7-9a02-6403d6f9a023.KNXtfP1qQ0COpaXeoBOYorgMVPptdPK8
VALID_USER_ID=e5dbe728-bb22-4ab4-a079-991cff7b3f18
VALID_USER_ROLES=admin,editor
VALID_SESSION_AMR="pwd mfa"
EXPIRED_SESSION=d9cb5951-d039-43cb-a0fe-6bc9bf0b57f6.LsFx4otWtqLqtEYyjN5AmiZSH8EY53e4

MODE=interactive
case "${1:-}" in
    "") ;;
    --check) MODE=check ;;
    -h | --help)
        sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo: unknown argument '$1'. Run with --help for usage." >&2
        exit 2
        ;;
esac

log() {
    echo "demo: $*"
}

fail() {
    echo "demo: error: $*" >&2
    exit 1
}

# Servers started by this script, stopped in reverse order on exit.
SERVER_PIDS=()
SERVER_NAMES=()
SERVER_LOGS=()

# Succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop_servers() {
    local i pid name waited
    for ((i = ${#SERVER_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SERVER_PIDS[i]}
        name=${SERVER_NAMES[i]}
        kill -0 "$pid" 2>/dev/null || continue
        # SIGTERM stops the stand-ins, and nginx's master stops its workers on it.
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) did not stop within 10s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        log "stopped $name"
    done
    SERVER_PIDS=()
}

on_exit() {
    local status=$?
    trap - EXIT INT TERM
    stop_servers
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

print_log_tail() {
    local file=$1
    [ -s "$file" ] || return 0
    echo "--- last lines of $file ---" >&2
    tail -n 20 "$file" >&2
}

# Builds the workspace and sets MODULE_PATH, NGINX_BINARY, RESOLVER_BINARY and
# APP_BINARY from cargo's JSON messages, which name the artifacts wherever the
# target directory is and whatever hash the nginx-sys build directory has.
build_workspace() {
    local messages nginx_out_dir
    log "building the workspace"
    messages=$(cd "$ROOT" && cargo build --workspace --message-format=json-render-diagnostics) \
        || fail "cargo build failed"

    MODULE_PATH=$(grep -o '"[^"]*/libngx_http_authgear_module\.so"' <<<"$messages" | tail -n 1 | tr -d '"')
    RESOLVER_BINARY=$(grep -o '"executable":"[^"]*/authgear-standin-resolver"' <<<"$messages" \
        | tail -n 1 | sed 's/^"executable":"//; s/"$//')
    APP_BINARY=$(grep -o '"executable":"[^"]*/echo-app"' <<<"$messages" \
        | tail -n 1 | sed 's/^"executable":"//; s/"$//')
    nginx_out_dir=$(grep -o '"out_dir":"[^"]*/nginx-sys-[^"]*"' <<<"$messages" \
        | tail -n 1 | sed 's/^"out_dir":"//; s/"$//')

    [ -f "$MODULE_PATH" ] || fail "cargo did not report libngx_http_authgear_module.so"
    [ -x "$RESOLVER_BINARY" ] || fail "cargo did not report the authgear-standin-resolver binary"
    [ -x "$APP_BINARY" ] || fail "cargo did not report the echo-app binary"

    if [ -n "${DEMO_NGINX_BINARY:-}" ]; then
        NGINX_BINARY=$DEMO_NGINX_BINARY
    elif [ -n "$nginx_out_dir" ] && [ -x "$nginx_out_dir/objs/nginx" ]; then
        NGINX_BINARY=$nginx_out_dir/objs/nginx
    elif [ -n "${NGINX_BUILD_DIR:-}" ] && [ -x "$NGINX_BUILD_DIR/nginx" ]; then
        NGINX_BINARY=$NGINX_BUILD_DIR/nginx
    else
        fail "no nginx binary found next to the nginx-sys build; set DEMO_NGINX_BINARY to the nginx the module was built against"
    fi
    [ -x "$NGINX_BINARY" ] || fail "DEMO_NGINX_BINARY '$NGINX_BINARY' is not an executable file"
}

check_ports_free() {
    local port
    for port in "$NGINX_PORT" "$RESOLVER_PORT" "$APP_PORT"; do
        if port_open "$port"; then
            fail "127.0.0.1:$port is already in use; stop what listens there or choose other ports with DEMO_NGINX_PORT, DEMO_RESOLVER_PORT and DEMO_APP_PORT"
        fi
    done
}

# Escapes a value for the replacement side of a sed `s|...|...|` command.
sed_replacement() {
    printf '%s' "$1" | sed 's/[\\|&]/\\&/g'
}

render_config() {
    local user_directive
    if [ "$(id -u)" -eq 0 ]; then
        user_directive="user root;"
    else
        user_directive="# not running as root: the workers keep the current user"
    fi

    # Only a directory that an earlier run marked is emptied, so a mistyped
    # DEMO_RUN_DIR cannot delete unrelated files.
    if [ -d "$RUN_DIR" ] && [ -n "$(ls -A "$RUN_DIR")" ]; then
        [ -f "$RUN_DIR/$RUN_DIR_MARKER" ] \
            || fail "DEMO_RUN_DIR $RUN_DIR is not empty and was not created by this script; choose another directory"
        rm -rf "$RUN_DIR"
    fi
    mkdir -p "$RUN_DIR"
    RUN_DIR=$(cd "$RUN_DIR" && pwd)
    touch "$RUN_DIR/$RUN_DIR_MARKER"
    cp "$ROOT/nginx-conf/authgear-resolver.conf" "$RUN_DIR/authgear-resolver.conf"
    sed -e "s|@MODULE_PATH@|$(sed_replacement "$MODULE_PATH")|g" \
        -e "s|@USER_DIRECTIVE@|$(sed_replacement "$user_directive")|g" \
        -e "s|@NGINX_PORT@|$(sed_replacement "$NGINX_PORT")|g" \
        -e "s|@RESOLVER_PORT@|$(sed_replacement "$RESOLVER_PORT")|g" \
        -e "s|@APP_PORT@|$(sed_replacement "$APP_PORT")|g" \
        "$ROOT/nginx-conf/demo.conf" >"$RUN_DIR/nginx.conf"

    if grep -n '^[^#]*@[A-Z_]*@' "$RUN_DIR/nginx.conf" >&2; then
        fail "$RUN_DIR/nginx.conf still contains the placeholders above"
    fi
}

nginx_args() {
    printf '%s\n' -p "$RUN_DIR/" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log"
}

test_nginx_config() {
    local output args
    mapfile -t args < <(nginx_args)
    if ! output=$("$NGINX_BINARY" -t -q "${args[@]}" 2>&1); then
        echo "$output" >&2
        fail "nginx rejected $RUN_DIR/nginx.conf"
    fi
}

# Starts a server in the background with its output in $RUN_DIR/<name>.log.
# setsid puts it in its own session, so a Ctrl-C in the terminal reaches only
# this script, which then stops the servers in order: nginx first, then the
# upstreams. setsid execs the server in place, so $! is the server's pid.
start_server() {
    local name=$1
    shift
    local log_file=$RUN_DIR/$name.log
    setsid "$@" >"$log_file" 2>&1 </dev/null &
    SERVER_PIDS+=("$!")
    SERVER_NAMES+=("$name")
    SERVER_LOGS+=("$log_file")
}

# Waits until the server started last listens on port $1.
wait_for_listen() {
    local port=$1
    local i=$((${#SERVER_PIDS[@]} - 1))
    local pid=${SERVER_PIDS[i]} name=${SERVER_NAMES[i]} log_file=${SERVER_LOGS[i]}
    local deadline=$((SECONDS + START_TIMEOUT))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            print_log_tail "$log_file"
            [ "$name" = nginx ] && print_log_tail "$RUN_DIR/error.log"
            fail "$name exited before it listened on 127.0.0.1:$port"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            print_log_tail "$log_file"
            fail "$name did not listen on 127.0.0.1:$port within ${START_TIMEOUT}s"
        fi
        sleep 0.1
    done
    log "$name listens on 127.0.0.1:$port (pid $pid)"
}

start_all() {
    local args
    start_server resolver "$RESOLVER_BINARY" --listen "127.0.0.1:$RESOLVER_PORT" --directory "$DIRECTORY_FILE"
    wait_for_listen "$RESOLVER_PORT"

    start_server echo-app "$APP_BINARY" --listen "127.0.0.1:$APP_PORT"
    wait_for_listen "$APP_PORT"

    mapfile -t args < <(nginx_args)
    start_server nginx "$NGINX_BINARY" "${args[@]}"
    wait_for_listen "$NGINX_PORT"
}

print_try_lines() {
    local url=http://127.0.0.1:$NGINX_PORT/app/
    cat <<EOF

The demo runs. nginx adds X-Authgear-Debug-* response headers that show what
the module resolved, and the echo application's JSON body lists the request
headers it received.

# 1. Valid session cookie: the application receives the full identity
#    (user $VALID_USER_ID, roles $VALID_USER_ROLES).
curl -i -H 'Cookie: session=$VALID_SESSION' $url

# 2. Invalid (expired) session: X-Authgear-Session-Valid: false reaches the
#    application, and the client gets a Set-Cookie that clears the cookie.
curl -i -H 'Cookie: session=$EXPIRED_SESSION' $url

# 3. No credentials: no X-Authgear-* header reaches the application.
curl -i $url

# 4. Spoofed identity header without credentials: the module removes it, so the
#    application does not receive X-Authgear-User-Id: admin.
curl -i -H 'X-Authgear-User-Id: admin' $url

# 5. Valid session with a spoofed role list: the application receives only the
#    resolver's X-Authgear-User-Roles.
curl -i -H 'Cookie: session=$VALID_SESSION' -H 'X-Authgear-User-Roles: superuser' $url

Logs are in $RUN_DIR (error.log, access.log, resolver.log, echo-app.log).
EOF
}

# Waits until Ctrl-C (handled by the INT trap) or until a server exits.
wait_for_stop() {
    local i
    echo
    log "press Ctrl-C to stop"
    wait -n "${SERVER_PIDS[@]}" || true
    for i in "${!SERVER_PIDS[@]}"; do
        if ! kill -0 "${SERVER_PIDS[i]}" 2>/dev/null; then
            print_log_tail "${SERVER_LOGS[i]}"
            fail "${SERVER_NAMES[i]} exited unexpectedly"
        fi
    done
}

# --check mode -----------------------------------------------------------------

PASSED=0
FAILED=0
CHECK_DIR=
RESPONSE_STATUS=
RESPONSE_HEADERS=
RESPONSE_BODY=

record() {
    local ok=$1 description=$2
    if [ "$ok" = yes ]; then
        PASSED=$((PASSED + 1))
        echo "ok   - $description"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL - $description"
    fi
}

# Sends a request to nginx and stores the response in RESPONSE_STATUS,
# RESPONSE_HEADERS and RESPONSE_BODY (files under $CHECK_DIR).
request() {
    local name=$1 path=$2
    shift 2
    RESPONSE_HEADERS=$CHECK_DIR/$name.headers
    RESPONSE_BODY=$CHECK_DIR/$name.body
    echo "# $name: GET $path $*"
    RESPONSE_STATUS=$(curl --silent --show-error --noproxy '*' --max-time 10 \
        --dump-header "$RESPONSE_HEADERS" --output "$RESPONSE_BODY" \
        --write-out '%{http_code}' "$@" "http://127.0.0.1:$NGINX_PORT$path") \
        || RESPONSE_STATUS="curl failed ($?)"
}

expect_status() {
    local ok=no
    [ "$RESPONSE_STATUS" = "$1" ] && ok=yes
    record "$ok" "status is $1 (got $RESPONSE_STATUS)"
}

# Header checks compare the whole "Name: value" text without letter case.
expect_header() {
    local ok=no
    tr -d '\r' <"$RESPONSE_HEADERS" | grep -qiF -x -- "$1" && ok=yes
    record "$ok" "response has header '$1'"
}

expect_header_containing() {
    local ok=no
    tr -d '\r' <"$RESPONSE_HEADERS" | grep -qiF -- "$1" && ok=yes
    record "$ok" "response has a header line containing '$1'"
}

expect_no_header() {
    local ok=yes
    tr -d '\r' <"$RESPONSE_HEADERS" | grep -qi -- "^$1:" && ok=no
    record "$ok" "response has no $1 header"
}

# Body checks look for the [name, value] pairs of the echo application's JSON,
# where header names are lower case.
expect_app_header() {
    local ok=no
    grep -qF -- "[\"$1\",\"$2\"]" "$RESPONSE_BODY" && ok=yes
    record "$ok" "application received $1: $2"
}

expect_no_app_header() {
    local ok=yes
    grep -qF -- "[\"$1\"," "$RESPONSE_BODY" && ok=no
    record "$ok" "application received no $1 header"
}

expect_no_app_headers_with_prefix() {
    local ok=yes
    grep -qF -- "[\"$1" "$RESPONSE_BODY" && ok=no
    record "$ok" "application received no $1* header"
}

expect_body_lacks() {
    local ok=yes
    grep -qF -- "$1" "$RESPONSE_BODY" && ok=no
    record "$ok" "application body does not contain '$1'"
}

run_checks() {
    CHECK_DIR=$RUN_DIR/check
    mkdir -p "$CHECK_DIR"
    echo

    request valid-session /app/ -H "Cookie: session=$VALID_SESSION"
    expect_status 200
    expect_app_header x-authgear-session-valid true
    expect_app_header x-authgear-user-id "$VALID_USER_ID"
    expect_app_header x-authgear-user-roles "$VALID_USER_ROLES"
    expect_app_header x-authgear-session-amr "$VALID_SESSION_AMR"
    expect_header "X-Authgear-Debug-User-Id: $VALID_USER_ID"
    expect_header "X-Authgear-Debug-User-Roles: $VALID_USER_ROLES"

    request expired-session /app/ -H "Cookie: session=$EXPIRED_SESSION"
    expect_status 200
    expect_app_header x-authgear-session-valid false
    expect_no_app_header x-authgear-user-id
    expect_header "X-Authgear-Debug-Session-Valid: false"
    expect_header_containing "Set-Cookie: session=;"
    expect_no_header X-Authgear-Debug-User-Id

    request no-credentials /app/
    expect_status 200
    expect_no_app_headers_with_prefix x-authgear-
    expect_no_header X-Authgear-Debug-User-Id
    expect_no_header Set-Cookie

    request spoofed-user-id /app/ -H "X-Authgear-User-Id: admin"
    expect_status 200
    expect_no_app_headers_with_prefix x-authgear-
    expect_body_lacks admin
    expect_no_header X-Authgear-Debug-User-Id

    request spoofed-roles /app/ -H "Cookie: session=$VALID_SESSION" -H "X-Authgear-User-Roles: superuser"
    expect_status 200
    expect_app_header x-authgear-user-roles "$VALID_USER_ROLES"
    expect_body_lacks superuser

    request resolver-location /_authgear/resolve -H "Cookie: session=$VALID_SESSION"
    expect_status 404

    echo
    echo "demo: $PASSED passed, $FAILED failed"
    if [ "$FAILED" -ne 0 ]; then
        echo "demo: the responses are in $CHECK_DIR" >&2
        print_log_tail "$RUN_DIR/error.log"
        return 1
    fi
}

# Main ---------------------------------------------------------------------------

command -v curl >/dev/null || fail "curl not found: run scripts/install-deps.sh"
[ -f "$DIRECTORY_FILE" ] || fail "demo directory file $DIRECTORY_FILE not found"

build_workspace
check_ports_free
render_config
test_nginx_config
log "nginx: $NGINX_BINARY"
log "module: $MODULE_PATH"
log "configuration: $RUN_DIR/nginx.conf"
start_all

if [ "$MODE" = check ]; then
    print_try_lines
    run_checks
else
    print_try_lines
    wait_for_stop
fi
