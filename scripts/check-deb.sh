#!/usr/bin/env bash
# Installs the libnginx-mod-http-authgear package from `make deb` into the
# system's Debian nginx, checks that it works, and purges it again:
#
#   1. `dpkg -i` creates /etc/nginx/modules-enabled/50-mod-http-authgear.conf,
#      and `nginx -t` accepts Debian's own /etc/nginx/nginx.conf with it.
#   2. Debian's nginx, started on 127.0.0.1 with a test configuration that
#      loads the module through that link and uses the packaged
#      snippets/authgear-resolver.conf, resolves a request with a session
#      cookie of standin/demo-directory.json through the stand-in resolver,
#      and the echo application receives X-Authgear-User-Id.
#   3. `dpkg -r` moves the link aside, and `dpkg -P` deletes every file.
#
# Usage: scripts/check-deb.sh [PACKAGE_FILE]   (default: the newest .deb in
# build/debian). Needs root and a system without libnginx-mod-http-authgear.
#
# Environment:
#   CHECK_DEB_NGINX_PORT, CHECK_DEB_RESOLVER_PORT, CHECK_DEB_APP_PORT
#       ports on 127.0.0.1 (defaults 18080, 18081, 18082)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKAGE=libnginx-mod-http-authgear
LINK=/etc/nginx/modules-enabled/50-mod-http-authgear.conf
NGINX_PORT=${CHECK_DEB_NGINX_PORT:-18080}
RESOLVER_PORT=${CHECK_DEB_RESOLVER_PORT:-18081}
APP_PORT=${CHECK_DEB_APP_PORT:-18082}
RUN_DIR=$ROOT/target/debian/check-deb
START_TIMEOUT=30

# A valid session of user e5dbe728-... in standin/demo-directory.json.
VALID_SESSION=7b07af95-a4ed-40d7-9a02-6403d6f9a023.KNXtfP1qQ0COpaXeoBOYorgMVPptdPK8
VALID_USER_ID=e5dbe728-bb22-4ab4-a079-991cff7b3f18

PASSED=0
FAILED=0
SERVER_PIDS=()
INSTALLED_BY_US=false

log() {
    echo "check-deb: $*"
}

fail() {
    echo "check-deb: error: $*" >&2
    exit 1
}

record() {
    if [ "$1" = yes ]; then
        PASSED=$((PASSED + 1))
        echo "ok   - $2"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL - $2"
    fi
}

is_installed() {
    dpkg-query --show --showformat='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cleanup() {
    local status=$? pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$INSTALLED_BY_US" = true ] && dpkg-query --show "$PACKAGE" >/dev/null 2>&1; then
        dpkg --purge "$PACKAGE" >/dev/null 2>&1 || echo "check-deb: warning: 'dpkg --purge $PACKAGE' failed" >&2
    fi
    exit "$status"
}
trap cleanup EXIT

# Starts a server in the background with its output in $RUN_DIR/<name>.log and
# waits until it listens on port $2.
start_server() {
    local name=$1 port=$2
    shift 2
    "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
    local pid=$!
    SERVER_PIDS+=("$pid")
    local deadline=$((SECONDS + START_TIMEOUT))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$RUN_DIR/$name.log" "$RUN_DIR/error.log" 2>/dev/null >&2 || true
            fail "$name exited before it listened on 127.0.0.1:$port"
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "$name did not listen on 127.0.0.1:$port within ${START_TIMEOUT}s"
        sleep 0.1
    done
    log "$name listens on 127.0.0.1:$port"
}

write_config() {
    cat >"$RUN_DIR/nginx.conf" <<EOF
# Loads the module the way Debian's /etc/nginx/nginx.conf does.
include /etc/nginx/modules-enabled/*.conf;

user root;
daemon off;
worker_processes 1;
pid $RUN_DIR/nginx.pid;
error_log $RUN_DIR/error.log info;

events {
    worker_connections 64;
}

http {
    access_log $RUN_DIR/access.log;
    client_body_temp_path $RUN_DIR/client_body_temp;
    proxy_temp_path $RUN_DIR/proxy_temp;
    fastcgi_temp_path $RUN_DIR/fastcgi_temp;
    uwsgi_temp_path $RUN_DIR/uwsgi_temp;
    scgi_temp_path $RUN_DIR/scgi_temp;

    upstream authgear_resolver {
        server 127.0.0.1:$RESOLVER_PORT;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;

        include /etc/nginx/snippets/authgear-resolver.conf;

        location /app/ {
            authgear_resolve /_authgear/resolve;
            proxy_pass http://127.0.0.1:$APP_PORT;
        }
    }
}
EOF
}

# Sends GET /app/ with the extra curl arguments and prints the response body.
request_app() {
    curl --silent --show-error --noproxy '*' --max-time 10 --fail "$@" \
        "http://127.0.0.1:$NGINX_PORT/app/"
}

DEB=${1:-$(ls -t "$ROOT"/build/debian/${PACKAGE}_*.deb 2>/dev/null | head -n 1)}
[ -n "$DEB" ] && [ -f "$DEB" ] || fail "no package file: run 'make deb' first, or pass the .deb"
[ "$(id -u)" -eq 0 ] || fail "dpkg -i needs root"
! is_installed "$PACKAGE" || fail "$PACKAGE is already installed; remove it before this check, which purges it at the end"
command -v curl >/dev/null || fail "curl not found: run scripts/install-deps.sh"
for port in "$NGINX_PORT" "$RESOLVER_PORT" "$APP_PORT"; do
    ! port_open "$port" || fail "127.0.0.1:$port is in use; choose other ports with CHECK_DEB_*_PORT"
done

log "building the stand-in resolver and the echo application"
messages=$(cd "$ROOT" && cargo build --package authgear-standin --bins --message-format=json-render-diagnostics)
RESOLVER_BINARY=$(grep -o '"executable":"[^"]*/authgear-standin-resolver"' <<<"$messages" | tail -n 1 | sed 's/^"executable":"//; s/"$//')
APP_BINARY=$(grep -o '"executable":"[^"]*/echo-app"' <<<"$messages" | tail -n 1 | sed 's/^"executable":"//; s/"$//')
[ -x "$RESOLVER_BINARY" ] && [ -x "$APP_BINARY" ] || fail "cargo did not report the stand-in binaries"

rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

log "installing $DEB"
INSTALLED_BY_US=true
dpkg --install "$DEB"

ok=no; [ "$(readlink "$LINK" 2>/dev/null)" = /usr/share/nginx/modules-available/mod-http-authgear.conf ] && ok=yes
record "$ok" "postinst links $LINK"
ok=no; /usr/sbin/nginx -t -q >"$RUN_DIR/nginx-t.log" 2>&1 && ok=yes
record "$ok" "nginx -t accepts /etc/nginx/nginx.conf with the module enabled"
[ "$ok" = yes ] || cat "$RUN_DIR/nginx-t.log" >&2

write_config
ok=no; /usr/sbin/nginx -t -q -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log" >"$RUN_DIR/nginx-t-test.log" 2>&1 && ok=yes
record "$ok" "nginx -t accepts the test configuration with snippets/authgear-resolver.conf"
[ "$ok" = yes ] || { cat "$RUN_DIR/nginx-t-test.log" >&2; fail "the test configuration was rejected"; }

start_server resolver "$RESOLVER_PORT" "$RESOLVER_BINARY" --listen "127.0.0.1:$RESOLVER_PORT" \
    --directory "$ROOT/standin/demo-directory.json"
start_server echo-app "$APP_PORT" "$APP_BINARY" --listen "127.0.0.1:$APP_PORT"
start_server nginx "$NGINX_PORT" /usr/sbin/nginx -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log"

body=$(request_app -H "Cookie: session=$VALID_SESSION" || true)
ok=no; grep -qF "[\"x-authgear-user-id\",\"$VALID_USER_ID\"]" <<<"$body" && ok=yes
record "$ok" "a request with a valid session cookie reaches the application with x-authgear-user-id $VALID_USER_ID"
[ "$ok" = yes ] || echo "response body: $body" >&2

body=$(request_app -H "X-Authgear-User-Id: spoofed" || true)
ok=no; [ -n "$body" ] && ! grep -qF '"x-authgear-user-id"' <<<"$body" && ok=yes
record "$ok" "a request without credentials reaches the application without x-authgear-user-id"

kill -TERM "${SERVER_PIDS[@]}" 2>/dev/null || true
wait "${SERVER_PIDS[@]}" 2>/dev/null || true
SERVER_PIDS=()

log "removing $PACKAGE"
dpkg --remove "$PACKAGE" >/dev/null
ok=no; [ ! -e "$LINK" ] && [ -L "$LINK.removed" ] && ok=yes
record "$ok" "dpkg --remove moves the link to $LINK.removed"
ok=no; /usr/sbin/nginx -t -q >/dev/null 2>&1 && ok=yes
record "$ok" "nginx -t passes after the removal"
dpkg --purge "$PACKAGE" >/dev/null
ok=no; [ ! -e "$LINK.removed" ] && [ ! -e /usr/lib/nginx/modules/ngx_http_authgear_module.so ] \
    && [ ! -e /etc/nginx/snippets/authgear-resolver.conf ] && ok=yes
record "$ok" "dpkg --purge deletes the module, the link and the conffile"

echo "check-deb: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
