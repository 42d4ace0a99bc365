#!/usr/bin/env bash
# Checks the two ways of building the module from nginx sources, with the
# nginx sources that the nginx-src crate ships (the version the vendored
# build uses), in copies under target/source-check:
#
#   1. scripts/build-against-source.sh, which the Dockerfile runs, builds the
#      module against a tree configured with --with-compat alone.
#   2. nginx's own build system: `configure --with-compat
#      --add-dynamic-module=<this repository>` and `make modules`.
#
# Both modules must pass `nginx -t` in an nginx built from the same sources
# with a different module set (--without-http_gzip_module
# --with-http_sub_module), which exercises nginx's binary signature check the
# way an official nginx image does for a module built elsewhere.
#
# Takes about 4 minutes on 2 cores, most of it compiling nginx and the crate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$ROOT/target/source-check
MODULE_NAME=ngx_http_authgear_module
JOBS=${JOBS:-$(nproc)}

PASSED=0
FAILED=0

log() {
    echo "check-source-builds: $*"
}

fail() {
    echo "check-source-builds: error: $*" >&2
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

# Prints the nginx directory of the nginx-src crate that Cargo.lock selects.
nginx_src_dir() {
    (cd "$ROOT" && cargo metadata --format-version 1) | python3 -c '
import json, os, sys
packages = json.load(sys.stdin)["packages"]
manifests = [p["manifest_path"] for p in packages if p["name"] == "nginx-src"]
if not manifests:
    sys.exit("nginx-src is not in the dependency graph")
print(os.path.join(os.path.dirname(manifests[0]), "nginx"))
'
}

# Copies the nginx sources to $WORK/$1, replacing an earlier copy.
fresh_copy() {
    rm -rf "${WORK:?}/$1"
    mkdir -p "$WORK"
    cp -a "$SOURCE" "$WORK/$1"
}

# Runs `nginx -t` on a configuration that loads module $2 and uses its
# directive, with the nginx binary $1.
check_module_loads() {
    local nginx=$1 module=$2 prefix
    prefix=$(mktemp -d "$WORK/prefix.XXXXXX")
    mkdir -p "$prefix/logs"
    cat >"$prefix/nginx.conf" <<EOF
load_module $module;
pid $prefix/nginx.pid;
events {}
http {
    upstream authgear_resolver {
        server 127.0.0.1:9;
    }
    server {
        listen 127.0.0.1:8999;
        include $ROOT/nginx-conf/authgear-resolver.conf;
        location /app/ {
            authgear_resolve /_authgear/resolve;
            proxy_pass http://127.0.0.1:9;
        }
    }
}
EOF
    "$nginx" -t -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/error.log" >"$prefix/nginx-t.log" 2>&1
    local status=$?
    [ "$status" -eq 0 ] || cat "$prefix/nginx-t.log" >&2
    rm -rf "$prefix"
    return "$status"
}

SOURCE=$(nginx_src_dir) || fail "cannot find the nginx-src crate's sources; run 'cargo fetch' first"
[ -f "$SOURCE/src/core/nginx.h" ] || fail "$SOURCE has no nginx sources"
log "nginx sources: $SOURCE"

# Builds the nginx that loads both modules, with another module set than the
# trees that the modules are built against.
log "building nginx with --with-compat --without-http_gzip_module --with-http_sub_module"
fresh_copy variant
(cd "$WORK/variant" && auto/configure --with-compat --without-http_gzip_module --with-http_sub_module \
    && make -j"$JOBS") >"$WORK/variant.log" 2>&1 \
    || { tail -n 30 "$WORK/variant.log" >&2; fail "building nginx failed, see $WORK/variant.log"; }
NGINX=$WORK/variant/objs/nginx
ok=no; "$NGINX" -V 2>&1 | grep -q -- '--without-http_gzip_module --with-http_sub_module' && ok=yes
record "$ok" "the test nginx has a different module set: $("$NGINX" -V 2>&1 | sed -n 's/^configure arguments: //p')"

log "running scripts/build-against-source.sh"
fresh_copy module
MODULE_OUTPUT=$WORK/$MODULE_NAME.so bash "$ROOT/scripts/build-against-source.sh" "$WORK/module"
ok=no; check_module_loads "$NGINX" "$WORK/$MODULE_NAME.so" && ok=yes
record "$ok" "the module from build-against-source.sh passes nginx -t"

log "running configure --add-dynamic-module and make modules"
fresh_copy addon
(cd "$WORK/addon" && auto/configure --with-compat --add-dynamic-module="$ROOT" \
    && make -j"$JOBS" modules) >"$WORK/addon.log" 2>&1 \
    || { tail -n 30 "$WORK/addon.log" >&2; fail "the nginx build of the module failed, see $WORK/addon.log"; }
ok=no; check_module_loads "$NGINX" "$WORK/addon/objs/$MODULE_NAME.so" && ok=yes
record "$ok" "the module from --add-dynamic-module passes nginx -t"

echo "check-source-builds: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
