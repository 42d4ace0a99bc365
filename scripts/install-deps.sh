#!/usr/bin/env bash
# Installs the Debian packages that building and testing the module need, and
# checks that the Rust toolchain is on PATH. Safe to run again: it installs
# only what is missing and runs `apt-get update` only in that case.
set -euo pipefail

# build-essential: C compiler and make for nginx's own build.
# libclang-dev: used by bindgen, which generates the nginx bindings.
# libpcre2-dev, libssl-dev, zlib1g-dev: libraries nginx links against.
# pkg-config: optional for nginx itself, kept for build scripts that look
# libraries up with it.
# curl: the demo and its smoke test send requests with it.
PACKAGES=(build-essential libclang-dev libpcre2-dev libssl-dev zlib1g-dev pkg-config curl)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() {
    echo "install-deps: $*"
}

fail() {
    echo "install-deps: error: $*" >&2
    exit 1
}

# Succeeds when dotted version $1 is at least $2.
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

is_installed() {
    dpkg-query --show --showformat='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

install_packages() {
    if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
        log "warning: dpkg or apt-get not found, so this is not a Debian-based system."
        log "warning: install the equivalents of these Debian packages yourself: ${PACKAGES[*]}"
        return
    fi

    local missing=() package
    for package in "${PACKAGES[@]}"; do
        is_installed "$package" || missing+=("$package")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "all Debian packages present: ${PACKAGES[*]}"
        return
    fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null \
            || fail "missing packages ${missing[*]}, and sudo is not available: run this script as root"
        sudo=(sudo)
    fi

    log "installing missing packages: ${missing[*]}"
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install --yes --no-install-recommends "${missing[@]}"
}

check_rust() {
    if ! command -v cargo >/dev/null; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            fail "cargo is installed in $HOME/.cargo/bin but not on PATH: run 'source \"\$HOME/.cargo/env\"' (or add $HOME/.cargo/bin to PATH) and try again"
        fi
        fail "cargo not found: install the Rust toolchain with rustup, then make sure ~/.cargo/bin is on PATH"
    fi

    # Compare with the oldest Rust that Cargo.toml's rust-version accepts.
    local version required
    version=$(rustc --version 2>/dev/null | awk '{print $2}') \
        || fail "cargo is on PATH but rustc is not: reinstall the Rust toolchain"
    required=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
    if [ -n "$required" ] && ! version_at_least "$version" "$required"; then
        fail "rustc $version is too old: Cargo.toml requires Rust $required or newer (run 'rustup update')"
    fi
    log "found $(cargo --version)"

    # `make lint` and .ci/run need these two components.
    cargo fmt --version >/dev/null 2>&1 \
        || log "warning: rustfmt not found: 'make lint' needs it (run 'rustup component add rustfmt')"
    cargo clippy --version >/dev/null 2>&1 \
        || log "warning: clippy not found: 'make lint' needs it (run 'rustup component add clippy')"
}

install_packages
check_rust
