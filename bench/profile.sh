#!/usr/bin/env bash
# Counts the instructions that the nginx under test spends per request in each
# scenario, with valgrind's callgrind, and lists the functions that spend
# them. Counts of instructions do not depend on other load on the machine.
#
# For each scenario it starts the nginx under test under callgrind in single
# process mode (`master_process off`), with instrumentation off, sends
# PROFILE_WARMUP requests, turns instrumentation on, sends PROFILE_REQUESTS
# requests one after another over one connection, turns it off and stops
# nginx. The backend nginx runs normally. Results go to BENCH_OUT_DIR:
# callgrind.SCENARIO.out for callgrind_annotate, and profile.md.
#
# Environment:
#   PROFILE_SCENARIOS  space-separated names from noauth, recipe,
#                      recipe_cache, module, module_hit, module_sessions and
#                      module_miss (default: all but module_sessions)
#   PROFILE_REQUESTS   measured requests per scenario (default 5000)
#   PROFILE_WARMUP     requests before measuring (default 200)
#   PROFILE_SESSIONS   sessions that module_sessions warms and then cycles
#                      through (default 10000)
#   PROFILE_TOP        functions listed per scenario (default 25)
#   BENCH_PORT_BASE    first of 10 consecutive ports on 127.0.0.1
#                      (default 18400)
#   BENCH_OUT_DIR      output directory (default
#                      target/bench/profile-<date>-<time>)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SCENARIOS=${PROFILE_SCENARIOS:-noauth recipe recipe_cache module module_hit module_miss}
REQUESTS=${PROFILE_REQUESTS:-5000}
WARMUP=${PROFILE_WARMUP:-200}
SESSIONS=${PROFILE_SESSIONS:-10000}
TOP=${PROFILE_TOP:-25}
OUT_DIR=${BENCH_OUT_DIR:-$TARGET_DIR/bench/profile-$(date +%Y%m%d-%H%M%S)}

case "${1:-}" in
    "") ;;
    -h | --help)
        usage "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) fail "unknown argument '$1'. Run with --help for usage." ;;
esac
require_numbers REQUESTS WARMUP SESSIONS TOP PORT_BASE
[ "$REQUESTS" -ge 1 ] || fail "PROFILE_REQUESTS must be at least 1"

install_missing valgrind valgrind curl curl ss iproute2
build_release
check_ports_free
prepare_out_dir

trap stop_servers EXIT
trap 'exit 130' INT TERM

start_nginx backend
BACKEND_PID=$STARTED_PID
wait_for_port "$PORT_APP" "$BACKEND_PID"

# Prints the send-requests.py arguments of a scenario for COUNT requests.
client_args() {
    local name=$1 count=$2 phase=$3
    case "$name" in
        noauth) echo "--port $PORT_NOAUTH --cookie $STATIC_COOKIE" ;;
        recipe) echo "--port $PORT_RECIPE --cookie $STATIC_COOKIE" ;;
        recipe_cache) echo "--port $PORT_RECIPE_CACHE --cookie $STATIC_COOKIE" ;;
        module) echo "--port $PORT_MODULE --cookie $STATIC_COOKIE" ;;
        module_hit) echo "--port $PORT_MODULE_HIT --cookie $STATIC_COOKIE" ;;
        module_sessions) echo "--port $PORT_MODULE_SESSIONS --sessions $SESSIONS" ;;
        module_miss) echo "--port $PORT_MODULE_MISS --unique-prefix profile-$phase" ;;
        *) fail "unknown scenario '$name' in PROFILE_SCENARIOS" ;;
    esac
    echo "--count $count"
}

send() {
    local name=$1 count=$2 phase=$3
    # shellcheck disable=SC2046 # the arguments contain no spaces
    python3 "$BENCH_DIR/send-requests.py" $(client_args "$name" "$count" "$phase")
}

# Stops nginx under valgrind with SIGTERM, sent again every second until it
# exits. Under valgrind 3.19, nginx in single process mode sometimes stays in
# epoll_wait after the first SIGTERM, and a second one ends it.
stop_under_valgrind() {
    local pid=$1 state
    for _ in $(seq 60); do
        kill -TERM "$pid" 2>/dev/null || break
        sleep 1
        # An exited child stays a zombie until `wait`, and kill -0 succeeds
        # on a zombie, so the state is read instead.
        state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo gone)
        if [ "$state" = Z ] || [ "$state" = gone ]; then
            break
        fi
    done
    wait "$pid" || true
}

NGINX_ARGS=(-g "master_process off;")
for name in $SCENARIOS; do
    client_args "$name" 0 check >/dev/null
    log "profiling $name"
    start_nginx under-test valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT_DIR/callgrind.$name.out"
    UNDER_TEST_PID=$STARTED_PID
    wait_for_port "$PORT_NOAUTH" "$UNDER_TEST_PID" 120

    if [ "$name" = module_sessions ]; then
        log "warming $SESSIONS sessions"
        send "$name" "$SESSIONS" warm
    fi
    send "$name" "$WARMUP" warmup
    callgrind_control --instr=on "$UNDER_TEST_PID" >/dev/null
    send "$name" "$REQUESTS" measure
    callgrind_control --instr=off "$UNDER_TEST_PID" >/dev/null

    stop_under_valgrind "$UNDER_TEST_PID"
    UNDER_TEST_PID=
done

python3 "$BENCH_DIR/profile-report.py" --dir "$OUT_DIR" --requests "$REQUESTS" --top "$TOP" \
    $SCENARIOS >"$OUT_DIR/profile.md"
cat "$OUT_DIR/profile.md"
log "profile: $OUT_DIR/profile.md"
