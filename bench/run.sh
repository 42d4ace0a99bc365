#!/usr/bin/env bash
# Benchmarks ngx_http_authgear_module against Authgear's auth_request recipe
# for nginx, side by side, on 127.0.0.1. `make bench` runs it.
#
# It builds the module and nginx in release mode. It starts a backend nginx
# (a stand-in resolver and a tiny application) and the nginx under test (one
# worker, one server per scenario), and checks that each scenario forwards the
# identity. It measures how many entries a 1m cache zone takes and warms the
# cache with BENCH_SESSIONS sessions. Then it runs every scenario once per
# round, in a rotated order, with wrk. The raw results, the logs and
# results.md go to BENCH_OUT_DIR.
#
# Scenarios (BENCH_SCENARIOS selects some of them, in this order):
#   noauth            plain proxy to the application
#   recipe            auth_request recipe, a resolver call per request
#   recipe_cache      auth_request recipe with proxy_cache, every request a hit
#   module            the module without a cache, a resolver call per request
#   module_hit        the module's cache, every request a hit on one session
#   module_sessions   the module's cache, hits spread over BENCH_SESSIONS
#                     warmed sessions picked at random
#   module_miss       the module's cache, every request a new session
#   noauth_1conn      noauth over one connection, for unloaded latency
#   module_hit_1conn  module_hit over one connection, for unloaded latency
#
# Environment:
#   BENCH_SECONDS         seconds per run (default 10)
#   BENCH_ROUNDS          rounds of all scenarios (default 5)
#   BENCH_WARMUP_SECONDS  seconds of each scenario before the rounds, 0 for
#                         none (default 3, or BENCH_SECONDS if that is less)
#   BENCH_CONNECTIONS     wrk connections (default 32)
#   BENCH_THREADS         wrk threads (default 1)
#   BENCH_SESSIONS        sessions of module_sessions (default 100000)
#   BENCH_SCENARIOS       space-separated scenario names (default: all)
#   BENCH_QUIET_SECONDS   before each run, wait at most this long for the
#                         other processes of the machine to use less than
#                         15% of a CPU over one second, 0 to not wait
#                         (default BENCH_SECONDS)
#   BENCH_PIN             1 pins the nginx under test to CPU 0, and wrk and
#                         the backend to CPU 1; 0 leaves placement to the
#                         kernel (default 1 on a machine with 2 or more CPUs)
#   BENCH_PORT_BASE       first of 10 consecutive ports on 127.0.0.1
#                         (default 18400)
#   BENCH_OUT_DIR         output directory (default
#                         target/bench/<date>-<time>)
#   CARGO                 cargo to build with (default cargo)
#
# A quick smoke run: BENCH_SECONDS=1 BENCH_ROUNDS=1 make bench
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

RUN_SECONDS=${BENCH_SECONDS:-10}
# The defaults below are computed from RUN_SECONDS, so it is checked first.
require_numbers RUN_SECONDS
ROUNDS=${BENCH_ROUNDS:-5}
WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-$((RUN_SECONDS < 3 ? RUN_SECONDS : 3))}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
SESSIONS=${BENCH_SESSIONS:-100000}
QUIET_SECONDS=${BENCH_QUIET_SECONDS:-$RUN_SECONDS}
ALL_SCENARIOS="noauth recipe recipe_cache module module_hit module_sessions module_miss noauth_1conn module_hit_1conn"
SCENARIOS=${BENCH_SCENARIOS:-$ALL_SCENARIOS}
OUT_DIR=${BENCH_OUT_DIR:-$TARGET_DIR/bench/$(date +%Y%m%d-%H%M%S)}
if [ "$(nproc)" -ge 2 ]; then
    PIN=${BENCH_PIN:-1}
else
    PIN=${BENCH_PIN:-0}
fi

case "${1:-}" in
    "") ;;
    -h | --help)
        usage "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) fail "unknown argument '$1'. Run with --help for usage." ;;
esac

require_numbers ROUNDS CONNECTIONS THREADS SESSIONS PORT_BASE WARMUP_SECONDS QUIET_SECONDS
if [ "$RUN_SECONDS" -lt 1 ] || [ "$ROUNDS" -lt 1 ] || [ "$CONNECTIONS" -lt 1 ] \
    || [ "$THREADS" -lt 1 ] || [ "$SESSIONS" -lt 1 ]; then
    fail "BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_THREADS and BENCH_SESSIONS must be at least 1"
fi
if [ "$THREADS" -gt "$CONNECTIONS" ]; then
    fail "BENCH_THREADS ($THREADS) must not exceed BENCH_CONNECTIONS ($CONNECTIONS), as wrk requires"
fi
for scenario in $SCENARIOS; do
    case " $ALL_SCENARIOS " in
        *" $scenario "*) ;;
        *) fail "unknown scenario '$scenario' in BENCH_SCENARIOS; known: $ALL_SCENARIOS" ;;
    esac
done

# --- setup -----------------------------------------------------------------

install_missing wrk wrk gdb gdb curl curl taskset util-linux ss iproute2
command -v python3 >/dev/null || fail "python3 is missing; install the Debian package python3"
build_release
check_ports_free
prepare_out_dir

if [ "$PIN" = 1 ]; then
    UNDER_TEST_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
else
    UNDER_TEST_CPU=()
    CLIENT_CPU=()
fi

trap stop_servers EXIT
trap 'exit 130' INT TERM

start_nginx backend "${CLIENT_CPU[@]}"
BACKEND_PID=$STARTED_PID
wait_for_port "$PORT_APP" "$BACKEND_PID"
start_nginx under-test "${UNDER_TEST_CPU[@]}"
UNDER_TEST_PID=$STARTED_PID
wait_for_port "$PORT_NOAUTH" "$UNDER_TEST_PID"

UNDER_TEST_WORKER=$(worker_of "$UNDER_TEST_PID")
BACKEND_WORKER=$(worker_of "$BACKEND_PID")
CLOCK_TICKS=$(getconf CLK_TCK)

# CPU time of a process so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

resolver_calls() {
    wc -l <"$OUT_DIR/resolver-calls.log"
}

log "checking that each scenario forwards the identity"
check_identity noauth "$PORT_NOAUTH" "valid= user= "
check_identity recipe "$PORT_RECIPE" "valid=true user=$EXPECTED_USER_ID"
check_identity recipe_cache "$PORT_RECIPE_CACHE" "valid=true user=$EXPECTED_USER_ID"
for port in "$PORT_MODULE" "$PORT_MODULE_HIT" "$PORT_MODULE_SESSIONS" "$PORT_MODULE_MISS"; do
    check_identity "module (port $port)" "$port" "valid=true user=$EXPECTED_USER_ID roles=admin,editor"
done

log "measuring how many entries a 1m zone holds"
python3 "$BENCH_DIR/capacity.py" --port "$PORT_CAPACITY" >"$OUT_DIR/capacity.json"
log "capacity: $(cat "$OUT_DIR/capacity.json")"

# --- wrk runs --------------------------------------------------------------

# Runs wrk, then sets WRK_RESULT to the BENCH_RESULT line of
# bench/wrk/report.lua without its prefix, and WRK_CPU_S to the CPU seconds
# that wrk used. Arguments: seconds, connections, threads, then wrk's own
# arguments.
run_wrk() {
    local seconds=$1 connections=$2 threads=$3 status=0
    shift 3
    local TIMEFORMAT='%3U %3S'
    { time "${CLIENT_CPU[@]}" wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 5s "$@" \
        >"$OUT_DIR/wrk.out" 2>&1; } 2>"$OUT_DIR/wrk.time" || status=$?
    cat "$OUT_DIR/wrk.out" >>"$OUT_DIR/wrk.log"
    [ "$status" -eq 0 ] || fail "wrk exited with status $status: $(cat "$OUT_DIR/wrk.out")"
    WRK_RESULT=$(sed -n 's/^BENCH_RESULT //p' "$OUT_DIR/wrk.out")
    [ -n "$WRK_RESULT" ] || fail "wrk printed no BENCH_RESULT line; see $OUT_DIR/wrk.log"
    WRK_CPU_S=$(awk '{ print $1 + $2 }' "$OUT_DIR/wrk.time")
}

# CPU time that all processes of the machine used so far, in clock ticks:
# user, nice and system time. Interrupt time is left out, because the
# kernel's loopback traffic of the benchmark itself runs there and is charged
# to no process.
machine_busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 }' /proc/stat
}

# Idle time of CPU 0 and CPU 1 so far, in clock ticks, on one line.
idle_ticks() {
    awk '$1 == "cpu0" { cpu0 = $5 + $6 } $1 == "cpu1" { cpu1 = $5 + $6 } END { print cpu0 + 0, cpu1 + 0 }' /proc/stat
}

json_field() {
    python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

# Sends every session of module_sessions once, in order, so that the random
# picks of the measured runs hit. Each wrk run goes on from where the last one
# ended, less one request per connection that may not have completed.
warm_sessions() {
    local start=0 covered=0 completed
    log "warming $SESSIONS sessions"
    while [ "$covered" -lt "$SESSIONS" ]; do
        run_wrk 2 "$CONNECTIONS" 1 -s "$BENCH_DIR/wrk/sessions.lua" \
            "http://127.0.0.1:$PORT_MODULE_SESSIONS/" -- sequential "$SESSIONS" "$start"
        completed=$(json_field "$WRK_RESULT" requests)
        [ "$completed" -gt "$CONNECTIONS" ] || fail "warming sessions: only $completed requests in 2 s"
        covered=$((covered + completed - CONNECTIONS))
        start=$(((start + completed - CONNECTIONS) % SESSIONS))
    done
}

# Prints the connections, the threads and the wrk arguments of a scenario,
# one per line.
scenario_args() {
    local name=$1 round=$2
    local connections=$CONNECTIONS threads=$THREADS port
    local script=(-s "$BENCH_DIR/wrk/report.lua" -H "Cookie: $STATIC_COOKIE")
    local script_args=()
    case "$name" in
        noauth) port=$PORT_NOAUTH ;;
        recipe) port=$PORT_RECIPE ;;
        recipe_cache) port=$PORT_RECIPE_CACHE ;;
        module) port=$PORT_MODULE ;;
        module_hit) port=$PORT_MODULE_HIT ;;
        module_sessions)
            port=$PORT_MODULE_SESSIONS
            script=(-s "$BENCH_DIR/wrk/sessions.lua")
            script_args=(-- random "$SESSIONS")
            ;;
        module_miss)
            port=$PORT_MODULE_MISS
            script=(-s "$BENCH_DIR/wrk/sessions.lua")
            script_args=(-- unique "miss-$round-$(date +%s%N)")
            ;;
        noauth_1conn)
            port=$PORT_NOAUTH
            connections=1
            threads=1
            ;;
        module_hit_1conn)
            port=$PORT_MODULE_HIT
            connections=1
            threads=1
            ;;
    esac
    printf '%s\n' "$connections" "$threads" "${script[@]}" "http://127.0.0.1:$port/" "${script_args[@]}"
}

# Waits until the machine is quiet: between runs the benchmark's own processes
# are idle, so CPU time used during one second belongs to other processes.
# Gives up after QUIET_SECONDS, because other work may never stop. The
# "other" CPU share of the run then shows the disturbance.
wait_until_quiet() {
    local waited=0 before after
    while [ "$waited" -lt "$QUIET_SECONDS" ]; do
        before=$(machine_busy_ticks)
        sleep 1
        after=$(machine_busy_ticks)
        if [ $(((after - before) * 100)) -lt $((15 * CLOCK_TICKS)) ]; then
            return
        fi
        waited=$((waited + 1))
    done
    if [ "$QUIET_SECONDS" -gt 0 ]; then
        log "other processes still busy after waiting $QUIET_SECONDS s; running anyway"
    fi
}

ticks_to_seconds() {
    awk -v ticks="$1" -v hz="$CLOCK_TICKS" 'BEGIN { printf "%.2f", ticks / hz }'
}

# Runs one scenario and appends its result to results.jsonl. The round is
# "warmup" for warm-up runs, which are not recorded. Besides wrk's figures,
# the record has the CPU seconds of the nginx under test, of the backend, of
# wrk and of every other process of the machine. The last shows how much
# other work disturbed the run. The record also has the idle time of CPU 0
# and CPU 1.
run_scenario() {
    local name=$1 round=$2 seconds=$3
    local spec connections threads calls_before calls_after
    local under_test_before under_test_after backend_before backend_after busy_before busy_after
    local under_test_ticks backend_ticks other_cpu_s idle_before idle_after idle
    mapfile -t spec < <(scenario_args "$name" "$round")
    connections=${spec[0]}
    threads=${spec[1]}

    if [ "$round" != warmup ]; then
        wait_until_quiet
    fi
    calls_before=$(resolver_calls)
    busy_before=$(machine_busy_ticks)
    idle_before=$(idle_ticks)
    under_test_before=$(cpu_ticks "$UNDER_TEST_WORKER")
    backend_before=$(cpu_ticks "$BACKEND_WORKER")
    run_wrk "$seconds" "$connections" "$threads" "${spec[@]:2}"
    under_test_after=$(cpu_ticks "$UNDER_TEST_WORKER")
    backend_after=$(cpu_ticks "$BACKEND_WORKER")
    busy_after=$(machine_busy_ticks)
    idle_after=$(idle_ticks)
    # The resolver's access log is flushed every 100 ms.
    sleep 0.3
    calls_after=$(resolver_calls)

    if [ "$round" = warmup ]; then
        return
    fi
    under_test_ticks=$((under_test_after - under_test_before))
    backend_ticks=$((backend_after - backend_before))
    other_cpu_s=$(awk -v busy=$((busy_after - busy_before)) -v own=$((under_test_ticks + backend_ticks)) \
        -v wrk="$WRK_CPU_S" -v hz="$CLOCK_TICKS" \
        'BEGIN { other = (busy - own) / hz - wrk; printf "%.2f", other < 0 ? 0 : other }')
    idle=$(awk -v before="$idle_before" -v after="$idle_after" -v hz="$CLOCK_TICKS" 'BEGIN {
        split(before, b, " "); split(after, a, " ")
        printf "[%.2f, %.2f]", (a[1] - b[1]) / hz, (a[2] - b[2]) / hz }')
    printf '{"scenario": "%s", "round": %d, "connections": %d, "threads": %d, "resolver_calls": %d, "under_test_cpu_s": %s, "backend_cpu_s": %s, "wrk_cpu_s": %s, "other_cpu_s": %s, "idle_s": %s, "wrk": %s}\n' \
        "$name" "$round" "$connections" "$threads" $((calls_after - calls_before)) \
        "$(ticks_to_seconds "$under_test_ticks")" "$(ticks_to_seconds "$backend_ticks")" \
        "$WRK_CPU_S" "$other_cpu_s" "$idle" "$WRK_RESULT" >>"$OUT_DIR/results.jsonl"
    log "round $round $name: $(json_field "$WRK_RESULT" requests) requests in ${seconds} s"
}

case " $SCENARIOS " in
    *" module_sessions "*) warm_sessions ;;
esac

read -r -a SCENARIO_LIST <<<"$SCENARIOS"

if [ "$WARMUP_SECONDS" -gt 0 ]; then
    log "warming up each scenario for $WARMUP_SECONDS s"
    for name in "${SCENARIO_LIST[@]}"; do
        run_scenario "$name" warmup "$WARMUP_SECONDS"
    done
fi

: >"$OUT_DIR/results.jsonl"
count=${#SCENARIO_LIST[@]}
for round in $(seq "$ROUNDS"); do
    # Each round starts one scenario later, so that no scenario always runs
    # right after the same neighbour.
    for i in $(seq 0 $((count - 1))); do
        run_scenario "${SCENARIO_LIST[$(((i + round - 1) % count))]}" "$round" "$RUN_SECONDS"
    done
done

case " $SCENARIOS " in
    *" module_sessions "*)
        python3 "$BENCH_DIR/zone-usage.py" --pid "$UNDER_TEST_WORKER" \
            --size $(($(sessions_zone_mb) * 1048576)) --nginx "$NGINX" >"$OUT_DIR/sessions-zone.json"
        ;;
esac

# The capacity and miss zones are full by design, so their warnings are
# expected; anything else in the log is shown.
unexpected=$(grep -v 'is full, evicting least recently used entries' "$OUT_DIR/under-test-error.log" || true)
if [ -n "$unexpected" ]; then
    log "the nginx under test logged these lines, see $OUT_DIR/under-test-error.log:"
    tail -n 5 <<<"$unexpected"
fi

# --- report ----------------------------------------------------------------

command_line="make bench"
for name in BENCH_SECONDS BENCH_ROUNDS BENCH_WARMUP_SECONDS BENCH_CONNECTIONS BENCH_THREADS \
    BENCH_SESSIONS BENCH_SCENARIOS BENCH_QUIET_SECONDS BENCH_PIN; do
    if [ -n "${!name:-}" ]; then
        command_line="$name=\"${!name}\" $command_line"
    fi
done

BENCH_COMMAND=$command_line BENCH_NGINX=$NGINX BENCH_PINNED=$PIN \
    BENCH_SETTINGS="$RUN_SECONDS $ROUNDS $WARMUP_SECONDS $CONNECTIONS $THREADS $SESSIONS $(sessions_zone_mb)" \
    python3 "$BENCH_DIR/describe-run.py" >"$OUT_DIR/meta.json"
python3 "$BENCH_DIR/summarize.py" "$OUT_DIR" >"$OUT_DIR/results.md"
cat "$OUT_DIR/results.md"
log "results: $OUT_DIR/results.md"
