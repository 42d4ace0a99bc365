#!/usr/bin/env bash
# Builds ngx_http_authgear_module against an nginx source tree, for an nginx
# binary that was built from the same nginx version with --with-compat (the
# official nginx Docker images and nginx.org's packages are).
#
# Usage: scripts/build-against-source.sh SOURCE_DIR [CONFIGURE_ARG...]
#
# SOURCE_DIR is an unpacked nginx release (with ./configure) or a checkout of
# the nginx repository (with auto/configure). The script configures it in
# place with --with-compat and the extra CONFIGURE_ARGs, unless an earlier run
# configured it with the same arguments, and then builds the module with
# NGINX_SOURCE_DIR and NGINX_BUILD_DIR pointing at it. nginx itself is not
# compiled: the module needs only the configured headers.
#
# Because both builds use --with-compat, the module loads into nginx binaries
# of the same version whatever modules they were configured with.
#
# Environment:
#   CARGO_TARGET_DIR  cargo's target directory (default target/source)
#   MODULE_OUTPUT     where to copy the module
#                     (default build/source/ngx_http_authgear_module.so)
#   CARGO_PROFILE     cargo profile, `release` (default) or `dev`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULE_NAME=ngx_http_authgear_module

log() {
    echo "build-against-source: $*"
}

fail() {
    echo "build-against-source: error: $*" >&2
    exit 1
}

[ $# -ge 1 ] || fail "missing SOURCE_DIR. Usage: $0 SOURCE_DIR [CONFIGURE_ARG...]"
[ -d "$1" ] || fail "SOURCE_DIR $1 is not a directory"
SOURCE_DIR=$(cd "$1" && pwd)
shift
CONFIGURE_ARGS=(--with-compat "$@")
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/source}
OUTPUT=${MODULE_OUTPUT:-$ROOT/build/source/$MODULE_NAME.so}
PROFILE=${CARGO_PROFILE:-release}
BUILD_DIR=$SOURCE_DIR/objs
STAMP=$BUILD_DIR/.authgear-configure-args

[ -f "$SOURCE_DIR/src/core/nginx.h" ] || fail "$SOURCE_DIR is not an nginx source tree: src/core/nginx.h not found"
if [ -x "$SOURCE_DIR/configure" ]; then
    CONFIGURE=./configure
elif [ -x "$SOURCE_DIR/auto/configure" ]; then
    CONFIGURE=auto/configure
else
    fail "no configure script in $SOURCE_DIR (looked for ./configure and auto/configure)"
fi

if [ -f "$BUILD_DIR/ngx_auto_config.h" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${CONFIGURE_ARGS[*]}" ]; then
    log "reusing $SOURCE_DIR, configured with ${CONFIGURE_ARGS[*]}"
else
    log "configuring $SOURCE_DIR with ${CONFIGURE_ARGS[*]}"
    (cd "$SOURCE_DIR" && "$CONFIGURE" "${CONFIGURE_ARGS[@]}") >"$SOURCE_DIR/configure.log" 2>&1 \
        || { tail -n 20 "$SOURCE_DIR/configure.log" >&2; fail "configure failed, see $SOURCE_DIR/configure.log"; }
    echo "${CONFIGURE_ARGS[*]}" >"$STAMP"
fi

profile_dir=$PROFILE
[ "$PROFILE" = dev ] && profile_dir=debug
log "building the module ($PROFILE profile) into $TARGET_DIR"
NGINX_SOURCE_DIR=$SOURCE_DIR NGINX_BUILD_DIR=$BUILD_DIR CARGO_TARGET_DIR=$TARGET_DIR \
    cargo build --manifest-path "$ROOT/Cargo.toml" --package ngx-http-authgear-module \
    --profile "$PROFILE" --no-default-features --features export-modules

mkdir -p "$(dirname "$OUTPUT")"
cp "$TARGET_DIR/$profile_dir/lib$MODULE_NAME.so" "$OUTPUT"
log "module for $(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/nginx \1/p' "$SOURCE_DIR/src/core/nginx.h"): $OUTPUT"
