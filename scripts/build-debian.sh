#!/usr/bin/env bash
# Builds ngx_http_authgear_module for the nginx that Debian ships (1.22.1 on
# bookworm) and copies it to build/debian/ngx_http_authgear_module.so.
#
# Steps:
#   1. Install Debian's `nginx` and `nginx-dev` if they are missing. The
#      nginx service is not started by the installation.
#   2. Copy the nginx sources that nginx-dev installs (/usr/share/nginx/src)
#      to target/debian/nginx and run its configure with Debian's own flags
#      (the `conf_flags` file). Configuring is enough: nginx-sys reads the
#      generated headers and objs/Makefile, nothing is compiled.
#   3. Build the module with cargo against that tree, with NGINX_SOURCE_DIR
#      and NGINX_BUILD_DIR set and without the `vendored` feature, into
#      target/debian, so the main build in target/ stays valid.
#
# Environment:
#   DEBIAN_NGINX_SOURCE   sources to configure (default /usr/share/nginx/src)
#   DEBIAN_BUILD_PROFILE  cargo profile, `release` (default) or `dev`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOURCE=${DEBIAN_NGINX_SOURCE:-/usr/share/nginx/src}
PROFILE=${DEBIAN_BUILD_PROFILE:-release}
TARGET_DIR=$ROOT/target/debian
TREE=$TARGET_DIR/nginx
OUTPUT_DIR=$ROOT/build/debian
MODULE_NAME=ngx_http_authgear_module

log() {
    echo "build-debian: $*"
}

fail() {
    echo "build-debian: error: $*" >&2
    exit 1
}

is_installed() {
    dpkg-query --show --showformat='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Installs nginx and nginx-dev. A policy-rc.d that denies every start keeps
# the package's maintainer scripts from starting nginx on port 80, unless the
# system already has a policy-rc.d of its own.
install_debian_nginx() {
    command -v apt-get >/dev/null || fail "apt-get not found: this script needs Debian or a derivative"
    local missing=() package
    for package in nginx nginx-dev; do
        is_installed "$package" || missing+=("$package")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "found Debian packages nginx and nginx-dev $(dpkg-query --show --showformat='${Version}' nginx-dev)"
        return
    fi
    [ "$(id -u)" -eq 0 ] || fail "missing packages ${missing[*]}: run this script as root, or install them with apt-get"

    local policy=/usr/sbin/policy-rc.d created_policy=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# Written by build-debian.sh while it installs nginx.\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=true
    fi
    log "installing missing packages: ${missing[*]}"
    local status=0
    apt-get update && env DEBIAN_FRONTEND=noninteractive \
        apt-get install --yes --no-install-recommends "${missing[@]}" || status=$?
    if [ "$created_policy" = true ]; then
        rm -f "$policy"
    fi
    [ "$status" -eq 0 ] || fail "apt-get install ${missing[*]} failed with exit code $status"
}

# Copies and configures the sources unless target/debian/nginx was configured
# from the same sources and flags before.
configure_tree() {
    [ -f "$SOURCE/src/core/nginx.h" ] || fail "no nginx sources in $SOURCE: install nginx-dev or set DEBIAN_NGINX_SOURCE"
    [ -f "$SOURCE/conf_flags" ] || fail "$SOURCE/conf_flags not found: nginx-dev installs it next to the sources"

    local stamp
    stamp=$(cat "$SOURCE/src/core/nginx.h" "$SOURCE/conf_flags" | sha256sum | cut -d ' ' -f 1)
    if [ -f "$TREE/objs/ngx_auto_config.h" ] && [ "$(cat "$TREE/.configured-from" 2>/dev/null)" = "$stamp" ]; then
        log "reusing the configured tree $TREE"
        return
    fi

    rm -rf "$TREE"
    mkdir -p "$TARGET_DIR"
    cp -a "$SOURCE" "$TREE"
    log "configuring $TREE with $SOURCE/conf_flags"
    (
        cd "$TREE"
        # shellcheck disable=SC1091 # Debian's file, present only at run time.
        . ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" --builddir=objs >"$TARGET_DIR/configure.log" 2>&1
    ) || fail "configure failed, see $TARGET_DIR/configure.log"
    echo "$stamp" >"$TREE/.configured-from"
}

build_module() {
    local profile_dir=$PROFILE
    [ "$PROFILE" = dev ] && profile_dir=debug
    log "building the module ($PROFILE profile) against $TREE"
    NGINX_SOURCE_DIR=$TREE NGINX_BUILD_DIR=$TREE/objs CARGO_TARGET_DIR=$TARGET_DIR \
        cargo build --manifest-path "$ROOT/Cargo.toml" --package ngx-http-authgear-module \
        --profile "$PROFILE" --no-default-features --features export-modules

    mkdir -p "$OUTPUT_DIR"
    cp "$TARGET_DIR/$profile_dir/lib$MODULE_NAME.so" "$OUTPUT_DIR/$MODULE_NAME.so"
    log "module: $OUTPUT_DIR/$MODULE_NAME.so"
}

install_debian_nginx
configure_tree
build_module
