#!/usr/bin/env bash
# Packages build/debian/ngx_http_authgear_module.so (from `make debian-build`)
# as libnginx-mod-http-authgear, laid out like Debian's own nginx module
# packages, and writes build/debian/libnginx-mod-http-authgear_<version>_<arch>.deb.
#
# The package contains:
#   /usr/lib/nginx/modules/ngx_http_authgear_module.so
#   /usr/share/nginx/modules-available/mod-http-authgear.conf (load_module)
#   /etc/nginx/snippets/authgear-resolver.conf (the resolver location, a conffile)
#   /usr/share/doc/libnginx-mod-http-authgear/examples/authgear.conf
# Its postinst links /etc/nginx/modules-enabled/50-mod-http-authgear.conf to
# the load_module file, which Debian's nginx.conf includes.
#
# The package depends on the nginx ABI that the module was built against
# (`nginx-abi-1.22.1-7` on bookworm), read from nginx-dev's
# debian/libnginx-mod.abisubstvars, because nginx loads a module only into
# the exact nginx version it was built for.
#
# Environment:
#   DEBIAN_NGINX_SOURCE  nginx-dev's sources (default /usr/share/nginx/src)
#   DEB_MAINTAINER       Maintainer field, "Name <email>"
#   DEB_REVISION         Debian revision appended to the crate version (default 1)
set -euo pipefail
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOURCE=${DEBIAN_NGINX_SOURCE:-/usr/share/nginx/src}
PACKAGE=libnginx-mod-http-authgear
MODULE_NAME=ngx_http_authgear_module
CONF_NAME=mod-http-authgear.conf
MODULE_SO=$ROOT/build/debian/$MODULE_NAME.so
OUTPUT_DIR=$ROOT/build/debian
STAGING=$ROOT/target/debian/deb-staging
# NOTE: the default is a placeholder address. Set DEB_MAINTAINER for a package
# that you publish.
MAINTAINER=${DEB_MAINTAINER:-ngx_http_authgear_module maintainers <maintainers@localhost>}

log() {
    echo "build-deb: $*"
}

fail() {
    echo "build-deb: error: $*" >&2
    exit 1
}

[ -f "$MODULE_SO" ] || fail "$MODULE_SO not found: run 'make debian-build' first"
for tool in dpkg-deb dpkg-shlibdeps strip; do
    command -v "$tool" >/dev/null || fail "$tool not found: install the Debian packages dpkg-dev and binutils"
done

# The ABI that Debian's module packages depend on, e.g. nginx-abi-1.22.1-7.
abi_file=$SOURCE/debian/libnginx-mod.abisubstvars
[ -f "$abi_file" ] || fail "$abi_file not found: install nginx-dev, whose sources the module was built against"
NGINX_ABI=$(sed -n 's/^nginx:abi=//p' "$abi_file" | head -n 1)
[ -n "$NGINX_ABI" ] || fail "no 'nginx:abi=' line in $abi_file"
installed_provides=$(dpkg-query --show --showformat='${Provides}' nginx 2>/dev/null || true)
case ", $installed_provides," in
    *", $NGINX_ABI,"*) ;;
    *) log "warning: the installed nginx provides '${installed_provides:-nothing}', not $NGINX_ABI: the package will not install next to it" ;;
esac

CRATE_VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
[ -n "$CRATE_VERSION" ] || fail "no version in $ROOT/Cargo.toml"
VERSION=$CRATE_VERSION-${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)

rm -rf "$STAGING"
mkdir -p "$STAGING/DEBIAN" \
    "$STAGING/usr/lib/nginx/modules" \
    "$STAGING/usr/share/nginx/modules-available" \
    "$STAGING/etc/nginx/snippets" \
    "$STAGING/usr/share/doc/$PACKAGE/examples"

# Debian ships modules without debug symbols. Stripping keeps the dynamic
# symbol table that load_module reads (ngx_modules, ngx_module_names).
strip --strip-unneeded -o "$STAGING/usr/lib/nginx/modules/$MODULE_NAME.so" "$MODULE_SO"
chmod 644 "$STAGING/usr/lib/nginx/modules/$MODULE_NAME.so"

# Relative to nginx's prefix /usr/share/nginx, where `modules` links to
# /usr/lib/nginx/modules, as in Debian's own module packages.
echo "load_module modules/$MODULE_NAME.so;" >"$STAGING/usr/share/nginx/modules-available/$CONF_NAME"
install -m 644 "$ROOT/nginx-conf/authgear-resolver.conf" "$STAGING/etc/nginx/snippets/authgear-resolver.conf"
install -m 644 "$ROOT/nginx-conf/authgear.conf" "$STAGING/usr/share/doc/$PACKAGE/examples/authgear.conf"
echo "/etc/nginx/snippets/authgear-resolver.conf" >"$STAGING/DEBIAN/conffiles"

# dpkg-shlibdeps reads the package list from debian/control, so it runs in a
# scratch directory that has a minimal one.
shlibs_dir=$(mktemp -d)
trap 'rm -rf "$shlibs_dir"' EXIT
mkdir "$shlibs_dir/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PACKAGE" "$PACKAGE" >"$shlibs_dir/debian/control"
SHLIBS_DEPENDS=$(cd "$shlibs_dir" && dpkg-shlibdeps -O "$STAGING/usr/lib/nginx/modules/$MODULE_NAME.so" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS_DEPENDS" ] || fail "dpkg-shlibdeps found no library dependencies of $MODULE_NAME.so"

INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$STAGING" | cut -f 1)
cat >"$STAGING/DEBIAN/control" <<EOF
Package: $PACKAGE
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_SIZE
Depends: $NGINX_ABI, $SHLIBS_DEPENDS
Recommends: nginx
Section: httpd
Priority: optional
Description: Authgear request resolution module for nginx
 ngx_http_authgear_module resolves each request through Authgear's resolver
 endpoint in nginx's access phase and forwards the resolved identity to the
 upstream as X-Authgear-* request headers, after removing client-sent copies.
 .
 Enable it in a server block with the snippets/authgear-resolver.conf
 location and the authgear_resolve directive.
EOF

# The maintainer scripts follow the convention of Debian's nginx module
# packages: the modules-enabled link is created on a fresh install, renamed
# to <link>.removed on removal so that a reinstall restores it, and deleted on
# purge. An administrator who deleted the link keeps it deleted on upgrades.
cat >"$STAGING/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
link=/etc/nginx/modules-enabled/50-$CONF_NAME
if [ -L "\$link.removed" ]; then
    rm "\$link.removed"
    restore=true
else
    restore=false
fi
# \$2 is the previously configured version, empty on a fresh install.
if [ -z "\$2" ] || [ "\$restore" = true ]; then
    mkdir -p /etc/nginx/modules-enabled
    ln -sf /usr/share/nginx/modules-available/$CONF_NAME "\$link"
fi
if [ "\$1" = configure ] && command -v dpkg-trigger >/dev/null 2>&1; then
    dpkg-trigger --no-await nginx-reload
fi
EOF

cat >"$STAGING/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
link=/etc/nginx/modules-enabled/50-$CONF_NAME
if [ "\$1" = remove ] || [ "\$1" = deconfigure ]; then
    if [ -L "\$link" ]; then
        mv "\$link" "\$link.removed"
    fi
fi
EOF

cat >"$STAGING/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
link=/etc/nginx/modules-enabled/50-$CONF_NAME
if [ "\$1" = purge ]; then
    rm -f "\$link" "\$link.removed"
fi
if [ "\$1" = remove ] && command -v dpkg-trigger >/dev/null 2>&1; then
    dpkg-trigger --no-await nginx-reload
fi
EOF
chmod 755 "$STAGING/DEBIAN/postinst" "$STAGING/DEBIAN/prerm" "$STAGING/DEBIAN/postrm"

(cd "$STAGING" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' \
    | sort -z | xargs -0 md5sum) >"$STAGING/DEBIAN/md5sums"

mkdir -p "$OUTPUT_DIR"
DEB=$OUTPUT_DIR/${PACKAGE}_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group --build "$STAGING" "$DEB" >/dev/null
log "package: $DEB"
log "depends: $NGINX_ABI, $SHLIBS_DEPENDS"
