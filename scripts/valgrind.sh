#!/usr/bin/env bash
# Runs integration tests with nginx under valgrind's memcheck and fails when
# valgrind reports an error in any nginx process, or when a test fails.
#
#   scripts/valgrind.sh              every integration test that runs in a
#                                    single nginx process (about 6 minutes
#                                    on 2 cores, plus 2 for the first build)
#   scripts/valgrind.sh --short      a handful of tests, for CI
#   scripts/valgrind.sh FILTER...    the tests whose names contain a FILTER
#
# nginx and the module are built in target/valgrind with NGX_DEBUG_PALLOC,
# which makes every nginx pool allocation a malloc() block of its own, so
# memcheck also detects reads and writes past the end of pool allocations and
# reads of pool memory that was never written. The tests run nginx through
# TEST_NGINX_WRAPPER, which turns master_process off, so the process under
# valgrind is the one that serves requests.
#
# Environment:
#   VALGRIND_TARGET_DIR   cargo target directory (default target/valgrind)
#   VALGRIND_THREADS      test threads (default 2)
#
# Prints a summary: nginx processes checked, errors by kind, and errors with
# a frame of the module (ngx_http_authgear_module) in their stack. Each
# process's report is kept in <target dir>/logs/nginx-<pid>.log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${VALGRIND_TARGET_DIR:-$ROOT/target/valgrind}
THREADS=${VALGRIND_THREADS:-2}
LOG_DIR=$TARGET_DIR/logs
SUPPRESSIONS=$ROOT/scripts/valgrind.supp

# Tests that need several worker processes or a master process, which a
# single nginx process under valgrind does not have.
SKIP=(
    cache::entries_survive_reload
    cache::hits_shared_across_workers
    cache::lock_timeout_falls_back_to_bypass
    cache::resized_zone_works_after_reload
)

# The CI pass: each failure mode, spoofed headers, request bodies, HTTP/2,
# the cache with stale entries and the access policy.
SHORT=(
    failures_extra::
    spoofing::
    request_bodies::
    http2_requests::
    outcomes::valid_session_forwards_full_identity
    cache::stale_answer_served_within_window
    policy::allowed_request_reaches_upstream_with_identity
)

log() {
    echo "valgrind: $*"
}

fail() {
    echo "valgrind: error: $*" >&2
    exit 1
}

# Installs valgrind when it is missing, as scripts/install-deps.sh installs
# the build's packages.
if ! command -v valgrind >/dev/null; then
    command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ] \
        || fail "valgrind not found: install it, e.g. with 'apt-get install valgrind' as root"
    log "installing valgrind"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends valgrind
fi

FILTERS=()
case "${1:-}" in
    --short) FILTERS=("${SHORT[@]}") ;;
    -h | --help)
        sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) FILTERS=("$@") ;;
esac

export CARGO_TARGET_DIR=$TARGET_DIR
export NGX_CFLAGS="${NGX_CFLAGS:+$NGX_CFLAGS }-DNGX_DEBUG_PALLOC=1"

cd "$ROOT"
log "building nginx with NGX_DEBUG_PALLOC and the module in $TARGET_DIR"
cargo build --workspace
cargo test --test integration --no-run

rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
export TEST_NGINX_WRAPPER="valgrind --tool=memcheck --error-exitcode=99 --leak-check=no \
--track-origins=yes --num-callers=40 --suppressions=$SUPPRESSIONS \
--log-file=$LOG_DIR/nginx-%p.log"

SKIP_ARGS=()
for test in "${SKIP[@]}"; do
    SKIP_ARGS+=(--skip "$test")
done

log "running ${FILTERS[*]:-every integration test} with nginx under memcheck"
start=$(date +%s)
set +e
cargo test --test integration -- "${FILTERS[@]}" "${SKIP_ARGS[@]}" --test-threads="$THREADS"
tests_status=$?
set -e
elapsed=$(($(date +%s) - start))

shopt -s nullglob
logs=("$LOG_DIR"/nginx-*.log)
[ "${#logs[@]}" -gt 0 ] || fail "no valgrind report in $LOG_DIR: did any test start nginx?"

# A report without an ERROR SUMMARY belongs to a process that was killed
# before valgrind could finish it.
incomplete=0
errors=0
suppressed=0
for file in "${logs[@]}"; do
    summary=$(grep -h "ERROR SUMMARY:" "$file" || true)
    if [ -z "$summary" ]; then
        incomplete=$((incomplete + 1))
        log "incomplete report: $file"
        continue
    fi
    errors=$((errors + $(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' <<<"$summary")))
    suppressed=$((suppressed + $(sed -n 's/.*suppressed: \([0-9]*\) from.*/\1/p' <<<"$summary")))
done

# Each error starts with a line such as "==123== Invalid read of size 8" and
# ends with a line that holds only "==123==".
by_kind=$(awk '
    /^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function)/ {
        kind = $0
        sub(/^==[0-9]+== /, "", kind)
        sub(/ of size [0-9]+/, "", kind)
        counts[kind]++
    }
    END { for (kind in counts) printf "  %6d  %s\n", counts[kind], kind }
' "${logs[@]}")
in_module=$(awk '
    /^==[0-9]+== (Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument)/ {
        inside = 1; hit = 0; next
    }
    inside && /authgear/ { hit = 1 }
    inside && /^==[0-9]+== *$/ { if (hit) count++; inside = 0 }
    END { print count + 0 }
' "${logs[@]}")

log "tests finished in ${elapsed} s with status $tests_status"
log "nginx processes checked: ${#logs[@]}, incomplete reports: $incomplete"
log "errors: $errors, suppressed: $suppressed, with a frame of the module: $in_module"
if [ -n "$by_kind" ]; then
    log "errors by kind:"
    echo "$by_kind"
    log "details in $LOG_DIR"
fi

[ "$tests_status" -eq 0 ] || fail "tests failed under valgrind (status $tests_status)"
[ "$incomplete" -eq 0 ] || fail "$incomplete nginx processes ended before valgrind wrote its report"
[ "$errors" -eq 0 ] || fail "valgrind reported $errors errors"
log "no errors"
