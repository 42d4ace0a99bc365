#!/usr/bin/env bash
# Runs the soak test, tests/integration/soak.rs: mixed HTTP/1.1 and HTTP/2
# traffic against nginx with two worker processes and a cache zone, with a
# reload every 10 s and the stand-in resolver stopped for 20 s, all on
# 127.0.0.1. It fails on a 5xx outside the resolver's downtime, on an upstream
# request that saw another identity or a spoofed header, on a crashed worker,
# and on worker memory growth above 10 %.
#
#   scripts/soak.sh                    5 minutes
#   SOAK_SECONDS=30 scripts/soak.sh    30 seconds, as CI runs it
#
# Environment: SOAK_SECONDS (default 300), SOAK_CLIENTS, SOAK_DOWNTIME_SECONDS
# and SOAK_RELOAD_SECONDS, described in tests/integration/soak.rs, and
# SOAK_REPORT, the report file (default target/soak/report.txt).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SOAK_SECONDS=${SOAK_SECONDS:-300}
export SOAK_REPORT=${SOAK_REPORT:-$ROOT/target/soak/report.txt}

log() {
    echo "soak: $*"
}

command -v curl >/dev/null \
    || { echo "soak: error: curl not found: the HTTP/2 client needs it (apt-get install curl)" >&2; exit 1; }

cd "$ROOT"
# `cargo test` does not rebuild the module, which nginx loads.
cargo build --workspace
log "running for $SOAK_SECONDS s"
rm -f "$SOAK_REPORT"
cargo test --test integration soak::soak -- --ignored --exact --nocapture
log "report written to $SOAK_REPORT"
