# Shared parts of bench/run.sh and bench/profile.sh: settings, the release
# build, the configuration templates, and starting and stopping the two nginx
# processes. Sourced, not run. The caller sets OUT_DIR and SESSIONS first.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$ROOT/bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CARGO=${CARGO:-cargo}
PORT_BASE=${BENCH_PORT_BASE:-18400}

# The session cookie of the scenarios that send one request over and over, in
# the shape of Authgear's browser session.
STATIC_COOKIE="session=bench-static.0123456789abcdefghijklmnopqrstuv"
# The user id that the resolver of bench/nginx/backend.conf.in returns for
# every session.
EXPECTED_USER_ID=3f1e5a9c-7b42-4d0e-9c61-2a8f0d4b7e15

PORT_NOAUTH=$PORT_BASE
PORT_RECIPE=$((PORT_BASE + 1))
PORT_RECIPE_CACHE=$((PORT_BASE + 2))
PORT_MODULE=$((PORT_BASE + 3))
PORT_MODULE_HIT=$((PORT_BASE + 4))
PORT_MODULE_SESSIONS=$((PORT_BASE + 5))
PORT_MODULE_MISS=$((PORT_BASE + 6))
PORT_CAPACITY=$((PORT_BASE + 7))
PORT_RESOLVER=$((PORT_BASE + 8))
PORT_APP=$((PORT_BASE + 9))

log() {
    echo "bench: $*"
}

fail() {
    echo "bench: error: $*" >&2
    exit 1
}

# Prints the comment block at the top of the calling script, for --help.
usage() {
    sed -n '2,/^set -euo pipefail$/p' "$1" | sed '$d; s/^# \{0,1\}//'
}

# Checks that each named variable contains a whole number.
require_numbers() {
    local name value
    for name in "$@"; do
        value=${!name}
        if ! [[ $value =~ ^[0-9]+$ ]]; then
            fail "$name must be a whole number, got '$value'"
        fi
    done
}

# Installs the Debian packages of the commands that are missing. Arguments:
# pairs of command and package.
install_missing() {
    local packages=()
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null || packages+=("$2")
        shift 2
    done
    if [ ${#packages[@]} -eq 0 ]; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        fail "missing commands; install the Debian packages ${packages[*]} as root and run again"
    fi
    log "installing ${packages[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
}

# Builds the module and nginx in release mode and sets NGINX and MODULE.
build_release() {
    log "building the module and nginx in release mode"
    (cd "$ROOT" && "$CARGO" build --release --package ngx-http-authgear-module)

    # The nginx-sys build directory changes with its build inputs, so the
    # newest nginx binary is the one the module was just built against.
    NGINX=$(ls -t "$TARGET_DIR"/release/build/nginx-sys-*/out/objs/nginx 2>/dev/null | head -n 1 || true)
    MODULE=$TARGET_DIR/release/libngx_http_authgear_module.so
    [ -x "$NGINX" ] || fail "no release nginx binary under $TARGET_DIR/release/build/nginx-sys-*/out/objs"
    [ -f "$MODULE" ] || fail "the release module $MODULE is missing after the build"
    if ! "$NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module; then
        fail "$NGINX was built without --with-http_auth_request_module, which the recipe needs; see .cargo/config.toml"
    fi
}

check_ports_free() {
    local port
    for port in $(seq "$PORT_BASE" $((PORT_BASE + 9))); do
        if [ -n "$(ss -Hltn "sport = :$port")" ]; then
            fail "port $port on 127.0.0.1 is in use; set BENCH_PORT_BASE to the first of 10 free ports"
        fi
    done
}

# The size of the sessions zone in MB. An entry of the typical identity takes
# a 256-byte slab slot, so this leaves room for twice SESSIONS. The size must
# differ from every other shared zone, because zone-usage.py finds the zone by
# its size.
sessions_zone_mb() {
    echo $(((SESSIONS * 512 + 1048575) / 1048576 + 3))
}

# Fills in the @...@ placeholders of a configuration template.
render() {
    sed -e "s#@RUN_DIR@#$OUT_DIR#g" \
        -e "s#@ROOT@#$ROOT#g" \
        -e "s#@BENCH_DIR@#$BENCH_DIR#g" \
        -e "s#@MODULE@#$MODULE#g" \
        -e "s#@SESSIONS_ZONE_SIZE@#$(sessions_zone_mb)m#g" \
        -e "s#@PORT_NOAUTH@#$PORT_NOAUTH#g" \
        -e "s#@PORT_RECIPE@#$PORT_RECIPE#g" \
        -e "s#@PORT_RECIPE_CACHE@#$PORT_RECIPE_CACHE#g" \
        -e "s#@PORT_MODULE@#$PORT_MODULE#g" \
        -e "s#@PORT_MODULE_HIT@#$PORT_MODULE_HIT#g" \
        -e "s#@PORT_MODULE_SESSIONS@#$PORT_MODULE_SESSIONS#g" \
        -e "s#@PORT_MODULE_MISS@#$PORT_MODULE_MISS#g" \
        -e "s#@PORT_CAPACITY@#$PORT_CAPACITY#g" \
        -e "s#@RESOLVER_PORT@#$PORT_RESOLVER#g" \
        -e "s#@APP_PORT@#$PORT_APP#g" \
        "$1" >"$2"
    if grep -q '@[A-Z_]*@' "$2"; then
        fail "placeholders left in $2: $(grep -o '@[A-Z_]*@' "$2" | sort -u | tr '\n' ' ')"
    fi
}

# Creates OUT_DIR and renders both configurations into it.
prepare_out_dir() {
    mkdir -p "$OUT_DIR"
    OUT_DIR=$(cd "$OUT_DIR" && pwd)
    log "output: $OUT_DIR"
    render "$BENCH_DIR/nginx/backend.conf.in" "$OUT_DIR/backend.conf"
    render "$BENCH_DIR/nginx/under-test.conf.in" "$OUT_DIR/under-test.conf"
    mkdir -p "$OUT_DIR/proxy-cache"
    : >"$OUT_DIR/resolver-calls.log"
}

BACKEND_PID=
UNDER_TEST_PID=

# Stops the nginx processes that this script started, by their process ids.
stop_servers() {
    local pid
    for pid in $UNDER_TEST_PID $BACKEND_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $UNDER_TEST_PID $BACKEND_PID; do
        wait "$pid" 2>/dev/null || true
    done
    UNDER_TEST_PID=
    BACKEND_PID=
}

# Checks the configuration OUT_DIR/NAME.conf, then starts nginx with it as a
# background job, so that its process id is known, and sets STARTED_PID.
# Arguments: the name, then a command to run nginx under (taskset,
# valgrind), if any. NGINX_ARGS contains extra arguments for nginx.
start_nginx() {
    local name=$1
    shift
    local conf=$OUT_DIR/$name.conf
    "$NGINX" -t -q -p "$OUT_DIR" -e "$OUT_DIR/$name-error.log" -c "$conf" \
        || fail "nginx rejected $conf; see $OUT_DIR/$name-error.log"
    "$@" "$NGINX" -p "$OUT_DIR" -e "$OUT_DIR/$name-error.log" -c "$conf" "${NGINX_ARGS[@]}" &
    STARTED_PID=$!
}
NGINX_ARGS=()

# Waits until an HTTP request to 127.0.0.1:PORT succeeds, while process PID
# lives, for at most SECONDS (default 10).
wait_for_port() {
    local port=$1 pid=$2 seconds=${3:-10}
    for _ in $(seq $((seconds * 10))); do
        kill -0 "$pid" 2>/dev/null || fail "nginx (process $pid) exited; see the error logs in $OUT_DIR"
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
            return
        fi
        sleep 0.1
    done
    fail "nothing answers on 127.0.0.1:$port after $seconds s"
}

# Prints the process id of the only worker process of nginx master PID. The
# master also has cache manager and cache loader processes when proxy_cache_path
# is configured, so the worker is found by its process title.
worker_of() {
    local child
    for child in $(cat "/proc/$1/task/$1/children"); do
        if grep -q '^nginx: worker process' "/proc/$child/cmdline" 2>/dev/null; then
            echo "$child"
            return
        fi
    done
    fail "nginx master $1 has no worker process"
}

# Checks that the server on PORT passes the expected identity headers to the
# application. Arguments: a name for messages, the port, and the start of the
# expected /identity response body of the application.
check_identity() {
    local name=$1 port=$2 expected=$3 body
    body=$(curl -s -f -H "Cookie: $STATIC_COOKIE" "http://127.0.0.1:$port/identity") \
        || fail "$name (port $port) did not answer /identity with 2xx"
    case "$body" in
        "$expected"*) ;;
        *) fail "$name (port $port) passed '$body' to the application, expected '$expected...'" ;;
    esac
}
